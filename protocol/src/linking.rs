//! Linking (docs/PROTOCOL.md#linking): the linking-info map a phone sends so a client can later
//! reach it without a QR code, the handshake signature that binds the phone's long-term key to the
//! QR session, and the client payload (`X-caBLE-Client-Payload`) of a state-assisted
//! transaction. A client keeps a link only as a [`VerifiedLink`], which only
//! [`LinkingInfo::verify`] creates.

use ciborium::value::Value;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed, Misuse, PeerMisbehaved};
use crate::keys::{IdentityKey, LinkSecret, PublicKey};
use crate::qr::RequestType;

/// Linking information (keys 1–6, and Play Services' 999).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkingInfo {
    /// Key 1: the opaque contact ID.
    pub contact_id: Vec<u8>,
    /// Key 2: the link (pairing) ID.
    pub link_id: [u8; 8],
    /// Key 3: the link secret.
    pub link_secret: LinkSecret,
    /// Key 4: the phone's identity public key (sent uncompressed).
    pub authenticator_public_key: PublicKey,
    /// Key 5: the phone's display name.
    pub name: String,
    /// Key 6: HMAC of the handshake hash under the identity keys' ECDH.
    pub handshake_signature: [u8; 32],
    /// Key 999: Play Services' tag, when present.
    pub play_services_tag: Option<bool>,
}

impl core::fmt::Debug for LinkingInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkingInfo")
            .field("name", &self.name)
            .field("authenticator_public_key", &self.authenticator_public_key)
            .finish_non_exhaustive()
    }
}

/// The handshake signature: HMAC-SHA256 keyed by the X coordinate of ECDH(`ours`, `theirs`)
/// over the handshake hash. The phone computes it with its identity key and the client's QR
/// key; the client with its QR key and the phone's identity key.
pub fn handshake_signature(
    ours: &IdentityKey,
    theirs: &PublicKey,
    handshake_hash: &[u8; 32],
) -> [u8; 32] {
    let shared = ours.ecdh(theirs);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(shared.as_ref()).expect("any key length");
    mac.update(handshake_hash);
    mac.finalize().into_bytes().into()
}

/// Linking information whose signature verified against this client's QR session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLink(LinkingInfo);

impl VerifiedLink {
    /// The verified information.
    pub fn info(&self) -> &LinkingInfo {
        &self.0
    }

    /// Unwraps the verified information.
    pub fn into_info(self) -> LinkingInfo {
        self.0
    }

    /// Rebuilds a link the caller verified earlier and stored (e.g. read back from disk).
    pub fn from_storage(info: LinkingInfo) -> Self {
        Self(info)
    }
}

impl LinkingInfo {
    /// Verifies the handshake signature with the client's QR identity key and the hash of the
    /// QR session it arrived in.
    pub fn verify(
        self,
        qr_identity: &IdentityKey,
        handshake_hash: &[u8; 32],
    ) -> Result<VerifiedLink, Error> {
        let expected =
            handshake_signature(qr_identity, &self.authenticator_public_key, handshake_hash);
        if bool::from(expected.ct_eq(&self.handshake_signature)) {
            Ok(VerifiedLink(self))
        } else {
            Err(PeerMisbehaved::LinkSignature.into())
        }
    }

    /// The CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (cbor::int(1), cbor::bytes(&self.contact_id)),
            (cbor::int(2), cbor::bytes(&self.link_id)),
            (cbor::int(3), cbor::bytes(self.link_secret.expose())),
            (
                cbor::int(4),
                cbor::bytes(&self.authenticator_public_key.to_uncompressed()),
            ),
            (cbor::int(5), cbor::text(&self.name)),
            (cbor::int(6), cbor::bytes(&self.handshake_signature)),
        ];
        if let Some(t) = self.play_services_tag {
            m.push((cbor::int(999), Value::Bool(t)));
        }
        Value::Map(m)
    }

    /// Parses the CBOR map as Chromium does: keys 1–4 and 6 byte strings, 5 text, key 4 a valid
    /// 65-byte point.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let link = |e: Error| match e {
            Error::Malformed(Malformed::Cbor(m)) => Error::Malformed(Malformed::Linking(m)),
            other => other,
        };
        let m = MapReader::new("linking info", v).map_err(link)?;
        let contact_id = m.bytes(1).map_err(link)?.to_vec();
        let link_id = m.fixed_bytes::<8>(2).map_err(link)?;
        let link_secret = LinkSecret::from_bytes(m.fixed_bytes::<32>(3).map_err(link)?);
        let key = m.bytes(4).map_err(link)?;
        let authenticator_public_key = PublicKey::from_uncompressed(key).map_err(|_| {
            Malformed::Linking(format!(
                "key 4 must be a 65-byte uncompressed P-256 point, got {} bytes",
                key.len()
            ))
        })?;
        let name = m.text(5).map_err(link)?.to_string();
        let handshake_signature = m.fixed_bytes::<32>(6).map_err(link)?;
        let play_services_tag = m.opt_bool(999).map_err(link)?;
        Ok(Self {
            contact_id,
            link_id,
            link_secret,
            authenticator_public_key,
            name,
            handshake_signature,
            play_services_tag,
        })
    }
}

/// The client payload of a state-assisted transaction: `{1: link id, 2: client nonce, 3: hint}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPayload {
    /// Which link (pairing) the client uses.
    pub link_id: [u8; 8],
    /// Fresh random salt for the advert key.
    pub client_nonce: [u8; 16],
    /// `"ga"` or `"mc"`.
    pub request_type: RequestType,
}

impl ClientPayload {
    /// A payload with a fresh nonce.
    pub fn new(
        link_id: [u8; 8],
        request_type: RequestType,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, Error> {
        let mut client_nonce = [0u8; 16];
        rng.try_fill_bytes(&mut client_nonce)
            .map_err(|e| Misuse::Rng(e.to_string()))?;
        Ok(Self {
            link_id,
            client_nonce,
            request_type,
        })
    }

    /// Canonical CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![
            (cbor::int(1), cbor::bytes(&self.link_id)),
            (cbor::int(2), cbor::bytes(&self.client_nonce)),
            (cbor::int(3), cbor::text(self.request_type.as_str())),
        ]))
    }

    /// The header value: upper-case hex of the CBOR.
    pub fn to_header(&self) -> String {
        hex::encode_upper(self.to_cbor())
    }

    /// Parses a header value (hex of either case); the hint must be `"ga"` or `"mc"`.
    pub fn from_header(value: &str) -> Result<Self, Error> {
        let bytes = hex::decode(value.trim())
            .map_err(|_| Malformed::Linking("client payload header is not hex".into()))?;
        Self::from_cbor(&bytes)
    }

    /// Parses the CBOR.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let link = |e: Error| match e {
            Error::Malformed(Malformed::Cbor(m)) => {
                Error::Malformed(Malformed::Linking(format!("client payload: {m}")))
            }
            other => other,
        };
        let v = cbor::decode(bytes).map_err(link)?;
        let m = MapReader::new("client payload", &v).map_err(link)?;
        let link_id = m.fixed_bytes::<8>(1).map_err(link)?;
        let client_nonce = m.fixed_bytes::<16>(2).map_err(link)?;
        let hint = m.text(3).map_err(link)?;
        let request_type = match hint {
            "ga" => RequestType::GetAssertion,
            "mc" => RequestType::MakeCredential,
            other => {
                return Err(Malformed::Linking(format!(
                    "client payload hint must be \"ga\" or \"mc\", got {other:?}"
                ))
                .into())
            }
        };
        Ok(Self {
            link_id,
            client_nonce,
            request_type,
        })
    }
}
