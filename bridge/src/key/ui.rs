//! What the person sees while the key works: the [`KeyUi`] seam, and [`TerminalUi`], its
//! implementation for a terminal (`--no-window`: ssh sessions, servers, the journal of a
//! service). A desktop window implements the same trait.
//!
//! The key calls [`KeyUi::choose`] when a request needs the phone (the person picks the QR code,
//! a linked phone, or cancels; the platform sees keepalives meanwhile), then reports the
//! ceremony through [`KeyUi::show`]: the QR code, each stage, a linked phone being asked, and
//! the outcome or an error in words.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use hybrid_protocol::ctap::Command;

use super::device::BoxFuture;
use crate::progress::Phase;
use crate::render;
use crate::units::format_secs;

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
}

/// The terminal: the suggested choice is taken at once (nobody may be watching), the QR code
/// is drawn with half blocks, and stages are lines with the time since the request arrived.
#[derive(Debug)]
pub struct TerminalUi {
    /// ANSI colours for the QR code.
    color: bool,
    /// Print the QR code's drawing (the URL is always printed).
    draw_qr: bool,
    started: Mutex<Option<Instant>>,
}

impl TerminalUi {
    /// A terminal UI; `color` for the QR code's colours, `draw_qr` to draw it.
    pub fn new(color: bool, draw_qr: bool) -> Self {
        Self {
            color,
            draw_qr,
            started: Mutex::new(None),
        }
    }

    fn line(&self, text: &str) {
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{elapsed:>7.3} s] {text}");
    }
}

impl KeyUi for TerminalUi {
    fn choose<'a>(&'a self, request: &'a UiRequest) -> BoxFuture<'a, Choice> {
        Box::pin(async move {
            // The system clock is the person's: this is an IO shell, not the protocol crate.
            *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            let how = match &request.suggested {
                Choice::Qr => "scan the QR code below with the phone".to_string(),
                Choice::Phone(name) => format!(
                    "asking the linked phone {:?}",
                    crate::sanitize::for_terminal(name)
                ),
                Choice::Cancel => "cancelled".into(),
            };
            self.line(&format!("a program asks to {}: {how}", request.describe()));
            request.suggested.clone()
        })
    }

    fn show(&self, update: UiUpdate) {
        match update {
            UiUpdate::QrCode { url } => {
                let drawn = if !self.draw_qr {
                    Ok(String::new())
                } else if self.color {
                    render::terminal(&url)
                } else {
                    render::terminal_plain(&url)
                };
                let mut err = std::io::stderr().lock();
                match drawn {
                    Ok(d) => {
                        let _ = write!(err, "{d}");
                    }
                    Err(e) => {
                        let _ = writeln!(err, "warning: {e}");
                    }
                }
                let _ = writeln!(err, "{url}");
            }
            UiUpdate::Stage(Phase::Done) => {}
            UiUpdate::Stage(phase) => self.line(phase.describe()),
            UiUpdate::AskingPhone { name } => self.line(&format!(
                "a notification is on its way to {:?}; confirm there",
                crate::sanitize::for_terminal(&name)
            )),
            UiUpdate::Linked { name } => self.line(&format!(
                "linked the phone {:?}: next time run the key with --phone {:?}, no QR code",
                crate::sanitize::for_terminal(&name),
                crate::sanitize::for_terminal(&name)
            )),
            UiUpdate::Done => {
                let took = self
                    .started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .map(|s| format_secs(s.elapsed()))
                    .unwrap_or_default();
                self.line(&format!(
                    "done in {took}; the program has the phone's answer"
                ));
            }
            UiUpdate::Failed { message } => self.line(&format!(
                "failed: {}",
                crate::sanitize::for_terminal(&message)
            )),
            UiUpdate::Cancelled => self.line("the program cancelled the request"),
            UiUpdate::Wink => self.line("a program asked this key to show itself (wink)"),
        }
    }
}
