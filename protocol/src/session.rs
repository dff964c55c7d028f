//! The post-handshake transport (docs/PROTOCOL.md#transport): AES-256-GCM with the "new
//! construction" nonce (8 zero bytes ‖ BE32 counter, no associated data), 32-byte padding that
//! covers the type byte, a 2²⁴−1 message limit per direction, the typed messages of revision 1
//! (0 shutdown, 1 CTAP, 2 update, 3 JSON), the post-handshake message, and decoding of
//! revision-0 post-handshake messages (a CBOR map padded to 512 bytes) on the client side.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use ciborium::value::Value;
use zeroize::Zeroizing;

use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed, Misuse, PeerMisbehaved};
use crate::linking::LinkingInfo;

/// Largest message (after decryption) either side accepts, as Chromium's client.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Highest usable sequence number in each direction.
pub const MAX_SEQUENCE: u32 = (1 << 24) - 1;
const PADDING_GRANULE: usize = 32;
const TAG_LEN: usize = 16;

/// Which end of the session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The desktop (Noise initiator).
    Client,
    /// The phone (Noise responder).
    Authenticator,
}

/// One direction's key and counter.
struct Direction {
    cipher: Aes256Gcm,
    counter: u32,
}

impl Direction {
    fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
            counter: 0,
        }
    }

    fn nonce(&self) -> Nonce<aes_gcm::aead::consts::U12> {
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&self.counter.to_be_bytes());
        n.into()
    }
}

/// An established session: encrypts and decrypts frames in order.
pub struct Session {
    role: Role,
    write: Direction,
    read: Direction,
    handshake_hash: [u8; 32],
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("sent", &self.write.counter)
            .field("received", &self.read.counter)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session from raw transport keys, as the handshake builds it. Public only so the fuzz
    /// targets can put chosen plaintexts (any padding, any type byte) through
    /// [`Session::decrypt`] without a P-256 handshake per input; callers use the handshake.
    #[doc(hidden)]
    pub fn new(role: Role, write: &[u8; 32], read: &[u8; 32], handshake_hash: [u8; 32]) -> Self {
        Self {
            role,
            write: Direction::new(write),
            read: Direction::new(read),
            handshake_hash,
        }
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The Noise handshake hash `h` (the channel binding used by linking signatures).
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// Moves both sequence counters, so tests can reach the 2²⁴−1 limit without sending 16
    /// million frames. Never useful outside tests.
    pub fn dangerous_set_sequence_for_testing(&mut self, write: u32, read: u32) {
        self.write.counter = write;
        self.read.counter = read;
    }

    /// Pads and encrypts one plaintext (type byte included, if any).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        if plaintext.len() > MAX_MESSAGE {
            return Err(Misuse::MessageTooLarge(plaintext.len()).into());
        }
        if self.write.counter > MAX_SEQUENCE {
            return Err(Misuse::SequenceExhausted.into());
        }
        let padded_len = (plaintext.len() + 1).div_ceil(PADDING_GRANULE) * PADDING_GRANULE;
        let mut padded = Zeroizing::new(vec![0u8; padded_len]);
        padded[..plaintext.len()].copy_from_slice(plaintext);
        padded[padded_len - 1] = (padded_len - plaintext.len() - 1) as u8;
        let ct = self
            .write
            .cipher
            .encrypt(&self.write.nonce(), padded.as_slice())
            .map_err(|_| Misuse::Other("AES-GCM encryption failed".into()))?;
        self.write.counter += 1;
        Ok(ct)
    }

    /// Decrypts and unpads one frame. The counter advances only on success.
    pub fn decrypt(&mut self, frame: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        if frame.len() < TAG_LEN + 1 {
            return Err(Malformed::Frame(format!(
                "{} bytes is too short for a tag and padding",
                frame.len()
            ))
            .into());
        }
        if frame.len() > MAX_MESSAGE + PADDING_GRANULE + TAG_LEN {
            return Err(
                Malformed::Frame(format!("{} bytes is over the 1 MiB limit", frame.len())).into(),
            );
        }
        if self.read.counter > MAX_SEQUENCE {
            return Err(Misuse::SequenceExhausted.into());
        }
        let mut plain = Zeroizing::new(
            self.read
                .cipher
                .decrypt(&self.read.nonce(), frame)
                .map_err(|_| PeerMisbehaved::FrameAuthentication)?,
        );
        let pad = *plain.last().expect("length checked above") as usize;
        if pad + 1 > plain.len() {
            return Err(Malformed::Frame(format!(
                "padding count {pad} is larger than the {}-byte frame",
                plain.len()
            ))
            .into());
        }
        self.read.counter += 1;
        let keep = plain.len() - pad - 1;
        plain.truncate(keep);
        Ok(plain)
    }

    /// Encrypts a typed message (revision 1).
    pub fn encrypt_message(&mut self, message: &Message) -> Result<Vec<u8>, Error> {
        self.encrypt(&message.encode())
    }

    /// Decrypts a typed message (revision 1).
    pub fn decrypt_message(&mut self, frame: &[u8]) -> Result<Message, Error> {
        Message::decode(&self.decrypt(frame)?)
    }
}

/// Message type bytes of revision 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// Client → phone: end of transaction.
    Shutdown = 0x00,
    /// A CTAP request or response.
    Ctap = 0x01,
    /// Phone → client: linking information.
    Update = 0x02,
    /// Digital-credential JSON.
    Json = 0x03,
}

/// A typed message after the post-handshake message (revision 1).
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// `00`: the client is done.
    Shutdown,
    /// `01 ‖ cmd ‖ CBOR` (request) or `01 ‖ status ‖ CBOR` (response).
    Ctap(Vec<u8>),
    /// `02 ‖ CBOR`: an update carrying linking information.
    Update(Update),
    /// `03 ‖ JSON`.
    Json(String),
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Contents may be secret (linking info) or personal (CTAP); show sizes only.
        match self {
            Self::Shutdown => f.write_str("Shutdown"),
            Self::Ctap(b) => write!(f, "Ctap({} bytes)", b.len()),
            Self::Update(u) => write!(f, "Update(linking: {})", u.linking.is_some()),
            Self::Json(s) => write!(f, "Json({} bytes)", s.len()),
        }
    }
}

impl Message {
    /// The type of this message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Shutdown => MessageType::Shutdown,
            Self::Ctap(_) => MessageType::Ctap,
            Self::Update(_) => MessageType::Update,
            Self::Json(_) => MessageType::Json,
        }
    }

    /// Type byte ‖ payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.message_type() as u8];
        match self {
            Self::Shutdown => {}
            Self::Ctap(b) => out.extend_from_slice(b),
            Self::Update(u) => out.extend_from_slice(&u.encode()),
            Self::Json(s) => out.extend_from_slice(s.as_bytes()),
        }
        out
    }

    /// Parses type byte ‖ payload.
    pub fn decode(plain: &[u8]) -> Result<Self, Error> {
        let (&t, payload) = plain
            .split_first()
            .ok_or_else(|| Malformed::Message("empty message has no type byte".into()))?;
        match t {
            0x00 if payload.is_empty() => Ok(Self::Shutdown),
            0x00 => {
                Err(Malformed::Message(format!("shutdown carries {} bytes", payload.len())).into())
            }
            0x01 if payload.is_empty() => {
                Err(Malformed::Message("CTAP message has no command or status byte".into()).into())
            }
            0x01 => Ok(Self::Ctap(payload.to_vec())),
            0x02 => Ok(Self::Update(Update::decode(payload)?)),
            0x03 => String::from_utf8(payload.to_vec())
                .map(Self::Json)
                .map_err(|_| Malformed::Message("JSON message is not UTF-8".into()).into()),
            other => Err(PeerMisbehaved::UnknownMessageType(other).into()),
        }
    }
}

/// An update message (type 2): `{0: padding, 1: linking info}`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Update {
    /// Key 1, when present.
    pub linking: Option<LinkingInfo>,
}

impl Update {
    /// Size of the padded plaintext of every update, so that its ciphertext is 528 bytes
    /// whatever the link holds (as Chromium's phone does).
    pub const PADDED_PLAINTEXT: usize = 512;

    /// The CBOR map, padded with key 0 so that `02 ‖ CBOR` is 511 bytes when it fits (the
    /// frame's own padding count then makes 512).
    pub fn encode(&self) -> Vec<u8> {
        let mut map = Vec::new();
        if let Some(l) = &self.linking {
            map.push((cbor::int(1), l.to_value()));
        }
        let bare = cbor::encode(&Value::Map(map.clone()));
        // Key 0 costs one byte of key, a 1–3 byte string head and the zeros themselves.
        let target = Self::PADDED_PLAINTEXT - 2;
        let most = target.saturating_sub(bare.len() + 2);
        for pad in (most.saturating_sub(3)..=most).rev() {
            let mut m = map.clone();
            m.push((cbor::int(0), Value::Bytes(vec![0u8; pad])));
            let e = cbor::encode(&Value::Map(m));
            if e.len() == target {
                return e;
            }
        }
        bare
    }

    /// Parses the CBOR map; key 0 is ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let v = cbor::decode(bytes)?;
        let m = MapReader::new("update message", &v)?;
        let linking = m.opt_map(1)?.map(LinkingInfo::from_value).transpose()?;
        Ok(Self { linking })
    }
}

/// The protocol revision the client detected (docs/PROTOCOL.md#revisions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revision {
    /// Legacy: padded post-handshake map, no type bytes afterwards.
    Zero,
    /// Current: plain map, typed messages.
    One,
}

/// The first transport message, phone → client.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PostHandshake {
    /// Key 1: the authenticatorGetInfo response CBOR (no status byte).
    pub get_info: Option<Vec<u8>>,
    /// Key 2: linking info (revision 0 only).
    pub linking: Option<LinkingInfo>,
    /// Key 3: supported features; `["ctap"]` when absent.
    pub features: Vec<String>,
}

impl PostHandshake {
    /// What a phone sends: getInfo and `features: ["ctap"]`.
    pub fn ctap(get_info: Vec<u8>) -> Self {
        Self {
            get_info: Some(get_info),
            linking: None,
            features: vec!["ctap".into()],
        }
    }

    /// Whether the phone supports CTAP over this session.
    pub fn supports_ctap(&self) -> bool {
        self.features.iter().any(|f| f == "ctap")
    }

    /// Revision-1 encoding: the plain canonical map.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Vec::new();
        if let Some(g) = &self.get_info {
            m.push((cbor::int(1), cbor::bytes(g)));
        }
        if let Some(l) = &self.linking {
            m.push((cbor::int(2), l.to_value()));
        }
        let mut features = self.features.clone();
        features.sort();
        m.push((
            cbor::int(3),
            Value::Array(features.iter().map(|f| cbor::text(f)).collect()),
        ));
        cbor::encode(&Value::Map(m))
    }

    /// Decodes either revision: a plain map is revision 1, else a 512-byte-padded map with a
    /// LE16 zero count (or the older 256-byte form with a 1-byte count) is revision 0.
    pub fn decode(plain: &[u8]) -> Result<(Self, Revision), Error> {
        if let Ok(v) = cbor::decode(plain) {
            return Ok((Self::from_value(&v)?, Revision::One));
        }
        for (granule, count_len) in [(512usize, 2usize), (256, 1)] {
            if plain.is_empty() || !plain.len().is_multiple_of(granule) {
                continue;
            }
            let zeros = match count_len {
                2 => u16::from_le_bytes([plain[plain.len() - 2], plain[plain.len() - 1]]) as usize,
                _ => plain[plain.len() - 1] as usize,
            };
            let Some(end) = plain.len().checked_sub(zeros + count_len) else {
                continue;
            };
            if let Ok(v) = cbor::decode(&plain[..end]) {
                return Ok((Self::from_value(&v)?, Revision::Zero));
            }
        }
        Err(Malformed::Message(
            "post-handshake message is neither a CBOR map (revision 1) nor a padded one (revision 0)".into(),
        )
        .into())
    }

    fn from_value(v: &Value) -> Result<Self, Error> {
        let m = MapReader::new("post-handshake message", v)?;
        let features = match m.opt_array(3)? {
            None => vec!["ctap".to_string()],
            Some(a) => a
                .iter()
                .filter_map(|f| match f {
                    Value::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
        };
        let get_info = m.opt_bytes(1)?.map(<[u8]>::to_vec);
        let ph = Self {
            get_info,
            linking: m.opt_map(2)?.map(LinkingInfo::from_value).transpose()?,
            features,
        };
        match (ph.supports_ctap(), &ph.get_info) {
            (true, None) => Err(PeerMisbehaved::PostHandshake(
                "the phone supports CTAP but sent no getInfo (key 1)".into(),
            )
            .into()),
            (false, Some(_)) => Err(PeerMisbehaved::PostHandshake(
                "getInfo (key 1) present although \"ctap\" is not a feature".into(),
            )
            .into()),
            _ => Ok(ph),
        }
    }

    /// Revision-0 encoding (for tests of legacy decoding): map ‖ zeros ‖ LE16(zero count),
    /// padded to a multiple of 512.
    pub fn encode_revision0_for_testing(&self) -> Vec<u8> {
        let mut m = Vec::new();
        if let Some(g) = &self.get_info {
            m.push((cbor::int(1), cbor::bytes(g)));
        }
        if let Some(l) = &self.linking {
            m.push((cbor::int(2), l.to_value()));
        }
        let mut out = cbor::encode(&Value::Map(m));
        let total = (out.len() + 2).div_ceil(512) * 512;
        let zeros = total - out.len() - 2;
        out.resize(out.len() + zeros, 0);
        out.extend_from_slice(&(zeros as u16).to_le_bytes());
        out
    }
}
