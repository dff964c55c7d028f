//! The key's terminal UI (`--no-window`): ssh sessions, servers, the journal of a service.
//! The suggested choice is taken at once (nobody may be watching), the QR code is drawn with
//! half blocks, and stages are lines with the time since the request arrived.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use bridge::key::device::BoxFuture;
use bridge::key::{Choice, KeyUi, UiRequest, UiUpdate};
use bridge::progress::Phase;
use bridge::render;
use bridge::units::format_secs;

/// The terminal: the suggested choice is taken at once (nobody may be watching), the QR code
/// is drawn with half blocks, and stages are lines with the time since the request arrived.
#[derive(Debug)]
pub(crate) struct TerminalUi {
    /// ANSI colours for the QR code.
    color: bool,
    /// Print the QR code's drawing (the URL is always printed).
    draw_qr: bool,
    started: Mutex<Option<Instant>>,
}

impl TerminalUi {
    /// A terminal UI; `color` for the QR code's colours, `draw_qr` to draw it.
    pub(crate) fn new(color: bool, draw_qr: bool) -> Self {
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
                    bridge::sanitize::for_terminal(name)
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
                bridge::sanitize::for_terminal(&name)
            )),
            UiUpdate::Linked { name } => self.line(&format!(
                "linked the phone {:?}: next time run the key with --phone {:?}, no QR code",
                bridge::sanitize::for_terminal(&name),
                bridge::sanitize::for_terminal(&name)
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
                bridge::sanitize::for_terminal(&message)
            )),
            UiUpdate::Cancelled => self.line("the program cancelled the request"),
            UiUpdate::Wink => self.line("a program asked this key to show itself (wink)"),
        }
    }
}
