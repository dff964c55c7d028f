//! What the person sees while the key works: the [`KeyUi`] seam. The `hybrid-bridge` binary
//! implements it for a terminal (`--no-window`: ssh sessions, servers, the journal of a
//! service); a desktop window implements the same trait.
//!
//! The key calls [`KeyUi::choose`] when a request needs the phone (the person picks the QR code,
//! a linked phone, or cancels; the platform sees keepalives meanwhile), then reports the
//! ceremony through [`KeyUi::show`]: the QR code, each stage, a linked phone being asked, and
//! the outcome or an error in words. [`KeyUi::cancelled`] lets the person stop a running
//! ceremony from a window.

use hybrid_protocol::ctap::Command;

use super::device::BoxFuture;
use crate::progress::Phase;

/// A request that needs the phone, as the person should see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UiRequest {
    /// Register (makeCredential) or sign in (getAssertion).
    pub command: Command,
    /// Who asks, when the request names it (the RP ID: `example.com`, `ssh:`).
    pub rp_id: Option<String>,
    /// The linked phones, by name.
    pub phones: Vec<String>,
    /// What the key would pick by itself: `--phone`, the settings' phone, else the QR code.
    pub suggested: Choice,
}

impl UiRequest {
    /// "register on example.com" / "sign in to example.com" / "sign in".
    pub fn describe(&self) -> String {
        let shown = self.rp_id.as_deref().map(crate::sanitize::for_terminal);
        match (self.command, shown) {
            (Command::MakeCredential, Some(rp)) => format!("create a passkey for {rp}"),
            (Command::MakeCredential, None) => "create a passkey".into(),
            (_, Some(rp)) => format!("sign in to {rp}"),
            (_, None) => "sign in".into(),
        }
    }
}

/// How to reach the phone for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Show a QR code for the phone's camera.
    Qr,
    /// Wake this linked phone (no QR code).
    Phone(String),
    /// Don't: the platform gets `CTAP2_ERR_OPERATION_DENIED`.
    Cancel,
}

/// Something for the person to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UiUpdate {
    /// The `FIDO:/` URL to show as a QR code.
    QrCode {
        /// The URL.
        url: String,
    },
    /// The ceremony entered a stage.
    Stage(Phase),
    /// A linked phone is being woken through the relay.
    AskingPhone {
        /// Its name.
        name: String,
    },
    /// A QR ceremony linked the phone: next time it can be asked directly.
    Linked {
        /// Its name.
        name: String,
    },
    /// The phone answered; the platform has the result.
    Done,
    /// The request failed; the message says what happened and what to do.
    Failed {
        /// In words.
        message: String,
    },
    /// The platform cancelled the request (or went away).
    Cancelled,
    /// A program asked the key to identify itself (`WINK`).
    Wink,
}

/// The seam between the key and what the person sees.
pub trait KeyUi: Send + Sync {
    /// Resolves how to reach the phone for `request`. Dropped unfinished if the platform
    /// cancels meanwhile.
    fn choose<'a>(&'a self, request: &'a UiRequest) -> BoxFuture<'a, Choice>;
    /// Shows an update. Must not block: it runs on the key's event loop.
    fn show(&self, update: UiUpdate);
    /// Resolves when the person cancels while the ceremony runs (a window's Cancel button, or
    /// the window closing). A UI without such a control never resolves.
    fn cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
}

/// A boxed UI is a UI: the binary picks the window or the terminal when the key starts.
impl<T: KeyUi + ?Sized> KeyUi for Box<T> {
    fn choose<'a>(&'a self, request: &'a UiRequest) -> BoxFuture<'a, Choice> {
        (**self).choose(request)
    }

    fn show(&self, update: UiUpdate) {
        (**self).show(update);
    }

    fn cancelled(&self) -> BoxFuture<'_, ()> {
        (**self).cancelled()
    }
}
