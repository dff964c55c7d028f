//! One ceremony for the extension: check the browser-reported origin against the RP ID
//! before anything else (WebAuthn L3 §5.1.3 step 7, §5.1.4 step 6), parse the W3C options,
//! open the scanner, run the QR or linked transaction through the bridge's WebAuthn layer and
//! return the W3C response JSON, or the [`DomError`] a browser would throw. A request from a
//! cross-origin frame (`topOrigin`) gets the `clientDataJSON` a browser writes there
//! (`crossOrigin: true`, `topOrigin`); whether the frame may use WebAuthn at all (permissions
//! policy) is the extension's check, made with what the browser tells it.
//!
//! After a ceremony with a linked phone (or one that linked the phone), the phone's link
//! remembers the passkey's [`links::credential_key`]; a site's `signalUnknownCredential` for
//! it ([`unknown_credential`]) is then recorded on that link and its name returned, so the
//! person can be told which phone holds a passkey the site no longer accepts.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hybrid_protocol::ctap::Command;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::ble::BtleplugScanner;
use crate::ceremony::{self, BridgeConfig, CtapRequest};
use crate::error::BridgeError;
use crate::links::{self, LinkStore};
use crate::progress::Progress;
use crate::scanner::{AdvertFileScanner, Scanner};
use crate::webauthn::{self, AuthenticationOptions, RegistrationOptions, RpScope};

use super::dom::{DomError, DomName};
use super::messages::{CeremonyKind, CeremonyRequest, UnknownCredentialRequest};

/// Browsers clamp a relying party's `timeout` to this range (Chromium: 10 s to 10 min).
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(600));

/// What the host needs for every ceremony (from its command line).
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Relay, timeouts and (unless `--no-link`) where QR ceremonies store new links.
    pub bridge: BridgeConfig,
    /// The linked phones, for `phones` and linked ceremonies.
    pub links: LinkStore,
    /// The simulated BLE medium instead of Bluetooth.
    pub advert_file: Option<PathBuf>,
    /// Bluetooth adapter.
    pub adapter: Option<String>,
}

/// Checks the origin and RP ID; returns the RP ID. Runs before anything else, so a page
/// that names another site's RP ID gets `SecurityError` before a QR code exists.
pub fn check_origin(req: &CeremonyRequest) -> Result<String, DomError> {
    let origin = req.origin.as_str();
    let host = webauthn::origin_host(origin)
        .map_err(|e| DomError::new(DomName::SecurityError, "insecure_origin", e.to_string()))?;
    if let Some(top) = &req.top_origin {
        // A cross-origin frame: the top-level page must be a secure context too.
        webauthn::origin_host(top).map_err(|e| {
            DomError::new(
                DomName::SecurityError,
                "insecure_origin",
                format!("top-level {e}"),
            )
        })?;
    }
    let pk = &req.options;
    let rp = match req.kind {
        CeremonyKind::Create => pk.get("rp").and_then(|r| r.get("id")),
        CeremonyKind::Get => pk.get("rpId"),
    };
    let rp_id = match rp {
        None | Some(Value::Null) => host,
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(DomError::bad_request("the RP ID must be a string")),
    };
    check_rp_in(origin, &rp_id, scope(req.related_origins.as_deref()))?;
    Ok(rp_id)
}

/// Runs `req` to its W3C response JSON.
pub async fn run(
    req: &CeremonyRequest,
    host: &HostConfig,
    progress: &dyn Progress,
) -> Result<Value, DomError> {
    let rp_id = check_origin(req)?;
    let limit = req
        .options
        .get("timeout")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|ms| Duration::from_millis(ms as u64).clamp(TIMEOUT_RANGE.0, TIMEOUT_RANGE.1));
    let ceremony = ceremony(req, host, progress);
    let (json, phone) = match limit {
        None => ceremony.await,
        Some(limit) => tokio::time::timeout(limit, ceremony)
            .await
            .unwrap_or_else(|_| {
                Err(DomError::new(
                    DomName::NotAllowedError,
                    "timeout",
                    format!(
                        "the site's time limit of {} s ran out; try again",
                        limit.as_secs()
                    ),
                ))
            }),
    }?;
    if let Some(phone) = phone {
        remember(&host.links, &phone, &rp_id, &json);
    }
    Ok(json)
}

/// Remembers on the link of `phone` the passkey of a W3C response JSON (its `rawId`). What
/// cannot be remembered is logged: the ceremony has succeeded all the same.
fn remember(links: &LinkStore, phone: &str, rp_id: &str, json: &Value) {
    let raw = json.get("rawId").and_then(Value::as_str).and_then(|s| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
    });
    let Some(raw) = raw else {
        tracing::warn!("the response has no readable rawId; its passkey is not remembered");
        return;
    };
    if let Err(e) = links.remember_credential(phone, links::credential_key(rp_id, &raw)) {
        tracing::warn!("cannot remember the passkey on the link of {phone:?}: {e}");
    }
}
/// Whether a page of `origin` may use `rp_id`, as a ceremony checks it (a secure origin; the
/// host or a parent domain of it that is no public suffix): `SecurityError` when not.
pub fn check_rp(origin: &str, rp_id: &str) -> Result<(), DomError> {
    check_rp_in(origin, rp_id, RpScope::Parent)
}

/// The scope a request's RP ID is checked in: related origins when the extension sent the
/// list it fetched, else the host and its parents.
pub fn scope(related_origins: Option<&[String]>) -> RpScope<'_> {
    related_origins.map_or(RpScope::Parent, RpScope::Related)
}

/// [`check_rp`] in `scope`: with [`RpScope::Related`], an RP ID that is no public suffix and
/// lists the origin among its related origins passes too.
pub fn check_rp_in(origin: &str, rp_id: &str, scope: RpScope<'_>) -> Result<(), DomError> {
    webauthn::origin_host(origin)
        .map_err(|e| DomError::new(DomName::SecurityError, "insecure_origin", e.to_string()))?;
    webauthn::check_rp_scope(rp_id, origin, scope)
        .map_err(|e| DomError::new(DomName::SecurityError, "rp_id_mismatch", e.to_string()))
}

/// A page's `signalUnknownCredential`: checks the origin and RP ID as a ceremony does, then
/// records the report on the linked phone that made or used that passkey through this
/// computer. Returns that phone's name, or `None` when no linked phone did.
pub fn unknown_credential(
    req: &UnknownCredentialRequest,
    links: &LinkStore,
) -> Result<Option<String>, DomError> {
    check_rp(&req.origin, &req.rp_id)?;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&req.credential_id)
        .map_err(|_| DomError::bad_request("\"credentialId\" must be base64url without padding"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    links
        .report_unknown(&req.rp_id, &links::credential_key(&req.rp_id, &id), now)
        .map_err(|e| DomError::from_bridge(&e))
}

async fn ceremony(
    req: &CeremonyRequest,
    host: &HostConfig,
    progress: &dyn Progress,
) -> Result<(Value, Option<String>), DomError> {
    let dom = |e: BridgeError| DomError::from_bridge(&e);
    let options = req.options.to_string();
    let origin = Some(req.origin.as_str());
    let top = cross_origin_top(req).map_err(dom)?;
    let rp_scope = scope(req.related_origins.as_deref());
    let mut config = host.bridge.clone();
    if let Some(phone) = &req.phone {
        // Fail on an unknown phone before touching Bluetooth.
        host.links.get(phone).map_err(dom)?;
        config.links = Some(host.links.clone());
    }
    let json = match req.kind {
        CeremonyKind::Create => {
            let o = RegistrationOptions::from_json_in(&options, origin, rp_scope).map_err(dom)?;
            let client_data = client_data("webauthn.create", &o.challenge, &o.origin, top)?;
            let request = CtapRequest {
                command: Command::MakeCredential,
                body: o.to_ctap(hash(&client_data)).to_cbor(),
            };
            let (response, phone) = transaction(req, &request, &config, host, progress).await?;
            serde_json::to_value(
                webauthn::registration_json(&o, &client_data, &response).map_err(dom)?,
            )
            .map(|j| (j, phone))
        }
        CeremonyKind::Get => {
            let o = AuthenticationOptions::from_json_in(&options, origin, rp_scope).map_err(dom)?;
            let client_data = client_data("webauthn.get", &o.challenge, &o.origin, top)?;
            let request = CtapRequest {
                command: Command::GetAssertion,
                body: o.to_ctap(hash(&client_data)).to_cbor(),
            };
            let (response, phone) = transaction(req, &request, &config, host, progress).await?;
            serde_json::to_value(
                webauthn::authentication_json(&o, &client_data, &response).map_err(dom)?,
            )
            .map(|j| (j, phone))
        }
    };
    json.map_err(|e| DomError::new(DomName::UnknownError, "internal", e.to_string()))
}

/// The QR or linked transaction: the phone's response CBOR, and the name of the phone's link
/// when it has one (the linked phone, or the link a QR ceremony stored).
async fn transaction(
    req: &CeremonyRequest,
    request: &CtapRequest,
    config: &BridgeConfig,
    host: &HostConfig,
    progress: &dyn Progress,
) -> Result<(Vec<u8>, Option<String>), DomError> {
    let dom = |e: BridgeError| DomError::from_bridge(&e);
    let mut scanner = open_scanner(host).await.map_err(dom)?;
    let outcome = match &req.phone {
        None => ceremony::qr_transaction(request, config, scanner.as_mut(), progress).await,
        Some(phone) => {
            ceremony::linked_transaction(phone, request, config, scanner.as_mut(), progress).await
        }
    };
    let outcome = outcome.map_err(dom)?;
    let phone = req.phone.clone().or(outcome.linked);
    Ok((outcome.response, phone))
}

/// The top-level origin when it differs from the caller's (a cross-origin frame).
fn cross_origin_top(req: &CeremonyRequest) -> Result<Option<String>, BridgeError> {
    let Some(top) = &req.top_origin else {
        return Ok(None);
    };
    let top = webauthn::normalize_origin(top)?;
    Ok((top != webauthn::normalize_origin(&req.origin)?).then_some(top))
}

/// `clientDataJSON` (WebAuthn §5.8.1.1): the bridge's own for a top-level page; for a
/// cross-origin frame the same members in the same order with `"crossOrigin":true` and
/// `"topOrigin"`, as a browser writes them.
fn client_data(
    ty: &str,
    challenge: &[u8],
    origin: &str,
    top: Option<String>,
) -> Result<String, DomError> {
    let Some(top) = top else {
        return Ok(webauthn::client_data_json(ty, challenge, origin));
    };
    let origin = webauthn::normalize_origin(origin).map_err(|e| DomError::from_bridge(&e))?;
    Ok(format!(
        r#"{{"type":"{ty}","challenge":"{}","origin":{},"crossOrigin":true,"topOrigin":{}}}"#,
        webauthn::b64url(challenge),
        Value::String(origin),
        Value::String(top)
    ))
}

fn hash(client_data: &str) -> [u8; 32] {
    Sha256::digest(client_data.as_bytes()).into()
}

async fn open_scanner(host: &HostConfig) -> Result<Box<dyn Scanner>, BridgeError> {
    Ok(match &host.advert_file {
        Some(p) => Box::new(AdvertFileScanner::new(p)?),
        None => Box::new(BtleplugScanner::start(host.adapter.as_deref()).await?),
    })
}
