//! The FIDO hybrid transport (CTAP 2.2 "hybrid", caBLE v2) as pure functions and state
//! machines: no sockets, no clocks, no global randomness. Time and an RNG are passed in by
//! the caller, and bytes go in and out; the IO crates (`bridge`, `phone-sim`,
//! `tunnel-server`) are thin shells around this crate. One module per topic, each citing the
//! section of `docs/PROTOCOL.md` it implements:
//!
//! - [`qr`]: `FIDO:/` codes; [`derive`](mod@derive): HKDF purposes and P-256 keys from seeds;
//! - [`eid`]: BLE adverts; [`tunnel`]: relay domains, IDs and paths; [`contact`]: the
//!   relay's contact channel (wake-ups, registration secrets); [`medium`]: the simulated BLE
//!   medium's line format;
//! - [`handshake`]: Noise KNpsk0/NKpsk0; [`session`]: framing and typed messages;
//! - [`linking`]: linking info and client payloads; [`ctap`]: CTAP2 messages;
//! - [`ctaphid`]: the USB HID transport of a security key, device side;
//! - [`keys`]: secret newtypes; [`cbor`]: canonical CBOR; [`error`]: the error type;
//! - [`text`]: peer-chosen strings made safe to show.
//!
//! A QR-initiated session, both sides in memory:
//!
//! ```
//! use hybrid_protocol::{eid, handshake, keys::*, qr::*, session::Message, tunnel::*};
//! let mut rng = rand_core::OsRng;
//! // Desktop: an identity key and a QR code.
//! let identity = IdentityKey::random(&mut rng);
//! let qr = QrCode::new(identity.public_key(), QrSecret::random(&mut rng)?, 1_700_000_000, false, RequestType::GetAssertion);
//! // Phone: scans it, advertises.
//! let scanned = QrCode::parse(&qr.to_url())?;
//! let plaintext = eid::EidPlaintext::new(RoutingId([1, 2, 3]), Domain(0), &mut rng)?;
//! let advert = eid::encrypt(&scanned.secret.eid_key(), &plaintext);
//! // Desktop: hears the advert, starts the handshake.
//! let matched = eid::decrypt(&qr.secret.eid_key(), &advert)?;
//! let (waiting, msg1) = handshake::Initiator::start_qr(&identity, &matched.psk(qr.secret.expose()), &mut rng)?;
//! // Phone: answers.
//! let psk = plaintext.psk(scanned.secret.expose());
//! let (mut phone, msg2) = handshake::Responder::respond_qr(&scanned.identity_key, &psk, &msg1, &mut rng)?;
//! let mut desktop = waiting.finish(&msg2)?;
//! assert_eq!(desktop.handshake_hash(), phone.handshake_hash());
//! let frame = desktop.encrypt_message(&Message::Shutdown)?;
//! assert_eq!(phone.decrypt_message(&frame)?, Message::Shutdown);
//! # Ok::<(), hybrid_protocol::Error>(())
//! ```

#![warn(missing_docs)]

pub mod cbor;
pub mod contact;
pub mod ctap;
pub mod ctaphid;
pub mod derive;
pub mod eid;
pub mod error;
pub mod handshake;
pub mod keys;
pub mod linking;
pub mod medium;
pub mod qr;
pub mod session;
pub mod text;
pub mod tunnel;

pub use error::Error;
