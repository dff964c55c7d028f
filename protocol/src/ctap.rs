//! CTAP2 messages (placeholder).
