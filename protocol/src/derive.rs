//! Key derivation (docs/PROTOCOL.md#derive): `Derive(secret, salt, purpose, len)` over HKDF-SHA256
//! with the purpose as a little-endian u32 `info`, every purpose the protocol uses, and the
//! BoringSSL-compatible P-256 key-from-seed derivation (`EC_KEY_derive_from_secret`).

use hkdf::Hkdf;
use p256::elliptic_curve::ops::Reduce;
use p256::{NonZeroScalar, Scalar, U256};
use sha2::Sha256;

use crate::keys::{EidKey, IdentityKey, LinkSecret, Psk, QrSecret, RootSecret};
use crate::tunnel::TunnelId;

/// The `purpose` argument of `Derive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Purpose {
    /// The 64-byte advert key.
    EidKey = 0x01,
    /// The 16-byte tunnel ID.
    TunnelId = 0x02,
    /// The 32-byte Noise PSK.
    Psk = 0x03,
    /// The link secret handed to a client (phone side).
    PairedSecret = 0x04,
    /// The seed of the phone's identity key (phone side).
    IdentityKeySeed = 0x05,
    /// The per-contact-ID intermediate secret (phone side).
    PerContactIdSecret = 0x06,
}

/// `Derive(secret, salt, purpose, out.len())`. An empty salt is HKDF's all-zero salt.
pub fn derive(secret: &[u8], salt: &[u8], purpose: Purpose, out: &mut [u8]) {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    Hkdf::<Sha256>::new(salt, secret)
        .expand(&(purpose as u32).to_le_bytes(), out)
        .expect("hybrid derivations are at most 64 bytes, well under HKDF's limit");
}

fn derive_array<const N: usize>(secret: &[u8], salt: &[u8], purpose: Purpose) -> [u8; N] {
    let mut out = [0u8; N];
    derive(secret, salt, purpose, &mut out);
    out
}

impl QrSecret {
    /// The advert key of a QR session.
    pub fn eid_key(&self) -> EidKey {
        EidKey::from_bytes(derive_array(self.expose(), &[], Purpose::EidKey))
    }

    /// The tunnel ID of a QR session.
    pub fn tunnel_id(&self) -> TunnelId {
        TunnelId(derive_array(self.expose(), &[], Purpose::TunnelId))
    }
}

impl LinkSecret {
    /// The advert key of a linked session, salted with the client's nonce.
    pub fn eid_key(&self, client_nonce: &[u8; 16]) -> EidKey {
        EidKey::from_bytes(derive_array(self.expose(), client_nonce, Purpose::EidKey))
    }
}

impl Psk {
    /// `Derive(secret, eid_plaintext, 3, 32)`; `secret` is the QR secret or link secret.
    /// Crate-private: a client gets its PSK only from a [`crate::eid::MatchedAdvert`] (an advert
    /// that authenticated), a phone from the [`crate::eid::EidPlaintext`] it advertised.
    pub(crate) fn derive(secret: &[u8], eid_plaintext: &[u8; 16]) -> Self {
        Self::from_bytes(derive_array(secret, eid_plaintext, Purpose::Psk))
    }
}

impl RootSecret {
    /// The phone's long-term identity key: `derive_from_seed(Derive(root, ∅, 5, 32))`.
    pub fn identity_key(&self) -> IdentityKey {
        let seed = zeroize::Zeroizing::new(derive_array::<32>(
            self.expose(),
            &[],
            Purpose::IdentityKeySeed,
        ));
        p256_from_seed(seed.as_ref())
    }

    /// The link secret for `pairing_id` under `contact_id`:
    /// `Derive(Derive(root, contact_id, 6, 32), pairing_id, 4, 32)`.
    pub fn paired_secret(&self, contact_id: &[u8], pairing_id: &[u8]) -> LinkSecret {
        let per_contact = zeroize::Zeroizing::new(derive_array::<32>(
            self.expose(),
            contact_id,
            Purpose::PerContactIdSecret,
        ));
        LinkSecret::from_bytes(derive_array(
            per_contact.as_ref(),
            pairing_id,
            Purpose::PairedSecret,
        ))
    }
}

/// BoringSSL's `EC_KEY_derive_from_secret` for P-256: 48 bytes of HKDF-SHA256 (no salt,
/// info "derive EC key P-256") read big-endian and reduced mod n.
pub fn p256_from_seed(seed: &[u8]) -> IdentityKey {
    let mut okm = zeroize::Zeroizing::new([0u8; 48]);
    Hkdf::<Sha256>::new(None, seed)
        .expand(b"derive EC key P-256", okm.as_mut())
        .expect("48 bytes is within HKDF's limit");
    // v = hi * 2^128 + lo, with hi the first 32 bytes and lo the last 16 bytes.
    let hi = <Scalar as Reduce<U256>>::reduce_bytes(okm[..32].into());
    let mut lo_bytes = [0u8; 32];
    lo_bytes[16..].copy_from_slice(&okm[32..]);
    let lo = <Scalar as Reduce<U256>>::reduce_bytes(&lo_bytes.into());
    let mut two128 = [0u8; 32];
    two128[15] = 1;
    let shift = <Scalar as Reduce<U256>>::reduce_bytes(&two128.into());
    let scalar = hi * shift + lo;
    let nz = Option::<NonZeroScalar>::from(NonZeroScalar::new(scalar))
        .expect("HKDF output reducing to zero mod n has negligible probability");
    IdentityKey::from_inner(p256::SecretKey::from(nz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boringssl_seed_vectors() {
        let k = p256_from_seed(b"");
        assert_eq!(
            hex::encode(*k.to_bytes()),
            "b98a86a71efb51ebdac4759937b977e9b0c05224675bb2b6a58ba306e237f4b8"
        );
    }
}
