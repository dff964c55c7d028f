//! `clientDataJSON` (WebAuthn §5.8.1): what the browser would hash and the phone signs over.

use super::b64url;

/// `{"type":…,"challenge":…,"origin":…,"crossOrigin":false}`, in that order.
pub fn client_data_json(ty: &str, challenge: &[u8], origin: &str) -> String {
    format!(
        r#"{{"type":"{ty}","challenge":"{}","origin":{},"crossOrigin":false}}"#,
        b64url(challenge),
        serde_json::Value::String(origin.to_string())
    )
}
