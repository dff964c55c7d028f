//! The Noise handshakes (docs/PROTOCOL.md#handshake): `Noise_KNpsk0_P256_AESGCM_SHA256` with
//! prologue `0x01` for QR-initiated sessions and `Noise_NKpsk0_P256_AESGCM_SHA256` with prologue
//! `0x00` for linked ones, over `snow`. The client is always the initiator. Each state is a type
//! and each step consumes it:
//!
//! ```text
//! client (initiator)                                  phone (responder)
//! Initiator::start_qr / start_linked ── msg1 (81) ──▶ Responder::respond_qr / respond_linked
//! AwaitingResponse::finish ◀──────────── msg2 (81) ── ──▶ Session (authenticator)
//!   └──▶ Session (client)
//! ```
//!
//! The ephemeral key is drawn from the caller's RNG before snow runs (snow's own RNG is never
//! used), both payloads must be empty, and message 2 must be exactly 81 bytes.

use std::sync::Mutex;

use rand_core::CryptoRngCore;
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroizing;

use crate::error::{Error, Malformed, Misuse, PeerMisbehaved};
use crate::keys::{IdentityKey, Psk, PublicKey};
use crate::session::{Role, Session};

/// Length of both handshake messages: a 65-byte point and a 16-byte tag.
pub const MESSAGE_LEN: usize = 81;

const KN: &str = "Noise_KNpsk0_P256_AESGCM_SHA256";
const NK: &str = "Noise_NKpsk0_P256_AESGCM_SHA256";
const PROLOGUE_QR: [u8; 1] = [0x01];
const PROLOGUE_LINKED: [u8; 1] = [0x00];

/// Which handshake a session came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// QR-initiated: KNpsk0, prologue 0x01.
    Qr,
    /// State-assisted (linked): NKpsk0, prologue 0x00.
    Linked,
}

/// The client's first step.
pub struct Initiator;

/// The client after sending message 1, waiting for message 2.
pub struct AwaitingResponse {
    state: snow::HandshakeState,
}

/// The phone's only step.
pub struct Responder;

impl Initiator {
    /// QR flow: the client's QR identity key is the initiator's static key.
    pub fn start_qr(
        identity: &IdentityKey,
        psk: &Psk,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(AwaitingResponse, [u8; MESSAGE_LEN]), Error> {
        let private = identity.to_bytes();
        let builder = builder(KN, &PROLOGUE_QR, psk, rng)?.local_private_key(private.as_ref());
        Self::start(builder.map_err(snow_misuse))
    }

    /// Linked flow: the phone's identity key (from linking info) is the responder's static key.
    pub fn start_linked(
        phone_identity: &PublicKey,
        psk: &Psk,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(AwaitingResponse, [u8; MESSAGE_LEN]), Error> {
        let public = phone_identity.to_uncompressed();
        let builder = builder(NK, &PROLOGUE_LINKED, psk, rng)?.remote_public_key(&public);
        Self::start(builder.map_err(snow_misuse))
    }

    fn start(
        builder: Result<snow::Builder<'_>, Error>,
    ) -> Result<(AwaitingResponse, [u8; MESSAGE_LEN]), Error> {
        let mut state = builder?.build_initiator().map_err(snow_misuse)?;
        let mut msg = [0u8; MESSAGE_LEN];
        let n = state
            .write_message(&[], &mut msg)
            .map_err(|e| Misuse::Other(format!("writing Noise message 1: {e}")))?;
        debug_assert_eq!(n, MESSAGE_LEN);
        Ok((AwaitingResponse { state }, msg))
    }
}

impl AwaitingResponse {
    /// Processes message 2 and returns the client's session.
    pub fn finish(mut self, msg2: &[u8]) -> Result<Session, Error> {
        if msg2.len() != MESSAGE_LEN {
            return Err(Malformed::HandshakeLength {
                expected: MESSAGE_LEN,
                got: msg2.len(),
            }
            .into());
        }
        read_empty(&mut self.state, msg2)?;
        into_session(self.state, Role::Client)
    }
}

impl Responder {
    /// QR flow: the phone knows the client's identity key from the QR code.
    pub fn respond_qr(
        client_identity: &PublicKey,
        psk: &Psk,
        msg1: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Session, [u8; MESSAGE_LEN]), Error> {
        let public = client_identity.to_uncompressed();
        let builder = builder(KN, &PROLOGUE_QR, psk, rng)?.remote_public_key(&public);
        Self::respond(builder.map_err(snow_misuse), msg1)
    }

    /// Linked flow: the phone's identity key is the responder's static key.
    pub fn respond_linked(
        identity: &IdentityKey,
        psk: &Psk,
        msg1: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Session, [u8; MESSAGE_LEN]), Error> {
        let private = identity.to_bytes();
        let builder = builder(NK, &PROLOGUE_LINKED, psk, rng)?.local_private_key(private.as_ref());
        Self::respond(builder.map_err(snow_misuse), msg1)
    }

    fn respond(
        builder: Result<snow::Builder<'_>, Error>,
        msg1: &[u8],
    ) -> Result<(Session, [u8; MESSAGE_LEN]), Error> {
        if msg1.len() != MESSAGE_LEN {
            return Err(Malformed::HandshakeLength {
                expected: MESSAGE_LEN,
                got: msg1.len(),
            }
            .into());
        }
        let mut state = builder?.build_responder().map_err(snow_misuse)?;
        read_empty(&mut state, msg1)?;
        let mut msg2 = [0u8; MESSAGE_LEN];
        let n = state
            .write_message(&[], &mut msg2)
            .map_err(|e| Misuse::Other(format!("writing Noise message 2: {e}")))?;
        debug_assert_eq!(n, MESSAGE_LEN);
        Ok((into_session(state, Role::Authenticator)?, msg2))
    }
}

fn read_empty(state: &mut snow::HandshakeState, msg: &[u8]) -> Result<(), Error> {
    // The point must be valid before snow runs DH on it (snow maps both failures to one error).
    if PublicKey::from_uncompressed(&msg[..65]).is_err() {
        return Err(PeerMisbehaved::HandshakeInvalidPoint.into());
    }
    let mut payload = [0u8; MESSAGE_LEN];
    let n = state
        .read_message(msg, &mut payload)
        .map_err(|_| PeerMisbehaved::HandshakeAuthentication)?;
    if n != 0 {
        return Err(PeerMisbehaved::HandshakePayload(n).into());
    }
    Ok(())
}

fn into_session(mut state: snow::HandshakeState, role: Role) -> Result<Session, Error> {
    let hash: [u8; 32] = state
        .get_handshake_hash()
        .try_into()
        .map_err(|_| Misuse::Other("SHA-256 handshake hash is not 32 bytes".into()))?;
    let (k1, k2) = state.dangerously_get_raw_split();
    let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
    // Client writes with k1 and reads with k2; the phone the other way round.
    let (write, read) = match role {
        Role::Client => (k1, k2),
        Role::Authenticator => (k2, k1),
    };
    Ok(Session::new(role, &write, &read, hash))
}

fn builder<'a>(
    pattern: &str,
    prologue: &'a [u8],
    psk: &'a Psk,
    rng: &mut impl CryptoRngCore,
) -> Result<snow::Builder<'a>, Error> {
    let params: NoiseParams = pattern
        .parse()
        .map_err(|e| Misuse::Other(format!("Noise pattern {pattern}: {e}")))?;
    // Draw the ephemeral here, as a valid P-256 scalar, so snow never needs an RNG of its own.
    let ephemeral = IdentityKey::random(rng);
    let resolver = EphemeralResolver {
        ephemeral: Mutex::new(Some(ephemeral.to_bytes())),
    };
    snow::Builder::with_resolver(params, Box::new(resolver))
        .prologue(prologue)
        .and_then(|b| b.psk(0, psk.expose()))
        .map_err(snow_misuse)
}

fn snow_misuse(e: snow::Error) -> Error {
    Misuse::Other(format!("Noise: {e}")).into()
}

/// Resolves snow's primitives to its defaults, except the RNG, which hands out one
/// pre-drawn ephemeral private key and then fails.
struct EphemeralResolver {
    ephemeral: Mutex<Option<Zeroizing<[u8; 32]>>>,
}

struct OneKey(Option<Zeroizing<[u8; 32]>>);

impl Random for OneKey {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        match self.0.take() {
            Some(k) if dest.len() == 32 => {
                dest.copy_from_slice(k.as_ref());
                Ok(())
            }
            _ => Err(snow::Error::Rng),
        }
    }
}

impl CryptoResolver for EphemeralResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let key = self.ephemeral.lock().ok()?.take();
        Some(Box::new(OneKey(key)))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}
