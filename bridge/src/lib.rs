//! The desktop side of FIDO cross-device sign-in (CTAP 2.2 "hybrid", caBLE v2): show a QR
//! code, hear the phone's BLE advert, connect through a tunnel relay, run the Noise KNpsk0
//! handshake and exactly one CTAP2 command, and turn the reply into W3C WebAuthn JSON. All wire
//! logic lives in `hybrid_protocol`; this crate is the IO around it (docs/PROTOCOL.md).
//!
//! # Driving a ceremony (the demo, end-to-end tests)
//!
//! ```no_run
//! # async fn demo() -> Result<(), bridge::BridgeError> {
//! use bridge::*;
//! let config = BridgeConfig {
//!     tunnel: TunnelConfig { tunnel_override: Some("ws://127.0.0.1:8080".into()), ..Default::default() },
//!     links: Some(LinkStore::new("/tmp/links.json")), // None: don't offer linking
//!     ..Default::default()
//! };
//! // One scanner for the whole run: it follows the shared advert file from its current end.
//! let mut scanner = AdvertFileScanner::new("/tmp/adverts")?;
//! // Progress: any `Fn(&Event, Duration)`; `Event::QrCode { url }` comes first, hand the URL
//! // to the phone. `Recorder` keeps every event; `StderrProgress` prints them.
//! let progress = |e: &Event, _elapsed: std::time::Duration| {
//!     if let Event::QrCode { url } = e { println!("scan {url}") }
//! };
//! let reg = RegistrationOptions::from_json(r#"{"rp":{"id":"example.com","name":"Ex"},
//!     "user":{"id":"dXNlcg","name":"alice"},"challenge":"AAECAwQFBgcICQoLDA0ODw"}"#, None)?;
//! let registered = register(&reg, &config, &mut scanner, &progress).await?;
//! println!("{}", serde_json::to_string(&registered.json).unwrap()); // RegistrationResponseJSON
//! let get = AuthenticationOptions::from_json(
//!     r#"{"rpId":"example.com","challenge":"AAECAwQFBgcICQoLDA0ODw"}"#, None)?;
//! let signed = sign_in(&get, &config, &mut scanner, &progress).await?;
//! // A phone that sent verified linking info during a QR ceremony can be used without a QR:
//! if let Some(name) = &signed.outcome.linked {
//!     let again = sign_in_linked(name, &get, &config, &mut scanner, &progress).await?;
//!     let _ = again.json; // AuthenticationResponseJSON
//! }
//! # Ok(()) }
//! ```
//!
//! Lower level: [`qr_transaction`] / [`linked_transaction`] send any [`CtapRequest`] and return
//! the raw reply in a [`CtapOutcome`] (with getInfo, revision, stored link name and per-phase
//! durations). Errors are [`BridgeError`], each with [`BridgeError::exit_code`].
//!
//! # Layout
//! - [`ceremony`]: the orchestrator and its [`Phase`]s and [`Timeouts`]; `talk`: the session
//!   after the handshake (request, reply, shutdown, linger) as a pure state machine.
//! - [`webauthn`]: options JSON in, `clientDataJSON`, RP ID check, response JSON out.
//! - [`scanner`]: the [`Scanner`] trait, the advert-file medium; [`ble`]: btleplug/BlueZ.
//! - the relay connection is the `tunnel-client` crate ([`TunnelConfig`], [`RelayError`]).
//!   [`links`]: the linked-phone store.
//! - [`render`]: terminal, PNG and SVG QR codes, and the HTML page reports share.
//!   [`progress`]: events and their sinks.
//! - [`native_host`]: the browser extension's native messaging host — its wire codec, the
//!   request loop over any pair of pipes ([`native_host::serve`]) and one ceremony per request.
//! - [`key`]: the phone as a USB security key: a `/dev/uhid` HID device speaking CTAPHID
//!   to every FIDO program, each request it cannot answer itself sent to the phone through
//!   the same ceremony code, behind the [`key::KeyUi`] and [`key::HidDevice`] seams.
//! - [`error`]: the error type; [`units`], [`sanitize`]: durations and peer text in messages.
//!   A linked sign-in tries a busy relay again with `tunnel_client::Backoff`.
//!
//! The `hybrid-bridge` command line (its flags, one module per command, `doctor`, the scan
//! report, the browser installer) is the binary's own, in `src/bin/hybrid-bridge/`: this
//! library has no command line, flags or subcommands of its own.

pub mod ble;
pub mod ceremony;
pub mod error;
pub mod key;
pub mod links;
pub mod native_host;
pub mod progress;
pub mod render;
pub mod sanitize;
pub mod scanner;
mod talk;
pub mod units;
pub mod webauthn;

pub use ceremony::{
    linked_transaction, qr_transaction, BridgeConfig, ChannelChoice, CtapOutcome, CtapRequest,
    Timeouts,
};
pub use error::BridgeError;
pub use links::{LinkStore, StoredLink};
pub use progress::{Event, Phase, Progress, ProgressStyle, Recorder, Silent, StderrProgress};
pub use scanner::{AdvertFileScanner, HeardAdvert, Scanner, ScriptedScanner};
pub use tunnel_client::{RelayError, TunnelConfig};
pub use webauthn::{
    register, sign_in, sign_in_linked, Authentication, AuthenticationOptions,
    AuthenticationResponseJson, Registration, RegistrationOptions, RegistrationResponseJson,
    UserVerification,
};
