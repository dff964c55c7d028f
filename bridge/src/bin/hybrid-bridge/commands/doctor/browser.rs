//! Doctor's browser-host checks: for each browser's per-user manifest folder and system
//! folder (the locations `hybrid-bridge browser install` and the Debian package write,
//! `crate::commands::browser`), whether the host is installed, whether its manifest parses and
//! names our host, whether the launcher it points at exists and starts this very binary, and
//! whether it allows only our extension; then the sandboxed browsers (Snap, Flatpak), which
//! start no host from these folders, each with what the person does (`super::sandbox`).

use std::path::{Path, PathBuf};

use bridge::native_host::{FIREFOX_EXTENSION_ID, HOST_NAME};

use super::{sandbox, Check, Section, Status};
use crate::commands::browser::{Browser, Location, Targets};

const REINSTALL: &str =
    "run `hybrid-bridge browser install` again (it rewrites the manifest and launcher)";

/// Runs the browser-host checks for `targets`: the per-user folders (default: Chromium, Chrome,
/// Firefox, and Brave, Edge, Vivaldi where used) and every system folder (with `--system`,
/// only those), then the sandboxed browsers found.
pub(crate) fn checks(targets: &Targets) -> Vec<Check> {
    let root = targets.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let user = if targets.system {
        Vec::new()
    } else {
        let user_only = Targets {
            system: false,
            root: None,
            ..targets.clone()
        };
        match user_only.locations() {
            Ok(l) => l,
            Err(e) => {
                return vec![Check::new(
                    Section::Browser,
                    "manifest folders",
                    Status::Fail,
                    e.to_string(),
                )]
            }
        }
    };
    let wanted: Vec<Browser> = if targets.browsers.is_empty() {
        Browser::ALL.to_vec()
    } else {
        targets.browsers.clone()
    };
    let system: Vec<Location> = wanted
        .iter()
        .map(|b| Location::system(*b, &root))
        .filter(|l| targets.system || l.manifest().exists())
        .collect();
    let this = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    let id = targets.chromium_id();
    let system_labels: Vec<String> = system
        .iter()
        .map(|l| l.label.trim_end_matches(" (system)").to_string())
        .collect();
    let mut out: Vec<Check> = user
        .iter()
        .map(|loc| one(loc, this.as_deref(), id))
        // Not installed per user but installed for the system: the system line says it all.
        .filter(|c| !(c.status == Status::Info && system_labels.contains(&c.name)))
        .collect();
    out.extend(system.iter().map(|loc| one(loc, this.as_deref(), id)));
    if !out.is_empty() && out.iter().all(|c| c.status == Status::Info) {
        out.push(
            Check::new(
                Section::Browser,
                "any browser",
                Status::Info,
                "the host is not installed for any browser (only needed for the browser extension)",
            )
            .next("`hybrid-bridge browser install`, or install the hybrid-bridge Debian package"),
        );
    }
    let firefox_host = [
        Location::system(Browser::Firefox, &root).manifest(),
        std::env::var_os("HOME")
            .map(|h| {
                Path::new(&h)
                    .join(".mozilla/native-messaging-hosts")
                    .join(format!("{HOST_NAME}.json"))
            })
            .unwrap_or_default(),
    ]
    .iter()
    .any(|p| p.is_file());
    out.extend(sandbox::checks(&root, firefox_host));
    out
}

/// Checks one manifest location; `chromium_id` is the extension a Chromium manifest must allow.
fn one(loc: &Location, this: Option<&Path>, chromium_id: &str) -> Check {
    let label = loc.label.as_str();
    let manifest = loc.manifest();
    let fail = |detail: String, next: &str| {
        Check::new(Section::Browser, label, Status::Fail, detail).next(next)
    };
    let text =
        match std::fs::read_to_string(&manifest) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Check::new(
                    Section::Browser,
                    label,
                    Status::Info,
                    format!("not installed (no {})", manifest.display()),
                )
            }
            Err(e) => return fail(
                format!("cannot read {}: {e}", manifest.display()),
                "check the file's permissions, or reinstall with `hybrid-bridge browser install`",
            ),
        };
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => {
            return fail(
                format!("{} is not valid JSON: {e}", manifest.display()),
                REINSTALL,
            )
        }
    };
    if json["name"] != HOST_NAME {
        return fail(
            format!(
                "{} names host {} instead of {HOST_NAME}",
                manifest.display(),
                json["name"]
            ),
            REINSTALL,
        );
    }
    if json["type"] != "stdio" {
        return fail(
            format!(
                "{} has type {} instead of \"stdio\"",
                manifest.display(),
                json["type"]
            ),
            REINSTALL,
        );
    }
    let Some(launcher) = json["path"].as_str().map(Path::new) else {
        return fail(format!("{} has no \"path\"", manifest.display()), REINSTALL);
    };
    if !launcher.is_absolute() {
        return fail(
            format!(
                "the manifest's path {} is not absolute (browsers on Linux need an absolute path)",
                launcher.display()
            ),
            REINSTALL,
        );
    }
    // A staging tree (--root) holds the launcher below the root, at the path the manifest names.
    let launcher_file = if launcher == loc.launcher_path {
        loc.launcher_file.clone()
    } else {
        launcher.to_path_buf()
    };
    let script = match std::fs::read_to_string(&launcher_file) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                format!("the launcher {} cannot be read: {e}", launcher.display()),
                REINSTALL,
            )
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&launcher_file)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if mode & 0o111 == 0 {
            return fail(
                format!("the launcher {} is not executable", launcher.display()),
                REINSTALL,
            );
        }
    }
    if let Some(this) = this {
        let quoted = format!("'{}'", this.to_string_lossy().replace('\'', r"'\''"));
        if !script.contains(&quoted) {
            return fail(
                format!(
                    "the launcher {} does not start this binary ({})",
                    launcher.display(),
                    this.display()
                ),
                "run `hybrid-bridge browser install` with the hybrid-bridge you want browsers to use",
            );
        }
    }
    let (key, expected) = if loc.firefox {
        ("allowed_extensions", FIREFOX_EXTENSION_ID.to_string())
    } else {
        (
            "allowed_origins",
            format!("chrome-extension://{chromium_id}/"),
        )
    };
    let allowed: Vec<&str> = json[key]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if !allowed.contains(&expected.as_str()) {
        return fail(
            format!(
                "{} does not allow the hybrid-bridge extension ({key} is {allowed:?}, needs {expected:?})",
                manifest.display()
            ),
            REINSTALL,
        );
    }
    Check::new(
        Section::Browser,
        label,
        Status::Pass,
        format!(
            "installed: {} → {}, allows {expected}",
            manifest.display(),
            launcher.display()
        ),
    )
}
