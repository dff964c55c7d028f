//! The end-to-end harness: an independent relying party ([`rp`]) and helpers that start the
//! relay, a phone and the bridge in-process on loopback. All scenarios compile into one test
//! binary, `tests/e2e.rs`, with one module file per area beside it.

pub mod key;
pub mod rp;
pub mod rp_http;
pub mod tap;
