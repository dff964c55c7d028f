//! `hybrid-bridge browser install|uninstall`: installing the native messaging host for the
//! person's browsers, without root: a host manifest (`org.hybridbridge.host.json`) in each
//! browser's per-user folder, and beside it a launcher script the manifest points at, which
//! runs `hybrid-bridge native-host` with the settings given at install time (browsers start
//! hosts with no flags of their own). The manifests name only our extension:
//! `allowed_origins` for Chromium and Chrome, `allowed_extensions` for Firefox.

use std::path::{Path, PathBuf};

use bridge::native_host::{CHROMIUM_EXTENSION_ID, FIREFOX_EXTENSION_ID, HOST_NAME};
use bridge::BridgeError;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use super::native_host::HostArgs;

const EXAMPLES: &str = "\
Examples:
  # Let Chromium, Chrome and Firefox start the host (Bluetooth, the phone's own relay):
  hybrid-bridge browser install

  # Settings for the host go after --, exactly as `hybrid-bridge native-host --help` lists them:
  hybrid-bridge browser install -- --advert-timeout 60 --links-file ~/phones.json

  # A test profile: Chromium started with --user-data-dir=/tmp/ud, a local relay and
  # phone-sim's simulated Bluetooth medium; nothing outside /tmp/ud is touched:
  hybrid-bridge browser install --chromium-user-data-dir /tmp/ud --only-user-data-dir \\
      -- --tunnel-override ws://127.0.0.1:8080 --advert-file /tmp/adverts

  # Firefox reads ~/.mozilla/native-messaging-hosts; a test points HOME elsewhere:
  HOME=/tmp/ffhome hybrid-bridge browser install --browser firefox -- --advert-file /tmp/adverts

  # Remove everything install wrote (same location flags):
  hybrid-bridge browser uninstall

What is written, per location: org.hybridbridge.host.json (the manifest) and
org.hybridbridge.host.sh (the launcher it names). No root needed.";

/// `hybrid-bridge browser …`
#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub(crate) struct BrowserArgs {
    /// install or uninstall.
    #[command(subcommand)]
    pub(crate) action: BrowserAction,
}

/// What to do with the browsers' host manifests.
#[derive(Debug, Subcommand)]
pub(crate) enum BrowserAction {
    /// Write the host manifest and launcher for each browser; flags after -- go to native-host.
    #[command(after_long_help = EXAMPLES)]
    Install(InstallArgs),
    /// Remove what install wrote.
    Uninstall(Targets),
}

/// A browser with its own per-user manifest folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Browser {
    /// ~/.config/chromium/NativeMessagingHosts
    Chromium,
    /// ~/.config/google-chrome/NativeMessagingHosts
    Chrome,
    /// ~/.mozilla/native-messaging-hosts
    Firefox,
}

/// Where to install.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct Targets {
    /// Only these browsers' per-user folders (repeatable) [default: chromium, chrome, firefox].
    #[arg(long = "browser", value_enum)]
    pub(crate) browsers: Vec<Browser>,
    /// Also the NativeMessagingHosts folder of this Chromium --user-data-dir (repeatable).
    #[arg(long, value_name = "DIR")]
    pub(crate) chromium_user_data_dir: Vec<PathBuf>,
    /// Only the --chromium-user-data-dir folders, none of the per-user ones.
    #[arg(long, requires = "chromium_user_data_dir")]
    pub(crate) only_user_data_dir: bool,
}

/// `hybrid-bridge browser install`.
#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// Where.
    #[command(flatten)]
    pub(crate) targets: Targets,
    /// The hybrid-bridge binary the launcher runs [default: this one].
    #[arg(long, value_name = "PATH")]
    pub(crate) host_binary: Option<PathBuf>,
    /// Append the host's log (stderr) to this file instead of the browser's stderr.
    #[arg(long, value_name = "PATH")]
    pub(crate) log_file: Option<PathBuf>,
    /// Settings for `hybrid-bridge native-host`, e.g. -- --tunnel-override ws://127.0.0.1:8080.
    #[arg(last = true, value_name = "NATIVE-HOST FLAGS")]
    pub(crate) host_flags: Vec<String>,
}

/// The host flags as `native-host` will parse them, checked at install time so a typo fails
/// here and not silently inside the browser.
#[derive(Debug, Parser)]
#[command(name = "hybrid-bridge native-host", no_binary_name = true)]
struct HostFlags {
    /// The global flag of the same name.
    #[arg(long)]
    links_file: Option<PathBuf>,
    /// The global flag of the same name.
    #[arg(long, short, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    host: HostArgs,
}

/// One manifest location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// The folder.
    pub(crate) dir: PathBuf,
    /// Firefox-style manifest (`allowed_extensions`) or Chromium-style (`allowed_origins`).
    pub(crate) firefox: bool,
}

impl Location {
    /// The manifest file.
    pub(crate) fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{HOST_NAME}.json"))
    }

    /// The launcher script.
    pub(crate) fn launcher(&self) -> PathBuf {
        self.dir.join(format!("{HOST_NAME}.sh"))
    }
}

fn home() -> Result<PathBuf, BridgeError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            BridgeError::Usage(
                "HOME is not set; set it, or use --chromium-user-data-dir with --only-user-data-dir".into(),
            )
        })
}

fn config_home() -> Result<PathBuf, BridgeError> {
    match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => Ok(p),
        _ => Ok(home()?.join(".config")),
    }
}

impl Targets {
    /// The folders these flags name.
    pub(crate) fn locations(&self) -> Result<Vec<Location>, BridgeError> {
        let mut out = Vec::new();
        if !self.only_user_data_dir {
            let browsers = if self.browsers.is_empty() {
                vec![Browser::Chromium, Browser::Chrome, Browser::Firefox]
            } else {
                self.browsers.clone()
            };
            for b in browsers {
                out.push(match b {
                    Browser::Chromium => Location {
                        dir: config_home()?.join("chromium/NativeMessagingHosts"),
                        firefox: false,
                    },
                    Browser::Chrome => Location {
                        dir: config_home()?.join("google-chrome/NativeMessagingHosts"),
                        firefox: false,
                    },
                    Browser::Firefox => Location {
                        dir: home()?.join(".mozilla/native-messaging-hosts"),
                        firefox: true,
                    },
                });
            }
        }
        for ud in &self.chromium_user_data_dir {
            let ud = std::path::absolute(ud).map_err(|e| BridgeError::file("resolving", ud, e))?;
            out.push(Location {
                dir: ud.join("NativeMessagingHosts"),
                firefox: false,
            });
        }
        out.dedup();
        Ok(out)
    }
}

/// The manifest for one location.
pub(crate) fn manifest(location: &Location, launcher: &Path) -> serde_json::Value {
    let mut m = json!({
        "name": HOST_NAME,
        "description": "hybrid-bridge: sign in with the passkey on your phone",
        "path": launcher,
        "type": "stdio",
    });
    if location.firefox {
        m["allowed_extensions"] = json!([FIREFOX_EXTENSION_ID]);
    } else {
        m["allowed_origins"] = json!([format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/")]);
    }
    m
}

/// A POSIX shell word for `s`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The launcher script: runs `binary native-host FLAGS "$@"` (the browser's own arguments
/// last), optionally appending stderr to `log_file`.
pub(crate) fn launcher(binary: &Path, flags: &[String], log_file: Option<&Path>) -> String {
    let mut cmd = vec![
        sh_quote(&binary.to_string_lossy()),
        "native-host".to_string(),
    ];
    cmd.extend(flags.iter().map(|f| sh_quote(f)));
    cmd.push("\"$@\"".into());
    if let Some(l) = log_file {
        cmd.push(format!("2>>{}", sh_quote(&l.to_string_lossy())));
    }
    format!(
        "#!/bin/sh\n# Written by `hybrid-bridge browser install`; the browser runs this to start the\n# native messaging host. Change it with install again, remove it with uninstall.\n# Logs go to a file or the browser's stderr, never a terminal: no colour codes.\nexport NO_COLOR=1\nexec {}\n",
        cmd.join(" ")
    )
}

/// Writes a file whole or not at all with `mode` (the manifest 0644, the launcher 0755).
fn write_atomic(path: &Path, contents: &str, mode: u32) -> Result<(), BridgeError> {
    fsutil::write_atomic_with_mode(path, contents.as_bytes(), mode)
        .map_err(|e| BridgeError::file("writing", path, e))
}

impl BrowserArgs {
    /// Runs `browser install` / `browser uninstall`; reports each file on stdout.
    pub(crate) fn run(&self) -> Result<(), BridgeError> {
        match &self.action {
            BrowserAction::Install(a) => {
                let written = install(a)?;
                for p in written {
                    println!("wrote {}", p.display());
                }
                Ok(())
            }
            BrowserAction::Uninstall(t) => {
                let removed = uninstall(t)?;
                if removed.is_empty() {
                    println!("nothing to remove: no {HOST_NAME} files in those locations");
                }
                for p in removed {
                    println!("removed {}", p.display());
                }
                Ok(())
            }
        }
    }
}

/// Writes the manifests and launchers; returns the files written.
pub(crate) fn install(a: &InstallArgs) -> Result<Vec<PathBuf>, BridgeError> {
    let refused = |why: String| {
        BridgeError::Usage(format!(
            "the flags after -- are for `hybrid-bridge native-host` and it would refuse them: {why}"
        ))
    };
    let flags = HostFlags::try_parse_from(&a.host_flags).map_err(|e| {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        refused(first.trim_start_matches("error: ").to_string())
    })?;
    if let Some(stray) = flags.host.browser_args.first() {
        // The browser appends its own arguments after these; a stray word here would hide them.
        return Err(refused(format!(
            "unexpected argument {stray:?}; see `hybrid-bridge native-host --help`"
        )));
    }
    let binary = match &a.host_binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            BridgeError::Internal(format!(
                "cannot find this program's path ({e}); pass --host-binary"
            ))
        })?,
    };
    let binary = std::fs::canonicalize(&binary)
        .map_err(|e| BridgeError::file("finding the host binary", &binary, e))?;
    let log_file = a
        .log_file
        .as_ref()
        .map(std::path::absolute)
        .transpose()
        .map_err(|e| BridgeError::Internal(format!("resolving --log-file: {e}")))?;
    let script = launcher(&binary, &a.host_flags, log_file.as_deref());
    let mut written = Vec::new();
    for loc in a.targets.locations()? {
        std::fs::create_dir_all(&loc.dir)
            .map_err(|e| BridgeError::file("creating", &loc.dir, e))?;
        let launcher_path = loc.launcher();
        write_atomic(&launcher_path, &script, 0o755)?;
        let text = serde_json::to_string_pretty(&manifest(&loc, &launcher_path))
            .map_err(|e| BridgeError::Internal(e.to_string()))?;
        write_atomic(&loc.manifest(), &format!("{text}\n"), 0o644)?;
        written.push(loc.manifest());
        written.push(launcher_path);
    }
    Ok(written)
}

/// Removes the manifests and launchers; returns the files removed.
pub(crate) fn uninstall(t: &Targets) -> Result<Vec<PathBuf>, BridgeError> {
    let mut removed = Vec::new();
    for loc in t.locations()? {
        for p in [loc.manifest(), loc.launcher()] {
            match std::fs::remove_file(&p) {
                Ok(()) => removed.push(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BridgeError::file("removing", &p, e)),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_quotes_every_word() {
        let s = launcher(
            Path::new("/opt/hb/hybrid-bridge"),
            &["--links-file".into(), "/tmp/it's here".into()],
            None,
        );
        assert!(
            s.contains(r#"exec '/opt/hb/hybrid-bridge' native-host '--links-file' '/tmp/it'\''s here' "$@""#),
            "{s}"
        );
    }

    #[test]
    fn manifests_name_only_our_extension() {
        let chromium = manifest(
            &Location {
                dir: "/x".into(),
                firefox: false,
            },
            Path::new("/x/l.sh"),
        );
        assert_eq!(
            chromium["allowed_origins"],
            json!([format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/")])
        );
        assert!(chromium.get("allowed_extensions").is_none());
        let firefox = manifest(
            &Location {
                dir: "/x".into(),
                firefox: true,
            },
            Path::new("/x/l.sh"),
        );
        assert_eq!(firefox["allowed_extensions"], json!([FIREFOX_EXTENSION_ID]));
        assert!(firefox.get("allowed_origins").is_none());
    }
}
