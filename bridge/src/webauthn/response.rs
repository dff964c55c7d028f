//! W3C JSON out: `RegistrationResponseJSON` and `AuthenticationResponseJSON` built from the
//! phone's makeCredential / getAssertion replies, after checking they answer what was asked
//! (RP ID hash, allowed credential), ready for any relying-party library.

use ciborium::value::Value;
use hybrid_protocol::cbor;
use hybrid_protocol::ctap::{
    self, AttestationStatement, AuthenticatorData, GetAssertionResponse, MakeCredentialResponse,
    PrfValues,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ceremony::CtapOutcome;
use crate::error::BridgeError;

use super::b64url;
use super::options::{AttestationConveyance, AuthenticationOptions, RegistrationOptions};

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
    let attestation = conveyed(options.attestation, r.attestation, &cred.aaguid);
    let attestation_object = cbor::encode(&Value::Map(vec![
        (cbor::text("fmt"), cbor::text(attestation.format())),
        (cbor::text("attStmt"), attestation.to_value()),
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
        let mut prf = serde_json::json!({ "enabled": r.prf_enabled.unwrap_or(false) });
        // Results only for inputs the page gave: a phone's answer to nothing is dropped.
        if let (Some(Some(_)), Some(results)) = (&options.prf, &r.prf_results) {
            prf["results"] = prf_results_json(results);
        }
        ext.insert("prf".into(), prf);
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

/// The attestation the relying party gets. The bridge never judges attestation: with
/// `attestation: "direct"`, `"indirect"` or `"enterprise"` the phone's `fmt` and `attStmt` go
/// into the `attestationObject` verbatim, whatever the format, and the RP verifies them.
///
/// With `"none"` (or no preference) the bridge does what browsers do (WebAuthn L3 §5.1.3, the
/// `none` branch of the attestation conveyance step): self attestation (AAGUID all zero,
/// `packed`, no `x5c`) is kept; anything else becomes `fmt: "none"`, `attStmt: {}`. The AAGUID
/// is kept: WebAuthn L2 also replaced it with zeros, L3 no longer does (its change log:
/// "aaguid … is no longer zeroed"), and keeping it leaves `authData` byte for byte what the
/// phone produced (the RP sees one authenticatorData in the object and in the JSON).
fn conveyed(
    preference: AttestationConveyance,
    phone: AttestationStatement,
    aaguid: &[u8; 16],
) -> AttestationStatement {
    match preference {
        AttestationConveyance::Direct
        | AttestationConveyance::Indirect
        | AttestationConveyance::Enterprise => phone,
        AttestationConveyance::None => {
            let self_attestation =
                *aaguid == [0; 16] && phone.format() == "packed" && phone.get("x5c").is_none();
            if self_attestation {
                phone
            } else {
                AttestationStatement::none()
            }
        }
    }
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

/// `prf.results` as `AuthenticationExtensionsPRFValuesJSON`: `first` and `second`, base64url.
fn prf_results_json(p: &PrfValues) -> serde_json::Value {
    let mut m = serde_json::json!({ "first": b64url(&p.first) });
    if let Some(s) = &p.second {
        m["second"] = b64url(s).into();
    }
    m
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
        let results = r.prf_results.as_ref().map(prf_results_json);
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

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_protocol::ctap::{flags, AttestedCredential};
    use hybrid_protocol::keys::PublicKey;

    const ORIGIN: &str = "https://att.example.com";

    fn options(attestation: Option<&str>) -> RegistrationOptions {
        let mut json = serde_json::json!({
            "rp": {"id": "att.example.com", "name": "Att"},
            "user": {"id": "dXNlcg", "name": "u", "displayName": "U"},
            "challenge": b64url(&[7; 32]),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        });
        if let Some(a) = attestation {
            json["attestation"] = a.into();
        }
        RegistrationOptions::from_json(&json.to_string(), Some(ORIGIN)).unwrap()
    }

    fn auth_data(aaguid: [u8; 16]) -> Vec<u8> {
        let key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        AuthenticatorData {
            rp_id_hash: Sha256::digest(b"att.example.com").into(),
            flags: flags::UP | flags::UV | flags::BE | flags::BS,
            sign_count: 0,
            attested_credential: Some(AttestedCredential {
                aaguid,
                credential_id: vec![9; 16],
                public_key: PublicKey::from_sec1(
                    key.verifying_key().to_encoded_point(false).as_bytes(),
                )
                .unwrap(),
            }),
            extensions: None,
        }
        .to_bytes()
    }

    /// A makeCredential response (canonical CBOR) with `fmt` and `attStmt` as given.
    fn response(fmt: &str, att_stmt: Value, auth_data: &[u8]) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![
            (cbor::int(1), cbor::text(fmt)),
            (cbor::int(2), cbor::bytes(auth_data)),
            (cbor::int(3), att_stmt),
        ]))
    }

    /// `attStmt`s of several shapes: packed with a certificate chain, a TPM-shaped map, a
    /// fido-u2f one and a format no one registered.
    fn statements() -> Vec<(&'static str, Value)> {
        let t = cbor::text;
        vec![
            (
                "packed",
                Value::Map(vec![
                    (t("alg"), cbor::int(-7)),
                    (t("sig"), cbor::bytes(&[0x30, 0x44, 1, 2, 3])),
                    (
                        t("x5c"),
                        Value::Array(vec![cbor::bytes(&[0x30, 0x82, 1]), cbor::bytes(&[0x30, 2])]),
                    ),
                ]),
            ),
            (
                "tpm",
                Value::Map(vec![
                    (t("ver"), t("2.0")),
                    (t("alg"), cbor::int(-65535)),
                    (t("x5c"), Value::Array(vec![cbor::bytes(&[1; 40])])),
                    (t("sig"), cbor::bytes(&[2; 256])),
                    (t("certInfo"), cbor::bytes(&[3; 100])),
                    (t("pubArea"), cbor::bytes(&[4; 60])),
                ]),
            ),
            (
                "fido-u2f",
                Value::Map(vec![
                    (t("sig"), cbor::bytes(&[5; 70])),
                    (t("x5c"), Value::Array(vec![cbor::bytes(&[6; 300])])),
                ]),
            ),
            (
                "x-test",
                Value::Map(vec![
                    (cbor::int(1), Value::Bool(true)),
                    (t("nested"), Value::Map(vec![(cbor::int(-3), Value::Null)])),
                    (t("list"), Value::Array(vec![cbor::int(1_000_000), t("é")])),
                ]),
            ),
        ]
    }

    fn attestation_object(json: &RegistrationResponseJson) -> Value {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&json.response.attestation_object)
            .unwrap();
        cbor::decode(&raw).expect("the attestationObject is canonical CBOR")
    }

    fn field<'v>(m: &'v Value, key: &str) -> &'v Value {
        cbor::MapReader::new("attestationObject", m)
            .unwrap()
            .get_text_key(key)
            .unwrap_or_else(|| panic!("no {key}"))
    }

    #[test]
    fn without_an_attestation_preference_the_statement_is_stripped_and_the_aaguid_kept() {
        for pref in [None, Some("none"), Some("no-such-preference")] {
            let o = options(pref);
            assert_eq!(o.attestation, AttestationConveyance::None);
            for (fmt, st) in statements() {
                let ad = auth_data(*b"0123456789abcdef");
                let json =
                    registration_json(&o, &o.client_data(), &response(fmt, st, &ad)).unwrap();
                let att = attestation_object(&json);
                assert_eq!(field(&att, "fmt"), &cbor::text("none"), "{pref:?}/{fmt}");
                assert_eq!(
                    field(&att, "attStmt"),
                    &Value::Map(vec![]),
                    "{pref:?}/{fmt}"
                );
                assert_eq!(
                    field(&att, "authData"),
                    &cbor::bytes(&ad),
                    "{pref:?}/{fmt}: authData (and its AAGUID) untouched"
                );
                assert_eq!(json.response.authenticator_data, b64url(&ad));
            }
        }
        // Self attestation with a zero AAGUID is not identifying: kept even under `none`.
        let o = options(None);
        let ad = auth_data([0; 16]);
        let st = AttestationStatement::packed_self(-7, vec![0x30, 1]);
        let json = registration_json(
            &o,
            &o.client_data(),
            &response("packed", st.to_value(), &ad),
        )
        .unwrap();
        let att = attestation_object(&json);
        assert_eq!(field(&att, "fmt"), &cbor::text("packed"));
        assert_eq!(field(&att, "attStmt"), &st.to_value());
    }

    #[test]
    fn any_format_and_statement_pass_through_verbatim_when_the_rp_asks_for_attestation() {
        for pref in ["direct", "indirect", "enterprise"] {
            let o = options(Some(pref));
            for (fmt, st) in statements() {
                let ad = auth_data(*b"0123456789abcdef");
                let json = registration_json(&o, &o.client_data(), &response(fmt, st.clone(), &ad))
                    .unwrap_or_else(|e| panic!("{pref}/{fmt}: the bridge refused it: {e}"));
                let att = attestation_object(&json);
                assert_eq!(field(&att, "fmt"), &cbor::text(fmt), "{pref}/{fmt}");
                assert_eq!(
                    cbor::encode(field(&att, "attStmt")),
                    cbor::encode(&st),
                    "{pref}/{fmt}: attStmt byte for byte"
                );
                assert_eq!(field(&att, "authData"), &cbor::bytes(&ad), "{pref}/{fmt}");
            }
        }
    }

    /// A getAssertion response from credential `[9; 16]` on `att.example.com`.
    fn assertion(prf_results: Option<PrfValues>) -> Vec<u8> {
        GetAssertionResponse {
            credential: ctap::CredentialDescriptor {
                id: vec![9; 16],
                transports: None,
            },
            auth_data: AuthenticatorData {
                rp_id_hash: Sha256::digest(b"att.example.com").into(),
                flags: flags::UP | flags::UV,
                sign_count: 0,
                attested_credential: None,
                extensions: None,
            }
            .to_bytes(),
            signature: vec![0x30, 0],
            user: None,
            user_selected: None,
            prf_results,
        }
        .to_cbor()
    }

    fn sign_in(prf: serde_json::Value) -> AuthenticationOptions {
        let json = serde_json::json!({
            "challenge": b64url(&[7; 32]),
            "rpId": "att.example.com",
            "allowCredentials": [{"type": "public-key", "id": b64url(&[9; 16])}],
            "extensions": {"prf": prf},
        });
        AuthenticationOptions::from_json(&json.to_string(), Some(ORIGIN)).unwrap()
    }

    #[test]
    fn prf_results_reach_the_page_when_only_eval_by_credential_was_given() {
        let o = sign_in(serde_json::json!({
            "evalByCredential": {b64url(&[9; 16]): {"first": "b25l"}},
        }));
        let results = PrfValues {
            first: vec![1; 32],
            second: None,
        };
        let json = authentication_json(&o, "{}", &assertion(Some(results))).unwrap();
        assert_eq!(
            json.client_extension_results,
            serde_json::json!({"prf": {"results": {"first": b64url(&[1; 32])}}})
        );
    }
}
