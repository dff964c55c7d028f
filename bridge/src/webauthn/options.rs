//! W3C options JSON in (`PublicKeyCredentialCreationOptionsJSON` /
//! `PublicKeyCredentialRequestOptionsJSON`, bare or under `publicKey`), resolved into the
//! [`RegistrationOptions`] / [`AuthenticationOptions`] a ceremony needs, and turned into the
//! CTAP makeCredential / getAssertion requests (PRF salts hashed as WebAuthn defines).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hybrid_protocol::ctap::{
    self, CredentialDescriptor, GetAssertionRequest, MakeCredentialExtensions,
    MakeCredentialRequest, Options, PrfInputs, PrfValues, RelyingParty, User,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::BridgeError;

use super::client_data::client_data_json;
use super::origin::{check_rp_scope, resolve_origin, RpScope};

/// WebAuthn-level PRF inputs: `first` and an optional `second` (hashed before sending).
pub type PrfEval = (Vec<u8>, Option<Vec<u8>>);

/// The `prf` inputs of a sign-in (WebAuthn L3 §10.1.4), WebAuthn-level (hashed before sending).
///
/// Over hybrid the client cannot know which allowed credential the phone will use, so both
/// go to the phone, as Chromium sends them (its `prf` CTAP extension carries `eval` and
/// `evalByCredential`): the phone evaluates the entry for the credential it signs with, else
/// `eval`. With one allowed credential that is the entry for it, as the spec's client would
/// choose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrfGet {
    /// `eval`: for a credential with no entry of its own.
    pub eval: Option<PrfEval>,
    /// `evalByCredential`: decoded credential ID → inputs; every ID is in the allow list.
    pub eval_by_credential: Vec<(Vec<u8>, PrfEval)>,
}

/// User verification preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    /// The phone must verify the user.
    Required,
    /// Verify if possible (phones always do).
    #[default]
    Preferred,
    /// Don't ask for verification.
    Discouraged,
}

impl UserVerification {
    fn ctap_uv(self) -> Option<bool> {
        match self {
            Self::Required | Self::Preferred => Some(true),
            Self::Discouraged => None,
        }
    }
}

/// The RP's `attestation` conveyance preference (WebAuthn §5.4.7). Unknown values count as
/// `none`, as the spec says clients treat them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttestationConveyance {
    /// `none` (the default): the client may replace attestation with `fmt: "none"`.
    #[default]
    None,
    /// `indirect`: the client may anonymise; the bridge passes attestation verbatim.
    Indirect,
    /// `direct`: the authenticator's attestation, verbatim.
    Direct,
    /// `enterprise`: verbatim (the bridge asks for no enterprise attestation itself).
    Enterprise,
}

impl AttestationConveyance {
    fn from_json(s: Option<&str>) -> Self {
        match s {
            Some("indirect") => Self::Indirect,
            Some("direct") => Self::Direct,
            Some("enterprise") => Self::Enterprise,
            _ => Self::None,
        }
    }
}

/// A registration request, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationOptions {
    /// The web origin, e.g. `https://example.com`.
    pub origin: String,
    /// RP ID (defaults to the origin's host).
    pub rp_id: String,
    /// RP display name.
    pub rp_name: String,
    /// User handle.
    pub user_id: Vec<u8>,
    /// User name.
    pub user_name: String,
    /// User display name.
    pub user_display_name: String,
    /// Challenge bytes.
    pub challenge: Vec<u8>,
    /// COSE algorithms, in preference order.
    pub algorithms: Vec<i64>,
    /// Credential IDs the phone must not already hold.
    pub exclude: Vec<Vec<u8>>,
    /// Ask for a discoverable credential.
    pub resident_key: bool,
    /// User verification.
    pub user_verification: UserVerification,
    /// `credProps` extension requested.
    pub cred_props: bool,
    /// `attestation`: whether the RP wants the authenticator's attestation.
    pub attestation: AttestationConveyance,
    /// `prf` extension: `None` not requested; `Some(None)` enable only; `Some(Some(..))` with
    /// eval inputs (WebAuthn-level, hashed before sending).
    pub prf: Option<Option<PrfEval>>,
}

/// A sign-in request, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticationOptions {
    /// The web origin.
    pub origin: String,
    /// RP ID.
    pub rp_id: String,
    /// Challenge bytes.
    pub challenge: Vec<u8>,
    /// Allowed credential IDs (empty: discoverable credentials).
    pub allow: Vec<Vec<u8>>,
    /// User verification.
    pub user_verification: UserVerification,
    /// `prf` inputs: `None` when the request gives neither `eval` nor `evalByCredential`.
    pub prf: Option<PrfGet>,
}

// ---- W3C JSON in ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreationJson {
    rp: RpJson,
    user: UserJson,
    challenge: String,
    #[serde(default)]
    pub_key_cred_params: Vec<ParamJson>,
    #[serde(default)]
    exclude_credentials: Vec<DescriptorJson>,
    #[serde(default)]
    authenticator_selection: Option<SelectionJson>,
    #[serde(default)]
    extensions: Option<ExtensionsJson>,
    #[serde(default)]
    attestation: Option<String>,
}

#[derive(Deserialize)]
struct RpJson {
    id: Option<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserJson {
    id: String,
    name: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct ParamJson {
    #[serde(rename = "type")]
    ty: String,
    alg: i64,
}

#[derive(Deserialize)]
struct DescriptorJson {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SelectionJson {
    resident_key: Option<String>,
    #[serde(default)]
    require_resident_key: bool,
    user_verification: Option<UserVerification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtensionsJson {
    #[serde(default)]
    cred_props: bool,
    prf: Option<PrfJson>,
}

#[derive(Deserialize)]
struct PrfJson {
    eval: Option<PrfEvalJson>,
    #[serde(rename = "evalByCredential")]
    eval_by_credential: Option<std::collections::BTreeMap<String, PrfEvalJson>>,
}

#[derive(Deserialize)]
struct PrfEvalJson {
    first: String,
    second: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson {
    challenge: String,
    rp_id: Option<String>,
    #[serde(default)]
    allow_credentials: Vec<DescriptorJson>,
    user_verification: Option<UserVerification>,
    extensions: Option<ExtensionsJson>,
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, BridgeError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| BridgeError::Usage(format!("{field} must be base64url, got {s:?}")))
}

/// Accepts the options object itself or `{"publicKey": {...}}`.
fn unwrap_public_key(json: &str) -> Result<serde_json::Value, BridgeError> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| BridgeError::Usage(format!("options are not valid JSON: {e}")))?;
    Ok(match v.get("publicKey") {
        Some(inner) => inner.clone(),
        None => v,
    })
}

fn prf_eval(p: Option<PrfEvalJson>) -> Result<Option<PrfEval>, BridgeError> {
    p.map(|e| prf_inputs("extensions.prf.eval", e)).transpose()
}

/// `{first, second?}` at `field`, decoded.
fn prf_inputs(field: &str, e: PrfEvalJson) -> Result<PrfEval, BridgeError> {
    Ok((
        b64(&format!("{field}.first"), &e.first)?,
        e.second
            .map(|s| b64(&format!("{field}.second"), &s))
            .transpose()?,
    ))
}

/// A sign-in's `prf` inputs, checked as WebAuthn L3 §10.1.4 says: `evalByCredential` needs an
/// allow list (else `NotSupportedError`), and each of its keys must be the base64url ID of an
/// allowed credential (else `SyntaxError`).
fn prf_get(p: PrfJson, allow: &[Vec<u8>]) -> Result<Option<PrfGet>, BridgeError> {
    let by_credential = p.eval_by_credential.unwrap_or_default();
    if !by_credential.is_empty() && allow.is_empty() {
        return Err(BridgeError::NotSupported(
            "extensions.prf.evalByCredential needs allowCredentials naming those credentials"
                .into(),
        ));
    }
    let mut eval_by_credential = Vec::with_capacity(by_credential.len());
    for (key, inputs) in by_credential {
        let id = URL_SAFE_NO_PAD
            .decode(&key)
            .ok()
            .filter(|id| !id.is_empty() && allow.contains(id))
            .ok_or_else(|| {
                BridgeError::Syntax(format!(
                    "extensions.prf.evalByCredential key {key:?} is not the base64url ID of a credential in allowCredentials"
                ))
            })?;
        let field = format!("extensions.prf.evalByCredential[{key:?}]");
        eval_by_credential.push((id, prf_inputs(&field, inputs)?));
    }
    let eval = prf_eval(p.eval)?;
    Ok(
        (eval.is_some() || !eval_by_credential.is_empty()).then_some(PrfGet {
            eval,
            eval_by_credential,
        }),
    )
}

impl RegistrationOptions {
    /// From `PublicKeyCredentialCreationOptionsJSON` (or `{"publicKey": …}`). `origin`
    /// defaults to `https://<rp.id>`.
    pub fn from_json(json: &str, origin: Option<&str>) -> Result<Self, BridgeError> {
        Self::from_json_in(json, origin, RpScope::Parent)
    }

    /// [`Self::from_json`], with the RP ID checked against the origin as `scope` says.
    pub fn from_json_in(
        json: &str,
        origin: Option<&str>,
        scope: RpScope<'_>,
    ) -> Result<Self, BridgeError> {
        let c: CreationJson = serde_json::from_value(unwrap_public_key(json)?).map_err(|e| {
            BridgeError::Usage(format!("not a PublicKeyCredentialCreationOptionsJSON: {e}"))
        })?;
        let (origin, rp_id) = resolve_origin(origin, c.rp.id.as_deref())?;
        let mut algorithms: Vec<i64> = c
            .pub_key_cred_params
            .iter()
            .filter(|p| p.ty == "public-key")
            .map(|p| p.alg)
            .collect();
        if algorithms.is_empty() {
            algorithms = vec![ctap::ES256, -257];
        }
        let sel = c.authenticator_selection;
        let resident_key = sel.as_ref().is_some_and(|s| {
            s.require_resident_key
                || matches!(s.resident_key.as_deref(), Some("required" | "preferred"))
        });
        let uv = sel.and_then(|s| s.user_verification).unwrap_or_default();
        let ext = c.extensions;
        let o = Self {
            origin,
            rp_id,
            rp_name: c.rp.name,
            user_id: b64("user.id", &c.user.id)?,
            user_display_name: c.user.display_name.unwrap_or_else(|| c.user.name.clone()),
            user_name: c.user.name,
            challenge: b64("challenge", &c.challenge)?,
            algorithms,
            exclude: c
                .exclude_credentials
                .iter()
                .map(|d| b64("excludeCredentials.id", &d.id))
                .collect::<Result<_, _>>()?,
            resident_key,
            user_verification: uv,
            cred_props: ext.as_ref().is_some_and(|e| e.cred_props),
            attestation: AttestationConveyance::from_json(c.attestation.as_deref()),
            prf: match ext.and_then(|e| e.prf) {
                None => None,
                Some(PrfJson {
                    eval_by_credential: Some(_),
                    ..
                }) => {
                    return Err(BridgeError::NotSupported(
                        "extensions.prf.evalByCredential is for sign-in only; a registration takes extensions.prf.eval".into(),
                    ))
                }
                Some(p) => Some(prf_eval(p.eval)?),
            },
        };
        o.validate_in(scope)?;
        Ok(o)
    }

    /// Checks the RP ID against the origin and the required fields.
    pub fn validate(&self) -> Result<(), BridgeError> {
        self.validate_in(RpScope::Parent)
    }

    /// [`Self::validate`], with the RP ID checked as `scope` says.
    pub fn validate_in(&self, scope: RpScope<'_>) -> Result<(), BridgeError> {
        check_rp_scope(&self.rp_id, &self.origin, scope)?;
        if self.challenge.len() < 16 {
            return Err(BridgeError::Usage(format!(
                "the challenge is {} bytes; WebAuthn needs at least 16 random bytes",
                self.challenge.len()
            )));
        }
        if self.user_id.is_empty() || self.user_id.len() > 64 {
            return Err(BridgeError::Usage(
                "the user ID must be 1 to 64 bytes".into(),
            ));
        }
        Ok(())
    }

    /// The `clientDataJSON` a browser would write for this registration.
    pub fn client_data(&self) -> String {
        client_data_json("webauthn.create", &self.challenge, &self.origin)
    }

    /// The CTAP makeCredential request for `client_data_hash`.
    pub fn to_ctap(&self, client_data_hash: [u8; 32]) -> MakeCredentialRequest {
        MakeCredentialRequest {
            client_data_hash,
            rp: RelyingParty {
                id: self.rp_id.clone(),
                name: Some(self.rp_name.clone()),
            },
            user: User {
                id: self.user_id.clone(),
                name: Some(self.user_name.clone()),
                display_name: Some(self.user_display_name.clone()),
            },
            algorithms: self.algorithms.clone(),
            exclude_list: self.exclude.iter().map(|id| descriptor(id)).collect(),
            extensions: MakeCredentialExtensions {
                cred_props: self.cred_props,
                prf: self.prf.is_some(),
                prf_eval: self
                    .prf
                    .clone()
                    .flatten()
                    .map(|(a, b)| prf_values(&a, b.as_deref())),
            },
            options: Options {
                rk: self.resident_key.then_some(true),
                up: None,
                uv: self.user_verification.ctap_uv(),
            },
        }
    }
}

impl AuthenticationOptions {
    /// From `PublicKeyCredentialRequestOptionsJSON` (or `{"publicKey": …}`); `rpId` or
    /// `origin` must be given.
    pub fn from_json(json: &str, origin: Option<&str>) -> Result<Self, BridgeError> {
        Self::from_json_in(json, origin, RpScope::Parent)
    }

    /// [`Self::from_json`], with the RP ID checked against the origin as `scope` says.
    pub fn from_json_in(
        json: &str,
        origin: Option<&str>,
        scope: RpScope<'_>,
    ) -> Result<Self, BridgeError> {
        let r: RequestJson = serde_json::from_value(unwrap_public_key(json)?).map_err(|e| {
            BridgeError::Usage(format!("not a PublicKeyCredentialRequestOptionsJSON: {e}"))
        })?;
        let (origin, rp_id) = resolve_origin(origin, r.rp_id.as_deref())?;
        let allow: Vec<Vec<u8>> = r
            .allow_credentials
            .iter()
            .map(|d| b64("allowCredentials.id", &d.id))
            .collect::<Result<_, _>>()?;
        let prf = match r.extensions.and_then(|e| e.prf) {
            None => None,
            Some(p) => prf_get(p, &allow)?,
        };
        let o = Self {
            origin,
            rp_id,
            challenge: b64("challenge", &r.challenge)?,
            allow,
            user_verification: r.user_verification.unwrap_or_default(),
            prf,
        };
        o.validate_in(scope)?;
        Ok(o)
    }

    /// Checks the RP ID against the origin and the challenge length.
    pub fn validate(&self) -> Result<(), BridgeError> {
        self.validate_in(RpScope::Parent)
    }

    /// [`Self::validate`], with the RP ID checked as `scope` says.
    pub fn validate_in(&self, scope: RpScope<'_>) -> Result<(), BridgeError> {
        check_rp_scope(&self.rp_id, &self.origin, scope)?;
        if self.challenge.len() < 16 {
            return Err(BridgeError::Usage(format!(
                "the challenge is {} bytes; WebAuthn needs at least 16 random bytes",
                self.challenge.len()
            )));
        }
        Ok(())
    }

    /// The `clientDataJSON` a browser would write for this sign-in.
    pub fn client_data(&self) -> String {
        client_data_json("webauthn.get", &self.challenge, &self.origin)
    }

    /// The CTAP getAssertion request for `client_data_hash`.
    pub fn to_ctap(&self, client_data_hash: [u8; 32]) -> GetAssertionRequest {
        GetAssertionRequest {
            rp_id: self.rp_id.clone(),
            client_data_hash,
            allow_list: self.allow.iter().map(|id| descriptor(id)).collect(),
            prf: self.prf.as_ref().map(|p| PrfInputs {
                eval: p.eval.as_ref().map(|(a, b)| prf_values(a, b.as_deref())),
                eval_by_credential: p
                    .eval_by_credential
                    .iter()
                    .map(|(id, (a, b))| (id.clone(), prf_values(a, b.as_deref())))
                    .collect(),
            }),
            options: Options {
                rk: None,
                up: None,
                uv: self.user_verification.ctap_uv(),
            },
        }
    }
}

fn descriptor(id: &[u8]) -> CredentialDescriptor {
    CredentialDescriptor {
        id: id.to_vec(),
        transports: None,
    }
}

/// WebAuthn PRF: salts are `SHA-256("WebAuthn PRF" ‖ 0x00 ‖ input)` before they reach CTAP.
fn prf_values(first: &[u8], second: Option<&[u8]>) -> PrfValues {
    let h = |x: &[u8]| {
        let mut d = Sha256::new();
        d.update(b"WebAuthn PRF\x00");
        d.update(x);
        d.finalize().to_vec()
    };
    PrfValues {
        first: h(first),
        second: second.map(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native_host::dom::DomError;

    const ORIGIN: &str = "https://example.com";

    /// Request options with `allowCredentials` and `extensions.prf` as given.
    fn request(allow: &[&str], prf: serde_json::Value) -> String {
        serde_json::json!({
            "challenge": "AAAAAAAAAAAAAAAAAAAAAA",
            "rpId": "example.com",
            "allowCredentials": allow
                .iter()
                .map(|id| serde_json::json!({"type": "public-key", "id": id}))
                .collect::<Vec<_>>(),
            "extensions": {"prf": prf},
        })
        .to_string()
    }

    fn dom_name(e: &BridgeError) -> serde_json::Value {
        serde_json::to_value(DomError::from_bridge(e).name).unwrap()
    }

    #[test]
    fn eval_by_credential_goes_to_the_phone_hashed_beside_eval() {
        let json = request(
            &["AQID", "BAUG"],
            serde_json::json!({
                "eval": {"first": "ZXZhbA"},
                "evalByCredential": {
                    "AQID": {"first": "b25l", "second": "dHdv"},
                    "BAUG": {"first": "dGhyZWU"},
                },
            }),
        );
        let o = AuthenticationOptions::from_json(&json, Some(ORIGIN)).unwrap();
        let prf = o.to_ctap([0; 32]).prf.expect("prf inputs");
        assert_eq!(prf.eval, Some(prf_values(b"eval", None)));
        let mut by_credential = prf.eval_by_credential;
        by_credential.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            by_credential,
            vec![
                (vec![1, 2, 3], prf_values(b"one", Some(b"two"))),
                (vec![4, 5, 6], prf_values(b"three", None)),
            ]
        );
    }

    #[test]
    fn eval_by_credential_alone_asks_for_prf() {
        let json = request(
            &["AQID"],
            serde_json::json!({"evalByCredential": {"AQID": {"first": "b25l"}}}),
        );
        let o = AuthenticationOptions::from_json(&json, Some(ORIGIN)).unwrap();
        let prf = o.to_ctap([0; 32]).prf.expect("prf inputs");
        assert_eq!(prf.eval, None);
        assert_eq!(
            prf.eval_by_credential,
            vec![(vec![1, 2, 3], prf_values(b"one", None))]
        );
    }

    #[test]
    fn eval_by_credential_without_an_allow_list_is_not_supported() {
        let json = request(
            &[],
            serde_json::json!({"evalByCredential": {"AQID": {"first": "b25l"}}}),
        );
        let e = AuthenticationOptions::from_json(&json, Some(ORIGIN)).unwrap_err();
        assert_eq!(dom_name(&e), "NotSupportedError", "{e}");
    }

    #[test]
    fn eval_by_credential_keys_must_be_allowed_base64url_ids() {
        for key in ["BAUG", "", "not base64url!"] {
            let json = request(
                &["AQID"],
                serde_json::json!({"evalByCredential": {key: {"first": "b25l"}}}),
            );
            let e = AuthenticationOptions::from_json(&json, Some(ORIGIN))
                .expect_err(&format!("key {key:?} must be refused"));
            assert_eq!(dom_name(&e), "SyntaxError", "key {key:?}: {e}");
        }
    }

    #[test]
    fn eval_by_credential_on_create_is_not_supported() {
        let json = serde_json::json!({
            "rp": {"id": "example.com", "name": "Example"},
            "user": {"id": "dXNlcg", "name": "alice"},
            "challenge": "AAAAAAAAAAAAAAAAAAAAAA",
            "extensions": {"prf": {"evalByCredential": {"AQID": {"first": "b25l"}}}},
        })
        .to_string();
        let e = RegistrationOptions::from_json(&json, Some(ORIGIN)).unwrap_err();
        assert_eq!(dom_name(&e), "NotSupportedError", "{e}");
    }
}
