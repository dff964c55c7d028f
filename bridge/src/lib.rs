//! The desktop side of FIDO cross-device sign-in (CTAP 2.2 "hybrid", caBLE v2).
//!
//! Modules: [`ceremony`] (the orchestrator), [`scanner`] and [`ble`] (hearing the phone),
//! [`net`] (the relay), [`links`] (linked phones), [`render`] (QR output), [`progress`]
//! (events), [`error`].

pub mod ble;
pub mod ceremony;
pub mod cli;
pub mod error;
pub mod links;
pub mod net;
pub mod progress;
pub mod render;
pub mod scanner;
pub mod webauthn;

pub use ceremony::{
    linked_transaction, qr_transaction, BridgeConfig, CtapOutcome, CtapRequest, Timeouts,
};
pub use error::BridgeError;
pub use links::{LinkStore, StoredLink};
pub use net::TunnelConfig;
pub use progress::{Event, Phase, Progress, ProgressStyle, Recorder, Silent, StderrProgress};
pub use scanner::{AdvertFileScanner, HeardAdvert, Scanner, ScriptedScanner};
pub use webauthn::{
    register, sign_in, sign_in_linked, Authentication, AuthenticationOptions,
    AuthenticationResponseJson, Registration, RegistrationOptions, RegistrationResponseJson,
    UserVerification,
};
