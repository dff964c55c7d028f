//! Doctor's browser-host checks: for each browser's per-user manifest folder (the same
//! locations `hybrid-bridge browser install` writes, `crate::commands::browser`), whether
//! the host is installed, whether its manifest parses and names our host, whether the launcher
//! it points at exists and starts this very binary, and whether it allows only our extension.

use std::path::Path;

use bridge::native_host::{CHROMIUM_EXTENSION_ID, FIREFOX_EXTENSION_ID, HOST_NAME};

use super::{Check, Section, Status};
use crate::commands::browser::{Browser, Location, Targets};

const REINSTALL: &str =
    "run `hybrid-bridge browser install` again (it rewrites the manifest and launcher)";

/// Runs the browser-host checks for `targets` (default: Chromium, Chrome and Firefox).
pub(crate) fn checks(targets: &Targets) -> Vec<Check> {
    let mut labelled: Vec<(String, Location)> = Vec::new();
    if !targets.only_user_data_dir {
        let browsers = if targets.browsers.is_empty() {
            vec![Browser::Chromium, Browser::Chrome, Browser::Firefox]
        } else {
            targets.browsers.clone()
        };
        for b in browsers {
            let one = Targets {
                browsers: vec![b],
                ..Targets::default()
            };
            match one.locations() {
                Ok(locs) => {
                    labelled.extend(locs.into_iter().map(|l| (format!("{b:?}"), l)));
                }
                Err(e) => {
                    return vec![Check::new(
                        Section::Browser,
                        "manifest folders",
                        Status::Fail,
                        e.to_string(),
                    )]
                }
            }
        }
    }
    for ud in &targets.chromium_user_data_dir {
        let one = Targets {
            browsers: vec![],
            chromium_user_data_dir: vec![ud.clone()],
            only_user_data_dir: true,
        };
        if let Ok(locs) = one.locations() {
            labelled.extend(
                locs.into_iter()
                    .map(|l| (format!("Chromium ({})", ud.display()), l)),
            );
        }
    }
    let this = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    let mut out: Vec<Check> = labelled
        .iter()
        .map(|(label, loc)| one(label, loc, this.as_deref()))
        .collect();
    if !out.is_empty() && out.iter().all(|c| c.status == Status::Info) {
        out.push(
            Check::new(
                Section::Browser,
                "any browser",
                Status::Info,
                "the host is not installed for any browser (only needed for the browser extension)",
            )
            .next("`hybrid-bridge browser install`"),
        );
    }
    out
}

/// Checks one manifest location.
fn one(label: &str, loc: &Location, this: Option<&Path>) -> Check {
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
    let script = match std::fs::read_to_string(launcher) {
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
        let mode = std::fs::metadata(launcher)
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
            format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/"),
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
