//! The second stage: raw flag values turned into what the commands run with. [`Settings`] is
//! what the global flags resolve to (the progress style, colour, the linked-phones store);
//! [`ConnectArgs::check`] checks, before a QR code shows, everything that can fail later
//! without the phone's help (output files writable, the advert file's folder, the relay
//! settings), so a passkey is never created only for its result to be lost; [`open_scanner`]
//! opens the medium the flags name. Logging starts here too ([`init_logging`]).

use std::path::{Path, PathBuf};

use bridge::{AdvertFileScanner, BridgeError, LinkStore, ProgressStyle, Scanner};

use super::defs::{ConnectArgs, EventsFormat, GlobalArgs};

/// What the global flags resolve to.
#[derive(Debug)]
pub(crate) struct Settings {
    /// `--quiet`.
    pub(crate) quiet: bool,
    /// `--events`.
    pub(crate) events: EventsFormat,
    /// Progress on stderr: quiet, text or JSON lines.
    pub(crate) style: ProgressStyle,
    /// Whether to write colour codes to stderr.
    pub(crate) color: bool,
    /// `--links-file`, when given (otherwise the per-user default).
    pub(crate) links_file: Option<PathBuf>,
}

impl Settings {
    /// Resolves the global flags; `stderr_is_terminal` decides `--color auto`.
    pub(crate) fn new(g: &GlobalArgs, stderr_is_terminal: bool) -> Self {
        let style = if g.quiet {
            ProgressStyle::Quiet
        } else if g.events == EventsFormat::Json {
            ProgressStyle::Json
        } else {
            ProgressStyle::Text
        };
        Self {
            quiet: g.quiet,
            events: g.events,
            style,
            color: g.color.enabled(stderr_is_terminal),
            links_file: g.links_file.clone(),
        }
    }

    /// The linked-phones store: `--links-file` or the per-user default.
    pub(crate) fn links(&self) -> Result<LinkStore, BridgeError> {
        Ok(LinkStore::new(match &self.links_file {
            Some(p) => p.clone(),
            None => LinkStore::default_path()?,
        }))
    }
}

/// Starts logging to stderr: warnings, or more with `-v`/`-vv` (`RUST_LOG` overrides); every
/// line JSON with `--events json`, so stderr stays one JSON object per line.
pub(crate) fn init_logging(g: &GlobalArgs) {
    let default = match g.verbose {
        0 => "warn",
        1 => "bridge=debug,tunnel_client=debug,hybrid_protocol=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if g.events == EventsFormat::Json {
        logs.json().init();
    } else {
        use std::io::IsTerminal as _;
        logs.with_ansi(g.color.enabled(std::io::stderr().is_terminal()))
            .init();
    }
}

impl ConnectArgs {
    /// Everything that can be checked before the QR code shows: output files (`out`, the
    /// result's), the advert file's folder, the relay settings.
    pub(crate) fn check(&self, out: Option<&PathBuf>) -> Result<(), BridgeError> {
        for (flag, path) in [
            ("--out", out),
            ("--qr-file", self.qr_file.as_ref()),
            ("--qr-png", self.qr_png.as_ref()),
            ("--qr-svg", self.qr_svg.as_ref()),
        ] {
            if let Some(p) = path {
                check_writable(flag, p)?;
            }
        }
        if let Some(p) = &self.advert_file {
            match p.parent() {
                Some(d) if !d.as_os_str().is_empty() && !d.is_dir() => {
                    return Err(BridgeError::Usage(format!(
                        "--advert-file {}: the folder {} does not exist",
                        p.display(),
                        d.display()
                    )))
                }
                _ => {}
            }
        }
        self.relay.config().check()?;
        Ok(())
    }
}

/// Checks that `path` can be written (its folder exists and takes a new file), before a
/// ceremony starts: a phone's passkey must not be created only for its result to be lost.
fn check_writable(flag: &str, path: &Path) -> Result<(), BridgeError> {
    if path.is_dir() {
        return Err(BridgeError::Usage(format!(
            "{flag} {} is a folder; give a file name",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(BridgeError::Usage(format!(
            "{flag} {}: the folder {} does not exist; create it first",
            path.display(),
            dir.display()
        )));
    }
    let probe = dir.join(format!(".hybrid-bridge-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(BridgeError::Usage(format!(
            "{flag} {}: cannot write in {} ({e})",
            path.display(),
            dir.display()
        ))),
    }
}

/// The medium the flags name: the advert file (from its end, or with `from_start` from its
/// first line) or Bluetooth on `adapter`.
pub(crate) async fn open_scanner(
    advert_file: Option<&PathBuf>,
    adapter: Option<&str>,
    from_start: bool,
) -> Result<Box<dyn Scanner>, BridgeError> {
    Ok(match advert_file {
        Some(p) if from_start => Box::new(AdvertFileScanner::from_start(p)),
        Some(p) => Box::new(AdvertFileScanner::new(p)?),
        None => Box::new(bridge::ble::BtleplugScanner::start(adapter).await?),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::test_util::{parse, usage};

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        globals: GlobalArgs,
        #[command(flatten)]
        conn: ConnectArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    }

    fn flags(args: &[&str]) -> Flags {
        parse(args)
    }

    #[test]
    fn quiet_wins_over_json_events_and_text_is_the_default() {
        let style = |args: &[&str]| Settings::new(&flags(args).globals, false).style;
        assert_eq!(style(&[]), ProgressStyle::Text);
        assert_eq!(style(&["--events", "json"]), ProgressStyle::Json);
        assert_eq!(style(&["-q", "--events", "json"]), ProgressStyle::Quiet);
    }

    #[test]
    fn colour_follows_the_flag_and_the_terminal() {
        let color = |args: &[&str], tty| Settings::new(&flags(args).globals, tty).color;
        assert!(color(&["--color", "always"], false));
        assert!(!color(&["--color", "never"], true));
        assert!(!color(&[], false), "auto: no colour off a terminal");
    }

    #[test]
    fn the_links_file_flag_names_the_store() {
        let s = Settings::new(&flags(&["--links-file", "/tmp/l.json"]).globals, false);
        assert_eq!(s.links().unwrap().path(), Path::new("/tmp/l.json"));
    }

    #[test]
    fn output_files_are_checked_before_the_qr_code_shows() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        let ok = format!("{d}/result.json");
        let f = flags(&["--out", &ok, "--qr-file", &format!("{d}/qr.txt")]);
        f.conn.check(f.out.as_ref()).unwrap();
        assert!(
            std::fs::read_dir(&d).unwrap().next().is_none(),
            "the check leaves nothing behind"
        );

        let f = flags(&["--out", &d]);
        let e = usage(f.conn.check(f.out.as_ref()).unwrap_err());
        assert_eq!(e, format!("--out {d} is a folder; give a file name"));

        let f = flags(&["--qr-png", &format!("{d}/missing/qr.png")]);
        let e = usage(f.conn.check(None).unwrap_err());
        assert_eq!(
            e,
            format!("--qr-png {d}/missing/qr.png: the folder {d}/missing does not exist; create it first")
        );

        let f = flags(&["--advert-file", &format!("{d}/missing/adverts")]);
        let e = usage(f.conn.check(None).unwrap_err());
        assert_eq!(
            e,
            format!("--advert-file {d}/missing/adverts: the folder {d}/missing does not exist")
        );
    }

    #[test]
    fn a_relay_override_that_is_not_a_websocket_url_fails_the_check() {
        let f = flags(&["--tunnel-override", "http://127.0.0.1:8080"]);
        let e = f.conn.check(None).unwrap_err();
        assert!(matches!(e, BridgeError::Relay(_)), "{e:?}");
        assert_eq!(e.exit_code(), 2, "a local mistake, not the relay's");
    }

    #[test]
    fn session_flags_give_the_ceremony_settings() {
        let f = flags(&[
            "--advert-timeout",
            "90s",
            "--connect-timeout",
            "5",
            "--handshake-timeout",
            "1m",
            "--user-timeout",
            "2m30s",
            "--linger",
            "500ms",
            "--min-rssi",
            "-80",
            "--signal-connection",
        ]);
        let links = LinkStore::new("/tmp/l.json");
        let c = f.conn.config(Some(links));
        assert_eq!(c.timeouts.advert, std::time::Duration::from_secs(90));
        assert_eq!(c.timeouts.connect, std::time::Duration::from_secs(5));
        assert_eq!(c.timeouts.handshake, std::time::Duration::from_secs(60));
        assert_eq!(c.timeouts.user, std::time::Duration::from_secs(150));
        assert_eq!(c.timeouts.linger, std::time::Duration::from_millis(500));
        assert_eq!(c.min_rssi, Some(-80));
        assert!(c.signal_connection);
        assert!(c.links.is_some());
        let f = flags(&["--no-link"]);
        assert!(f
            .conn
            .config(Some(LinkStore::new("/tmp/l.json")))
            .links
            .is_none());
    }
}
