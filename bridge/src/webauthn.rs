//! The WebAuthn layer a browser would add around CTAP: W3C options JSON in
//! (`PublicKeyCredentialCreationOptionsJSON` / `PublicKeyCredentialRequestOptionsJSON`), the
//! RP ID check against the origin, `clientDataJSON` and its hash, the CTAP request, and W3C
//! `RegistrationResponseJSON` / `AuthenticationResponseJSON` out, ready for any relying-party
//! library.
//!
//! RP ID check limitation: public suffixes are recognised from a small built-in list of common
//! ones ([`PUBLIC_SUFFIXES`]), not the full Public Suffix List.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ciborium::value::Value;
use hybrid_protocol::cbor;
use hybrid_protocol::ctap::{
    self, AuthenticatorData, Command, CredentialDescriptor, GetAssertionRequest,
    GetAssertionResponse, MakeCredentialExtensions, MakeCredentialRequest, MakeCredentialResponse,
    Options, PrfInputs, PrfValues, RelyingParty, User,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ceremony::{self, BridgeConfig, CtapOutcome, CtapRequest};
use crate::error::BridgeError;
use crate::progress::Progress;
use crate::scanner::Scanner;

/// Public suffixes refused as RP IDs (a small built-in subset of the Public Suffix List).
pub const PUBLIC_SUFFIXES: &[&str] = &[
    "com",
    "org",
    "net",
    "edu",
    "gov",
    "mil",
    "int",
    "io",
    "dev",
    "app",
    "info",
    "biz",
    "co",
    "me",
    "uk",
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "de",
    "fr",
    "nl",
    "eu",
    "it",
    "es",
    "ch",
    "jp",
    "co.jp",
    "cn",
    "com.cn",
    "au",
    "com.au",
    "br",
    "com.br",
    "in",
    "co.in",
    "ru",
    "ca",
    "us",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "pages.dev",
    "vercel.app",
    "netlify.app",
    "appspot.com",
    "blogspot.com",
    "cloudfront.net",
    "azurewebsites.net",
    "localhost.localdomain",
];

/// WebAuthn-level PRF inputs: `first` and an optional `second` (hashed before sending).
pub type PrfEval = (Vec<u8>, Option<Vec<u8>>);

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
    /// `prf` eval inputs (WebAuthn-level): first, second.
    pub prf: Option<PrfEval>,
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

/// base64url without padding.
pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
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
    p.map(|e| {
        Ok((
            b64("extensions.prf.eval.first", &e.first)?,
            e.second
                .map(|s| b64("extensions.prf.eval.second", &s))
                .transpose()?,
        ))
    })
    .transpose()
}

impl RegistrationOptions {
    /// From `PublicKeyCredentialCreationOptionsJSON` (or `{"publicKey": …}`). `origin`
    /// defaults to `https://<rp.id>`.
    pub fn from_json(json: &str, origin: Option<&str>) -> Result<Self, BridgeError> {
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
            prf: match ext.and_then(|e| e.prf) {
                None => None,
                Some(p) => Some(prf_eval(p.eval)?),
            },
        };
        o.validate()?;
        Ok(o)
    }

    /// Checks the RP ID against the origin and the required fields.
    pub fn validate(&self) -> Result<(), BridgeError> {
        check_rp_id(&self.rp_id, &self.origin)?;
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

    fn client_data(&self) -> String {
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
        let r: RequestJson = serde_json::from_value(unwrap_public_key(json)?).map_err(|e| {
            BridgeError::Usage(format!("not a PublicKeyCredentialRequestOptionsJSON: {e}"))
        })?;
        let (origin, rp_id) = resolve_origin(origin, r.rp_id.as_deref())?;
        let o = Self {
            origin,
            rp_id,
            challenge: b64("challenge", &r.challenge)?,
            allow: r
                .allow_credentials
                .iter()
                .map(|d| b64("allowCredentials.id", &d.id))
                .collect::<Result<_, _>>()?,
            user_verification: r.user_verification.unwrap_or_default(),
            prf: prf_eval(r.extensions.and_then(|e| e.prf).and_then(|p| p.eval))?,
        };
        o.validate()?;
        Ok(o)
    }

    /// Checks the RP ID against the origin and the challenge length.
    pub fn validate(&self) -> Result<(), BridgeError> {
        check_rp_id(&self.rp_id, &self.origin)?;
        if self.challenge.len() < 16 {
            return Err(BridgeError::Usage(format!(
                "the challenge is {} bytes; WebAuthn needs at least 16 random bytes",
                self.challenge.len()
            )));
        }
        Ok(())
    }

    fn client_data(&self) -> String {
        client_data_json("webauthn.get", &self.challenge, &self.origin)
    }

    /// The CTAP getAssertion request for `client_data_hash`.
    pub fn to_ctap(&self, client_data_hash: [u8; 32]) -> GetAssertionRequest {
        GetAssertionRequest {
            rp_id: self.rp_id.clone(),
            client_data_hash,
            allow_list: self.allow.iter().map(|id| descriptor(id)).collect(),
            prf: self.prf.as_ref().map(|(a, b)| PrfInputs {
                eval: Some(prf_values(a, b.as_deref())),
                eval_by_credential: vec![],
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

/// `{"type":…,"challenge":…,"origin":…,"crossOrigin":false}`, in that order.
pub fn client_data_json(ty: &str, challenge: &[u8], origin: &str) -> String {
    format!(
        r#"{{"type":"{ty}","challenge":"{}","origin":{},"crossOrigin":false}}"#,
        b64url(challenge),
        serde_json::Value::String(origin.to_string())
    )
}

/// `(origin, rp_id)`, each defaulting from the other.
fn resolve_origin(
    origin: Option<&str>,
    rp_id: Option<&str>,
) -> Result<(String, String), BridgeError> {
    match (origin, rp_id) {
        (Some(o), Some(r)) => Ok((o.trim_end_matches('/').to_string(), r.to_ascii_lowercase())),
        (Some(o), None) => Ok((o.trim_end_matches('/').to_string(), origin_host(o)?)),
        (None, Some(r)) => Ok((
            format!("https://{}", r.to_ascii_lowercase()),
            r.to_ascii_lowercase(),
        )),
        (None, None) => Err(BridgeError::Usage(
            "give the relying party: --rp-id or --origin (or rp.id / rpId in the options)".into(),
        )),
    }
}

/// The host of an origin that WebAuthn accepts: `https://host[:port]`, or
/// `http://localhost[:port]`.
pub fn origin_host(origin: &str) -> Result<String, BridgeError> {
    let bad = |why: &str| BridgeError::Usage(format!("origin {origin:?} {why}"));
    let o = origin.trim_end_matches('/');
    let (secure, rest) = if let Some(r) = o.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = o.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("must start with https:// (or http://localhost)"));
    };
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("must be scheme://host[:port] with no path"));
    }
    let host = match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => h,
        Some(_) => return Err(bad("has an invalid port")),
        None => rest,
    }
    .to_ascii_lowercase();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if !secure && host != "localhost" && !host.ends_with(".localhost") {
        return Err(bad(
            "is not secure: use https:// (only http://localhost is allowed)",
        ));
    }
    Ok(host)
}

/// Whether `rp_id` may be used from `origin`, as a browser decides: the origin is https (or
/// http://localhost), and the RP ID equals its host or is a parent domain of it that is not a
/// public suffix.
pub fn check_rp_id(rp_id: &str, origin: &str) -> Result<(), BridgeError> {
    let host = origin_host(origin)?;
    let rp = rp_id.to_ascii_lowercase();
    if rp.is_empty() {
        return Err(BridgeError::Usage("the RP ID is empty".into()));
    }
    if PUBLIC_SUFFIXES.contains(&rp.as_str()) {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is a public suffix; use a registrable domain such as example.com"
        )));
    }
    if rp == host {
        return Ok(());
    }
    let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
    if is_ip || !host.ends_with(&format!(".{rp}")) {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is not {host:?} or a parent domain of it; a browser would refuse it for origin {origin:?}"
        )));
    }
    if !rp.contains('.') {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is a public suffix; use a registrable domain such as the origin's host {host:?}"
        )));
    }
    Ok(())
}

// ---- W3C JSON out ----

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
