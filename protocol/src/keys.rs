//! Secret and key newtypes shared by every module: the QR secret, EID key, PSK, link secret,
//! the phone's root secret, and P-256 identity keys. Secrets zeroize on drop and print
//! `[redacted]` in `Debug` (docs/STYLE.md#secrets); none is ever a bare array in a public
//! signature.

use core::fmt;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Malformed, Misuse};

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Wraps a slice, which must be exactly `LEN` bytes.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| {
                    Malformed::Key(format!(
                        "{} must be {} bytes, got {}",
                        stringify!($name),
                        $len,
                        bytes.len()
                    ))
                })?;
                Ok(Self(arr))
            }

            /// Fresh random bytes from the caller's RNG.
            pub fn random(rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
                let mut b = [0u8; $len];
                rng.try_fill_bytes(&mut b).map_err(|e| Misuse::Rng(e.to_string()))?;
                Ok(Self(b))
            }

            /// The secret bytes. Callers must not log them.
            pub fn expose(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}([redacted])", stringify!($name))
            }
        }
    };
}

secret!(
    /// The 16-byte secret in a QR code (key 1).
    QrSecret, 16
);
secret!(
    /// The 64-byte advert key: AES-256 key ‖ HMAC-SHA256 key (docs/PROTOCOL.md#derive-purposes,
    /// purpose 1).
    EidKey, 64
);
secret!(
    /// The 32-byte Noise PSK (purpose 3).
    Psk, 32
);
secret!(
    /// The 32-byte link ("paired") secret a phone gives a client in linking info.
    LinkSecret, 32
);
secret!(
    /// The phone's 32-byte root secret, from which its identity key and link secrets derive.
    RootSecret, 32
);

/// A P-256 private key: the client's QR identity key or a phone's identity key. `p256`
/// zeroizes it on drop.
#[derive(Clone)]
pub struct IdentityKey(p256::SecretKey);

/// A P-256 public key, convertible to the SEC1 compressed (33-byte) and uncompressed (65-byte)
/// forms the protocol uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(p256::PublicKey);

impl IdentityKey {
    /// A fresh random key from the caller's RNG.
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        Self(p256::SecretKey::random(rng))
    }

    /// Parses a 32-byte big-endian scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        p256::SecretKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| Malformed::Key("not a valid P-256 private key".into()).into())
    }

    /// The 32-byte scalar. Callers must not log it.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes().into())
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key())
    }

    /// The X coordinate of ECDH with `peer`.
    pub fn ecdh(&self, peer: &PublicKey) -> zeroize::Zeroizing<[u8; 32]> {
        let shared = p256::ecdh::diffie_hellman(self.0.to_nonzero_scalar(), peer.0.as_affine());
        zeroize::Zeroizing::new((*shared.raw_secret_bytes()).into())
    }

    pub(crate) fn from_inner(k: p256::SecretKey) -> Self {
        Self(k)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey([redacted], public {:?})", self.public_key())
    }
}

impl PublicKey {
    /// Parses SEC1 bytes, compressed or uncompressed; the point must be on the curve.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        p256::PublicKey::from_sec1_bytes(bytes)
            .map(Self)
            .map_err(|_| {
                Malformed::Key(format!("{} bytes are not a valid P-256 point", bytes.len())).into()
            })
    }

    /// Parses exactly 33 bytes of SEC1 compressed form.
    pub fn from_compressed(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != 33 || !matches!(bytes[0], 2 | 3) {
            return Err(Malformed::Key(format!(
                "expected a 33-byte compressed P-256 point, got {} bytes",
                bytes.len()
            ))
            .into());
        }
        Self::from_sec1(bytes)
    }

    /// Parses exactly 65 bytes of SEC1 uncompressed form.
    pub fn from_uncompressed(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != 65 || bytes[0] != 4 {
            return Err(Malformed::Key(format!(
                "expected a 65-byte uncompressed P-256 point, got {} bytes",
                bytes.len()
            ))
            .into());
        }
        Self::from_sec1(bytes)
    }

    /// SEC1 compressed form (33 bytes), as in QR key 0.
    pub fn to_compressed(&self) -> [u8; 33] {
        self.0
            .to_encoded_point(true)
            .as_bytes()
            .try_into()
            .expect("33 bytes")
    }

    /// SEC1 uncompressed form (65 bytes), as Noise and linking info use.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.0
            .to_encoded_point(false)
            .as_bytes()
            .try_into()
            .expect("65 bytes")
    }

    /// The underlying `p256` key, for signature verification.
    pub fn as_p256(&self) -> &p256::PublicKey {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(&self.to_compressed()[..9]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let s = QrSecret::from_bytes([0x41; 16]);
        let d = format!("{s:?}");
        assert_eq!(d, "QrSecret([redacted])");
        assert!(!format!("{:?}", IdentityKey::from_bytes(&[7; 32]).unwrap()).contains("0707"));
    }

    #[test]
    fn point_forms() {
        let k = IdentityKey::from_bytes(&[7; 32]).unwrap();
        let p = k.public_key();
        assert_eq!(PublicKey::from_compressed(&p.to_compressed()).unwrap(), p);
        assert_eq!(
            PublicKey::from_uncompressed(&p.to_uncompressed()).unwrap(),
            p
        );
        assert!(PublicKey::from_compressed(&p.to_uncompressed()).is_err());
        let mut bad = p.to_compressed();
        bad[0] = 5;
        assert!(PublicKey::from_compressed(&bad).is_err());
    }
}
