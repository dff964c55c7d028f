//! The key's desktop window: [`WindowUi`] implements [`KeyUi`] by starting a separate window
//! program for each request that needs the phone and speaking JSON lines with it (protocol
//! version [`PROTOCOL_VERSION`], below). The program shipped is `bridge/dist/hybrid-bridge-window`,
//! GTK 4 through PyGObject.
//!
//! Why a separate process and not gtk4-rs in this crate: GTK in the Rust workspace is some
//! 40 crates and minutes added to every clippy and test build on a 2-core machine, for a
//! window most runs of the key never open (ssh, servers, tests); a crash in the window cannot
//! take the key down, whose USB device every FIDO program on the machine is talking to; and a
//! key running as a systemd user service needs no display connection of its own, only the
//! window it starts for a request does. The price is a Python interpreter and GTK's startup
//! (about 0.6 s on a busy 2-core machine) between the request and the window, which the
//! platform spends receiving keepalives.
//!
//! # Protocol, version 1
//! One JSON object per line, each with a `"type"`. The key writes to the window's stdin:
//!
//! | type | fields | meaning |
//! |---|---|---|
//! | `request` | `version` (1), `action` (`register` or `sign-in`), `title` (in words), `rp_id` (or null), `phones` (names), `suggested` (a choice) | always the first line: show who asks and the choices |
//! | `qr` | `url` (`FIDO:/…`), `png` (base64) | show this QR code |
//! | `stage` | `stage` (`showing-qr`, `awaiting-advert`, `contacting-phone`, `connecting`, `handshaking`, `awaiting-user`), `text` | the ceremony entered a stage |
//! | `asking-phone` | `name` | a linked phone is being asked: "check your phone" |
//! | `linked` | `name` | the QR ceremony linked this phone |
//! | `done` | | success: the window closes by itself |
//! | `failed` | `message` | an error that says what to do: the window keeps it until closed |
//! | `cancelled` | | the program cancelled the request |
//!
//! The window writes to its stdout:
//!
//! | type | fields | meaning |
//! |---|---|---|
//! | `ready` | `version` (1), `accessible` (`role` and `name` of each control) | the window is shown |
//! | `choice` | `choice` (`qr`, `phone` with `name`, or `cancel`) | the person chose; `cancel` may also come later, while the ceremony runs |
//!
//! A choice is written as `{"choice":"phone","name":"Pixel 8"}` both in `suggested` and in
//! the window's answer. Closing the key's end of stdin tells the window to close.
//!
//! Whatever the window does cannot panic or hang the key: a line that is not this protocol,
//! a line over [`MAX_LINE`] bytes, or the window exiting before it chose is a cancel, with a
//! message on the key's log saying what happened.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hybrid_protocol::ctap::Command;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;

use super::device::BoxFuture;
use super::ui::{Choice, KeyUi, UiRequest, UiUpdate};
use crate::progress::Phase;

/// The protocol version this key speaks; the window refuses any other.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line the key reads from the window, in bytes: a window sends short lines.
pub const MAX_LINE: usize = 16 * 1024;

/// The window program's file name, looked for beside `hybrid-bridge` and on `PATH`.
pub const PROGRAM_NAME: &str = "hybrid-bridge-window";

/// Pixels per QR module in the PNG sent to the window.
const QR_SCALE: u32 = 6;

/// How long `--check` may take before the window counts as unusable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// A choice as the protocol writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "choice", rename_all = "kebab-case")]
pub enum ChoiceMessage {
    /// The QR code.
    Qr,
    /// A linked phone.
    Phone {
        /// Its name.
        name: String,
    },
    /// Cancel.
    Cancel,
}

impl From<&Choice> for ChoiceMessage {
    fn from(c: &Choice) -> Self {
        match c {
            Choice::Qr => Self::Qr,
            Choice::Phone(name) => Self::Phone { name: name.clone() },
            Choice::Cancel => Self::Cancel,
        }
    }
}

impl From<ChoiceMessage> for Choice {
    fn from(c: ChoiceMessage) -> Self {
        match c {
            ChoiceMessage::Qr => Self::Qr,
            ChoiceMessage::Phone { name } => Self::Phone(name),
            ChoiceMessage::Cancel => Self::Cancel,
        }
    }
}

/// A line from the key to the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ToWindow {
    /// The first line: who asks and the choices.
    Request {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// `register` or `sign-in`.
        action: &'static str,
        /// In words: "sign in to example.com".
        title: String,
        /// Who asks, when known.
        rp_id: Option<String>,
        /// The linked phones, by name.
        phones: Vec<String>,
        /// What the key would pick: focused first.
        suggested: ChoiceMessage,
    },
    /// A QR code to show.
    Qr {
        /// The `FIDO:/` URL.
        url: String,
        /// The QR code as a PNG, base64.
        png: String,
    },
    /// A stage of the ceremony.
    Stage {
        /// Its name.
        stage: &'static str,
        /// In words.
        text: &'static str,
    },
    /// A linked phone is being asked.
    AskingPhone {
        /// Its name.
        name: String,
    },
    /// The QR ceremony linked a phone.
    Linked {
        /// Its name.
        name: String,
    },
    /// Success.
    Done,
    /// An error, in words that say what to do.
    Failed {
        /// The message.
        message: String,
    },
    /// The program cancelled.
    Cancelled,
}

impl ToWindow {
    /// The line for a [`UiRequest`].
    pub fn request(r: &UiRequest) -> Self {
        Self::Request {
            version: PROTOCOL_VERSION,
            action: match r.command {
                Command::MakeCredential => "register",
                _ => "sign-in",
            },
            title: r.describe(),
            rp_id: r.rp_id.clone(),
            phones: r.phones.clone(),
            suggested: (&r.suggested).into(),
        }
    }

    /// The line for an update, if the window shows it (`None` for a wink and the `Done` stage).
    pub fn update(u: &UiUpdate) -> Option<Self> {
        Some(match u {
            UiUpdate::QrCode { url } => Self::Qr {
                url: url.clone(),
                png: match crate::render::png_bytes(url, QR_SCALE) {
                    Ok(png) => base64::engine::general_purpose::STANDARD.encode(png),
                    Err(e) => {
                        tracing::warn!("cannot draw the QR code for the window: {e}");
                        String::new()
                    }
                },
            },
            UiUpdate::Stage(Phase::Done) | UiUpdate::Wink => return None,
            UiUpdate::Stage(p) => Self::Stage {
                stage: stage_name(*p),
                text: p.describe(),
            },
            UiUpdate::AskingPhone { name } => Self::AskingPhone { name: name.clone() },
            UiUpdate::Linked { name } => Self::Linked { name: name.clone() },
            UiUpdate::Done => Self::Done,
            UiUpdate::Failed { message } => Self::Failed {
                message: message.clone(),
            },
            UiUpdate::Cancelled => Self::Cancelled,
        })
    }

    /// The JSON line, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("strings and numbers always serialise")
    }
}

/// A line from the window to the key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FromWindow {
    /// The window is shown.
    Ready {
        /// The window's protocol version.
        version: u32,
        /// The accessible role and name of each control.
        #[serde(default)]
        accessible: Vec<Accessible>,
    },
    /// The person chose.
    Choice(ChoiceMessage),
}

impl FromWindow {
    /// Parses one line; the error says what was wrong in words.
    pub fn parse(line: &[u8]) -> Result<Self, String> {
        let message: Self = serde_json::from_slice(line).map_err(|e| {
            format!(
                "sent {:?}, which is not a protocol version {PROTOCOL_VERSION} line ({e})",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )
        })?;
        if let Self::Ready { version, .. } = &message {
            if *version != PROTOCOL_VERSION {
                return Err(format!(
                    "speaks protocol version {version}, the key {PROTOCOL_VERSION}; install the window from the same release as hybrid-bridge"
                ));
            }
        }
        Ok(message)
    }
}

/// A control's accessible role and name, as the window reports them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Accessible {
    /// `button`, `image`, …
    pub role: String,
    /// What a screen reader says.
    pub name: String,
}

/// What the key hears from a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowEvent {
    /// A line of the protocol.
    Message(FromWindow),
    /// The window is gone or broke the protocol: why, in words.
    Gone(String),
}

/// The stage's name in the protocol.
fn stage_name(p: Phase) -> &'static str {
    match p {
        Phase::ShowingQr => "showing-qr",
        Phase::AwaitingAdvert => "awaiting-advert",
        Phase::ContactingPhone => "contacting-phone",
        Phase::Connecting => "connecting",
        Phase::Handshaking => "handshaking",
        Phase::AwaitingUser => "awaiting-user",
        Phase::Done => "done",
    }
}

/// One running window: lines to its stdin, events from its stdout. Dropping it closes stdin
/// and kills the process.
struct Session {
    _child: tokio::process::Child,
    lines: mpsc::UnboundedSender<String>,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<WindowEvent>>>,
}

/// The desktop window over the [`KeyUi`] seam: one window process per request.
#[derive(Debug)]
pub struct WindowUi {
    program: PathBuf,
    env: Vec<(OsString, OsString)>,
    session: Mutex<Option<SessionHandle>>,
    /// The accessible names the last window reported.
    accessible: Mutex<Vec<Accessible>>,
}

/// [`Session`] behind a `Debug` that prints nothing of it.
struct SessionHandle(Session);

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

impl WindowUi {
    /// A window UI that runs `program` for each request.
    pub fn new(program: PathBuf) -> Self {
        Self {
            program,
            env: Vec::new(),
            session: Mutex::new(None),
            accessible: Mutex::new(Vec::new()),
        }
    }

    /// Sets an environment variable for the window program (tests: `DISPLAY`, `GSK_RENDERER`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The program this UI runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The accessible role and name of each control of the last window that showed itself.
    pub fn accessible(&self) -> Vec<Accessible> {
        self.accessible
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Closes the window now (its stdin ends and the process is killed).
    pub fn close(&self) {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn start(&self) -> Result<Session, String> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the window's pipes did not open".into());
        };
        let (lines, mut line_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(mut line) = line_rx.recv().await {
                line.push('\n');
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break; // the window is gone; the reader reports it
                }
            }
        });
        let (event_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(read_events(BufReader::new(stdout), event_tx));
        Ok(Session {
            _child: child,
            lines,
            events: Arc::new(tokio::sync::Mutex::new(events)),
        })
    }

    fn send(&self, message: &ToWindow) {
        if let Some(s) = &*self.session.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = s.0.lines.send(message.to_line());
        }
    }

    fn events(&self) -> Option<Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<WindowEvent>>>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.0.events.clone())
    }
}

impl KeyUi for WindowUi {
    fn choose<'a>(&'a self, request: &'a UiRequest) -> BoxFuture<'a, Choice> {
        Box::pin(async move {
            self.accessible
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            let session = match self.start() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("{e}; the request is cancelled (run the key with --no-window to use the terminal)");
                    return Choice::Cancel;
                }
            };
            // A new request replaces whatever window is still open.
            *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(SessionHandle(session));
            self.send(&ToWindow::request(request));
            let Some(events) = self.events() else {
                return Choice::Cancel;
            };
            let mut events = events.lock().await;
            loop {
                match events.recv().await {
                    Some(WindowEvent::Message(FromWindow::Ready { accessible, .. })) => {
                        *self.accessible.lock().unwrap_or_else(|e| e.into_inner()) = accessible;
                    }
                    Some(WindowEvent::Message(FromWindow::Choice(c))) => return c.into(),
                    Some(WindowEvent::Gone(why)) => {
                        tracing::warn!("the window {why}; the request is cancelled");
                        return Choice::Cancel;
                    }
                    None => return Choice::Cancel,
                }
            }
        })
    }

    fn show(&self, update: UiUpdate) {
        if let Some(m) = ToWindow::update(&update) {
            self.send(&m);
        }
    }

    fn cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(events) = self.events() else {
                return std::future::pending().await;
            };
            let mut events = events.lock().await;
            loop {
                match events.recv().await {
                    Some(WindowEvent::Message(FromWindow::Choice(ChoiceMessage::Cancel))) => {
                        tracing::info!("cancelled in the window");
                        return;
                    }
                    Some(WindowEvent::Message(_)) => {}
                    Some(WindowEvent::Gone(why)) => {
                        tracing::warn!("the window {why}; the request is cancelled");
                        return;
                    }
                    None => return,
                }
            }
        })
    }
}

/// Reads the window's lines into events until it ends or breaks the protocol (then one
/// [`WindowEvent::Gone`] and no more).
async fn read_events(
    mut out: impl tokio::io::AsyncBufRead + Unpin,
    events: mpsc::UnboundedSender<WindowEvent>,
) {
    let mut line = Vec::new();
    let gone = loop {
        line.clear();
        let read = (&mut out)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Err(e) => break format!("could not be read ({e})"),
            Ok(0) => break "closed".to_string(),
            Ok(_) if line.last() != Some(&b'\n') && line.len() > MAX_LINE => {
                break format!("sent a line over {MAX_LINE} bytes")
            }
            Ok(_) => {}
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match FromWindow::parse(text) {
            Ok(m) => {
                if events.send(WindowEvent::Message(m)).is_err() {
                    return;
                }
            }
            Err(e) => break e,
        }
    };
    let _ = events.send(WindowEvent::Gone(gone));
}

/// Whether a display is there to open a window on (`WAYLAND_DISPLAY` or `DISPLAY`).
pub fn display_available() -> bool {
    ["WAYLAND_DISPLAY", "DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// The window program's text, which `hybrid-bridge key install` writes to [`installed_path`].
pub const SOURCE: &str = include_str!("../../dist/hybrid-bridge-window");

/// Where `hybrid-bridge key install` puts the window program:
/// `$XDG_DATA_HOME/hybrid-bridge/hybrid-bridge-window`, else under `~/.local/share`.
pub fn installed_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(base.join("hybrid-bridge").join(PROGRAM_NAME))
}

/// Writes the window program to `path`, executable (the folder is created).
pub fn install(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    fsutil::write_atomic(path, SOURCE.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// The window program: `$HYBRID_BRIDGE_WINDOW`, else beside this executable, else where
/// `key install` put it ([`installed_path`]), else on `PATH`.
pub fn locate() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HYBRID_BRIDGE_WINDOW") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(PROGRAM_NAME)));
    let path = std::env::var_os("PATH").unwrap_or_default();
    beside
        .into_iter()
        .chain(installed_path())
        .chain(std::env::split_paths(&path).map(|d| d.join(PROGRAM_NAME)))
        .find(|p| p.is_file())
}

/// Runs `program --check`: whether it can open a window here; the error says why not.
pub async fn check(program: &Path) -> Result<(), String> {
    let run = tokio::process::Command::new(program)
        .arg("--check")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Err(_) => Err(format!(
            "{} --check did not finish in {} s",
            program.display(),
            CHECK_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot run {}: {e}", program.display())),
        Ok(Ok(o)) if o.status.success() => Ok(()),
        Ok(Ok(o)) => Err(format!(
            "{} --check failed ({}): {}",
            program.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A fake window: a shell script that records what the key sent and answers `answer`.
    fn fake_window(dir: &Path, script: &str) -> PathBuf {
        let path = dir.join("window");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "#!/bin/sh\n{script}").unwrap();
        drop(f);
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn request() -> UiRequest {
        UiRequest {
            command: Command::GetAssertion,
            rp_id: Some("example.com".into()),
            phones: vec!["Pixel 8".into(), "iPhone".into()],
            suggested: Choice::Qr,
        }
    }

    async fn choose_within(ui: &WindowUi, r: &UiRequest) -> Choice {
        tokio::time::timeout(Duration::from_secs(20), ui.choose(r))
            .await
            .expect("choose must end when the window answers or goes away")
    }

    #[test]
    fn the_request_line_is_version_1_with_who_asks_and_the_choices() {
        let mut r = request();
        r.suggested = Choice::Phone("Pixel 8".into());
        let line: serde_json::Value =
            serde_json::from_str(&ToWindow::request(&r).to_line()).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "type": "request", "version": 1, "action": "sign-in",
                "title": "sign in to example.com", "rp_id": "example.com",
                "phones": ["Pixel 8", "iPhone"],
                "suggested": {"choice": "phone", "name": "Pixel 8"},
            })
        );
    }

    #[test]
    fn updates_become_lines_and_the_qr_code_is_a_png() {
        let line = ToWindow::update(&UiUpdate::QrCode {
            url: "FIDO:/123".into(),
        })
        .unwrap();
        let ToWindow::Qr { png, .. } = &line else {
            panic!("{line:?}")
        };
        let png = base64::engine::general_purpose::STANDARD
            .decode(png)
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(
            ToWindow::update(&UiUpdate::Stage(Phase::AwaitingUser))
                .unwrap()
                .to_line(),
            r#"{"type":"stage","stage":"awaiting-user","text":"waiting for you to confirm on the phone"}"#
        );
        assert_eq!(
            ToWindow::update(&UiUpdate::Failed {
                message: "bluetooth is off".into()
            })
            .unwrap()
            .to_line(),
            r#"{"type":"failed","message":"bluetooth is off"}"#
        );
        assert_eq!(ToWindow::update(&UiUpdate::Wink), None);
    }

    #[test]
    fn window_lines_parse_and_other_versions_are_refused() {
        assert_eq!(
            FromWindow::parse(br#"{"type":"choice","choice":"phone","name":"Pixel 8"}"#),
            Ok(FromWindow::Choice(ChoiceMessage::Phone {
                name: "Pixel 8".into()
            }))
        );
        assert_eq!(
            FromWindow::parse(br#"{"type":"choice","choice":"cancel"}"#),
            Ok(FromWindow::Choice(ChoiceMessage::Cancel))
        );
        let e = FromWindow::parse(br#"{"type":"ready","version":2}"#).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        for bad in [
            &b"garbage"[..],
            br#"{"type":"choice","choice":"sudo"}"#,
            br#"{"type":"choice"}"#,
            b"\xff\xfe",
            br#"[1,2]"#,
        ] {
            assert!(FromWindow::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_line_a_window_sends_panics_the_parser() {
        let good = br#"{"type":"choice","choice":"phone","name":"Pixel 8"}"#;
        for cut in 0..good.len() {
            let _ = FromWindow::parse(&good[..cut]);
        }
        for i in 0..good.len() * 8 {
            let mut b = good.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            let _ = FromWindow::parse(&b);
        }
    }

    #[tokio::test]
    async fn the_fake_window_gets_the_request_and_its_choice_reaches_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let program = fake_window(
            dir.path(),
            &format!(
                r#"read line; echo "$line" > {seen}
echo '{{"type":"ready","version":1,"accessible":[{{"role":"button","name":"Cancel"}}]}}'
echo '{{"type":"choice","choice":"phone","name":"iPhone"}}'
cat >> {seen}"#,
                seen = seen.display()
            ),
        );
        let ui = WindowUi::new(program);
        assert_eq!(
            choose_within(&ui, &request()).await,
            Choice::Phone("iPhone".into())
        );
        assert_eq!(
            ui.accessible(),
            vec![Accessible {
                role: "button".into(),
                name: "Cancel".into()
            }]
        );
        ui.show(UiUpdate::Stage(Phase::ContactingPhone));
        ui.show(UiUpdate::Done);
        // The writer task delivers the lines; the window's stdin closes when the UI closes it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        ui.close();
        let seen = std::fs::read_to_string(&seen).unwrap();
        let lines: Vec<&str> = seen.lines().collect();
        assert!(
            lines[0].starts_with(r#"{"type":"request","version":1,"#),
            "{seen}"
        );
        assert_eq!(
            lines[1],
            r#"{"type":"stage","stage":"contacting-phone","text":"contacting the linked phone"}"#
        );
        assert_eq!(lines[2], r#"{"type":"done"}"#);
    }

    #[tokio::test]
    async fn a_window_that_dies_garbles_or_floods_is_a_cancel() {
        let dir = tempfile::tempdir().unwrap();
        for script in [
            "exit 1",
            "echo 'not json'; sleep 30",
            r#"echo '{"type":"ready","version":7}'; sleep 30"#,
            // One endless line: read up to the limit, never buffered whole.
            "while :; do printf aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; done",
            r#"echo '{"type":"ready","version":1}'; kill -9 $$"#,
        ] {
            let ui = WindowUi::new(fake_window(dir.path(), script));
            assert_eq!(choose_within(&ui, &request()).await, Choice::Cancel, "{script}");
            ui.close();
        }
        let ui = WindowUi::new(dir.path().join("missing"));
        assert_eq!(choose_within(&ui, &request()).await, Choice::Cancel);
    }

    #[tokio::test]
    async fn cancel_in_the_window_or_its_death_during_the_ceremony_is_heard() {
        let dir = tempfile::tempdir().unwrap();
        for (script, what) in [
            (
                r#"read line; echo '{"type":"choice","choice":"qr"}'; read line; echo '{"type":"choice","choice":"cancel"}'; sleep 30"#,
                "cancel",
            ),
            (
                r#"read line; echo '{"type":"choice","choice":"qr"}'; read line; exit 0"#,
                "exit",
            ),
        ] {
            let ui = WindowUi::new(fake_window(dir.path(), script));
            assert_eq!(choose_within(&ui, &request()).await, Choice::Qr, "{what}");
            let cancelled = ui.cancelled();
            ui.show(UiUpdate::Stage(Phase::AwaitingAdvert));
            tokio::time::timeout(Duration::from_secs(20), cancelled)
                .await
                .unwrap_or_else(|_| panic!("{what}: the key must hear it"));
            ui.close();
        }
        let quiet = WindowUi::new(fake_window(dir.path(), "cat >/dev/null"));
        assert!(
            tokio::time::timeout(Duration::from_millis(200), quiet.cancelled())
                .await
                .is_err(),
            "no window: never cancelled"
        );
    }

    #[test]
    fn install_writes_the_shipped_window_executable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("share/hybrid-bridge").join(PROGRAM_NAME);
        install(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SOURCE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(SOURCE.starts_with("#!/usr/bin/python3"));
    }

    #[tokio::test]
    async fn check_says_why_a_window_cannot_open() {
        let dir = tempfile::tempdir().unwrap();
        let ok = fake_window(dir.path(), r#"[ "$1" = --check ]"#);
        assert_eq!(check(&ok).await, Ok(()));
        let no = fake_window(dir.path(), "echo 'cannot open the display' >&2; exit 1");
        let e = check(&no).await.unwrap_err();
        assert!(e.contains("cannot open the display"), "{e}");
    }
}
