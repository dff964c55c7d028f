//! The CTAP2 messages hybrid carries (docs/PROTOCOL.md#ctap): command and status bytes, getInfo,
//! makeCredential and getAssertion requests and responses, authenticator data with attested
//! credential data and an ES256 COSE key (built with `coset`), `none` and packed self
//! attestation, and the `prf` and `credProps` extensions as phones implement them. Requests are
//! parsed with the strictness of Chromium's phone: canonical CBOR, required fields present.
//! Errors carry the CTAP status a phone would answer with ([`CtapError::status`]).

use ciborium::value::Value;

use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed};

mod auth_data;
mod get_assertion;
mod get_info;
mod make_credential;

pub use auth_data::{cose_key_es256, parse_cose_key_es256, AttestedCredential, AuthenticatorData};
pub use get_assertion::{GetAssertionRequest, GetAssertionResponse, PrfInputs};
pub use get_info::GetInfo;
pub use make_credential::{
    AttestationStatement, MakeCredentialExtensions, MakeCredentialRequest, MakeCredentialResponse,
};

/// CTAP command bytes used over hybrid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// authenticatorMakeCredential.
    MakeCredential = 0x01,
    /// authenticatorGetAssertion.
    GetAssertion = 0x02,
    /// authenticatorGetInfo.
    GetInfo = 0x04,
    /// authenticatorSelection.
    Selection = 0x0B,
}

impl Command {
    /// Parses a command byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(Self::MakeCredential),
            0x02 => Some(Self::GetAssertion),
            0x04 => Some(Self::GetInfo),
            0x0B => Some(Self::Selection),
            _ => None,
        }
    }
}

/// CTAP status codes this project sends or explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// CTAP2_OK.
    Ok = 0x00,
    /// CTAP1_ERR_INVALID_COMMAND.
    InvalidCommand = 0x01,
    /// CTAP1_ERR_INVALID_PARAMETER.
    InvalidParameter = 0x02,
    /// CTAP1_ERR_INVALID_LENGTH.
    InvalidLength = 0x03,
    /// CTAP2_ERR_CBOR_UNEXPECTED_TYPE.
    CborUnexpectedType = 0x11,
    /// CTAP2_ERR_INVALID_CBOR.
    InvalidCbor = 0x12,
    /// CTAP2_ERR_MISSING_PARAMETER.
    MissingParameter = 0x14,
    /// CTAP2_ERR_UNSUPPORTED_EXTENSION.
    UnsupportedExtension = 0x16,
    /// CTAP2_ERR_CREDENTIAL_EXCLUDED.
    CredentialExcluded = 0x19,
    /// CTAP2_ERR_UNSUPPORTED_ALGORITHM.
    UnsupportedAlgorithm = 0x26,
    /// CTAP2_ERR_OPERATION_DENIED.
    OperationDenied = 0x27,
    /// CTAP2_ERR_KEY_STORE_FULL.
    KeyStoreFull = 0x28,
    /// CTAP2_ERR_UNSUPPORTED_OPTION.
    UnsupportedOption = 0x2B,
    /// CTAP2_ERR_INVALID_OPTION.
    InvalidOption = 0x2C,
    /// CTAP2_ERR_NO_CREDENTIALS.
    NoCredentials = 0x2E,
    /// CTAP2_ERR_USER_ACTION_TIMEOUT.
    UserActionTimeout = 0x2F,
    /// CTAP2_ERR_NOT_ALLOWED.
    NotAllowed = 0x30,
    /// CTAP1_ERR_OTHER.
    Other = 0x7F,
}

impl Status {
    /// Parses a status byte; unknown values map to [`Status::Other`].
    pub fn from_byte(b: u8) -> Self {
        use Status::*;
        [
            Ok,
            InvalidCommand,
            InvalidParameter,
            InvalidLength,
            CborUnexpectedType,
            InvalidCbor,
            MissingParameter,
            UnsupportedExtension,
            CredentialExcluded,
            UnsupportedAlgorithm,
            OperationDenied,
            KeyStoreFull,
            UnsupportedOption,
            InvalidOption,
            NoCredentials,
            UserActionTimeout,
            NotAllowed,
        ]
        .into_iter()
        .find(|s| *s as u8 == b)
        .unwrap_or(Other)
    }

    /// What the status means for a person at the desktop.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Ok => "success",
            Self::InvalidCommand => "the phone does not support this command",
            Self::InvalidParameter
            | Self::InvalidLength
            | Self::CborUnexpectedType
            | Self::InvalidCbor
            | Self::MissingParameter => "the phone rejected the request as malformed",
            Self::UnsupportedExtension => "the phone does not support a requested extension",
            Self::CredentialExcluded => {
                "the phone already holds a passkey for this account (excludeList)"
            }
            Self::UnsupportedAlgorithm => "the phone supports none of the requested algorithms",
            Self::OperationDenied | Self::NotAllowed => "the request was denied on the phone",
            Self::KeyStoreFull => "the phone has no room for another passkey",
            Self::UnsupportedOption | Self::InvalidOption => {
                "the phone does not support a requested option"
            }
            Self::NoCredentials => "the phone has no passkey for this site",
            Self::UserActionTimeout => "nobody confirmed on the phone in time",
            Self::Other => "the phone reported an error",
        }
    }
}

/// A request the authenticator rejects, with the status it answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (CTAP status {:#04x})", *status as u8)]
pub struct CtapError {
    /// The status to answer with.
    pub status: Status,
    /// What was wrong, for logs.
    pub message: String,
}

impl CtapError {
    fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn from_cbor(e: Error) -> Self {
        let message = e.to_string();
        let status = if message.contains("is missing") {
            Status::MissingParameter
        } else if message.contains("must be") {
            Status::CborUnexpectedType
        } else {
            Status::InvalidCbor
        };
        Self { status, message }
    }
}

/// `0x01`-less request bytes: `cmd ‖ CBOR`.
pub fn encode_request(command: Command, cbor_body: &[u8]) -> Vec<u8> {
    let mut out = vec![command as u8];
    out.extend_from_slice(cbor_body);
    out
}

/// Splits `status ‖ CBOR`.
pub fn split_response(bytes: &[u8]) -> Result<(Status, &[u8]), Error> {
    let (&s, body) = bytes
        .split_first()
        .ok_or_else(|| Malformed::Ctap("empty response has no status byte".into()))?;
    Ok((Status::from_byte(s), body))
}

/// COSE algorithm identifier of ES256.
pub const ES256: i64 = -7;
/// WebAuthn flag bits of authenticator data.
pub mod flags {
    /// User present.
    pub const UP: u8 = 0x01;
    /// User verified.
    pub const UV: u8 = 0x04;
    /// Backup eligible.
    pub const BE: u8 = 0x08;
    /// Backed up.
    pub const BS: u8 = 0x10;
    /// Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Extension data included.
    pub const ED: u8 = 0x80;
}

// ---------------------------------------------------------------------------------------------
// shared structures

/// A relying party (`PublicKeyCredentialRpEntity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelyingParty {
    /// RP ID.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
}

/// A user account (`PublicKeyCredentialUserEntity`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    /// User handle.
    pub id: Vec<u8>,
    /// Account name.
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

/// A credential descriptor (`PublicKeyCredentialDescriptor`, type "public-key").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialDescriptor {
    /// Credential ID.
    pub id: Vec<u8>,
    /// Transports hint, when given.
    pub transports: Option<Vec<String>>,
}

/// PRF evaluation inputs or outputs: one or two 32-byte values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrfValues {
    /// `first`.
    pub first: Vec<u8>,
    /// `second`, when given.
    pub second: Option<Vec<u8>>,
}

impl RelyingParty {
    fn to_value(&self) -> Value {
        let mut m = vec![(cbor::text("id"), cbor::text(&self.id))];
        if let Some(n) = &self.name {
            m.push((cbor::text("name"), cbor::text(n)));
        }
        Value::Map(m)
    }
}

impl User {
    /// The CBOR map (fields present when set).
    pub fn to_value(&self) -> Value {
        let mut m = vec![(cbor::text("id"), cbor::bytes(&self.id))];
        if let Some(n) = &self.name {
            m.push((cbor::text("name"), cbor::text(n)));
        }
        if let Some(n) = &self.display_name {
            m.push((cbor::text("displayName"), cbor::text(n)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, CtapError> {
        let m = MapReader::new("user", v).map_err(CtapError::from_cbor)?;
        Ok(Self {
            id: text_key_bytes(&m, "id")?
                .ok_or_else(|| CtapError::new(Status::MissingParameter, "user.id is missing"))?,
            name: text_key_text(&m, "name")?,
            display_name: text_key_text(&m, "displayName")?,
        })
    }
}

impl CredentialDescriptor {
    /// The CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (cbor::text("id"), cbor::bytes(&self.id)),
            (cbor::text("type"), cbor::text("public-key")),
        ];
        if let Some(t) = &self.transports {
            m.push((
                cbor::text("transports"),
                Value::Array(t.iter().map(|s| cbor::text(s)).collect()),
            ));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, CtapError> {
        let m = MapReader::new("credential descriptor", v).map_err(CtapError::from_cbor)?;
        let id = text_key_bytes(&m, "id")?.ok_or_else(|| {
            CtapError::new(Status::MissingParameter, "credential descriptor has no id")
        })?;
        let transports = match m.get_text_key("transports") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|t| match t {
                        Value::Text(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            Some(_) => {
                return Err(CtapError::new(
                    Status::CborUnexpectedType,
                    "transports must be an array",
                ))
            }
        };
        Ok(Self { id, transports })
    }
}

impl PrfValues {
    fn to_value(&self) -> Value {
        let mut m = vec![(cbor::text("first"), cbor::bytes(&self.first))];
        if let Some(s) = &self.second {
            m.push((cbor::text("second"), cbor::bytes(s)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, CtapError> {
        let m = MapReader::new("prf values", v).map_err(CtapError::from_cbor)?;
        let first = text_key_bytes(&m, "first")?
            .ok_or_else(|| CtapError::new(Status::MissingParameter, "prf values have no first"))?;
        Ok(Self {
            first,
            second: text_key_bytes(&m, "second")?,
        })
    }
}

fn text_key_bytes(m: &MapReader<'_>, key: &str) -> Result<Option<Vec<u8>>, CtapError> {
    match m.get_text_key(key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b.clone())),
        Some(_) => Err(CtapError::new(
            Status::CborUnexpectedType,
            format!("{key} must be a byte string"),
        )),
    }
}

fn text_key_text(m: &MapReader<'_>, key: &str) -> Result<Option<String>, CtapError> {
    match m.get_text_key(key) {
        None => Ok(None),
        Some(Value::Text(t)) => Ok(Some(t.clone())),
        Some(_) => Err(CtapError::new(
            Status::CborUnexpectedType,
            format!("{key} must be a text string"),
        )),
    }
}

fn text_key_bool(m: &MapReader<'_>, key: &str) -> Result<Option<bool>, CtapError> {
    match m.get_text_key(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(CtapError::new(
            Status::CborUnexpectedType,
            format!("{key} must be a boolean"),
        )),
    }
}

fn descriptors(v: Option<&[Value]>) -> Result<Vec<CredentialDescriptor>, CtapError> {
    v.unwrap_or_default()
        .iter()
        .map(CredentialDescriptor::from_value)
        .collect()
}

/// `[{"alg": a, "type": "public-key"}, …]`, as in pubKeyCredParams and getInfo key 10.
fn credential_params(algorithms: &[i64]) -> Value {
    Value::Array(
        algorithms
            .iter()
            .map(|a| {
                Value::Map(vec![
                    (cbor::text("alg"), cbor::int(*a)),
                    (cbor::text("type"), cbor::text("public-key")),
                ])
            })
            .collect(),
    )
}

fn descriptor_array(list: &[CredentialDescriptor]) -> Value {
    Value::Array(list.iter().map(CredentialDescriptor::to_value).collect())
}

fn parse_request(what: &'static str, bytes: &[u8]) -> Result<Value, CtapError> {
    let v = cbor::decode(bytes)
        .map_err(|e| CtapError::new(Status::InvalidCbor, format!("{what}: {e}")))?;
    if !matches!(v, Value::Map(_)) {
        return Err(CtapError::new(
            Status::CborUnexpectedType,
            format!("{what} must be a map"),
        ));
    }
    Ok(v)
}

fn options_value(rk: Option<bool>, up: Option<bool>, uv: Option<bool>) -> Option<Value> {
    let mut m = Vec::new();
    for (k, v) in [("rk", rk), ("up", up), ("uv", uv)] {
        if let Some(v) = v {
            m.push((cbor::text(k), Value::Bool(v)));
        }
    }
    (!m.is_empty()).then_some(Value::Map(m))
}

/// The `options` map of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Options {
    /// Discoverable credential (makeCredential only).
    pub rk: Option<bool>,
    /// User presence (getAssertion only).
    pub up: Option<bool>,
    /// User verification.
    pub uv: Option<bool>,
}

fn parse_options(m: &MapReader<'_>, key: i64) -> Result<Options, CtapError> {
    let Some(o) = m.opt_map(key).map_err(CtapError::from_cbor)? else {
        return Ok(Options::default());
    };
    let o = MapReader::new("options", o).map_err(CtapError::from_cbor)?;
    Ok(Options {
        rk: text_key_bool(&o, "rk")?,
        up: text_key_bool(&o, "up")?,
        uv: text_key_bool(&o, "uv")?,
    })
}

fn base64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn from_base64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}
