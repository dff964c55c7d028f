//! `phone-sim`: the phone side of FIDO cross-device sign-in (CTAP 2.2 hybrid, caBLE v2,
//! docs/PROTOCOL.md). It scans a desktop's QR code, opens the tunnel on a relay,
//! advertises its EID on a simulated BLE medium (an advert file), answers the Noise handshake
//! and serves one CTAP2 command as a software authenticator with a JSON credential store.
//! Linked phones hold a registration on the relay's contact channel and serve state-assisted
//! sessions when woken.
//!
//! # Using it from a program
//!
//! ```no_run
//! # async fn demo() -> Result<(), phone_sim::PhoneError> {
//! use phone_sim::{AdvertFile, MediumKnobs, Phone, PhoneConfig};
//! let config = PhoneConfig {
//!     tunnel: Some("ws://127.0.0.1:8080".into()), // a local relay
//!     ..PhoneConfig::default()
//! };
//! let mut phone = Phone::open("/tmp/phone.json", config)?;
//! let mut medium = AdvertFile::new("/tmp/adverts", MediumKnobs::default())?;
//! let qr = phone_sim::qr_from_text("FIDO:/1234...")?;
//! let outcome = phone.serve_qr(&qr, &mut medium).await?;
//! println!("{:?}", outcome.operation);
//! // Later: serve one wake-up from a desktop that kept the link.
//! let results = phone.serve_linked(&mut medium, Some(1)).await?;
//! # let _ = results; Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`](PhoneConfig): how the phone behaves.
//! - [`phone`](Phone): the phone: its relay, the QR flow, the contact-channel client, and the
//!   IO shell that runs a session over a data channel.
//! - `session`: one session as a pure state machine ([`Operation`], [`Outcome`]).
//! - `authenticator`: getInfo, makeCredential, getAssertion ([`Approve`], [`Attestation`]).
//! - [`store`]: the atomic JSON credential store.
//! - [`medium`]: the [`Advertiser`] trait, the [`AdvertFile`] medium and [`AdvertFault`]s.
//! - `BluezAdvertiser` (cargo feature `bluez`): advertising through BlueZ over D-Bus.
//! - `scan`: QR codes from text, files and PNG images. The `phone-sim` command line is the
//!   binary's (`src/bin/phone-sim/`), over this library's public API.

mod authenticator;
#[cfg(feature = "bluez")]
mod bluez;
mod config;
mod error;
pub mod medium;
mod phone;
mod scan;
mod session;
pub mod store;
mod terminal;

pub use authenticator::{
    get_info, Approve, Attestation, AttestationCa, CredentialKind, AAGUID, UNKNOWN_FORMAT,
};
#[cfg(feature = "bluez")]
pub use bluez::BluezAdvertiser;
pub use config::PhoneConfig;
pub use error::PhoneError;
pub use medium::{
    build_advert, AdvertFault, AdvertFile, Advertiser, MediumKnobs, RecordingAdvertiser,
};
pub use phone::Phone;
pub use scan::{decode_png_qr, qr_from_file, qr_from_image, qr_from_text};
pub use session::{Operation, Outcome};
pub use store::{Store, StoredCredential, StoredLink};
