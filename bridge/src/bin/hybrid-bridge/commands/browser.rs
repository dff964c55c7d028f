//! `hybrid-bridge browser install|uninstall`: installing the native messaging host for the
//! person's browsers. Per user, without root: a host manifest (`org.hybridbridge.host.json`)
//! in each browser's per-user folder, and beside it a launcher script the manifest points at,
//! which runs `hybrid-bridge native-host` with the settings given at install time (browsers
//! start hosts with no flags of their own). System-wide (`--system`, what the Debian package
//! ships; `--root` writes into a staging tree): the manifests in each browser's system folder
//! and one launcher, `/usr/lib/hybrid-bridge/native-host`. The manifests name only our
//! extension: `allowed_origins` for the Chromium family, `allowed_extensions` for Firefox.

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

  # For every user (root; the Debian package ships exactly these files):
  sudo hybrid-bridge browser install --system --host-binary /usr/bin/hybrid-bridge

What is written, per location: org.hybridbridge.host.json (the manifest) and
org.hybridbridge.host.sh (the launcher it names); with --system, the manifests and one
launcher, /usr/lib/hybrid-bridge/native-host. Per user, no root needed. Brave, Edge and
Vivaldi are included by default when their folder in ~/.config exists. Firefox from Snap or
Flatpak cannot start a host this way: `hybrid-bridge doctor` says what to do there.";

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

/// A browser with its own manifest folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Browser {
    /// ~/.config/chromium/NativeMessagingHosts, /etc/chromium/native-messaging-hosts
    Chromium,
    /// ~/.config/google-chrome/NativeMessagingHosts, /etc/opt/chrome/native-messaging-hosts
    Chrome,
    /// ~/.config/BraveSoftware/Brave-Browser/NativeMessagingHosts, /etc/opt/brave/native-messaging-hosts
    Brave,
    /// ~/.config/microsoft-edge/NativeMessagingHosts, /etc/opt/edge/native-messaging-hosts
    Edge,
    /// ~/.config/vivaldi/NativeMessagingHosts, /etc/opt/vivaldi/native-messaging-hosts
    Vivaldi,
    /// ~/.mozilla/native-messaging-hosts, /usr/lib/mozilla/native-messaging-hosts
    Firefox,
}

impl Browser {
    /// Every browser, in the order install and doctor list them.
    pub(crate) const ALL: [Self; 6] = [
        Self::Chromium,
        Self::Chrome,
        Self::Brave,
        Self::Edge,
        Self::Vivaldi,
        Self::Firefox,
    ];

    /// The browser's name as people write it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Chromium => "Chromium",
            Self::Chrome => "Chrome",
            Self::Brave => "Brave",
            Self::Edge => "Edge",
            Self::Vivaldi => "Vivaldi",
            Self::Firefox => "Firefox",
        }
    }

    /// Firefox-style manifests (`allowed_extensions`) rather than Chromium-style.
    pub(crate) fn is_firefox(self) -> bool {
        self == Self::Firefox
    }

    /// The per-user folder below `~/.config` (or `~` for Firefox), and the folder whose
    /// presence says the browser has been used (Brave, Edge, Vivaldi: installed by default
    /// only then).
    fn user_dir(self) -> Result<PathBuf, BridgeError> {
        Ok(match self {
            Self::Chromium => config_home()?.join("chromium/NativeMessagingHosts"),
            Self::Chrome => config_home()?.join("google-chrome/NativeMessagingHosts"),
            Self::Brave => config_home()?.join("BraveSoftware/Brave-Browser/NativeMessagingHosts"),
            Self::Edge => config_home()?.join("microsoft-edge/NativeMessagingHosts"),
            Self::Vivaldi => config_home()?.join("vivaldi/NativeMessagingHosts"),
            Self::Firefox => home()?.join(".mozilla/native-messaging-hosts"),
        })
    }

    /// The system-wide folder every user's browser reads (absolute, without a `--root`).
    /// Browsers installed under /opt read only /etc/opt/<vendor>; some Brave builds read
    /// Chrome's folder instead of their own, which `--system` also writes.
    pub(crate) fn system_dir(self) -> &'static str {
        match self {
            Self::Chromium => "/etc/chromium/native-messaging-hosts",
            Self::Chrome => "/etc/opt/chrome/native-messaging-hosts",
            Self::Brave => "/etc/opt/brave/native-messaging-hosts",
            Self::Edge => "/etc/opt/edge/native-messaging-hosts",
            Self::Vivaldi => "/etc/opt/vivaldi/native-messaging-hosts",
            Self::Firefox => "/usr/lib/mozilla/native-messaging-hosts",
        }
    }

    /// Installed per user by default: Chromium, Chrome and Firefox always; the others when
    /// their profile folder exists (no empty folders for browsers that are not there).
    fn wanted_by_default(self) -> Result<bool, BridgeError> {
        Ok(match self {
            Self::Chromium | Self::Chrome | Self::Firefox => true,
            other => other
                .user_dir()?
                .parent()
                .is_some_and(|profile| profile.is_dir()),
        })
    }
}

/// The launcher `--system` writes, which every system manifest names.
pub(crate) const SYSTEM_LAUNCHER: &str = "/usr/lib/hybrid-bridge/native-host";

/// Where to install.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct Targets {
    /// Only these browsers (repeatable) [default: Chromium, Chrome and Firefox, plus Brave,
    /// Edge and Vivaldi where their folder in ~/.config exists; with --system, all six].
    #[arg(long = "browser", value_enum)]
    pub(crate) browsers: Vec<Browser>,
    /// Also the NativeMessagingHosts folder of this Chromium --user-data-dir (repeatable).
    #[arg(long, value_name = "DIR")]
    pub(crate) chromium_user_data_dir: Vec<PathBuf>,
    /// Only the --chromium-user-data-dir folders, none of the per-user ones.
    #[arg(long, requires = "chromium_user_data_dir")]
    pub(crate) only_user_data_dir: bool,
    /// The system-wide folders (for every user; needs root) instead of the per-user ones,
    /// with one launcher, /usr/lib/hybrid-bridge/native-host.
    #[arg(long, conflicts_with_all = ["chromium_user_data_dir", "only_user_data_dir"])]
    pub(crate) system: bool,
    /// With --system: write below this folder instead of / (a package's staging tree); the
    /// files still name the final paths.
    #[arg(long, value_name = "DIR", requires = "system")]
    pub(crate) root: Option<PathBuf>,
    /// The Chromium extension ID the manifests allow [default: the published extension's,
    /// kbehonokcoobakmaiaaeeiedfmmjlope]. Another one only for the extension packed with
    /// another key (a test build: browser/tools/pack.mjs).
    #[arg(long, value_name = "ID", value_parser = parse_chromium_id)]
    pub(crate) chromium_extension_id: Option<String>,
}

/// A Chromium extension ID: 32 letters a to p (the hex digits of a key hash, 0-f as a-p).
fn parse_chromium_id(s: &str) -> Result<String, String> {
    if s.len() == 32 && s.bytes().all(|b| (b'a'..=b'p').contains(&b)) {
        Ok(s.to_string())
    } else {
        Err(
            "a Chromium extension ID is 32 letters from a to p, as chrome://extensions shows it"
                .into(),
        )
    }
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
    /// What doctor calls it ("Chromium", "Firefox (system)", …).
    pub(crate) label: String,
    /// The folder.
    pub(crate) dir: PathBuf,
    /// Firefox-style manifest (`allowed_extensions`) or Chromium-style (`allowed_origins`).
    pub(crate) firefox: bool,
    /// The launcher file to write (below `--root` for a staging tree).
    pub(crate) launcher_file: PathBuf,
    /// The launcher's path as the manifest names it (the final path).
    pub(crate) launcher_path: PathBuf,
}

impl Location {
    /// A per-user (or user-data-dir) folder, its launcher beside the manifest.
    fn beside(label: String, dir: PathBuf, firefox: bool) -> Self {
        let launcher = dir.join(format!("{HOST_NAME}.sh"));
        Self {
            label,
            dir,
            firefox,
            launcher_file: launcher.clone(),
            launcher_path: launcher,
        }
    }

    /// A browser's system folder below `root`, naming the shared system launcher.
    pub(crate) fn system(browser: Browser, root: &Path) -> Self {
        let below = |p: &str| root.join(p.trim_start_matches('/'));
        Self {
            label: format!("{} (system)", browser.name()),
            dir: below(browser.system_dir()),
            firefox: browser.is_firefox(),
            launcher_file: below(SYSTEM_LAUNCHER),
            launcher_path: PathBuf::from(SYSTEM_LAUNCHER),
        }
    }

    /// The manifest file.
    pub(crate) fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{HOST_NAME}.json"))
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
        if self.system {
            let root = self.root.clone().unwrap_or_else(|| PathBuf::from("/"));
            let browsers = if self.browsers.is_empty() {
                Browser::ALL.to_vec()
            } else {
                self.browsers.clone()
            };
            for b in browsers {
                out.push(Location::system(b, &root));
            }
            return Ok(out);
        }
        if !self.only_user_data_dir {
            let browsers = if self.browsers.is_empty() {
                let mut wanted = Vec::new();
                for b in Browser::ALL {
                    if b.wanted_by_default()? {
                        wanted.push(b);
                    }
                }
                wanted
            } else {
                self.browsers.clone()
            };
            for b in browsers {
                out.push(Location::beside(
                    b.name().to_string(),
                    b.user_dir()?,
                    b.is_firefox(),
                ));
            }
        }
        for ud in &self.chromium_user_data_dir {
            let ud = std::path::absolute(ud).map_err(|e| BridgeError::file("resolving", ud, e))?;
            out.push(Location::beside(
                format!("Chromium ({})", ud.display()),
                ud.join("NativeMessagingHosts"),
                false,
            ));
        }
        out.dedup();
        Ok(out)
    }

    /// The Chromium extension ID the manifests allow.
    pub(crate) fn chromium_id(&self) -> &str {
        self.chromium_extension_id
            .as_deref()
            .unwrap_or(CHROMIUM_EXTENSION_ID)
    }
}

/// The manifest for one location, allowing the Chromium extension `chromium_id`.
pub(crate) fn manifest(location: &Location, chromium_id: &str) -> serde_json::Value {
    let mut m = json!({
        "name": HOST_NAME,
        "description": "hybrid-bridge: sign in with the passkey on your phone",
        "path": location.launcher_path,
        "type": "stdio",
    });
    if location.firefox {
        m["allowed_extensions"] = json!([FIREFOX_EXTENSION_ID]);
    } else {
        m["allowed_origins"] = json!([format!("chrome-extension://{chromium_id}/")]);
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
    let binary = if a.targets.root.is_some() {
        // A staging tree: the binary is where the package will put it, not here.
        if !binary.is_absolute() {
            return Err(BridgeError::Usage(format!(
                "with --root, --host-binary must be the absolute path the binary is installed at, not {}",
                binary.display()
            )));
        }
        binary
    } else {
        std::fs::canonicalize(&binary)
            .map_err(|e| BridgeError::file("finding the host binary", &binary, e))?
    };
    let log_file = a
        .log_file
        .as_ref()
        .map(std::path::absolute)
        .transpose()
        .map_err(|e| BridgeError::Internal(format!("resolving --log-file: {e}")))?;
    let script = launcher(&binary, &a.host_flags, log_file.as_deref());
    let mut written = Vec::new();
    for loc in a.targets.locations()? {
        for dir in [Some(loc.dir.as_path()), loc.launcher_file.parent()]
            .into_iter()
            .flatten()
        {
            std::fs::create_dir_all(dir).map_err(|e| BridgeError::file("creating", dir, e))?;
        }
        if !written.contains(&loc.launcher_file) {
            write_atomic(&loc.launcher_file, &script, 0o755)?;
            written.push(loc.launcher_file.clone());
        }
        let text = serde_json::to_string_pretty(&manifest(&loc, a.targets.chromium_id()))
            .map_err(|e| BridgeError::Internal(e.to_string()))?;
        write_atomic(&loc.manifest(), &format!("{text}\n"), 0o644)?;
        written.push(loc.manifest());
    }
    Ok(written)
}

/// Removes the manifests and launchers; returns the files removed.
pub(crate) fn uninstall(t: &Targets) -> Result<Vec<PathBuf>, BridgeError> {
    let mut removed = Vec::new();
    for loc in t.locations()? {
        for p in [loc.manifest(), loc.launcher_file] {
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
            &Location::beside("Chromium".into(), "/x".into(), false),
            CHROMIUM_EXTENSION_ID,
        );
        assert_eq!(
            chromium["allowed_origins"],
            json!([format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/")])
        );
        assert!(chromium.get("allowed_extensions").is_none());
        let firefox = manifest(
            &Location::beside("Firefox".into(), "/x".into(), true),
            CHROMIUM_EXTENSION_ID,
        );
        assert_eq!(firefox["allowed_extensions"], json!([FIREFOX_EXTENSION_ID]));
        assert!(firefox.get("allowed_origins").is_none());
    }

    #[test]
    fn system_locations_write_below_the_root_and_name_the_final_paths() {
        let targets = Targets {
            system: true,
            root: Some("/stage".into()),
            ..Targets::default()
        };
        let locs = targets.locations().unwrap();
        assert_eq!(locs.len(), Browser::ALL.len());
        let chrome = &locs[1];
        assert_eq!(chrome.label, "Chrome (system)");
        assert_eq!(
            chrome.manifest(),
            Path::new("/stage/etc/opt/chrome/native-messaging-hosts/org.hybridbridge.host.json")
        );
        assert_eq!(
            chrome.launcher_file,
            Path::new("/stage/usr/lib/hybrid-bridge/native-host")
        );
        let m = manifest(chrome, "abcdefghijklmnopabcdefghijklmnop");
        assert_eq!(m["path"], SYSTEM_LAUNCHER);
        assert_eq!(
            m["allowed_origins"],
            json!(["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"])
        );
        assert!(
            locs[5].firefox
                && locs[5]
                    .dir
                    .ends_with("usr/lib/mozilla/native-messaging-hosts")
        );
    }

    #[test]
    fn chromium_ids_are_32_letters_a_to_p() {
        assert!(parse_chromium_id(CHROMIUM_EXTENSION_ID).is_ok());
        for bad in [
            "",
            "kbehonokcoobakmaiaaeeiedfmmjlop",
            "kbehonokcoobakmaiaaeeiedfmmjlopq",
            "KBEHONOKCOOBAKMAIAAEEIEDFMMJLOPE",
            "zbehonokcoobakmaiaaeeiedfmmjlope",
        ] {
            assert!(parse_chromium_id(bad).is_err(), "{bad}");
        }
    }
}
