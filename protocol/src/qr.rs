//! `FIDO:/` QR codes (docs/PROTOCOL.md#qr): the 7-byte → 17-digit decimal encoding with its partial
//! chunk widths, and the CBOR map with keys 0–6. We always emit keys 0–5 (key 2 = 2, key 4
//! present); key 6 is emitted only when set. Parsing is strict where Chromium is strict
//! (key 0 a valid compressed point, key 1 16 bytes, canonical CBOR) and lenient where it is
//! lenient (prefix case, unknown keys, unknown hints, key 6 as bool or channel list).

use ciborium::value::Value;

use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed};
use crate::keys::{PublicKey, QrSecret};

/// The case-insensitive URL prefix.
pub const PREFIX: &str = "FIDO:/";

/// The number of assigned tunnel domains this implementation knows (QR key 2).
pub const KNOWN_ASSIGNED_DOMAINS: u64 = 2;

/// Data-transfer channel ID of the WebSocket tunnel through a relay (QR key 6, advert
/// suffix; CTAP 2.3).
pub const CHANNEL_TUNNEL: u64 = 0x00;
/// Data-transfer channel ID of the direct BLE L2CAP channel (QR key 6, advert suffix; CTAP 2.3).
pub const CHANNEL_BLE: u64 = 0x01;

/// Digits written for a trailing chunk of n bytes, n = 0..=7.
const PARTIAL_WIDTHS: [usize; 8] = [0, 3, 5, 8, 10, 13, 15, 17];

/// Encodes bytes as decimal digits: 7-byte little-endian chunks as 17 digits each.
pub fn digits_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() / 7 * 17 + 17);
    for chunk in bytes.chunks(7) {
        let mut buf = [0u8; 8];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = u64::from_le_bytes(buf);
        let width = PARTIAL_WIDTHS[chunk.len()];
        out.push_str(&format!("{v:0width$}"));
    }
    out
}

/// Decodes [`digits_encode`] output, rejecting bad lengths, non-digits and chunk overflow.
pub fn digits_decode(digits: &str) -> Result<Vec<u8>, Error> {
    if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(Malformed::Qr(format!("{c:?} is not a decimal digit")).into());
    }
    let d = digits.as_bytes();
    let mut out = Vec::with_capacity(d.len() / 17 * 7 + 7);
    for group in d.chunks(17) {
        let n = PARTIAL_WIDTHS
            .iter()
            .position(|w| *w == group.len())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Malformed::Qr(format!(
                    "{} digits cannot be decoded: a final group must have 3, 5, 8, 10, 13, 15 or 17 digits, got {}",
                    d.len(),
                    group.len()
                ))
            })?;
        let text = core::str::from_utf8(group).expect("ASCII digits");
        let v: u64 = text
            .parse()
            .map_err(|_| Malformed::Qr(format!("digit group {text} does not fit 64 bits")))?;
        if n < 8 && v >> (8 * n) != 0 {
            return Err(
                Malformed::Qr(format!("digit group {text} is too large for {n} bytes")).into(),
            );
        }
        out.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    Ok(out)
}

/// The request-type hint in QR key 5 and the client payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// `"ga"`: getAssertion (sign in). Unknown hints map here, as in Chromium.
    GetAssertion,
    /// `"mc"`: makeCredential (register).
    MakeCredential,
    /// `"dcp"`: digital-credential presentation.
    DigitalCredentialPresentation,
    /// `"dci"`: digital-credential issuance.
    DigitalCredentialIssuance,
}

impl RequestType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetAssertion => "ga",
            Self::MakeCredential => "mc",
            Self::DigitalCredentialPresentation => "dcp",
            Self::DigitalCredentialIssuance => "dci",
        }
    }

    /// Parses the wire string exactly, `None` for anything else.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "ga" => Some(Self::GetAssertion),
            "mc" => Some(Self::MakeCredential),
            "dcp" => Some(Self::DigitalCredentialPresentation),
            "dci" => Some(Self::DigitalCredentialIssuance),
            _ => None,
        }
    }
}

/// QR key 6, which has two definitions in the wild (docs/PROTOCOL.md#qr-keys).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum DataChannels {
    /// Not present (what Chromium emits; our default).
    #[default]
    Absent,
    /// A boolean (2023 Chrome, webauthn-rs: "supports non-discoverable makeCredential").
    Bool(bool),
    /// CTAP 2.3: the data-transfer channels the client supports (0 = tunnel, 1 = BLE L2CAP).
    Channels(Vec<u64>),
}

impl DataChannels {
    /// What a client that can use the BLE channel puts in key 6: both channels.
    pub fn tunnel_and_ble() -> Self {
        Self::Channels(vec![CHANNEL_TUNNEL, CHANNEL_BLE])
    }

    /// Whether the client lists the BLE L2CAP channel (only the CTAP 2.3 list form can).
    pub fn offers_ble(&self) -> bool {
        matches!(self, Self::Channels(c) if c.contains(&CHANNEL_BLE))
    }
}

/// The contents of a hybrid QR code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrCode {
    /// Key 0: the client's identity public key (emitted compressed).
    pub identity_key: PublicKey,
    /// Key 1: the QR secret.
    pub secret: QrSecret,
    /// Key 2: how many assigned tunnel domains the client knows.
    pub known_domains: u64,
    /// Key 3: creation time in seconds since the Unix epoch, when present.
    pub created_at: Option<u64>,
    /// Key 4: whether the client can store linking information. Its presence selects
    /// protocol revision 1, so we always emit it.
    pub supports_linking: Option<bool>,
    /// Key 5: the request-type hint.
    pub request_type: RequestType,
    /// Key 6.
    pub data_channels: DataChannels,
}

impl QrCode {
    /// A QR code as this implementation emits it: keys 0–5, key 2 = 2, key 4 present.
    pub fn new(
        identity_key: PublicKey,
        secret: QrSecret,
        now_unix_secs: u64,
        supports_linking: bool,
        request_type: RequestType,
    ) -> Self {
        Self {
            identity_key,
            secret,
            known_domains: KNOWN_ASSIGNED_DOMAINS,
            created_at: Some(now_unix_secs),
            supports_linking: Some(supports_linking),
            request_type,
            data_channels: DataChannels::Absent,
        }
    }

    /// The canonical CBOR of the map.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (
                cbor::int(0),
                cbor::bytes(&self.identity_key.to_compressed()),
            ),
            (cbor::int(1), cbor::bytes(self.secret.expose())),
            (cbor::int(2), cbor::int(self.known_domains as i64)),
        ];
        if let Some(t) = self.created_at {
            m.push((cbor::int(3), Value::Integer(t.into())));
        }
        if let Some(b) = self.supports_linking {
            m.push((cbor::int(4), Value::Bool(b)));
        }
        m.push((cbor::int(5), cbor::text(self.request_type.as_str())));
        match &self.data_channels {
            DataChannels::Absent => {}
            DataChannels::Bool(b) => m.push((cbor::int(6), Value::Bool(*b))),
            DataChannels::Channels(c) => m.push((
                cbor::int(6),
                Value::Array(c.iter().map(|v| Value::Integer((*v).into())).collect()),
            )),
        }
        cbor::encode(&Value::Map(m))
    }

    /// The `FIDO:/…` text to put in the QR code.
    pub fn to_url(&self) -> String {
        format!("{PREFIX}{}", digits_encode(&self.to_cbor()))
    }

    /// Parses `FIDO:/…` text (prefix case-insensitive; surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let prefix = text
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX));
        let Some(_) = prefix else {
            return Err(Malformed::Qr(format!(
                "must start with {PREFIX:?}; this is not a passkey (hybrid) QR code"
            ))
            .into());
        };
        let digits = &text[PREFIX.len()..];
        if digits.is_empty() {
            return Err(Malformed::Qr(format!(
                "nothing follows {PREFIX:?}; the QR code is cut off"
            ))
            .into());
        }
        let bytes = digits_decode(digits)?;
        Self::from_cbor(&bytes)
    }

    /// Parses the CBOR map.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let qr_err = |e: Error| match e {
            Error::Malformed(Malformed::Cbor(m)) => Error::Malformed(Malformed::Qr(m)),
            other => other,
        };
        let value = cbor::decode(bytes).map_err(qr_err)?;
        let m = MapReader::new("QR code", &value).map_err(qr_err)?;
        let key0 = m.bytes(0).map_err(qr_err)?;
        if key0.len() != 33 {
            return Err(Malformed::Qr(format!(
                "key 0 must be a 33-byte compressed P-256 key, got {} bytes",
                key0.len()
            ))
            .into());
        }
        let identity_key = PublicKey::from_compressed(key0)
            .map_err(|_| Malformed::Qr("key 0 is not a valid compressed P-256 point".into()))?;
        let key1 = m.bytes(1).map_err(qr_err)?;
        let secret = QrSecret::from_slice(key1).map_err(|_| {
            Malformed::Qr(format!(
                "key 1 must be a 16-byte string, got {} bytes",
                key1.len()
            ))
        })?;
        let known_domains = m.opt_uint(2).map_err(qr_err)?.unwrap_or(0);
        // Chromium ignores key 3's type; we keep it only when it is an unsigned integer.
        let created_at = match m.get(3) {
            Some(Value::Integer(i)) => u64::try_from(*i).ok(),
            _ => None,
        };
        let supports_linking = m.opt_bool(4).map_err(qr_err)?;
        let request_type = m
            .opt_text(5)
            .map_err(qr_err)?
            .and_then(RequestType::from_wire)
            .unwrap_or(RequestType::GetAssertion);
        let data_channels = match m.get(6) {
            None => DataChannels::Absent,
            Some(Value::Bool(b)) => DataChannels::Bool(*b),
            Some(Value::Array(items)) => DataChannels::Channels(
                items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Integer(i) => u64::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect(),
            ),
            // Chromium ignores key 6 altogether.
            Some(_) => DataChannels::Absent,
        };
        Ok(Self {
            identity_key,
            secret,
            known_domains,
            created_at,
            supports_linking,
            request_type,
            data_channels,
        })
    }
}
