//! BLE adverts (docs/PROTOCOL.md#advert): the 16-byte EID plaintext, its encryption into 20 bytes
//! of service data (AES-256 of one block ‖ 4 bytes of HMAC-SHA256), trial decryption with a
//! constant-time tag check, and the optional CTAP 2.3 suffix after byte 20. Only
//! [`decrypt`] creates a [`MatchedAdvert`], and the client's PSK comes from one, so a client
//! cannot derive a PSK from an advert it has not authenticated.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes256;
use ciborium::value::Value;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{Error, Malformed, Misuse, PeerMisbehaved};
use crate::keys::{EidKey, Psk};
use crate::tunnel::{Domain, RoutingId};

/// The FIDO Alliance's 16-bit service UUID, which authenticators should advertise under.
pub const SERVICE_UUID_FIDO: u16 = 0xFFF9;
/// Google's 16-bit service UUID, used by older phones; clients scan it too.
pub const SERVICE_UUID_GOOGLE: u16 = 0xFDE2;
/// Length of the authenticated part of an advert.
pub const ADVERT_LEN: usize = 20;

/// The 128-bit form of a 16-bit Bluetooth SIG UUID, as BlueZ reports it.
pub fn uuid16_to_128(uuid: u16) -> String {
    format!("0000{uuid:04x}-0000-1000-8000-00805f9b34fb")
}

/// The 16-bit form of a 128-bit SIG-base UUID string, if it is one.
pub fn uuid128_to_16(uuid: &str) -> Option<u16> {
    let u = uuid.to_ascii_lowercase();
    let rest = u.strip_prefix("0000")?;
    let (short, base) = rest.split_at_checked(4)?;
    (base == "-0000-1000-8000-00805f9b34fb").then(|| u16::from_str_radix(short, 16).ok())?
}

/// The decrypted contents of an advert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EidPlaintext {
    /// Fresh random bytes per advert.
    pub nonce: [u8; 10],
    /// The relay instance the phone is connected to.
    pub routing_id: RoutingId,
    /// The relay's domain.
    pub domain: Domain,
}

impl EidPlaintext {
    /// A plaintext with a fresh nonce from the caller's RNG.
    pub fn new(
        routing_id: RoutingId,
        domain: Domain,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, Error> {
        let mut nonce = [0u8; 10];
        rng.try_fill_bytes(&mut nonce)
            .map_err(|e| Misuse::Rng(e.to_string()))?;
        Ok(Self {
            nonce,
            routing_id,
            domain,
        })
    }

    /// `0x00 ‖ nonce ‖ routing ID ‖ LE16(domain)`.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[1..11].copy_from_slice(&self.nonce);
        b[11..14].copy_from_slice(&self.routing_id.0);
        b[14..16].copy_from_slice(&self.domain.0.to_le_bytes());
        b
    }

    /// Parses and validates 16 plaintext bytes as Chromium does.
    pub fn from_bytes(b: &[u8; 16]) -> Result<Self, Error> {
        if b[0] != 0 {
            return Err(PeerMisbehaved::AdvertReservedBits(b[0]).into());
        }
        let domain = Domain(u16::from_le_bytes([b[14], b[15]]));
        if !domain.is_known() {
            return Err(PeerMisbehaved::UnknownDomain(domain.0).into());
        }
        Ok(Self {
            nonce: b[1..11].try_into().expect("10 bytes"),
            routing_id: RoutingId(b[11..14].try_into().expect("3 bytes")),
            domain,
        })
    }

    /// The authenticator's PSK for this advert: `Derive(secret, plaintext, 3, 32)`.
    pub fn psk(&self, secret: &[u8]) -> Psk {
        Psk::derive(secret, &self.to_bytes())
    }
}

/// The CTAP 2.3 suffix (docs/PROTOCOL.md#advert-suffix): a CBOR map after byte 20 from transport channel ID
/// ([`crate::qr::CHANNEL_TUNNEL`], [`crate::qr::CHANNEL_BLE`]) to that channel's data. The
/// suffix is not covered by the advert's tag: it only says how the phone can be reached, and
/// the Noise handshake that follows authenticates whichever channel is used.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AdvertSuffix {
    /// Channel 1: the phone's L2CAP PSM for the BLE data channel.
    pub l2cap_psm: Option<u16>,
}

impl AdvertSuffix {
    /// Canonical CBOR of the suffix map.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = Vec::new();
        if let Some(psm) = self.l2cap_psm {
            m.push((
                crate::cbor::int(crate::qr::CHANNEL_BLE as i64),
                Value::Integer(psm.into()),
            ));
        }
        crate::cbor::encode(&Value::Map(m))
    }

    /// Parses a suffix; `None` if the bytes are not one canonical CBOR map (the advert is kept
    /// regardless). Unknown channels are ignored, and so is channel 1 when its value is not a
    /// PSM (an unsigned integer from 1 to 0xFFFF): the phone is then reached through the relay.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let v = crate::cbor::decode(bytes).ok()?;
        let m = crate::cbor::MapReader::new("advert suffix", &v).ok()?;
        let l2cap_psm = match m.get(crate::qr::CHANNEL_BLE as i64) {
            Some(Value::Integer(i)) => u16::try_from(*i).ok().filter(|psm| *psm != 0),
            _ => None,
        };
        Some(Self { l2cap_psm })
    }
}

/// An advert that authenticated under our key and carries a valid plaintext.
#[derive(Clone, Debug)]
pub struct MatchedAdvert {
    plaintext_bytes: [u8; 16],
    /// The parsed plaintext.
    pub plaintext: EidPlaintext,
    /// The CTAP 2.3 suffix, when present and well-formed.
    pub suffix: Option<AdvertSuffix>,
    /// How many bytes followed the authenticated 20 (the suffix, well-formed or not).
    pub trailing_len: usize,
}

impl MatchedAdvert {
    /// The PSM of the phone's BLE data channel, when its suffix offers one.
    pub fn l2cap_psm(&self) -> Option<u16> {
        self.suffix.as_ref().and_then(|s| s.l2cap_psm)
    }

    /// Whether bytes followed the authenticated 20 that are not a CTAP 2.3 suffix map (they
    /// are reported by `scan`, and the advert is used regardless).
    pub fn has_invalid_suffix(&self) -> bool {
        self.trailing_len > 0 && self.suffix.is_none()
    }

    /// The client's PSK for this advert: `Derive(secret, plaintext, 3, 32)` where `secret` is
    /// the QR secret or link secret.
    pub fn psk(&self, secret: &[u8]) -> Psk {
        Psk::derive(secret, &self.plaintext_bytes)
    }

    /// The 16 decrypted bytes.
    pub fn plaintext_bytes(&self) -> &[u8; 16] {
        &self.plaintext_bytes
    }
}

fn tag(key: &EidKey, block: &[u8]) -> [u8; 4] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&key.expose()[32..]).expect("any key length");
    mac.update(block);
    mac.finalize().into_bytes()[..4]
        .try_into()
        .expect("4 bytes")
}

/// Encrypts a plaintext into 20 bytes of service data.
pub fn encrypt(key: &EidKey, plaintext: &EidPlaintext) -> [u8; ADVERT_LEN] {
    encrypt_raw(key, &plaintext.to_bytes())
}

/// Encrypts any 16 bytes (fault injection uses this to send invalid plaintexts).
pub fn encrypt_raw(key: &EidKey, plaintext: &[u8; 16]) -> [u8; ADVERT_LEN] {
    let cipher = Aes256::new_from_slice(&key.expose()[..32]).expect("32-byte key");
    let mut block = aes::Block::from(*plaintext);
    cipher.encrypt_block(&mut block);
    let mut out = [0u8; ADVERT_LEN];
    out[..16].copy_from_slice(&block);
    out[16..].copy_from_slice(&tag(key, &block));
    out
}

/// Trial-decrypts service data: checks the tag in constant time, then decrypts and validates
/// the plaintext. Service data longer than 20 bytes may carry a CTAP 2.3 suffix.
pub fn decrypt(key: &EidKey, service_data: &[u8]) -> Result<MatchedAdvert, Error> {
    if service_data.len() < ADVERT_LEN {
        return Err(Malformed::Advert(format!(
            "service data must be at least {ADVERT_LEN} bytes, got {}",
            service_data.len()
        ))
        .into());
    }
    let (ct, rest) = service_data.split_at(16);
    let expected = tag(key, ct);
    if !bool::from(expected.ct_eq(&rest[..4])) {
        return Err(PeerMisbehaved::AdvertNotOurs.into());
    }
    let cipher = Aes256::new_from_slice(&key.expose()[..32]).expect("32-byte key");
    let mut block = aes::Block::from(<[u8; 16]>::try_from(ct).expect("16 bytes"));
    cipher.decrypt_block(&mut block);
    let plaintext_bytes: [u8; 16] = block.into();
    let plaintext = EidPlaintext::from_bytes(&plaintext_bytes)?;
    let suffix = (service_data.len() > ADVERT_LEN)
        .then(|| AdvertSuffix::parse(&service_data[ADVERT_LEN..]))
        .flatten();
    Ok(MatchedAdvert {
        plaintext_bytes,
        plaintext,
        suffix,
        trailing_len: service_data.len() - ADVERT_LEN,
    })
}

#[cfg(test)]
mod tests {
    /// The AES key schedule expanded from an EID key is wiped when the cipher drops (the
    /// `aes` crate's `zeroize` feature; without it this does not compile).
    #[test]
    fn the_aes_key_schedule_is_zeroized_on_drop() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<aes::Aes256>();
        wiped_on_drop::<aes::Aes256Enc>();
        wiped_on_drop::<aes::Aes256Dec>();
    }
}
