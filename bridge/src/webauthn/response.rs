//! W3C JSON out: `RegistrationResponseJSON` and `AuthenticationResponseJSON` built from the
//! phone's makeCredential / getAssertion replies, after checking they answer what was asked
//! (RP ID hash, allowed credential), ready for any relying-party library.

use ciborium::value::Value;
use hybrid_protocol::cbor;
use hybrid_protocol::ctap::{
    self, AuthenticatorData, GetAssertionResponse, MakeCredentialResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ceremony::CtapOutcome;
use crate::error::BridgeError;

use super::b64url;
use super::options::{AuthenticationOptions, RegistrationOptions};

/// `RegistrationResponseJSON`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponseJson {
    /// Credential ID, base64url.
    pub id: String,
    /// Same as `id`.
    pub raw_id: String,
    /// `"public-key"`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The attestation response.
    pub response: AttestationResponseJson,
    /// `"cross-platform"`.
    pub authenticator_attachment: String,
    /// Client extension outputs.
    pub client_extension_results: serde_json::Value,
}

/// `AuthenticatorAttestationResponseJSON`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponseJson {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url CBOR `{fmt, attStmt, authData}`.
    pub attestation_object: String,
    /// `["hybrid", "internal"]`.
    pub transports: Vec<String>,
    /// base64url SubjectPublicKeyInfo (ES256 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// COSE algorithm of the credential.
    pub public_key_algorithm: i64,
    /// base64url.
    pub authenticator_data: String,
}

/// `AuthenticationResponseJSON`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponseJson {
    /// Credential ID, base64url.
    pub id: String,
    /// Same as `id`.
    pub raw_id: String,
    /// `"public-key"`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The assertion response.
    pub response: AssertionResponseJson,
    /// `"cross-platform"`.
    pub authenticator_attachment: String,
    /// Client extension outputs.
    pub client_extension_results: serde_json::Value,
}

/// `AuthenticatorAssertionResponseJSON`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponseJson {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url.
    pub authenticator_data: String,
    /// base64url DER ECDSA signature.
    pub signature: String,
    /// base64url user handle, when the phone returned one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<String>,
}

/// A finished registration: the JSON and what the transaction did.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The W3C JSON.
    pub json: RegistrationResponseJson,
    /// The transaction (getInfo, link stored, stage timings).
    pub outcome: CtapOutcome,
}

/// A finished sign-in.
#[derive(Clone, Debug)]
pub struct Authentication {
    /// The W3C JSON.
    pub json: AuthenticationResponseJson,
    /// The transaction.
    pub outcome: CtapOutcome,
}

const DURING: &str = "in its CTAP response";

fn check_rp_hash(auth: &AuthenticatorData, rp_id: &str) -> Result<(), BridgeError> {
    let want: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
    if auth.rp_id_hash != want {
        return Err(BridgeError::Peer {
            during: DURING,
            error: hybrid_protocol::error::PeerMisbehaved::UnexpectedMessage {
                expected: "authenticator data for the requested RP ID",
                got: "another RP ID hash".into(),
            }
            .into(),
        });
    }
    Ok(())
}

/// Builds `RegistrationResponseJSON` from the makeCredential response CBOR.
pub fn registration_json(
    options: &RegistrationOptions,
    client_data: &str,
    response: &[u8],
) -> Result<RegistrationResponseJson, BridgeError> {
    let r = MakeCredentialResponse::from_cbor(response).map_err(BridgeError::peer(DURING))?;
    let auth = AuthenticatorData::parse(&r.auth_data).map_err(BridgeError::peer(DURING))?;
    check_rp_hash(&auth, &options.rp_id)?;
    let cred = auth
        .attested_credential
        .as_ref()
        .ok_or_else(|| BridgeError::Peer {
            during: DURING,
            error: hybrid_protocol::error::Malformed::Ctap(
                "makeCredential authenticator data has no attested credential".into(),
            )
            .into(),
        })?;
    let attestation_object = cbor::encode(&Value::Map(vec![
        (cbor::text("fmt"), cbor::text(r.attestation.format())),
        (cbor::text("attStmt"), r.attestation.to_value()),
        (cbor::text("authData"), cbor::bytes(&r.auth_data)),
    ]));
    let mut spki =
        hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").expect("constant hex");
    spki.extend_from_slice(&cred.public_key.to_uncompressed());
    let mut ext = serde_json::Map::new();
    if options.cred_props {
        let rk = auth_ext_bool(&auth, "credProps", "rk").unwrap_or(options.resident_key);
        ext.insert("credProps".into(), serde_json::json!({ "rk": rk }));
    }
    if options.prf.is_some() {
        ext.insert(
            "prf".into(),
            serde_json::json!({ "enabled": r.prf_enabled.unwrap_or(false) }),
        );
    }
    let id = b64url(&cred.credential_id);
    Ok(RegistrationResponseJson {
        raw_id: id.clone(),
        id,
        ty: "public-key".into(),
        response: AttestationResponseJson {
            client_data_json: b64url(client_data.as_bytes()),
            attestation_object: b64url(&attestation_object),
            transports: vec!["hybrid".into(), "internal".into()],
            public_key: Some(b64url(&spki)),
            public_key_algorithm: ctap::ES256,
            authenticator_data: b64url(&r.auth_data),
        },
        authenticator_attachment: "cross-platform".into(),
        client_extension_results: serde_json::Value::Object(ext),
    })
}

fn auth_ext_bool(auth: &AuthenticatorData, ext: &str, key: &str) -> Option<bool> {
    let Some(Value::Map(m)) = &auth.extensions else {
        return None;
    };
    let inner = m.iter().find(|(k, _)| k.as_text() == Some(ext))?;
    let Value::Map(inner) = &inner.1 else {
        return None;
    };
    inner
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .and_then(|(_, v)| v.as_bool())
}

/// Builds `AuthenticationResponseJSON` from the getAssertion response CBOR.
pub fn authentication_json(
    options: &AuthenticationOptions,
    client_data: &str,
    response: &[u8],
) -> Result<AuthenticationResponseJson, BridgeError> {
    let r = GetAssertionResponse::from_cbor(response).map_err(BridgeError::peer(DURING))?;
    let auth = AuthenticatorData::parse(&r.auth_data).map_err(BridgeError::peer(DURING))?;
    check_rp_hash(&auth, &options.rp_id)?;
    if !options.allow.is_empty() && !options.allow.contains(&r.credential.id) {
        return Err(BridgeError::Peer {
            during: DURING,
            error: hybrid_protocol::error::PeerMisbehaved::UnexpectedMessage {
                expected: "a credential from the allow list",
                got: "another credential".into(),
            }
            .into(),
        });
    }
    let mut ext = serde_json::Map::new();
    if options.prf.is_some() {
        let results = r.prf_results.as_ref().map(|p| {
            let mut m = serde_json::json!({ "first": b64url(&p.first) });
            if let Some(s) = &p.second {
                m["second"] = b64url(s).into();
            }
            m
        });
        ext.insert(
            "prf".into(),
            match results {
                Some(res) => serde_json::json!({ "results": res }),
                None => serde_json::json!({}),
            },
        );
    }
    let id = b64url(&r.credential.id);
    Ok(AuthenticationResponseJson {
        raw_id: id.clone(),
        id,
        ty: "public-key".into(),
        response: AssertionResponseJson {
            client_data_json: b64url(client_data.as_bytes()),
            authenticator_data: b64url(&r.auth_data),
            signature: b64url(&r.signature),
            user_handle: r.user.as_ref().map(|u| b64url(&u.id)),
        },
        authenticator_attachment: "cross-platform".into(),
        client_extension_results: serde_json::Value::Object(ext),
    })
}
