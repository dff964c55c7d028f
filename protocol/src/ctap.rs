//! The CTAP2 messages hybrid carries (HYBRID.md §9): command and status bytes, getInfo,
//! makeCredential and getAssertion requests and responses, authenticator data with attested
//! credential data and an ES256 COSE key (built with `coset`), `none` and packed self
//! attestation, and the `prf` and `credProps` extensions as phones implement them. Requests are
//! parsed with the strictness of Chromium's phone: canonical CBOR, required fields present.
//! Errors carry the CTAP status a phone would answer with ([`CtapError::status`]).

use std::collections::BTreeMap;

use ciborium::value::Value;
use coset::{iana, AsCborValue as _, CoseKey, CoseKeyBuilder};

use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed};
use crate::keys::PublicKey;

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
// getInfo

/// The authenticatorGetInfo response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GetInfo {
    /// Key 1.
    pub versions: Vec<String>,
    /// Key 2.
    pub extensions: Vec<String>,
    /// Key 3.
    pub aaguid: [u8; 16],
    /// Key 4.
    pub options: BTreeMap<String, bool>,
    /// Key 9.
    pub transports: Vec<String>,
    /// Key 10: supported algorithms (COSE identifiers), when given.
    pub algorithms: Vec<i64>,
}

impl GetInfo {
    /// Canonical CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        let strings = |v: &[String]| Value::Array(v.iter().map(|s| cbor::text(s)).collect());
        let mut m = vec![(cbor::int(1), strings(&self.versions))];
        if !self.extensions.is_empty() {
            m.push((cbor::int(2), strings(&self.extensions)));
        }
        m.push((cbor::int(3), cbor::bytes(&self.aaguid)));
        if !self.options.is_empty() {
            m.push((
                cbor::int(4),
                Value::Map(
                    self.options
                        .iter()
                        .map(|(k, v)| (cbor::text(k), Value::Bool(*v)))
                        .collect(),
                ),
            ));
        }
        if !self.transports.is_empty() {
            m.push((cbor::int(9), strings(&self.transports)));
        }
        if !self.algorithms.is_empty() {
            m.push((
                cbor::int(10),
                Value::Array(
                    self.algorithms
                        .iter()
                        .map(|a| {
                            Value::Map(vec![
                                (cbor::text("alg"), cbor::int(*a)),
                                (cbor::text("type"), cbor::text("public-key")),
                            ])
                        })
                        .collect(),
                ),
            ));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses getInfo CBOR (as in post-handshake key 1).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let v = cbor::decode(bytes)?;
        let m = MapReader::new("getInfo", &v)?;
        let strings = |key: i64| -> Result<Vec<String>, Error> {
            Ok(m.opt_array(key)?
                .unwrap_or_default()
                .iter()
                .filter_map(|s| match s {
                    Value::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect())
        };
        let versions = strings(1)?;
        if versions.is_empty() {
            return Err(Malformed::Ctap("getInfo lists no versions (key 1)".into()).into());
        }
        let mut options = BTreeMap::new();
        if let Some(o) = m.opt_map(4)? {
            for (k, v) in MapReader::new("getInfo options", o)?.entries() {
                if let (Value::Text(k), Value::Bool(b)) = (k, v) {
                    options.insert(k.clone(), *b);
                }
            }
        }
        let algorithms = m
            .opt_array(10)?
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                MapReader::new("algorithm", p)
                    .ok()?
                    .get_text_key("alg")
                    .cloned()
            })
            .filter_map(|a| match a {
                Value::Integer(i) => i64::try_from(i).ok(),
                _ => None,
            })
            .collect();
        Ok(Self {
            versions,
            extensions: strings(2)?,
            aaguid: m.fixed_bytes::<16>(3)?,
            options,
            transports: strings(9)?,
            algorithms,
        })
    }
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

// ---------------------------------------------------------------------------------------------
// makeCredential

/// Extensions a makeCredential request may carry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MakeCredentialExtensions {
    /// `credProps` requested.
    pub cred_props: bool,
    /// `prf` present (any value enables PRF for the credential).
    pub prf: bool,
    /// `prf.eval` inputs at creation, when given.
    pub prf_eval: Option<PrfValues>,
}

/// authenticatorMakeCredential request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MakeCredentialRequest {
    /// Key 1.
    pub client_data_hash: [u8; 32],
    /// Key 2.
    pub rp: RelyingParty,
    /// Key 3.
    pub user: User,
    /// Key 4: COSE algorithm identifiers in preference order.
    pub algorithms: Vec<i64>,
    /// Key 5.
    pub exclude_list: Vec<CredentialDescriptor>,
    /// Key 6.
    pub extensions: MakeCredentialExtensions,
    /// Key 7.
    pub options: Options,
}

impl MakeCredentialRequest {
    /// Canonical CBOR (without the command byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), cbor::bytes(&self.client_data_hash)),
            (cbor::int(2), self.rp.to_value()),
            (cbor::int(3), self.user.to_value()),
            (
                cbor::int(4),
                Value::Array(
                    self.algorithms
                        .iter()
                        .map(|a| {
                            Value::Map(vec![
                                (cbor::text("alg"), cbor::int(*a)),
                                (cbor::text("type"), cbor::text("public-key")),
                            ])
                        })
                        .collect(),
                ),
            ),
        ];
        if !self.exclude_list.is_empty() {
            m.push((cbor::int(5), descriptor_array(&self.exclude_list)));
        }
        let mut ext = Vec::new();
        if self.extensions.cred_props {
            ext.push((cbor::text("credProps"), Value::Bool(true)));
        }
        if self.extensions.prf {
            let mut prf = Vec::new();
            if let Some(e) = &self.extensions.prf_eval {
                prf.push((cbor::text("eval"), e.to_value()));
            }
            ext.push((cbor::text("prf"), Value::Map(prf)));
        }
        if !ext.is_empty() {
            m.push((cbor::int(6), Value::Map(ext)));
        }
        if let Some(o) = options_value(self.options.rk, None, self.options.uv) {
            m.push((cbor::int(7), o));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the request as Chromium's phone does.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CtapError> {
        let v = parse_request("makeCredential", bytes)?;
        let m = MapReader::new("makeCredential", &v).map_err(CtapError::from_cbor)?;
        let client_data_hash = m.fixed_bytes::<32>(1).map_err(CtapError::from_cbor)?;
        let rp_v = m.opt_map(2).map_err(CtapError::from_cbor)?.ok_or_else(|| {
            CtapError::new(
                Status::MissingParameter,
                "makeCredential: rp (key 2) is missing",
            )
        })?;
        let rp_m = MapReader::new("rp", rp_v).map_err(CtapError::from_cbor)?;
        let rp = RelyingParty {
            id: text_key_text(&rp_m, "id")?
                .ok_or_else(|| CtapError::new(Status::MissingParameter, "rp.id is missing"))?,
            name: text_key_text(&rp_m, "name")?,
        };
        let user_v = m.opt_map(3).map_err(CtapError::from_cbor)?.ok_or_else(|| {
            CtapError::new(
                Status::MissingParameter,
                "makeCredential: user (key 3) is missing",
            )
        })?;
        let user = User::from_value(user_v)?;
        let params = m
            .opt_array(4)
            .map_err(CtapError::from_cbor)?
            .ok_or_else(|| {
                CtapError::new(
                    Status::MissingParameter,
                    "makeCredential: pubKeyCredParams (key 4) is missing",
                )
            })?;
        let mut algorithms = Vec::new();
        for p in params {
            let pm = MapReader::new("pubKeyCredParams entry", p).map_err(CtapError::from_cbor)?;
            match pm.get_text_key("alg") {
                Some(Value::Integer(i)) => {
                    algorithms.push(i64::try_from(*i).map_err(|_| {
                        CtapError::new(Status::InvalidParameter, "alg out of range")
                    })?)
                }
                Some(_) => {
                    return Err(CtapError::new(
                        Status::CborUnexpectedType,
                        "alg must be an integer",
                    ))
                }
                None => {
                    return Err(CtapError::new(
                        Status::MissingParameter,
                        "pubKeyCredParams entry has no alg",
                    ))
                }
            }
        }
        let exclude_list = descriptors(m.opt_array(5).map_err(CtapError::from_cbor)?)?;
        let mut extensions = MakeCredentialExtensions::default();
        if let Some(e) = m.opt_map(6).map_err(CtapError::from_cbor)? {
            let em = MapReader::new("extensions", e).map_err(CtapError::from_cbor)?;
            extensions.cred_props = matches!(em.get_text_key("credProps"), Some(Value::Bool(true)));
            if let Some(prf) = em.get_text_key("prf") {
                extensions.prf = true;
                if let Ok(pm) = MapReader::new("prf", prf) {
                    if let Some(eval) = pm.get_text_key("eval") {
                        extensions.prf_eval = Some(PrfValues::from_value(eval)?);
                    }
                }
            }
        }
        let options = parse_options(&m, 7)?;
        Ok(Self {
            client_data_hash,
            rp,
            user,
            algorithms,
            exclude_list,
            extensions,
            options,
        })
    }
}

/// An attestation statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestationStatement {
    /// `fmt: "none"`, `attStmt: {}`.
    None,
    /// `fmt: "packed"` self attestation: `{alg, sig}` signed by the credential key itself.
    PackedSelf {
        /// COSE algorithm.
        alg: i64,
        /// DER ECDSA signature over authData ‖ clientDataHash.
        sig: Vec<u8>,
    },
}

impl AttestationStatement {
    /// The `fmt` string.
    pub fn format(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::PackedSelf { .. } => "packed",
        }
    }

    /// The `attStmt` map.
    pub fn to_value(&self) -> Value {
        match self {
            Self::None => Value::Map(vec![]),
            Self::PackedSelf { alg, sig } => Value::Map(vec![
                (cbor::text("alg"), cbor::int(*alg)),
                (cbor::text("sig"), cbor::bytes(sig)),
            ]),
        }
    }
}

/// authenticatorMakeCredential response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MakeCredentialResponse {
    /// Keys 1 and 3.
    pub attestation: AttestationStatement,
    /// Key 2: raw authenticator data.
    pub auth_data: Vec<u8>,
    /// Key 6 (CTAP 2.3 unsigned extension outputs): `prf.enabled`.
    pub prf_enabled: Option<bool>,
}

impl MakeCredentialResponse {
    /// Canonical CBOR (without the status byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), cbor::text(self.attestation.format())),
            (cbor::int(2), cbor::bytes(&self.auth_data)),
            (cbor::int(3), self.attestation.to_value()),
        ];
        if let Some(e) = self.prf_enabled {
            m.push((
                cbor::int(6),
                Value::Map(vec![(
                    cbor::text("prf"),
                    Value::Map(vec![(cbor::text("enabled"), Value::Bool(e))]),
                )]),
            ));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the response CBOR.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let v = cbor::decode(bytes)?;
        let m = MapReader::new("makeCredential response", &v)?;
        let fmt = m.text(1)?;
        let auth_data = m.bytes(2)?.to_vec();
        let st = m
            .opt_map(3)?
            .ok_or_else(|| Error::cbor("makeCredential response: key 3 (attStmt) is missing"))?;
        let sm = MapReader::new("attStmt", st)?;
        let attestation = match fmt {
            "none" => AttestationStatement::None,
            "packed" => {
                let alg = match sm.get_text_key("alg") {
                    Some(Value::Integer(i)) => {
                        i64::try_from(*i).map_err(|_| Error::cbor("attStmt.alg out of range"))?
                    }
                    _ => return Err(Error::cbor("packed attStmt has no integer alg")),
                };
                let sig = match sm.get_text_key("sig") {
                    Some(Value::Bytes(b)) => b.clone(),
                    _ => return Err(Error::cbor("packed attStmt has no sig")),
                };
                if sm.get_text_key("x5c").is_some() {
                    return Err(Malformed::Ctap(
                        "packed attestation with a certificate chain is not supported".into(),
                    )
                    .into());
                }
                AttestationStatement::PackedSelf { alg, sig }
            }
            other => {
                return Err(
                    Malformed::Ctap(format!("unsupported attestation format {other:?}")).into(),
                )
            }
        };
        let prf_enabled = m
            .opt_map(6)?
            .and_then(|u| {
                MapReader::new("unsigned outputs", u)
                    .ok()?
                    .get_text_key("prf")
                    .cloned()
            })
            .and_then(
                |p| match MapReader::new("prf", &p).ok()?.get_text_key("enabled") {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                },
            );
        Ok(Self {
            attestation,
            auth_data,
            prf_enabled,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// getAssertion

/// The `prf` extension input of getAssertion.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PrfInputs {
    /// `eval`.
    pub eval: Option<PrfValues>,
    /// `evalByCredential`: credential ID → values.
    pub eval_by_credential: Vec<(Vec<u8>, PrfValues)>,
}

/// authenticatorGetAssertion request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetAssertionRequest {
    /// Key 1.
    pub rp_id: String,
    /// Key 2.
    pub client_data_hash: [u8; 32],
    /// Key 3.
    pub allow_list: Vec<CredentialDescriptor>,
    /// Key 4: `prf`.
    pub prf: Option<PrfInputs>,
    /// Key 5.
    pub options: Options,
}

impl GetAssertionRequest {
    /// Canonical CBOR (without the command byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), cbor::text(&self.rp_id)),
            (cbor::int(2), cbor::bytes(&self.client_data_hash)),
        ];
        if !self.allow_list.is_empty() {
            m.push((cbor::int(3), descriptor_array(&self.allow_list)));
        }
        if let Some(prf) = &self.prf {
            let mut p = Vec::new();
            if let Some(e) = &prf.eval {
                p.push((cbor::text("eval"), e.to_value()));
            }
            if !prf.eval_by_credential.is_empty() {
                p.push((
                    cbor::text("evalByCredential"),
                    Value::Map(
                        prf.eval_by_credential
                            .iter()
                            .map(|(id, v)| (cbor::text(&base64url(id)), v.to_value()))
                            .collect(),
                    ),
                ));
            }
            m.push((
                cbor::int(4),
                Value::Map(vec![(cbor::text("prf"), Value::Map(p))]),
            ));
        }
        if let Some(o) = options_value(None, self.options.up, self.options.uv) {
            m.push((cbor::int(5), o));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the request as Chromium's phone does.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CtapError> {
        let v = parse_request("getAssertion", bytes)?;
        let m = MapReader::new("getAssertion", &v).map_err(CtapError::from_cbor)?;
        let rp_id = m.text(1).map_err(CtapError::from_cbor)?.to_string();
        let client_data_hash = m.fixed_bytes::<32>(2).map_err(CtapError::from_cbor)?;
        let allow_list = descriptors(m.opt_array(3).map_err(CtapError::from_cbor)?)?;
        let mut prf = None;
        if let Some(e) = m.opt_map(4).map_err(CtapError::from_cbor)? {
            let em = MapReader::new("extensions", e).map_err(CtapError::from_cbor)?;
            if let Some(p) = em.get_text_key("prf") {
                let pm = MapReader::new("prf", p).map_err(CtapError::from_cbor)?;
                let mut inputs = PrfInputs::default();
                if let Some(e) = pm.get_text_key("eval") {
                    inputs.eval = Some(PrfValues::from_value(e)?);
                }
                if let Some(by) = pm.get_text_key("evalByCredential") {
                    let bm =
                        MapReader::new("evalByCredential", by).map_err(CtapError::from_cbor)?;
                    for (k, v) in bm.entries() {
                        let Value::Text(id) = k else {
                            return Err(CtapError::new(
                                Status::CborUnexpectedType,
                                "evalByCredential keys must be base64url text",
                            ));
                        };
                        let id = from_base64url(id).ok_or_else(|| {
                            CtapError::new(
                                Status::InvalidParameter,
                                "evalByCredential key is not base64url",
                            )
                        })?;
                        inputs
                            .eval_by_credential
                            .push((id, PrfValues::from_value(v)?));
                    }
                }
                prf = Some(inputs);
            }
        }
        let options = parse_options(&m, 5)?;
        if options.rk.is_some() {
            return Err(CtapError::new(
                Status::UnsupportedOption,
                "getAssertion does not take the rk option",
            ));
        }
        Ok(Self {
            rp_id,
            client_data_hash,
            allow_list,
            prf,
            options,
        })
    }
}

/// authenticatorGetAssertion response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetAssertionResponse {
    /// Key 1.
    pub credential: CredentialDescriptor,
    /// Key 2.
    pub auth_data: Vec<u8>,
    /// Key 3: DER ECDSA signature over authData ‖ clientDataHash.
    pub signature: Vec<u8>,
    /// Key 4: the user, for discoverable credentials.
    pub user: Option<User>,
    /// Key 6: userSelected.
    pub user_selected: Option<bool>,
    /// Key 8 (CTAP 2.3 unsigned extension outputs): `prf.results`.
    pub prf_results: Option<PrfValues>,
}

impl GetAssertionResponse {
    /// Canonical CBOR (without the status byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), self.credential.to_value()),
            (cbor::int(2), cbor::bytes(&self.auth_data)),
            (cbor::int(3), cbor::bytes(&self.signature)),
        ];
        if let Some(u) = &self.user {
            m.push((cbor::int(4), u.to_value()));
        }
        if let Some(s) = self.user_selected {
            m.push((cbor::int(6), Value::Bool(s)));
        }
        if let Some(r) = &self.prf_results {
            m.push((
                cbor::int(8),
                Value::Map(vec![(
                    cbor::text("prf"),
                    Value::Map(vec![(cbor::text("results"), r.to_value())]),
                )]),
            ));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the response CBOR.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let v = cbor::decode(bytes)?;
        let m = MapReader::new("getAssertion response", &v)?;
        let cred = m
            .opt_map(1)?
            .ok_or_else(|| Error::cbor("getAssertion response: key 1 (credential) is missing"))?;
        let credential =
            CredentialDescriptor::from_value(cred).map_err(|e| Malformed::Ctap(e.message))?;
        let user = m
            .opt_map(4)?
            .map(User::from_value)
            .transpose()
            .map_err(|e| Malformed::Ctap(e.message))?;
        let prf_results = m
            .opt_map(8)?
            .and_then(|u| {
                MapReader::new("unsigned outputs", u)
                    .ok()?
                    .get_text_key("prf")
                    .cloned()
            })
            .and_then(|p| {
                MapReader::new("prf", &p)
                    .ok()?
                    .get_text_key("results")
                    .cloned()
            })
            .map(|r| PrfValues::from_value(&r))
            .transpose()
            .map_err(|e| Malformed::Ctap(e.message))?;
        Ok(Self {
            credential,
            auth_data: m.bytes(2)?.to_vec(),
            signature: m.bytes(3)?.to_vec(),
            user,
            user_selected: m.opt_bool(6)?,
            prf_results,
        })
    }
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

// ---------------------------------------------------------------------------------------------
// authenticator data

/// Attested credential data inside authenticator data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestedCredential {
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// Credential ID.
    pub credential_id: Vec<u8>,
    /// The credential's ES256 public key.
    pub public_key: PublicKey,
}

/// Authenticator data (WebAuthn §6.1).
#[derive(Clone, Debug, PartialEq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// Flag bits ([`flags`]); `AT` and `ED` are set from the fields below on encoding.
    pub flags: u8,
    /// Signature counter.
    pub sign_count: u32,
    /// Present in makeCredential responses.
    pub attested_credential: Option<AttestedCredential>,
    /// Authenticator extension outputs (CBOR map), e.g. `credProps`.
    pub extensions: Option<Value>,
}

/// The canonical CBOR of an ES256 COSE_Key for `key`, built with `coset`.
pub fn cose_key_es256(key: &PublicKey) -> Vec<u8> {
    let point = key.to_uncompressed();
    let cose = CoseKeyBuilder::new_ec2_pub_key(
        iana::EllipticCurve::P_256,
        point[1..33].to_vec(),
        point[33..].to_vec(),
    )
    .algorithm(iana::Algorithm::ES256)
    .build();
    let value = cose.to_cbor_value().expect("a COSE key always serializes");
    cbor::encode(&value)
}

/// Parses an ES256 COSE_Key.
pub fn parse_cose_key_es256(value: Value) -> Result<PublicKey, Error> {
    let key =
        CoseKey::from_cbor_value(value).map_err(|e| Malformed::Ctap(format!("COSE key: {e}")))?;
    let param = |label: i64| {
        key.params
            .iter()
            .find(|(l, _)| *l == coset::Label::Int(label))
            .and_then(|(_, v)| match v {
                Value::Bytes(b) => Some(b.clone()),
                _ => None,
            })
    };
    let (x, y) = param(-2)
        .zip(param(-3))
        .ok_or_else(|| Malformed::Ctap("COSE key lacks x or y".into()))?;
    if key.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::ES256)) {
        return Err(Malformed::Ctap("COSE key is not ES256".into()).into());
    }
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    PublicKey::from_uncompressed(&point)
}

impl AuthenticatorData {
    /// The raw bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = self.flags & !(flags::AT | flags::ED);
        if self.attested_credential.is_some() {
            flags |= flags::AT;
        }
        if self.extensions.is_some() {
            flags |= flags::ED;
        }
        let mut out = Vec::with_capacity(37 + 200);
        out.extend_from_slice(&self.rp_id_hash);
        out.push(flags);
        out.extend_from_slice(&self.sign_count.to_be_bytes());
        if let Some(c) = &self.attested_credential {
            out.extend_from_slice(&c.aaguid);
            out.extend_from_slice(&(c.credential_id.len() as u16).to_be_bytes());
            out.extend_from_slice(&c.credential_id);
            out.extend_from_slice(&cose_key_es256(&c.public_key));
        }
        if let Some(e) = &self.extensions {
            out.extend_from_slice(&cbor::encode(e));
        }
        out
    }

    /// Parses raw bytes, rejecting trailing data.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |m: &str| Error::from(Malformed::Ctap(format!("authenticator data: {m}")));
        if bytes.len() < 37 {
            return Err(bad(&format!("{} bytes is shorter than 37", bytes.len())));
        }
        let rp_id_hash = bytes[..32].try_into().expect("32 bytes");
        let flags = bytes[32];
        let sign_count = u32::from_be_bytes(bytes[33..37].try_into().expect("4 bytes"));
        let mut rest = &bytes[37..];
        let attested_credential = if flags & flags::AT != 0 {
            if rest.len() < 18 {
                return Err(bad("attested credential data is truncated"));
            }
            let aaguid = rest[..16].try_into().expect("16 bytes");
            let len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
            rest = &rest[18..];
            if rest.len() < len {
                return Err(bad("credential ID is truncated"));
            }
            let credential_id = rest[..len].to_vec();
            rest = &rest[len..];
            let (key, used) = cbor::decode_prefix(rest)?;
            rest = &rest[used..];
            Some(AttestedCredential {
                aaguid,
                credential_id,
                public_key: parse_cose_key_es256(key)?,
            })
        } else {
            None
        };
        let extensions = if flags & flags::ED != 0 {
            let (ext, used) = cbor::decode_prefix(rest)?;
            rest = &rest[used..];
            Some(ext)
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(bad(&format!("{} trailing bytes", rest.len())));
        }
        Ok(Self {
            rp_id_hash,
            flags,
            sign_count,
            attested_credential,
            extensions,
        })
    }
}
