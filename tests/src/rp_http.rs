//! A relying party over HTTP written with `webauthn-rs-core`, for the browser tests
//! (`browser/test/lib/rplibs.mjs`; the `rp-server` binary is a thin shell over [`serve`]). It
//! owns the JSON API of `browser/rp/server.mjs` as that module describes it — POST
//! `/api/register/options`, `/api/register/verify`, `/api/auth/options`, `/api/auth/verify`,
//! GET `/api/users` and an empty page at `/` — and verifies strictly: the two origins of its
//! own port (`http://localhost:PORT`, `http://127.0.0.1:PORT`) or the origins it is given, no
//! subdomains, no other ports; the RP ID the options named ([`Config::rp_id`] when they name
//! none), a challenge it issued and has not seen answered, user verification required, a
//! discoverable credential required on registration. webauthn-rs-core refuses a registration
//! made in a cross-origin frame (`CredentialCrossOrigin`: `new_unsafe_experts_only` sets no
//! way to allow one), reads no `topOrigin` and lets a sign-in's `crossOrigin` pass, so this
//! server checks the frame itself: a response with `crossOrigin: true` is refused unless its
//! `topOrigin` is one of [`Config::top_origins`], every verdict reports both, and a registration
//! webauthn-rs refuses for its frame is a 400 saying to register at the top level. Requests may
//! carry `attestation: "direct"` (the statement must then chain to the CA file given, for
//! phone-sim's AAGUID), `decoys: N` (random credential IDs added to `excludeCredentials` or
//! `allowCredentials`), `exclude: true` (the user's credentials in `excludeCredentials`) and
//! `hints` and `extensions: {credProps: true}` (both set with webauthn-rs's own builders;
//! other extension inputs, such as `prf`, this version of the library cannot express). Sign-in options without a username leave
//! `allowCredentials` empty: a discoverable sign-in, verified as webauthn-rs's discoverable
//! authentication does it (the user from the response's user handle, then that user's
//! credentials given to the state). POST `/api/credentials/delete` `{"credentialId": ID}`
//! forgets a credential (the site removed the passkey); a sign-in with it is then "unknown
//! credential", a 400. State is in memory; every request body is bounded and every
//! connection has a deadline.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationCaListBuilder, AttestationConveyancePreference,
    AuthenticationState, Credential, CredentialID, PublicKeyCredential, PublicKeyCredentialHints,
    RegisterPublicKeyCredential, RegistrationState, RequestRegistrationExtensions,
    UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;
/// How long one connection may take, from its first byte to its last.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// The empty page the tests run their scripts in.
const PAGE: &str = "<!doctype html><html><head><meta charset=utf-8><title>webauthn-rs RP</title></head><body></body></html>";

/// What the server trusts.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// A PEM CA that `attestation: "direct"` registrations must chain to (read when such a
    /// registration is verified, so it may be written after the server starts).
    pub attestation_ca: Option<PathBuf>,
    /// The RP ID of options whose request names none (`localhost` when empty).
    pub rp_id: String,
    /// The origins responses may come from; empty: `http://localhost:PORT` and
    /// `http://127.0.0.1:PORT` of the listener's port.
    pub origins: Vec<url::Url>,
    /// The top-level origins whose cross-origin frames may answer (`topOrigin`).
    pub top_origins: Vec<String>,
}

struct User {
    id: Vec<u8>,
    credentials: Vec<Credential>,
}

struct PendingRegistration {
    state: RegistrationState,
    rp_id: String,
    name: String,
    direct: bool,
}

struct PendingAuthentication {
    state: AuthenticationState,
    rp_id: String,
    /// Options with an empty `allowCredentials`: the user comes from the user handle.
    discoverable: bool,
}

/// The relying party's state, behind one lock (requests are few and quick).
struct Rp {
    config: Config,
    origins: Vec<url::Url>,
    users: HashMap<String, User>,
    registrations: HashMap<String, PendingRegistration>,
    authentications: HashMap<String, PendingAuthentication>,
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn bytes(data: &impl AsRef<[u8]>) -> &[u8] {
    data.as_ref()
}

fn random_id() -> CredentialID {
    rand::random::<[u8; 32]>().to_vec()
}

/// The request members that are text when present; another type is a 400, not a default.
const TEXT_MEMBERS: [&str; 4] = ["rpId", "username", "attestation", "credentialId"];

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn decoys(body: &Value) -> usize {
    body.get("decoys")
        .and_then(Value::as_u64)
        .map_or(0, |n| n.min(16) as usize)
}

/// The body's `hints`, as webauthn-rs's type (an unknown hint is refused).
fn hints(body: &Value) -> Result<Option<Vec<PublicKeyCredentialHints>>> {
    match body.get("hints") {
        None | Some(Value::Null) => Ok(None),
        Some(h) => serde_json::from_value(h.clone())
            .map(Some)
            .context("hints must be a list of security-key, client-device or hybrid"),
    }
}

/// The response's `clientDataJSON`, parsed.
fn client_data(response: &Value) -> Result<Value> {
    let cdj = response
        .pointer("/response/clientDataJSON")
        .and_then(Value::as_str)
        .context("the response has no clientDataJSON: send the credential's toJSON()")?;
    let raw = URL_SAFE_NO_PAD
        .decode(cdj.trim_end_matches('='))
        .context("clientDataJSON is not base64url")?;
    let cd: Value = serde_json::from_slice(&raw).context("clientDataJSON is not JSON")?;
    if !cd.is_object() {
        bail!("clientDataJSON is not a JSON object");
    }
    Ok(cd)
}

/// The challenge the response's `clientDataJSON` answers.
fn challenge_of(response: &Value) -> Result<String> {
    client_data(response)?
        .get("challenge")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("clientDataJSON has no challenge")
}

/// Where a response was made: `Some(topOrigin)` in a cross-origin frame of a top-level page in
/// `accepted`, `None` at the top level; an error for a frame of any other page.
fn frame_of(response: &Value, accepted: &[String]) -> Result<Option<String>> {
    let cd = client_data(response)?;
    let cross = match cd.get("crossOrigin") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => bail!("clientDataJSON's crossOrigin must be a boolean"),
    };
    if !cross {
        return Ok(None);
    }
    let top = match cd.get("topOrigin") {
        Some(Value::String(t)) => t.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => bail!("clientDataJSON's topOrigin must be a string"),
    };
    if !accepted.contains(&top) {
        bail!(
            "the response was made in a frame of {top:?}, a top-level page this RP does not accept \
             (accepted: {accepted:?}): start the RP with --top-origin for that site"
        );
    }
    Ok(Some(top))
}

/// What webauthn-rs-core's refusal of a registration means, and for a registration made in a
/// cross-origin frame, what the site does instead.
fn registration_refused(e: WebauthnError) -> anyhow::Error {
    match e {
        WebauthnError::CredentialCrossOrigin => anyhow!(
            "webauthn-rs refuses a registration made in a cross-origin frame \
             (CredentialCrossOrigin): register at the top level of the site, then sign in from \
             the frame"
        ),
        e => anyhow!("webauthn-rs rejected the registration: {e:?}"),
    }
}

/// The attestation CA list trusting `pem` for phone-sim's AAGUID.
fn trusting(pem: &[u8]) -> Result<AttestationCaList> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let a = &phone_sim::AAGUID;
    let aaguid = serde_json::from_value(Value::String(format!(
        "{}-{}-{}-{}-{}",
        hex(&a[..4]),
        hex(&a[4..6]),
        hex(&a[6..8]),
        hex(&a[8..10]),
        hex(&a[10..])
    )))?;
    let mut b = AttestationCaListBuilder::new();
    b.insert_device_pem(pem, aaguid, "phone-sim".into(), Default::default())
        .map_err(|e| anyhow!("the attestation CA does not parse: {e:?}"))?;
    Ok(b.build())
}

impl Rp {
    fn core(&self, rp_id: &str) -> WebauthnCore {
        WebauthnCore::new_unsafe_experts_only(
            "hybrid-bridge test RP (webauthn-rs)",
            rp_id,
            self.origins.clone(),
            Duration::from_secs(120),
            Some(false),
            Some(false),
        )
    }

    fn register_options(&mut self, body: &Value) -> Result<Value> {
        let rp_id = text(body, "rpId").unwrap_or(&self.config.rp_id).to_owned();
        let name = text(body, "username").unwrap_or("alice").to_owned();
        let user = self.users.entry(name.clone()).or_insert_with(|| User {
            id: rand::random::<[u8; 16]>().to_vec(),
            credentials: Vec::new(),
        });
        let mut exclude: Vec<CredentialID> = if body.get("exclude") == Some(&Value::Bool(true)) {
            user.credentials.iter().map(|c| c.cred_id.clone()).collect()
        } else {
            Vec::new()
        };
        exclude.extend((0..decoys(body)).map(|_| random_id()));
        let direct = text(body, "attestation") == Some("direct");
        let cred_props = body.pointer("/extensions/credProps") == Some(&Value::Bool(true));
        let user_id = user.id.clone();
        let core = self.core(&rp_id);
        let builder = core
            .new_challenge_register_builder(&user_id, &name, &name)
            .map_err(|e| anyhow!("register builder: {e:?}"))?
            .user_verification_policy(UserVerificationPolicy::Required)
            .require_resident_key(true)
            .exclude_credentials(Some(exclude))
            .hints(hints(body)?)
            .extensions(cred_props.then_some(RequestRegistrationExtensions {
                cred_protect: None,
                uvm: None,
                cred_props: Some(true),
                min_pin_length: None,
                hmac_create_secret: None,
            }))
            .attestation(if direct {
                AttestationConveyancePreference::Direct
            } else {
                AttestationConveyancePreference::None
            });
        let (ccr, state) = core
            .generate_challenge_register(builder)
            .map_err(|e| anyhow!("register challenge: {e:?}"))?;
        let options = serde_json::to_value(&ccr)?["publicKey"].take();
        let challenge = options["challenge"]
            .as_str()
            .context("webauthn-rs gave options without a challenge")?;
        self.registrations.insert(
            challenge.to_owned(),
            PendingRegistration {
                state,
                rp_id,
                name,
                direct,
            },
        );
        Ok(options)
    }

    fn register_verify(&mut self, body: &Value) -> Result<Value> {
        let response = body.get("response").context("no response")?;
        let pending = self
            .registrations
            .remove(&challenge_of(response)?)
            .context("unknown challenge: ask for new options, then answer them once")?;
        let top_origin = frame_of(response, &self.config.top_origins)?;
        let cas = match (&self.config.attestation_ca, pending.direct) {
            (Some(path), true) if path.exists() => Some(trusting(&std::fs::read(path)?)?),
            _ => None,
        };
        let reg: RegisterPublicKeyCredential = serde_json::from_value(response.clone())
            .context("the response is not a RegistrationResponseJSON")?;
        let cred = self
            .core(&pending.rp_id)
            .register_credential(&reg, &pending.state, cas.as_ref())
            .map_err(registration_refused)?;
        let out = json!({
            "verified": true,
            "credentialId": b64(cred.cred_id.as_ref()),
            "user": pending.name,
            "fmt": serde_json::to_value(&cred.attestation_format)?,
            "attestationRoots": usize::from(cas.is_some()),
            "userVerified": cred.user_verified,
            "crossOrigin": top_origin.is_some(),
            "topOrigin": top_origin,
        });
        if let Some(user) = self.users.get_mut(&pending.name) {
            user.credentials.push(cred);
        }
        Ok(out)
    }

    fn auth_options(&mut self, body: &Value) -> Result<Value> {
        let rp_id = text(body, "rpId").unwrap_or(&self.config.rp_id).to_owned();
        let creds = match text(body, "username") {
            Some(name) => self
                .users
                .get(name)
                .with_context(|| format!("no user {name}: register first"))?
                .credentials
                .clone(),
            None => Vec::new(),
        };
        let core = self.core(&rp_id);
        let discoverable = creds.is_empty();
        let builder = core
            .new_challenge_authenticate_builder(creds, Some(UserVerificationPolicy::Required))
            .map_err(|e| anyhow!("authenticate builder: {e:?}"))?
            .hints(hints(body)?);
        let (rcr, state) = core
            .generate_challenge_authenticate(builder)
            .map_err(|e| anyhow!("authenticate challenge: {e:?}"))?;
        let mut options = serde_json::to_value(&rcr)?["publicKey"].take();
        // IDs of no credential: the state allows only the user's own.
        if let Some(allow) = options
            .get_mut("allowCredentials")
            .and_then(Value::as_array_mut)
        {
            for _ in 0..decoys(body) {
                allow.push(json!({"type": "public-key", "id": b64(random_id().as_ref())}));
            }
        }
        let challenge = options["challenge"]
            .as_str()
            .context("webauthn-rs gave options without a challenge")?;
        self.authentications.insert(
            challenge.to_owned(),
            PendingAuthentication {
                state,
                rp_id,
                discoverable,
            },
        );
        Ok(options)
    }

    fn auth_verify(&mut self, body: &Value) -> Result<Value> {
        let response = body.get("response").context("no response")?;
        let mut pending = self
            .authentications
            .remove(&challenge_of(response)?)
            .context("unknown challenge: ask for new options, then answer them once")?;
        let top_origin = frame_of(response, &self.config.top_origins)?;
        let cred: PublicKeyCredential = serde_json::from_value(response.clone())
            .context("the response is not an AuthenticationResponseJSON")?;
        let core = self.core(&pending.rp_id);
        let handle = response
            .pointer("/response/userHandle")
            .and_then(Value::as_str);
        let owns = |u: &User| {
            u.credentials
                .iter()
                .any(|c| bytes(&c.cred_id) == bytes(&cred.raw_id))
        };
        let (name, user, found_by) = if pending.discoverable {
            // As webauthn-rs's discoverable authentication: the user from the user handle,
            // then that user's credentials.
            let Some(user_id) = cred.get_user_unique_id() else {
                bail!("a discoverable sign-in needs the response's userHandle: sign in with a passkey");
            };
            let Some((name, user)) = self.users.iter_mut().find(|(_, u)| u.id == user_id) else {
                bail!("unknown user handle: no account here has this user ID");
            };
            if !owns(user) {
                bail!("unknown credential for {name}: the site removed this passkey, sign in with another");
            }
            (name, user, "userHandle")
        } else {
            let Some((name, user)) = self.users.iter_mut().find(|(_, u)| owns(u)) else {
                bail!("unknown credential: register it first");
            };
            if let Some(h) = handle {
                if URL_SAFE_NO_PAD.decode(h).ok().as_deref() != Some(&user.id[..]) {
                    bail!("the userHandle is not the credential's user");
                }
            }
            (name, user, "credentialId")
        };
        pending
            .state
            .set_allowed_credentials(user.credentials.clone());
        let result = core
            .authenticate_credential(&cred, &pending.state)
            .map_err(|e| anyhow!("webauthn-rs rejected the assertion: {e:?}"))?;
        for c in &mut user.credentials {
            if c.cred_id == *result.cred_id() {
                c.counter = result.counter();
            }
        }
        Ok(json!({
            "verified": true,
            "user": name,
            "userHandle": handle,
            "userVerified": result.user_verified(),
            "foundBy": found_by,
            "crossOrigin": top_origin.is_some(),
            "topOrigin": top_origin,
        }))
    }

    fn delete_credential(&mut self, body: &Value) -> Result<Value> {
        let id = text(body, "credentialId")
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .context("credentialId must be a base64url credential ID")?;
        for (name, user) in &mut self.users {
            let before = user.credentials.len();
            user.credentials.retain(|c| bytes(&c.cred_id) != &id[..]);
            if user.credentials.len() != before {
                let remaining = user.credentials.iter().map(|c| b64(c.cred_id.as_ref()));
                return Ok(json!({
                    "deleted": true,
                    "user": name,
                    "userId": b64(&user.id),
                    "remaining": remaining.collect::<Vec<_>>(),
                }));
            }
        }
        bail!("unknown credential: nothing to delete")
    }

    fn users(&self) -> Value {
        Value::Object(
            self.users
                .iter()
                .map(|(n, u)| {
                    let ids = u.credentials.iter().map(|c| b64(c.cred_id.as_ref()));
                    (n.clone(), ids.map(Value::String).collect())
                })
                .collect(),
        )
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(rp: Arc<Mutex<Rp>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    const JSON: &str = "application/json";
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET {
        return match path.as_str() {
            "/" => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
            "/api/users" => {
                let users = rp.lock().map(|r| r.users()).unwrap_or(Value::Null);
                reply(StatusCode::OK, JSON, users.to_string())
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                JSON,
                r#"{"error":"not found"}"#.into(),
            ),
        };
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let msg =
                json!({"error": format!("the body could not be read ({e}): send at most 1 MiB")});
            return reply(StatusCode::BAD_REQUEST, JSON, msg.to_string());
        }
    };
    let outcome = serde_json::from_slice::<Value>(&body)
        .context("the body is not JSON")
        .and_then(|body| {
            if !body.is_object() {
                bail!("the body must be a JSON object");
            }
            if let Some(key) = TEXT_MEMBERS
                .iter()
                .find(|k| body.get(**k).is_some_and(|v| !v.is_string()))
            {
                bail!("{key} must be a string");
            }
            let mut rp = rp
                .lock()
                .map_err(|_| anyhow!("the RP's state is poisoned"))?;
            match path.as_str() {
                "/api/register/options" => rp.register_options(&body).map(Some),
                "/api/register/verify" => rp.register_verify(&body).map(Some),
                "/api/auth/options" => rp.auth_options(&body).map(Some),
                "/api/auth/verify" => rp.auth_verify(&body).map(Some),
                "/api/credentials/delete" => rp.delete_credential(&body).map(Some),
                _ => Ok(None),
            }
        });
    match outcome {
        Ok(Some(v)) => reply(StatusCode::OK, JSON, v.to_string()),
        Ok(None) => reply(
            StatusCode::NOT_FOUND,
            JSON,
            r#"{"error":"not found"}"#.into(),
        ),
        Err(e) => reply(
            StatusCode::BAD_REQUEST,
            JSON,
            json!({"error": format!("{e:#}")}).to_string(),
        ),
    }
}

/// Serves the relying party on `listener` (bound to loopback by the caller) until the task is
/// dropped; its origins are [`Config::origins`], or `http://localhost:PORT` and
/// `http://127.0.0.1:PORT` when that is empty.
pub async fn serve(listener: TcpListener, mut config: Config) -> Result<()> {
    let port = listener.local_addr()?.port();
    if config.rp_id.is_empty() {
        config.rp_id = "localhost".into();
    }
    let origins = if !config.origins.is_empty() {
        config.origins.clone()
    } else {
        [
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
        ]
        .iter()
        .map(|o| url::Url::parse(o))
        .collect::<Result<Vec<_>, _>>()?
    };
    let rp = Arc::new(Mutex::new(Rp {
        config,
        origins,
        users: HashMap::new(),
        registrations: HashMap::new(),
        authentications: HashMap::new(),
    }));
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let rp = rp.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let rp = rp.clone();
                async move { Ok::<_, Infallible>(handle(rp, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(CONNECTION_DEADLINE);
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            // A connection that outlives its deadline is dropped, whatever it was doing.
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp() -> Rp {
        Rp {
            config: Config::default(),
            origins: vec![url::Url::parse("http://localhost:1234").expect("a URL")],
            users: HashMap::new(),
            registrations: HashMap::new(),
            authentications: HashMap::new(),
        }
    }

    #[test]
    fn hints_reach_the_options_and_an_unknown_one_is_refused() {
        let mut rp = rp();
        let reg = rp
            .register_options(&json!({"username": "alice", "hints": ["security-key"]}))
            .expect("register options");
        assert_eq!(reg["hints"], json!(["security-key"]));
        let auth = rp
            .auth_options(&json!({"hints": ["hybrid", "client-device"]}))
            .expect("auth options");
        assert_eq!(auth["hints"], json!(["hybrid", "client-device"]));
        assert_eq!(auth["allowCredentials"], json!([]));
        let challenge = auth["challenge"].as_str().expect("a challenge");
        assert!(rp.authentications[challenge].discoverable);
        for bad in [json!({"hints": "hybrid"}), json!({"hints": ["nfc"]})] {
            let e = rp.auth_options(&bad).expect_err("refused");
            assert!(format!("{e:#}").starts_with("hints must be"), "{e:#}");
        }
    }

    #[test]
    fn credprops_is_asked_with_the_librarys_own_extension_input() {
        let mut rp = rp();
        let with = rp
            .register_options(&json!({"extensions": {"credProps": true, "prf": {}}}))
            .expect("register options");
        assert_eq!(with["extensions"], json!({"credProps": true}));
        let without = rp.register_options(&json!({})).expect("register options");
        assert_eq!(without.get("extensions"), None);
    }

    #[test]
    fn deleting_needs_a_known_base64url_credential_id() {
        let mut rp = rp();
        rp.register_options(&json!({"username": "alice"}))
            .expect("register options");
        for (body, want) in [
            (json!({}), "credentialId must be"),
            (json!({"credentialId": 7}), "credentialId must be"),
            (json!({"credentialId": "!!"}), "credentialId must be"),
            (json!({"credentialId": "AAAA"}), "unknown credential"),
        ] {
            let e = rp.delete_credential(&body).expect_err("refused");
            assert!(format!("{e:#}").starts_with(want), "{body}: {e:#}");
        }
    }

    /// A response whose clientDataJSON is `cd`.
    fn response(cd: Value) -> Value {
        json!({"response": {"clientDataJSON": URL_SAFE_NO_PAD.encode(cd.to_string())}})
    }

    #[test]
    fn a_cross_origin_frame_answers_only_for_the_top_origins_given() {
        let accepted = ["https://frames.example.net:1234".to_owned()];
        let top = |cd: Value| frame_of(&response(cd), &accepted).map_err(|e| format!("{e:#}"));
        assert_eq!(top(json!({"challenge": "c"})), Ok(None));
        assert_eq!(top(json!({"crossOrigin": false})), Ok(None));
        assert_eq!(
            top(json!({"crossOrigin": true, "topOrigin": "https://frames.example.net:1234"})),
            Ok(Some(accepted[0].clone()))
        );
        for (cd, want) in [
            (
                json!({"crossOrigin": true, "topOrigin": "https://login.example.co.uk:1234"}),
                "does not accept",
            ),
            (json!({"crossOrigin": true}), "does not accept"),
            (json!({"crossOrigin": "true"}), "must be a boolean"),
            (
                json!({"crossOrigin": true, "topOrigin": 1}),
                "must be a string",
            ),
            (json!([1]), "not a JSON object"),
        ] {
            let got = top(cd.clone());
            assert!(
                got.as_ref().is_err_and(|e| e.contains(want)),
                "{cd}: {got:?}, want an error saying {want:?}"
            );
        }
    }

    #[test]
    fn a_registration_refused_for_its_frame_says_to_register_at_the_top_level() {
        let e = format!(
            "{:#}",
            registration_refused(WebauthnError::CredentialCrossOrigin)
        );
        assert!(
            e.contains("cross-origin frame (CredentialCrossOrigin)"),
            "{e}"
        );
        assert!(e.contains("register at the top level of the site"), "{e}");
        let other = format!("{:#}", registration_refused(WebauthnError::UserNotVerified));
        assert_eq!(
            other,
            "webauthn-rs rejected the registration: UserNotVerified"
        );
    }
}
