//! What a ceremony shows on the terminal: the QR code (drawn on stderr, and written to the
//! `--qr-file`/`--qr-png`/`--qr-svg` files) when the ceremony reports it, the progress lines
//! or JSON events ([`bridge::StderrProgress`]), and after linking the command that signs in
//! without a QR code next time. [`PhaseTracker`] remembers the last phase entered, for the
//! error report.

use std::io::Write as _;
use std::time::Duration;

use bridge::{render, BridgeError, Event, Phase, Progress, ProgressStyle, StderrProgress};

use crate::flags::ConnectArgs;

/// Shows the QR code (terminal, files) when the ceremony reports it, remembers the phase for
/// an error report, then forwards events.
pub(crate) struct CliProgress<'a> {
    pub(crate) inner: StderrProgress,
    pub(crate) style: ProgressStyle,
    pub(crate) color: bool,
    pub(crate) conn: &'a ConnectArgs,
    /// The RP ID, for the "next time" hint after linking.
    pub(crate) rp_id: &'a str,
    pub(crate) phase: &'a PhaseTracker,
}

/// The last phase a ceremony entered (for `--events json` error events).
#[derive(Debug, Default)]
pub(crate) struct PhaseTracker(std::sync::Mutex<Option<Phase>>);

impl PhaseTracker {
    fn set(&self, phase: Phase) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(phase);
    }

    /// The last phase entered, if a ceremony started.
    pub(crate) fn get(&self) -> Option<Phase> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for CliProgress<'_> {
    fn on_event(&self, event: &Event, elapsed: Duration) {
        match event {
            Event::QrCode { url } => {
                if let Err(e) = self.show_qr(url) {
                    self.warn(&e.to_string());
                }
            }
            Event::Phase { phase } => self.phase.set(*phase),
            _ => {}
        }
        self.inner.on_event(event, elapsed);
        if let (Event::Linked { name }, ProgressStyle::Text) = (event, self.style) {
            eprintln!("next time, no QR code: {}", self.next_time(name));
        }
    }
}

impl CliProgress<'_> {
    fn warn(&self, message: &str) {
        match self.style {
            ProgressStyle::Json => {
                eprintln!(
                    "{}",
                    serde_json::json!({"event": "warning", "message": message})
                )
            }
            _ => eprintln!("warning: {message}"),
        }
    }

    /// The command that signs in with the phone just linked, with the flags this run used
    /// to reach it.
    fn next_time(&self, name: &str) -> String {
        let quote = |s: &str| {
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
            {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        };
        let mut cmd = format!(
            "hybrid-bridge sign-in --rp-id {} --phone {}",
            quote(self.rp_id),
            quote(name)
        );
        let c = self.conn;
        if let Some(t) = &c.relay.tunnel_override {
            cmd += &format!(" --tunnel-override {}", quote(t));
        }
        if let Some(f) = &c.advert_file {
            cmd += &format!(" --advert-file {}", quote(&f.display().to_string()));
        }
        if let Some(f) = &c.relay.extra_ca {
            cmd += &format!(" --extra-ca {}", quote(&f.display().to_string()));
        }
        cmd
    }

    fn show_qr(&self, url: &str) -> Result<(), BridgeError> {
        let c = self.conn;
        if let Some(p) = &c.qr_file {
            // Whole or not at all, and 0600: the URL holds the QR secret.
            fsutil::write_atomic(p, format!("{url}\n").as_bytes())
                .map_err(|e| BridgeError::file("writing the QR URL", p, e))?;
        }
        if let Some(p) = &c.qr_png {
            render::write_png(url, p, 8)?;
        }
        if let Some(p) = &c.qr_svg {
            render::write_svg(url, p)?;
        }
        // -q hides progress, not the QR code; JSON mode has the URL in its qr_code event.
        if self.style != ProgressStyle::Json && !c.no_qr {
            let drawn = if self.color {
                render::terminal(url)?
            } else {
                render::terminal_plain(url)?
            };
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{drawn}");
            let _ = writeln!(err, "{url}");
        }
        Ok(())
    }
}
