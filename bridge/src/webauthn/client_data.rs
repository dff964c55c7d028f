//! `clientDataJSON` (WebAuthn §5.8.1): what the browser would hash and the phone signs over.
//! The origin in it is serialised as a browser does (`HTTPS://Example.COM:443` →
//! `https://example.com`), because relying parties compare it as a string.

use super::b64url;
use super::origin::normalize_origin;

/// `{"type":…,"challenge":…,"origin":…,"crossOrigin":false}`, in that order, with the origin
/// normalised. Callers check the origin first ([`super::check_rp_id`]); one that does not
/// parse is written as given, and the relying party will refuse it.
pub fn client_data_json(ty: &str, challenge: &[u8], origin: &str) -> String {
    let origin = normalize_origin(origin).unwrap_or_else(|_| origin.to_string());
    format!(
        r#"{{"type":"{ty}","challenge":"{}","origin":{},"crossOrigin":false}}"#,
        b64url(challenge),
        serde_json::Value::String(origin)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_serialised_as_a_browser_does() {
        for (given, want) in [
            ("HTTPS://Example.COM:443", "https://example.com"),
            ("https://example.com/", "https://example.com"),
            ("https://example.com:8443", "https://example.com:8443"),
            ("http://[0:0::1]:80", "http://[::1]"),
        ] {
            let json = client_data_json("webauthn.create", &[0; 16], given);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["origin"], want, "{given}");
        }
    }
}
