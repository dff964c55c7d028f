//! The demo's relying-party checks, written from the WebAuthn spec (§7.1, §7.2): the
//! registration and assertion JSON the bridge printed are verified as a server would verify
//! them — client data type, challenge and origin, RP ID hash, user present and verified flags,
//! the signature, and the signature counter. (The end-to-end tests use webauthn-rs instead, so
//! this code is checked against an independent implementation.)

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
    match m.get_text_key("fmt") {
        Some(ciborium::value::Value::Text(f)) if f == "none" => {}
        Some(ciborium::value::Value::Text(f)) if f == "packed" => {
            let st = MapReader::new("attStmt", m.get_text_key("attStmt").ok_or("no attStmt")?)
                .map_err(|e| e.to_string())?;
            let sig = match st.get_text_key("sig") {
                Some(ciborium::value::Value::Bytes(b)) => b.clone(),
                _ => return Err("packed attStmt has no sig".into()),
            };
            let sig = DerSignature::try_from(sig.as_slice())
                .map_err(|_| "attestation signature is not DER")?;
            key.verify(&[auth_data_raw.as_slice(), &cd_hash].concat(), &sig)
                .map_err(|_| "self-attestation signature does not verify")?;
        }
        other => return Err(format!("unsupported attestation format {other:?}")),
    }
    Ok(StoredCredential {
        id: raw_id,
        key,
        sign_count: ad.sign_count,
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
    cred.sign_count = ad.sign_count;
    Ok(())
}
