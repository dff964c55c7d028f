//! Authenticator data (WebAuthn §6.1) with attested credential data and ES256 COSE keys,
//! built and parsed with `coset`.

use ciborium::value::Value;
use coset::{iana, AsCborValue as _, CoseKey, CoseKeyBuilder};

use super::flags;
use crate::cbor;
use crate::error::{Error, Malformed};
use crate::keys::PublicKey;

/// Attested credential data inside authenticator data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestedCredential {
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// Credential ID.
    pub credential_id: Vec<u8>,
    /// The credential's ES256 public key.
    pub public_key: PublicKey,
}

/// Authenticator data (WebAuthn §6.1).
#[derive(Clone, Debug, PartialEq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// Flag bits ([`flags`]); `AT` and `ED` are set from the fields below on encoding.
    pub flags: u8,
    /// Signature counter.
    pub sign_count: u32,
    /// Present in makeCredential responses.
    pub attested_credential: Option<AttestedCredential>,
    /// Authenticator extension outputs (CBOR map), e.g. `credProps`.
    pub extensions: Option<Value>,
}

/// The canonical CBOR of an ES256 COSE_Key for `key`, built with `coset`.
pub fn cose_key_es256(key: &PublicKey) -> Vec<u8> {
    let point = key.to_uncompressed();
    let cose = CoseKeyBuilder::new_ec2_pub_key(
        iana::EllipticCurve::P_256,
        point[1..33].to_vec(),
        point[33..].to_vec(),
    )
    .algorithm(iana::Algorithm::ES256)
    .build();
    let value = cose.to_cbor_value().expect("a COSE key always serializes");
    cbor::encode(&value)
}

/// Parses an ES256 COSE_Key: `alg` ES256, `kty` EC2, `crv` P-256, and an `x`, `y` on the curve.
pub fn parse_cose_key_es256(value: Value) -> Result<PublicKey, Error> {
    let key =
        CoseKey::from_cbor_value(value).map_err(|e| Malformed::Ctap(format!("COSE key: {e}")))?;
    let find = |label: i64| {
        key.params
            .iter()
            .find(|(l, _)| *l == coset::Label::Int(label))
            .map(|(_, v)| v)
    };
    let param = |label: i64| match find(label) {
        Some(Value::Bytes(b)) => Some(b.clone()),
        _ => None,
    };
    if key.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::ES256)) {
        return Err(Malformed::Ctap("COSE key is not ES256".into()).into());
    }
    // RFC 9053 §2.1: ES256 is ECDSA on P-256, so an EC2 key (kty 2) with crv 1.
    if key.kty != coset::KeyType::Assigned(iana::KeyType::EC2) {
        return Err(
            Malformed::Ctap(format!("ES256 COSE key has kty {:?}, not EC2", key.kty)).into(),
        );
    }
    let p256 = Value::Integer((iana::EllipticCurve::P_256 as i64).into());
    if find(iana::Ec2KeyParameter::Crv as i64) != Some(&p256) {
        return Err(Malformed::Ctap("ES256 COSE key's crv is not P-256".into()).into());
    }
    let (x, y) = param(iana::Ec2KeyParameter::X as i64)
        .zip(param(iana::Ec2KeyParameter::Y as i64))
        .ok_or_else(|| Malformed::Ctap("COSE key lacks x or y".into()))?;
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    PublicKey::from_uncompressed(&point)
}

impl AuthenticatorData {
    /// The raw bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = self.flags & !(flags::AT | flags::ED);
        if self.attested_credential.is_some() {
            flags |= flags::AT;
        }
        if self.extensions.is_some() {
            flags |= flags::ED;
        }
        let mut out = Vec::with_capacity(37 + 200);
        out.extend_from_slice(&self.rp_id_hash);
        out.push(flags);
        out.extend_from_slice(&self.sign_count.to_be_bytes());
        if let Some(c) = &self.attested_credential {
            out.extend_from_slice(&c.aaguid);
            out.extend_from_slice(&(c.credential_id.len() as u16).to_be_bytes());
            out.extend_from_slice(&c.credential_id);
            out.extend_from_slice(&cose_key_es256(&c.public_key));
        }
        if let Some(e) = &self.extensions {
            out.extend_from_slice(&cbor::encode(e));
        }
        out
    }

    /// Parses raw bytes, rejecting trailing data.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |m: &str| Error::from(Malformed::Ctap(format!("authenticator data: {m}")));
        if bytes.len() < 37 {
            return Err(bad(&format!("{} bytes is shorter than 37", bytes.len())));
        }
        let rp_id_hash = bytes[..32].try_into().expect("32 bytes");
        let flags = bytes[32];
        let sign_count = u32::from_be_bytes(bytes[33..37].try_into().expect("4 bytes"));
        let mut rest = &bytes[37..];
        let attested_credential = if flags & flags::AT != 0 {
            if rest.len() < 18 {
                return Err(bad("attested credential data is truncated"));
            }
            let aaguid = rest[..16].try_into().expect("16 bytes");
            let len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
            rest = &rest[18..];
            if rest.len() < len {
                return Err(bad("credential ID is truncated"));
            }
            let credential_id = rest[..len].to_vec();
            rest = &rest[len..];
            let (key, used) = cbor::decode_prefix(rest)?;
            rest = &rest[used..];
            Some(AttestedCredential {
                aaguid,
                credential_id,
                public_key: parse_cose_key_es256(key)?,
            })
        } else {
            None
        };
        let extensions = if flags & flags::ED != 0 {
            let (ext, used) = cbor::decode_prefix(rest)?;
            rest = &rest[used..];
            Some(ext)
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(bad(&format!("{} trailing bytes", rest.len())));
        }
        Ok(Self {
            rp_id_hash,
            flags,
            sign_count,
            attested_credential,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PublicKey {
        crate::keys::IdentityKey::from_bytes(&[7; 32])
            .expect("a valid scalar")
            .public_key()
    }

    /// The COSE key map of `key()` with `label` set to `value` (or removed if `None`).
    fn with(label: i64, value: Option<Value>) -> Value {
        let Value::Map(mut m) = cbor::decode(&cose_key_es256(&key())).unwrap() else {
            panic!("a COSE key is a map")
        };
        m.retain(|(l, _)| *l != Value::Integer(label.into()));
        if let Some(v) = value {
            m.push((Value::Integer(label.into()), v));
        }
        Value::Map(m)
    }

    #[test]
    fn es256_keys_round_trip() {
        let v = cbor::decode(&cose_key_es256(&key())).unwrap();
        assert_eq!(parse_cose_key_es256(v).unwrap(), key());
    }

    #[test]
    fn es256_needs_an_ec2_key_on_p256() {
        for (what, label, value) in [
            ("kty OKP", 1, Some(Value::Integer(1.into()))),
            ("kty RSA", 1, Some(Value::Integer(3.into()))),
            ("crv P-384", -1, Some(Value::Integer(2.into()))),
            ("crv Ed25519", -1, Some(Value::Integer(6.into()))),
            ("no crv", -1, None),
            ("crv as text", -1, Some(Value::Text("P-256".into()))),
        ] {
            let r = parse_cose_key_es256(with(label, value));
            assert!(
                matches!(r, Err(Error::Malformed(Malformed::Ctap(_)))),
                "{what}: {r:?}"
            );
        }
    }
}
