//! The CTAP2 a platform sees on the key (CTAP 2.2 §6): what the key answers itself and what
//! goes to the phone, byte for byte. Pure: bytes in, a [`Route`] out.
//!
//! - `authenticatorGetInfo` is answered locally from [`get_info`], a profile of what a phone
//!   does over hybrid: CTAP 2.0, discoverable credentials, user presence and verification on
//!   the phone, ES256, no PIN, no extensions at the CTAP level, and limits large enough that a
//!   platform sends a whole allow list in one request ([`MAX_CREDENTIAL_COUNT`] IDs of up to
//!   [`MAX_CREDENTIAL_ID_LEN`] bytes fit in one 7609-byte CTAPHID message).
//! - `authenticatorMakeCredential` and `authenticatorGetAssertion` go to the phone unchanged:
//!   the command's CBOR as the platform sent it, and the phone's reply as the phone sent it
//!   ([`reply_for_platform`]), with one exception: the `transports` of the credential in a
//!   getAssertion answer. Phones put hybrid-only values there (`cable`), which USB platforms'
//!   parsers reject (Firefox fails the whole sign-in on `cable`); CTAP lets an authenticator
//!   leave the member out, and no platform uses it. Every other member, the signed
//!   authenticator data and the signature included, keeps the phone's bytes.
//! - A `getAssertion` without user presence (`up: false`) with an allow list is a *probe*:
//!   Firefox sends one before every sign-in to learn which listed credentials this key holds,
//!   python-fido2 and OpenSSH do it to pick a key. A phone is only reachable with the person's
//!   help (a QR code or a linked phone's notification), so the key answers probes itself:
//!   every listed credential may be on the phone, so all are reported present — the first in
//!   the reply with `numberOfCredentials`, the rest through `getNextAssertion` — and the real
//!   request that follows carries the whole list to the phone, which picks its own. The
//!   assertion's signature is a placeholder (`r = s = 0`) that verifies nowhere: a probe's
//!   signature is never used. A probe without an allow list is answered
//!   `CTAP2_ERR_NO_CREDENTIALS`.
//! - `hmac-secret` (what platforms map WebAuthn PRF to on USB keys) is not offered: its output
//!   lives in the signed authenticator data, which only the phone can sign, and phones return
//!   their PRF results outside it. The phone's own `prf` is reachable through the browser
//!   extension or `hybrid-bridge sign-in --prf-first`.
//! - Requests that only ask for a touch to pick among several keys (rp `.dummy` or
//!   `make.me.blink`, or an empty `pinUvAuthParam`) are refused at once with
//!   `CTAP2_ERR_OPERATION_DENIED` rather than sending the person to the phone for nothing.
//! - clientPIN, reset, bioEnrollment, credentialManagement, selection, largeBlobs, config
//!   and vendor commands get `CTAP1_ERR_INVALID_COMMAND`, as on a CTAP 2.0 key without them.

use ciborium::value::Value;
use hybrid_protocol::cbor;
use hybrid_protocol::ctap::Command;
use hybrid_protocol::ctaphid::MAX_MESSAGE_LEN;
use sha2::{Digest as _, Sha256};

use crate::ceremony::CtapRequest;

/// The AAGUID getInfo reports: ASCII "hybrid-bridgekey". The phone's own AAGUID is in the
/// authenticator data of each credential it makes.
pub const AAGUID: [u8; 16] = *b"hybrid-bridgekey";
/// `maxCredentialCountInList` (getInfo key 7).
pub const MAX_CREDENTIAL_COUNT: usize = 40;
/// `maxCredentialIdLength` (getInfo key 8): phones' credential IDs are 16–65 bytes.
pub const MAX_CREDENTIAL_ID_LEN: usize = 128;

/// CTAP status bytes the key answers with itself.
pub mod status {
    /// CTAP2_OK.
    pub const OK: u8 = 0x00;
    /// CTAP1_ERR_INVALID_COMMAND.
    pub const INVALID_COMMAND: u8 = 0x01;
    /// CTAP1_ERR_INVALID_LENGTH.
    pub const INVALID_LENGTH: u8 = 0x03;
    /// CTAP2_ERR_INVALID_CBOR.
    pub const INVALID_CBOR: u8 = 0x12;
    /// CTAP2_ERR_OPERATION_DENIED.
    pub const OPERATION_DENIED: u8 = 0x27;
    /// CTAP2_ERR_NO_CREDENTIALS.
    pub const NO_CREDENTIALS: u8 = 0x2e;
    /// CTAP2_ERR_USER_ACTION_TIMEOUT.
    pub const USER_ACTION_TIMEOUT: u8 = 0x2f;
    /// CTAP2_ERR_NOT_ALLOWED.
    pub const NOT_ALLOWED: u8 = 0x30;
    /// CTAP1_ERR_OTHER.
    pub const OTHER: u8 = 0x7f;
}

/// CTAP command bytes (CTAP 2.2 §6).
mod command {
    pub(super) const MAKE_CREDENTIAL: u8 = 0x01;
    pub(super) const GET_ASSERTION: u8 = 0x02;
    pub(super) const GET_INFO: u8 = 0x04;
    pub(super) const CLIENT_PIN: u8 = 0x06;
    pub(super) const RESET: u8 = 0x07;
    pub(super) const GET_NEXT_ASSERTION: u8 = 0x08;
    pub(super) const BIO_ENROLLMENT: u8 = 0x09;
    pub(super) const CREDENTIAL_MANAGEMENT: u8 = 0x0a;
    pub(super) const SELECTION: u8 = 0x0b;
    pub(super) const LARGE_BLOBS: u8 = 0x0c;
    pub(super) const CONFIG: u8 = 0x0d;
}

/// The name of a CTAP command byte, for logs and the person.
pub fn command_name(b: u8) -> &'static str {
    match b {
        command::MAKE_CREDENTIAL => "makeCredential",
        command::GET_ASSERTION => "getAssertion",
        command::GET_INFO => "getInfo",
        command::CLIENT_PIN => "clientPIN",
        command::RESET => "reset",
        command::GET_NEXT_ASSERTION => "getNextAssertion",
        command::BIO_ENROLLMENT | 0x40 => "bioEnrollment",
        command::CREDENTIAL_MANAGEMENT | 0x41 => "credentialManagement",
        command::SELECTION => "selection",
        command::LARGE_BLOBS => "largeBlobs",
        command::CONFIG => "config",
        _ => "an unknown command",
    }
}

/// The key's getInfo (status byte first).
pub fn get_info() -> Vec<u8> {
    let text = |s: &str| cbor::text(s);
    let info = Value::Map(vec![
        (cbor::int(1), Value::Array(vec![text("FIDO_2_0")])),
        (cbor::int(3), cbor::bytes(&AAGUID)),
        (
            cbor::int(4),
            Value::Map(vec![
                (text("plat"), Value::Bool(false)),
                (text("rk"), Value::Bool(true)),
                (text("up"), Value::Bool(true)),
                (text("uv"), Value::Bool(true)),
            ]),
        ),
        (cbor::int(5), cbor::int(MAX_MESSAGE_LEN as i64)),
        (cbor::int(7), cbor::int(MAX_CREDENTIAL_COUNT as i64)),
        (cbor::int(8), cbor::int(MAX_CREDENTIAL_ID_LEN as i64)),
        (
            cbor::int(9),
            Value::Array(vec![text("usb"), text("hybrid")]),
        ),
        (
            cbor::int(10),
            Value::Array(vec![Value::Map(vec![
                (text("alg"), cbor::int(hybrid_protocol::ctap::ES256)),
                (text("type"), text("public-key")),
            ])]),
        ),
    ]);
    let mut out = vec![status::OK];
    out.extend_from_slice(&cbor::encode(&info));
    out
}

/// The phone's answer to `command` (the CBOR after the status byte) as the platform gets it:
/// the phone's bytes, except that a getAssertion answer's credential loses its `transports`
/// (see the module documentation). A reply that is not canonical CBOR passes unchanged.
pub fn reply_for_platform(command: Command, response: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if command != Command::GetAssertion {
        return Cow::Borrowed(response);
    }
    // Canonical CBOR has one encoding, so re-encoding the decoded map gives back the phone's
    // bytes for every entry that is not changed.
    let Ok(Value::Map(mut entries)) = cbor::decode(response) else {
        return Cow::Borrowed(response);
    };
    let mut changed = false;
    for (k, v) in &mut entries {
        if *k == cbor::int(1) {
            if let Value::Map(descriptor) = v {
                let before = descriptor.len();
                descriptor.retain(|(name, _)| *name != cbor::text("transports"));
                changed = descriptor.len() != before;
            }
        }
    }
    if changed {
        Cow::Owned(cbor::encode(&Value::Map(entries)))
    } else {
        Cow::Borrowed(response)
    }
}

/// What the platform asked for, as the person should hear it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    /// makeCredential or getAssertion.
    pub command: Command,
    /// The relying party, when the request names one.
    pub rp_id: Option<String>,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Answered by the key: `status ‖ CBOR`.
    Local {
        /// The reply.
        reply: Vec<u8>,
        /// What it was, for the log.
        what: String,
    },
    /// Sent to the phone unchanged.
    Phone {
        /// The request (its CBOR exactly as received).
        request: CtapRequest,
        /// For the person.
        asked: Asked,
    },
}

/// The CTAP2 layer's state: the rest of a probe's credentials, for `getNextAssertion`.
#[derive(Debug, Default)]
pub struct KeyCtap {
    next: Option<NextAssertions>,
}

#[derive(Debug)]
struct NextAssertions {
    rp_id_hash: [u8; 32],
    remaining: std::collections::VecDeque<Value>,
}

impl KeyCtap {
    /// A key with no pending state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes one `command ‖ CBOR` request.
    pub fn route(&mut self, payload: &[u8]) -> Route {
        let Some((&cmd, body)) = payload.split_first() else {
            return local(vec![status::INVALID_LENGTH], "an empty request");
        };
        // getNextAssertion continues the previous getAssertion only; anything else ends it.
        let next = self.next.take();
        match cmd {
            command::GET_INFO if body.is_empty() => local(get_info(), "getInfo"),
            command::GET_INFO => local(vec![status::INVALID_LENGTH], "getInfo with parameters"),
            command::MAKE_CREDENTIAL => match Parsed::read(body, true) {
                None => local(vec![status::INVALID_CBOR], "makeCredential: not a CBOR map"),
                Some(p) if p.touch_only() => local(
                    vec![status::OPERATION_DENIED],
                    "makeCredential asking only for a touch to pick a key",
                ),
                Some(p) => phone(Command::MakeCredential, body, p.rp_id),
            },
            command::GET_ASSERTION => match Parsed::read(body, false) {
                None => local(vec![status::INVALID_CBOR], "getAssertion: not a CBOR map"),
                Some(p) if p.touch_only() => local(
                    vec![status::OPERATION_DENIED],
                    "getAssertion asking only for a touch to pick a key",
                ),
                Some(p) if p.up == Some(false) => self.probe(p),
                Some(p) => phone(Command::GetAssertion, body, p.rp_id),
            },
            command::GET_NEXT_ASSERTION => match next {
                Some(mut n) => match n.remaining.pop_front() {
                    Some(credential) => {
                        let reply = probe_assertion(credential, &n.rp_id_hash, None);
                        if !n.remaining.is_empty() {
                            self.next = Some(n);
                        }
                        local(reply, "getNextAssertion of a probe")
                    }
                    None => local(vec![status::NOT_ALLOWED], "getNextAssertion past the end"),
                },
                None => local(
                    vec![status::NOT_ALLOWED],
                    "getNextAssertion with no getAssertion to continue (the phone answers with one credential)",
                ),
            },
            other => local(
                vec![status::INVALID_COMMAND],
                &format!("{} ({other:#04x}), which this key does not offer", command_name(other)),
            ),
        }
    }

    /// A `getAssertion` with `up: false`: answered here, never sent to the phone.
    fn probe(&mut self, p: Parsed) -> Route {
        let Some(rp_id) = p.rp_id else {
            return local(vec![status::INVALID_CBOR], "probe without an RP ID");
        };
        let rp_id_hash: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
        let mut list: std::collections::VecDeque<Value> = p.allow_list.into();
        let Some(first) = list.pop_front() else {
            return local(
                vec![status::NO_CREDENTIALS],
                &format!("probe for discoverable credentials of {rp_id}: only the phone knows"),
            );
        };
        let count = list.len() + 1;
        let reply = probe_assertion(first, &rp_id_hash, (count > 1).then_some(count));
        if !list.is_empty() {
            self.next = Some(NextAssertions {
                rp_id_hash,
                remaining: list,
            });
        }
        local(
            reply,
            &format!(
                "probe (up: false) for {count} credential(s) of {rp_id}: all reported present"
            ),
        )
    }
}

fn local(reply: Vec<u8>, what: &str) -> Route {
    Route::Local {
        reply,
        what: what.to_string(),
    }
}

fn phone(command: Command, body: &[u8], rp_id: Option<String>) -> Route {
    Route::Phone {
        request: CtapRequest {
            command,
            body: body.to_vec(),
        },
        asked: Asked { command, rp_id },
    }
}

/// A probe's assertion: the credential as listed, authenticator data with no flags and a
/// zero counter, the placeholder signature, and `numberOfCredentials` when more follow.
fn probe_assertion(credential: Value, rp_id_hash: &[u8; 32], count: Option<usize>) -> Vec<u8> {
    let mut auth_data = rp_id_hash.to_vec();
    auth_data.extend_from_slice(&[0x00, 0, 0, 0, 0]);
    // DER ECDSA-Sig-Value with r = 0 and s = 0: well formed, and invalid for every key.
    const PLACEHOLDER_SIGNATURE: [u8; 8] = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00];
    let mut m = vec![
        (cbor::int(1), credential),
        (cbor::int(2), cbor::bytes(&auth_data)),
        (cbor::int(3), cbor::bytes(&PLACEHOLDER_SIGNATURE)),
    ];
    if let Some(n) = count {
        m.push((cbor::int(5), cbor::int(n as i64)));
    }
    let mut out = vec![status::OK];
    out.extend_from_slice(&cbor::encode(&Value::Map(m)));
    out
}

/// What routing needs from a makeCredential or getAssertion request, read leniently (any
/// valid CBOR): the phone judges the request itself.
struct Parsed {
    rp_id: Option<String>,
    up: Option<bool>,
    allow_list: Vec<Value>,
    empty_pin_uv_auth_param: bool,
}

impl Parsed {
    fn read(body: &[u8], make_credential: bool) -> Option<Self> {
        let value: Value = ciborium::from_reader(body).ok()?;
        let Value::Map(entries) = value else {
            return None;
        };
        let get = |k: i64| {
            entries.iter().find_map(|(key, v)| match key {
                Value::Integer(i) if i128::from(*i) == i128::from(k) => Some(v),
                _ => None,
            })
        };
        let text_key = |v: &Value, name: &str| match v {
            Value::Map(m) => m.iter().find_map(|(k, v)| match k {
                Value::Text(t) if t == name => Some(v.clone()),
                _ => None,
            }),
            _ => None,
        };
        // makeCredential: rp is key 2 ({id}), options key 7. getAssertion: rpId is key 1,
        // allowList key 3, options key 5. Both: pinUvAuthParam key 8 (mc) / 6 (ga).
        let (rp_id, options, allow, pin_uv) = if make_credential {
            (
                get(2)
                    .and_then(|rp| text_key(rp, "id"))
                    .and_then(|v| v.into_text().ok()),
                get(7),
                None,
                get(8),
            )
        } else {
            (
                get(1).and_then(|v| v.as_text().map(str::to_string)),
                get(5),
                get(3),
                get(6),
            )
        };
        let up = options
            .and_then(|o| text_key(o, "up"))
            .and_then(|v| v.as_bool());
        let allow_list = match allow {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let empty_pin_uv_auth_param = matches!(pin_uv, Some(Value::Bytes(b)) if b.is_empty());
        Some(Self {
            rp_id,
            up,
            allow_list,
            empty_pin_uv_auth_param,
        })
    }

    /// A request that only collects a touch so the platform can pick among keys: libfido2's
    /// and Chromium's `.dummy`, Firefox's `make.me.blink`, or CTAP 2.1's empty pinUvAuthParam.
    fn touch_only(&self) -> bool {
        self.empty_pin_uv_auth_param
            || matches!(self.rp_id.as_deref(), Some(".dummy" | "make.me.blink"))
    }
}

#[cfg(test)]
mod tests;
