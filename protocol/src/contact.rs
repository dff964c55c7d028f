//! This project's contact channel on its relay (docs/PROTOCOL.md#contact): how a linked phone
//! is woken for a linked ceremony (docs/PROTOCOL.md#flow-linked), a leg the hybrid
//! specification leaves to the phone's platform (Google uses FCM). The wire format both the
//! relay and the phone speak:
//!
//! - `/cable/register` (mint) answers 101 with [`CONTACT_ID_HEADER`] and, to the phone only,
//!   [`REGISTRATION_SECRET_HEADER`] carrying a [`RegistrationSecret`]; the phone resumes with
//!   `/cable/register/<contact id>` and that header;
//! - a desktop's `/cable/contact/<contact id>` makes the relay send the phone's registration
//!   socket one binary message, a [`WakeUp`] as JSON;
//! - the phone sends [`REVOKE_MESSAGE`] on its registration socket to revoke its contact ID.

use core::fmt;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Malformed};
use crate::tunnel::{RoutingId, TunnelId};

/// Response header of `/cable/register` (and of a resume, echoed) carrying the contact ID,
/// base64url without padding.
pub const CONTACT_ID_HEADER: &str = "X-caBLE-Contact-ID";
/// Header carrying a [`RegistrationSecret`], base64url without padding: in the response to a
/// minting `/cable/register` (to the phone only), and in the phone's resuming
/// `/cable/register/<contact id>` request.
pub const REGISTRATION_SECRET_HEADER: &str = "X-caBLE-Registration-Secret";
/// What a phone sends on its registration socket to revoke its contact ID (15 bytes).
pub const REVOKE_MESSAGE: &[u8] = br#"{"revoke":true}"#;
/// Domain separator of [`RegistrationSecret::contact_key`].
const CONTACT_KEY_LABEL: &[u8] = b"hybrid-bridge contact";

/// The 32-byte secret our relay's contact channel returns only to the phone that minted a
/// contact ID. The contact ID's 16 random bytes are derived from it
/// ([`RegistrationSecret::contact_key`]), so the relay stores no secret, and only its holder
/// can resume (or, over the resumed socket, revoke) the registration; desktops get only the
/// contact ID. Zeroized on drop; `Debug` prints `[redacted]`.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct RegistrationSecret([u8; 32]);

/// A wake-up: the relay tells a linked phone which tunnel to join and what the desktop sent.
/// On the wire it is one binary WebSocket message holding UTF-8 JSON,
/// `{"client_payload":"<hex as received>","routing_id":"<6 upper hex>","tunnel_id":"<32 upper hex>"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeUp {
    /// The tunnel the relay opened for the desktop; the phone joins it with `/cable/connect`.
    pub tunnel_id: TunnelId,
    /// The relay instance holding that tunnel.
    pub routing_id: RoutingId,
    /// The desktop's `X-caBLE-Client-Payload` header value, hex as the relay received it (a
    /// [`ClientPayload`](crate::linking::ClientPayload) for the phone to parse).
    pub client_payload: String,
}

/// [`WakeUp`]'s JSON. The fields are in alphabetical order, the order the relay writes them.
#[derive(serde::Serialize, serde::Deserialize)]
struct WakeUpJson<'a> {
    client_payload: &'a str,
    routing_id: &'a str,
    tunnel_id: &'a str,
}

impl WakeUp {
    /// The JSON text the relay sends.
    pub fn to_json(&self) -> String {
        let (routing_id, tunnel_id) = (self.routing_id.to_hex(), self.tunnel_id.to_hex());
        let json = WakeUpJson {
            client_payload: &self.client_payload,
            routing_id: &routing_id,
            tunnel_id: &tunnel_id,
        };
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Parses the relay's message: JSON with the three fields, the IDs in hex of either case.
    /// The client payload is kept as text; [`ClientPayload::from_header`] parses it.
    ///
    /// [`ClientPayload::from_header`]: crate::linking::ClientPayload::from_header
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let json: WakeUpJson<'_> = serde_json::from_slice(bytes)
            .map_err(|e| Malformed::Contact(format!("not wake-up JSON: {e}")))?;
        Ok(Self {
            tunnel_id: TunnelId::from_hex(json.tunnel_id)?,
            routing_id: RoutingId::from_hex(json.routing_id)?,
            client_payload: json.client_payload.to_string(),
        })
    }
}

/// Whether a registration socket's message asks to revoke the contact ID: any JSON object
/// whose `revoke` is `true` ([`REVOKE_MESSAGE`] is the one phones send).
pub fn is_revoke(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("revoke").and_then(serde_json::Value::as_bool))
        == Some(true)
}

impl RegistrationSecret {
    /// Wraps 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh secret from `rng`.
    pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 16 random bytes of the contact ID this secret owns:
    /// `SHA-256("hybrid-bridge contact" ‖ secret)[..16]`.
    pub fn contact_key(&self) -> [u8; 16] {
        let digest = Sha256::new()
            .chain_update(CONTACT_KEY_LABEL)
            .chain_update(self.0)
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    /// Whether this secret owns the contact key `key`, compared in constant time.
    pub fn owns(&self, key: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.contact_key()[..].ct_eq(key))
    }

    /// base64url without padding, as carried in [`REGISTRATION_SECRET_HEADER`].
    pub fn to_base64url(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Parses base64url without padding of exactly 32 bytes. The error does not echo the input.
    pub fn from_base64url(s: &str) -> Result<Self, Error> {
        let mut out = [0u8; 32];
        let bad = || Malformed::Url("registration secret is not 32 bytes of base64url".into());
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(s.as_bytes(), &mut out)
            .map_err(|_| bad())?;
        if n != 32 {
            zeroize::Zeroize::zeroize(&mut out);
            return Err(bad().into());
        }
        Ok(Self(out))
    }
}

impl fmt::Debug for RegistrationSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistrationSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_secret_owns_only_its_contact_key() {
        let s = RegistrationSecret::from_bytes([7; 32]);
        let key = s.contact_key();
        assert!(s.owns(&key));
        assert!(!RegistrationSecret::from_bytes([8; 32]).owns(&key));
        let mut other = key;
        other[15] ^= 1;
        assert!(!s.owns(&other));
        assert!(!s.owns(&key[..15]));
        let text = s.to_base64url();
        assert_eq!(text.len(), 43);
        assert!(RegistrationSecret::from_base64url(&text)
            .unwrap()
            .owns(&key));
        assert!(RegistrationSecret::from_base64url(&text[..42]).is_err());
        assert!(RegistrationSecret::from_base64url(&format!("{}AA", &*text)).is_err());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains(&*text) && shown.contains("redacted"),
            "{shown}"
        );
        // The derivation is fixed: phones and relays of different builds must agree.
        let mut h = Sha256::new();
        h.update(b"hybrid-bridge contact");
        h.update([7u8; 32]);
        assert_eq!(key[..], h.finalize()[..16]);
    }

    #[test]
    fn revoke_message() {
        assert!(is_revoke(REVOKE_MESSAGE));
        assert_eq!(REVOKE_MESSAGE.len(), 15);
        assert!(is_revoke(br#"{ "revoke": true }"#));
        assert!(!is_revoke(br#"{"revoke":false}"#));
        assert!(!is_revoke(b"\xff\x00"));
        assert!(!is_revoke(b"[]"));
    }

    #[test]
    fn wake_up_json_shape_and_round_trip() {
        let w = WakeUp {
            tunnel_id: TunnelId([0xab; 16]),
            routing_id: RoutingId([1, 2, 0xcd]),
            client_payload: "a1b2".into(),
        };
        let json = w.to_json();
        assert_eq!(
            json,
            format!(
                r#"{{"client_payload":"a1b2","routing_id":"0102CD","tunnel_id":"{}"}}"#,
                "AB".repeat(16)
            )
        );
        assert_eq!(WakeUp::from_json(json.as_bytes()).unwrap(), w);
        let lower = json.to_lowercase();
        assert_eq!(
            WakeUp::from_json(lower.as_bytes()).unwrap().tunnel_id,
            w.tunnel_id
        );
    }

    #[test]
    fn wake_up_parsing_never_panics_and_rejects_bad_ids() {
        let json = WakeUp {
            tunnel_id: TunnelId([7; 16]),
            routing_id: RoutingId([10, 11, 12]),
            client_payload: "a0".into(),
        }
        .to_json();
        let bytes = json.as_bytes();
        for n in 0..bytes.len() {
            assert!(WakeUp::from_json(&bytes[..n]).is_err(), "{n}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.to_vec();
                b[i] ^= 1 << bit;
                let _ = WakeUp::from_json(&b);
            }
        }
        for bad in [
            r#"{"tunnel_id":"00","routing_id":"000000","client_payload":"a0"}"#,
            r#"{"tunnel_id":"ABABABABABABABABABABABABABABABAB","routing_id":"00","client_payload":"a0"}"#,
            r#"{"tunnel_id":"ABABABABABABABABABABABABABABABAB","routing_id":"000000"}"#,
            "[]",
        ] {
            assert!(WakeUp::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
