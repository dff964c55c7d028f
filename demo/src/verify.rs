//! The demo's relying-party checks, written from the WebAuthn spec (§7.1, §7.2): the
//! registration and assertion JSON the bridge printed are verified as a server would verify
//! them — client data type, challenge and origin, RP ID hash, user present and verified flags,
//! the signature, and the signature counter. (The end-to-end tests use webauthn-rs instead, so
//! this code is checked against an independent implementation.)
//!
//! Attestation: `none`; `packed` self attestation (signature by the credential key); `packed`
//! with an `x5c` chain — the signature is verified with the attestation certificate's P-256 key,
//! and, when the demo is given a trust anchor ([`Expected::attestation_ca`]), the certificate's
//! own signature with the CA's key (no dates, names or extensions are checked: this is a demo,
//! not a certificate validator). Other formats are refused, as an RP that does not know them
//! would. The RP also reports what kind of credential it got, from the BE/BS flags.

use base64::Engine as _;
use hybrid_protocol::cbor::{self, MapReader};
use hybrid_protocol::ctap::{flags, AuthenticatorData};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the relying party asked for.
pub struct Expected<'a> {
    /// The RP ID.
    pub rp_id: &'a str,
    /// The page origin.
    pub origin: &'a str,
    /// The challenge it issued.
    pub challenge: &'a [u8],
    /// An attestation CA (DER) the RP trusts for `packed` attestation with `x5c`.
    pub attestation_ca: Option<&'a [u8]>,
}

/// A registered credential as the RP stores it.
#[derive(Clone)]
pub struct StoredCredential {
    /// Credential ID.
    pub id: Vec<u8>,
    /// Its public key.
    pub key: VerifyingKey,
    /// The last signature counter seen.
    pub sign_count: u32,
    /// Backup eligible (BE) at registration: a synced passkey if set, device-bound if not.
    pub backup_eligible: bool,
    /// Backed up (BS) at registration.
    pub backup_state: bool,
    /// How the registration was attested, in words.
    pub attestation: &'static str,
}

impl StoredCredential {
    /// "synced passkey (BE=1, BS=1)" or "device-bound credential (BE=0, BS=0)".
    pub fn kind(&self) -> String {
        format!(
            "{} (BE={}, BS={})",
            if self.backup_eligible {
                "synced passkey"
            } else {
                "device-bound credential"
            },
            u8::from(self.backup_eligible),
            u8::from(self.backup_state)
        )
    }
}

/// One DER TLV: (tag, the whole TLV, its contents, the bytes after it).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// The DER TLV at the start of `der`.
fn tlv(der: &[u8]) -> Result<Tlv<'_>, String> {
    let bad = || "attestation certificate: bad DER".to_string();
    let (&tag, rest) = der.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 3 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    let head = der.len() - rest.len();
    Ok((tag, &der[..head + len], &rest[..len], &rest[len..]))
}

/// A certificate's parts: the raw TBSCertificate, its P-256 public key and its signature.
struct Cert<'a> {
    tbs: &'a [u8],
    key: VerifyingKey,
    signature: &'a [u8],
}

/// SubjectPublicKeyInfo AlgorithmIdentifier for id-ecPublicKey on prime256v1.
const P256_ALG: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

fn parse_cert(der: &[u8]) -> Result<Cert<'_>, String> {
    let (_, _, cert, _) = tlv(der)?;
    let (_, tbs, tbs_body, rest) = tlv(cert)?;
    let (_, _, _alg, rest) = tlv(rest)?;
    let (tag, _, sig_bits, _) = tlv(rest)?;
    if tag != 0x03 || sig_bits.first() != Some(&0) {
        return Err("attestation certificate: the signature is not a BIT STRING".into());
    }
    // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, SPKI.
    let mut body = tbs_body;
    let mut fields = Vec::new();
    while !body.is_empty() && fields.len() < 7 {
        let (tag, whole, contents, rest) = tlv(body)?;
        fields.push((tag, whole, contents));
        body = rest;
    }
    let spki = match fields.first() {
        Some((0xa0, ..)) => fields.get(6),
        _ => fields.get(5),
    }
    .ok_or("attestation certificate: no subject public key")?
    .2;
    let (_, alg, _, rest) = tlv(spki)?;
    if alg != P256_ALG {
        return Err("attestation certificate: not a P-256 key".into());
    }
    let (_, _, bits, _) = tlv(rest)?;
    let point = bits.get(1..).ok_or("attestation certificate: empty key")?;
    let key = VerifyingKey::from_sec1_bytes(point)
        .map_err(|_| "attestation certificate: bad P-256 point")?;
    Ok(Cert {
        tbs,
        key,
        signature: &sig_bits[1..],
    })
}

/// Verifies `packed` attestation with an `x5c` chain: the signature with x5c[0]'s key, and
/// x5c[0] against the trusted CA when there is one. Returns how it was attested.
fn verify_x5c(
    x5c: &[ciborium::value::Value],
    sig: &DerSignature,
    signed: &[u8],
    ca: Option<&[u8]>,
) -> Result<&'static str, String> {
    let Some(ciborium::value::Value::Bytes(leaf)) = x5c.first() else {
        return Err("packed attStmt x5c holds no certificate".into());
    };
    let leaf = parse_cert(leaf)?;
    leaf.key
        .verify(signed, sig)
        .map_err(|_| "packed attestation signature does not verify with the x5c certificate")?;
    let Some(ca) = ca else {
        return Ok("packed attestation, x5c chain (no trust anchor configured)");
    };
    issued_by(&leaf, ca)?;
    Ok("packed attestation, x5c chain to the trusted attestation CA")
}

/// Checks that `ca_der`'s key signed `cert`.
fn issued_by(cert: &Cert<'_>, ca_der: &[u8]) -> Result<(), String> {
    let ca = parse_cert(ca_der)?;
    let sig = DerSignature::try_from(cert.signature)
        .map_err(|_| "attestation certificate signature is not DER")?;
    ca.key.verify(cert.tbs, &sig).map_err(|_| {
        "the attestation certificate was not issued by the trusted attestation CA".into()
    })
}

fn b64(v: &Value, what: &str) -> Result<Vec<u8>, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("{what} is missing or not a string"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| format!("{what} is not base64url"))
}

fn check_client_data(raw: &[u8], ty: &str, e: &Expected<'_>) -> Result<[u8; 32], String> {
    let cd: Value =
        serde_json::from_slice(raw).map_err(|_| "clientDataJSON is not JSON".to_string())?;
    if cd["type"] != ty {
        return Err(format!(
            "clientDataJSON type is {}, expected {ty}",
            cd["type"]
        ));
    }
    if b64(&cd["challenge"], "challenge")? != e.challenge {
        return Err("challenge does not match the one issued".into());
    }
    if cd["origin"] != e.origin {
        return Err(format!("origin {} is not {}", cd["origin"], e.origin));
    }
    Ok(Sha256::digest(raw).into())
}

fn check_auth_data(ad: &AuthenticatorData, e: &Expected<'_>) -> Result<(), String> {
    if ad.rp_id_hash != <[u8; 32]>::from(Sha256::digest(e.rp_id.as_bytes())) {
        return Err("RP ID hash does not match".into());
    }
    if ad.flags & flags::UP == 0 {
        return Err("user-present flag not set".into());
    }
    if ad.flags & flags::UV == 0 {
        return Err("user-verified flag not set".into());
    }
    Ok(())
}

/// Verifies a `RegistrationResponseJSON` and returns the credential to store.
pub fn registration(json: &Value, e: &Expected<'_>) -> Result<StoredCredential, String> {
    let raw_id = b64(&json["rawId"], "rawId")?;
    let client_data = b64(&json["response"]["clientDataJSON"], "clientDataJSON")?;
    let cd_hash = check_client_data(&client_data, "webauthn.create", e)?;
    let att = b64(&json["response"]["attestationObject"], "attestationObject")?;
    let att = cbor::decode(&att).map_err(|e| format!("attestationObject: {e}"))?;
    let m = MapReader::new("attestationObject", &att).map_err(|e| e.to_string())?;
    let auth_data_raw = match m.get_text_key("authData") {
        Some(ciborium::value::Value::Bytes(b)) => b.clone(),
        _ => return Err("attestationObject has no authData".into()),
    };
    let ad = AuthenticatorData::parse(&auth_data_raw).map_err(|e| e.to_string())?;
    check_auth_data(&ad, e)?;
    let cred = ad
        .attested_credential
        .as_ref()
        .ok_or("no attested credential data")?;
    if cred.credential_id != raw_id {
        return Err("credential ID in authData differs from rawId".into());
    }
    let key = VerifyingKey::from_sec1_bytes(&cred.public_key.to_uncompressed())
        .map_err(|e| e.to_string())?;
    let attestation = match m.get_text_key("fmt") {
        Some(ciborium::value::Value::Text(f)) if f == "none" => "no attestation (fmt none)",
        Some(ciborium::value::Value::Text(f)) if f == "packed" => {
            let st = MapReader::new("attStmt", m.get_text_key("attStmt").ok_or("no attStmt")?)
                .map_err(|e| e.to_string())?;
            let sig = match st.get_text_key("sig") {
                Some(ciborium::value::Value::Bytes(b)) => b.clone(),
                _ => return Err("packed attStmt has no sig".into()),
            };
            let sig = DerSignature::try_from(sig.as_slice())
                .map_err(|_| "attestation signature is not DER")?;
            let signed = [auth_data_raw.as_slice(), &cd_hash].concat();
            match st.get_text_key("x5c") {
                Some(ciborium::value::Value::Array(x5c)) => {
                    verify_x5c(x5c, &sig, &signed, e.attestation_ca)?
                }
                Some(_) => return Err("packed attStmt x5c is not an array".into()),
                None => {
                    key.verify(&signed, &sig)
                        .map_err(|_| "self-attestation signature does not verify")?;
                    "packed self-attestation"
                }
            }
        }
        other => return Err(format!("unsupported attestation format {other:?}")),
    };
    if ad.flags & flags::BS != 0 && ad.flags & flags::BE == 0 {
        return Err("backed up (BS) but not backup eligible (BE)".into());
    }
    Ok(StoredCredential {
        id: raw_id,
        key,
        sign_count: ad.sign_count,
        backup_eligible: ad.flags & flags::BE != 0,
        backup_state: ad.flags & flags::BS != 0,
        attestation,
    })
}

/// Verifies an `AuthenticationResponseJSON` against a stored credential, updating its counter.
pub fn assertion(
    json: &Value,
    e: &Expected<'_>,
    cred: &mut StoredCredential,
) -> Result<(), String> {
    if b64(&json["rawId"], "rawId")? != cred.id {
        return Err("assertion is for another credential".into());
    }
    let client_data = b64(&json["response"]["clientDataJSON"], "clientDataJSON")?;
    let cd_hash = check_client_data(&client_data, "webauthn.get", e)?;
    let auth_data_raw = b64(&json["response"]["authenticatorData"], "authenticatorData")?;
    let ad = AuthenticatorData::parse(&auth_data_raw).map_err(|e| e.to_string())?;
    check_auth_data(&ad, e)?;
    let sig = b64(&json["response"]["signature"], "signature")?;
    let sig = DerSignature::try_from(sig.as_slice()).map_err(|_| "signature is not DER")?;
    cred.key
        .verify(&[auth_data_raw.as_slice(), &cd_hash].concat(), &sig)
        .map_err(|_| "assertion signature does not verify")?;
    if (ad.sign_count != 0 || cred.sign_count != 0) && ad.sign_count <= cred.sign_count {
        return Err(format!(
            "signature counter went from {} to {}: possibly a cloned authenticator",
            cred.sign_count, ad.sign_count
        ));
    }
    if (ad.flags & flags::BE != 0) != cred.backup_eligible {
        return Err("backup eligibility (BE) changed since registration".into());
    }
    cred.sign_count = ad.sign_count;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(dir: &std::path::Path, name: &str) -> (Vec<u8>, Vec<u8>) {
        let mut phone =
            phone_sim::Phone::open(dir.join(name), phone_sim::PhoneConfig::default()).unwrap();
        let ca = phone.make_attestation_ca().unwrap();
        (ca.ca_der().to_vec(), ca.leaf_der().to_vec())
    }

    #[test]
    fn the_attestation_certificate_is_checked_against_the_trusted_ca_only() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_a, leaf_a) = ca(dir.path(), "a.json");
        let (ca_b, _) = ca(dir.path(), "b.json");
        let leaf = parse_cert(&leaf_a).unwrap();
        issued_by(&leaf, &ca_a).expect("issued by its own CA");
        let err = issued_by(&leaf, &ca_b).unwrap_err();
        assert!(err.contains("not issued by the trusted"), "{err}");
        // Truncated or bit-flipped certificates are errors, never panics.
        for n in 0..leaf_a.len() {
            assert!(parse_cert(&leaf_a[..n]).is_err());
        }
        for i in 0..leaf_a.len() {
            let mut b = leaf_a.clone();
            b[i] ^= 0x80;
            if let Ok(c) = parse_cert(&b) {
                let _ = issued_by(&c, &ca_a);
            }
        }
    }
}
