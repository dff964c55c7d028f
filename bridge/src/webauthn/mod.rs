//! The WebAuthn layer a browser would add around CTAP: W3C options JSON in
//! (`PublicKeyCredentialCreationOptionsJSON` / `PublicKeyCredentialRequestOptionsJSON`), the
//! RP ID check against the origin, `clientDataJSON` and its hash, the CTAP request, and W3C
//! `RegistrationResponseJSON` / `AuthenticationResponseJSON` out, ready for any relying-party
//! library.
//!
//! Layout: [`options`] (W3C options JSON in, CTAP requests out), [`origin`] (origin and RP ID
//! policy), [`client_data`] (`clientDataJSON`), [`response`] (W3C response JSON out). This
//! module ties them to a ceremony: [`register`], [`sign_in`], [`sign_in_linked`].

pub mod client_data;
pub mod options;
pub mod origin;
pub mod response;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hybrid_protocol::ctap::Command;
use sha2::{Digest as _, Sha256};

use crate::ceremony::{self, BridgeConfig, CtapRequest};
use crate::error::BridgeError;
use crate::progress::Progress;
use crate::scanner::Scanner;

pub use client_data::client_data_json;
pub use options::*;
pub use origin::*;
pub use response::*;

/// base64url without padding.
pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// Registers a passkey on a phone via a QR code (see [`ceremony::qr_transaction`]).
pub async fn register(
    options: &RegistrationOptions,
    config: &BridgeConfig,
    scanner: &mut dyn Scanner,
    progress: &dyn Progress,
) -> Result<Registration, BridgeError> {
    options.validate()?;
    let client_data = options.client_data();
    let hash: [u8; 32] = Sha256::digest(client_data.as_bytes()).into();
    let request = CtapRequest {
        command: Command::MakeCredential,
        body: options.to_ctap(hash).to_cbor(),
    };
    let outcome = ceremony::qr_transaction(&request, config, scanner, progress).await?;
    let json = registration_json(options, &client_data, &outcome.response)?;
    Ok(Registration { json, outcome })
}

/// Signs in via a QR code.
pub async fn sign_in(
    options: &AuthenticationOptions,
    config: &BridgeConfig,
    scanner: &mut dyn Scanner,
    progress: &dyn Progress,
) -> Result<Authentication, BridgeError> {
    let (client_data, request) = assertion_request(options)?;
    let outcome = ceremony::qr_transaction(&request, config, scanner, progress).await?;
    let json = authentication_json(options, &client_data, &outcome.response)?;
    Ok(Authentication { json, outcome })
}

/// Signs in with the linked phone named `phone` (no QR code).
pub async fn sign_in_linked(
    phone: &str,
    options: &AuthenticationOptions,
    config: &BridgeConfig,
    scanner: &mut dyn Scanner,
    progress: &dyn Progress,
) -> Result<Authentication, BridgeError> {
    let (client_data, request) = assertion_request(options)?;
    let outcome = ceremony::linked_transaction(phone, &request, config, scanner, progress).await?;
    let json = authentication_json(options, &client_data, &outcome.response)?;
    Ok(Authentication { json, outcome })
}

fn assertion_request(
    options: &AuthenticationOptions,
) -> Result<(String, CtapRequest), BridgeError> {
    options.validate()?;
    let client_data = options.client_data();
    let hash: [u8; 32] = Sha256::digest(client_data.as_bytes()).into();
    Ok((
        client_data,
        CtapRequest {
            command: Command::GetAssertion,
            body: options.to_ctap(hash).to_cbor(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rp_id_rules() {
        assert!(check_rp_id("example.com", "https://example.com").is_ok());
        assert!(check_rp_id("example.com", "https://login.example.com:8443").is_ok());
        assert!(check_rp_id("localhost", "http://localhost:8080").is_ok());
        for (rp, origin) in [
            ("com", "https://example.com"),
            ("co.uk", "https://shop.co.uk"),
            ("other.com", "https://example.com"),
            ("ample.com", "https://example.com"),
            ("example.com", "http://example.com"),
            ("example.com", "https://example.com/path"),
            ("login.example.com", "https://example.com"),
            ("1.2.3", "https://4.1.2.3"),
        ] {
            assert!(
                check_rp_id(rp, origin).is_err(),
                "{rp} for {origin} must be refused"
            );
        }
    }

    #[test]
    fn client_data_is_in_browser_order() {
        assert_eq!(
            client_data_json("webauthn.get", &[1, 2, 3], "https://a.example"),
            r#"{"type":"webauthn.get","challenge":"AQID","origin":"https://a.example","crossOrigin":false}"#
        );
    }

    #[test]
    fn parses_w3c_creation_options() {
        let json = r#"{"publicKey":{"rp":{"id":"example.com","name":"Example"},
            "user":{"id":"dXNlcg","name":"alice","displayName":"Alice"},
            "challenge":"AAAAAAAAAAAAAAAAAAAAAA","pubKeyCredParams":[{"type":"public-key","alg":-7}],
            "authenticatorSelection":{"residentKey":"required","userVerification":"required"},
            "extensions":{"credProps":true,"prf":{}}}}"#;
        let o = RegistrationOptions::from_json(json, None).unwrap();
        assert_eq!(o.origin, "https://example.com");
        assert_eq!(o.user_id, b"user");
        assert!(o.resident_key && o.cred_props);
        assert_eq!(o.prf, Some(None));
        assert_eq!(o.user_verification, UserVerification::Required);
        assert!(RegistrationOptions::from_json(json, Some("https://evil.test")).is_err());
    }

    #[test]
    fn parses_w3c_request_options() {
        let json = r#"{"challenge":"AAAAAAAAAAAAAAAAAAAAAA","rpId":"example.com",
            "allowCredentials":[{"type":"public-key","id":"AQID"}],"userVerification":"discouraged"}"#;
        let o = AuthenticationOptions::from_json(json, Some("https://www.example.com")).unwrap();
        assert_eq!(o.allow, vec![vec![1, 2, 3]]);
        assert_eq!(o.to_ctap([0; 32]).options.uv, None);
        assert!(AuthenticationOptions::from_json(
            r#"{"challenge":"AA","rpId":"example.com"}"#,
            None
        )
        .is_err());
    }
}
