//! Doctor's checks of sandboxed browsers: Firefox from Snap (Ubuntu's default) and the
//! Flatpak builds of Firefox and the Chromium family. A confined browser cannot run a program
//! outside its sandbox, so the host manifests in the usual folders do not help it by
//! themselves:
//!
//! - Snap's Firefox starts native hosts through the WebExtensions portal of
//!   xdg-desktop-portal, which reads the ordinary Firefox manifests (`~/.mozilla/…`,
//!   `/usr/lib/mozilla/…`) and asks the person once. Ubuntu's xdg-desktop-portal has that
//!   portal; Debian's does not. A portal that offers it installs its D-Bus interface
//!   description, `org.freedesktop.portal.WebExtensions.xml`, which is what is looked for.
//! - Flatpak has no such portal: a Flatpak browser cannot start the host at all.
//!
//! Every path is read below a root (`/`, or a test's fake tree through `--system --root`) and
//! `HOME`, so tests build the trees these checks look for.

use std::path::{Path, PathBuf};

use super::{Check, Section, Status};

/// The portal's D-Bus interface description, installed by an xdg-desktop-portal that has it.
const WEBEXTENSIONS_PORTAL: &str =
    "usr/share/dbus-1/interfaces/org.freedesktop.portal.WebExtensions.xml";

/// Flatpak application IDs of the browsers people use, with their names.
const FLATPAK_BROWSERS: [(&str, &str); 6] = [
    ("org.mozilla.firefox", "Firefox"),
    ("org.chromium.Chromium", "Chromium"),
    ("com.google.Chrome", "Chrome"),
    ("com.brave.Browser", "Brave"),
    ("com.microsoft.Edge", "Edge"),
    ("com.vivaldi.Vivaldi", "Vivaldi"),
];

/// The sandboxed browsers found below `root` and in `HOME`, each with what to do.
/// `firefox_host` says whether a Firefox host manifest is installed (per user or system).
pub(crate) fn checks(root: &Path, firefox_host: bool) -> Vec<Check> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let mut out = Vec::new();
    if let Some(c) = snap_firefox(root, home.as_deref(), firefox_host) {
        out.push(c);
    }
    for (app, name) in FLATPAK_BROWSERS {
        let found = [
            home.as_ref().map(|h| h.join(".var/app").join(app)),
            home.as_ref()
                .map(|h| h.join(".local/share/flatpak/app").join(app)),
            Some(root.join("var/lib/flatpak/app").join(app)),
        ]
        .into_iter()
        .flatten()
        .find(|p| p.is_dir());
        if let Some(path) = found {
            out.push(
                Check::new(
                    Section::Browser,
                    format!("{name} (Flatpak)"),
                    Status::Fail,
                    format!(
                        "{name} from Flatpak ({app}, found {}) runs in a sandbox that cannot start \
                         programs outside it, and Flatpak has no portal for native messaging hosts \
                         yet: the extension cannot reach hybrid-bridge there",
                        path.display()
                    ),
                )
                .next(format!(
                    "use {name} from a Debian package for signing in with your phone (the \
                     hybrid-bridge package sets it up); `hybrid-bridge sign-in` works from a \
                     terminal meanwhile"
                )),
            );
        }
    }
    out
}

/// Snap's Firefox: found by its command or its folders; works through the WebExtensions portal
/// when this system's xdg-desktop-portal offers it and a Firefox host manifest is installed.
fn snap_firefox(root: &Path, home: Option<&Path>, firefox_host: bool) -> Option<Check> {
    let found = [
        Some(root.join("snap/bin/firefox")),
        Some(root.join("snap/firefox")),
        home.map(|h| h.join("snap/firefox")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.exists())?;
    let name = "Firefox (Snap)";
    let portal = root.join(WEBEXTENSIONS_PORTAL);
    Some(if !portal.is_file() {
        Check::new(
            Section::Browser,
            name,
            Status::Fail,
            format!(
                "Firefox from Snap (found {}) starts native hosts only through the WebExtensions \
                 portal, and this system's xdg-desktop-portal does not offer it (no {})",
                found.display(),
                portal.display()
            ),
        )
        .next(
            "install Firefox from a Debian package (firefox-esr, or Mozilla's APT repository) \
             and use that one for signing in with your phone; Ubuntu's xdg-desktop-portal has \
             the portal, so on Ubuntu update it (`sudo apt install xdg-desktop-portal`)",
        )
    } else if !firefox_host {
        Check::new(
            Section::Browser,
            name,
            Status::Fail,
            format!(
                "Firefox from Snap (found {}) can start the host through the WebExtensions \
                 portal, but no Firefox host manifest is installed for it to find",
                found.display()
            ),
        )
        .next("`hybrid-bridge browser install --browser firefox`, or install the hybrid-bridge package")
    } else {
        Check::new(
            Section::Browser,
            name,
            Status::Pass,
            format!(
                "Firefox from Snap (found {}) starts the host through the WebExtensions portal \
                 and the installed Firefox manifest; Firefox asks once whether the extension may",
                found.display()
            ),
        )
    })
}
