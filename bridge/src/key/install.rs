//! Permissions and a login service for the key: `key install` writes the udev rule that opens
//! `/dev/uhid` (and the key's hidraw node) to the person at the seat, has `uhid` loaded at
//! boot, and writes a systemd *user* unit that starts the key at login; it says which part
//! needed root and prints the command for it. `key status` and `doctor` check the same
//! things. The rule, the module list and the unit are files in the repository
//! (`bridge/dist/`), which the Debian package ships as they are.

use std::path::{Path, PathBuf};

use crate::doctor::{Check, Section, Status};
use crate::error::BridgeError;

use super::settings::{config_home, RunningKey, Settings};
use super::uhid::HID_ID;

/// The udev rule, as shipped.
pub const RULE: &str = include_str!("../../dist/70-hybrid-bridge-key.rules");
/// The modules-load.d entry, as shipped.
pub const MODULES: &str = include_str!("../../dist/hybrid-bridge-key.conf");
/// The systemd user unit, as shipped (ExecStart names the packaged binary).
pub const UNIT: &str = include_str!("../../dist/hybrid-bridge-key.service");
/// The rule's file name.
pub const RULE_NAME: &str = "70-hybrid-bridge-key.rules";
/// The modules-load.d file name.
pub const MODULES_NAME: &str = "hybrid-bridge-key.conf";
/// The unit's name.
pub const UNIT_NAME: &str = "hybrid-bridge-key.service";

/// Where everything lives; [`Paths::system`] for this machine, other roots in tests.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Where `install --system` writes the rule, then where udev also reads rules.
    pub rules_dirs: Vec<PathBuf>,
    /// Where `install --system` writes the modules-load.d entry.
    pub modules_dir: PathBuf,
    /// Where `install` writes the user unit, then where systemd also reads user units.
    pub unit_dirs: Vec<PathBuf>,
    /// The uhid device file.
    pub uhid: PathBuf,
    /// `/sys/class/hidraw`.
    pub hidraw: PathBuf,
    /// The key's settings.
    pub settings: PathBuf,
    /// The running key's status file.
    pub running: PathBuf,
}

impl Paths {
    /// This machine's locations, for this user.
    pub fn system() -> Result<Self, BridgeError> {
        Ok(Self {
            rules_dirs: [
                "/etc/udev/rules.d",
                "/run/udev/rules.d",
                "/usr/lib/udev/rules.d",
                "/lib/udev/rules.d",
            ]
            .map(PathBuf::from)
            .to_vec(),
            modules_dir: PathBuf::from("/etc/modules-load.d"),
            unit_dirs: vec![
                config_home()?.join("systemd/user"),
                PathBuf::from("/etc/systemd/user"),
                PathBuf::from("/usr/lib/systemd/user"),
            ],
            uhid: PathBuf::from("/dev/uhid"),
            hidraw: PathBuf::from("/sys/class/hidraw"),
            settings: Settings::default_path()?,
            running: RunningKey::default_path()?,
        })
    }

    /// Everything under `root` (tests): `root/etc/udev/rules.d`, `root/home/.config/…`.
    pub fn under(root: &Path) -> Self {
        Self {
            rules_dirs: vec![
                root.join("etc/udev/rules.d"),
                root.join("usr/lib/udev/rules.d"),
            ],
            modules_dir: root.join("etc/modules-load.d"),
            unit_dirs: vec![
                root.join("home/.config/systemd/user"),
                root.join("usr/lib/systemd/user"),
            ],
            uhid: root.join("dev/uhid"),
            hidraw: root.join("sys/class/hidraw"),
            settings: root.join("home/.config/hybrid-bridge/key.json"),
            running: root.join("run/user/hybrid-bridge/key.json"),
        }
    }

    fn rule_target(&self) -> PathBuf {
        self.rules_dirs[0].join(RULE_NAME)
    }

    fn unit_target(&self) -> PathBuf {
        self.unit_dirs[0].join(UNIT_NAME)
    }

    /// The installed rule, wherever udev reads it from.
    pub fn installed_rule(&self) -> Option<PathBuf> {
        self.rules_dirs
            .iter()
            .map(|d| d.join(RULE_NAME))
            .find(|p| p.is_file())
    }

    /// The installed unit, wherever systemd reads it from.
    pub fn installed_unit(&self) -> Option<PathBuf> {
        self.unit_dirs
            .iter()
            .map(|d| d.join(UNIT_NAME))
            .find(|p| p.is_file())
    }
}

/// The rule: [`RULE`], or with `group` a rule that gives `/dev/uhid` and the hidraw node to
/// that group instead of the seat's user.
pub fn rule_text(group: Option<&str>) -> String {
    match group {
        None => RULE.to_string(),
        Some(g) => format!(
            "# hybrid-bridge key: your phone as a USB security key (`hybrid-bridge key`).\n\
             # Written by `hybrid-bridge key install --group {g}`: every member of {g} may create\n\
             # HID devices (any kind, keyboards included) and use the key, over ssh too.\n\
             KERNEL==\"uhid\", SUBSYSTEM==\"misc\", GROUP=\"{g}\", MODE=\"0660\", OPTIONS+=\"static_node=uhid\"\n\
             SUBSYSTEM==\"hidraw\", KERNELS==\"0003:1209:F1D0.*\", GROUP=\"{g}\", MODE=\"0660\"\n"
        ),
    }
}

/// The user unit running `binary key FLAGS…`.
pub fn unit_text(binary: &Path, flags: &[String]) -> String {
    let mut exec = vec![binary.display().to_string(), "key".to_string()];
    exec.extend(flags.iter().cloned());
    let exec = exec
        .iter()
        .map(|a| systemd_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    UNIT.replace(
        "ExecStart=/usr/bin/hybrid-bridge key",
        &format!("ExecStart={exec}"),
    )
}

/// One ExecStart argument: double-quoted, with systemd's specifier (`%`) and variable (`$`)
/// expansion escaped.
fn systemd_quote(arg: &str) -> String {
    let escaped = arg
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// What `install` did, line by line, and the root commands still to run.
#[derive(Debug, Default)]
pub struct Installed {
    /// Done.
    pub done: Vec<String>,
    /// Commands the person still has to run (with root, or systemctl).
    pub todo: Vec<String>,
}

/// The user's part: the settings' phone (when given), the unit. Then the root part if it can
/// be done without root (already done, or writable); otherwise the command that does it.
pub fn install(
    paths: &Paths,
    binary: &Path,
    flags: &[String],
    phone: Option<&str>,
    group: Option<&str>,
) -> Result<Installed, BridgeError> {
    let mut out = Installed::default();
    if let Some(name) = phone {
        let mut s = Settings::load(&paths.settings)?;
        s.phone = Some(name.to_string());
        s.save(&paths.settings)?;
        out.done.push(format!(
            "default phone: {name:?} (in {})",
            paths.settings.display()
        ));
    }
    let unit = paths.unit_target();
    write_file(&unit, &unit_text(binary, flags), "writing the user unit")?;
    out.done.push(format!("login service: {}", unit.display()));
    out.todo.push(format!(
        "systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}"
    ));
    let rule = rule_text(group);
    let rule_ok = std::fs::read_to_string(paths.rule_target()).is_ok_and(|t| t == rule);
    let modules_ok =
        std::fs::read_to_string(paths.modules_dir.join(MODULES_NAME)).is_ok_and(|t| t == MODULES);
    if rule_ok && modules_ok {
        out.done.push(format!(
            "udev rule: {} (already there)",
            paths.rule_target().display()
        ));
    } else {
        match install_system(paths, group) {
            Ok(done) => out.done.extend(done),
            // Not writable (a user, a read-only /etc): the person runs the root part.
            Err(BridgeError::File { error, .. }) => {
                tracing::debug!("the root part of key install: {error}");
                let group_flag = group.map(|g| format!(" --group {g}")).unwrap_or_default();
                out.todo.insert(
                    0,
                    format!(
                        "sudo {} key install --system{group_flag}   # needs root: the udev rule {} and loading uhid at boot ({})",
                        binary.display(),
                        paths.rule_target().display(),
                        paths.modules_dir.join(MODULES_NAME).display()
                    ),
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The root part: the udev rule and the modules-load.d entry. Returns what was written; the
/// caller reloads udev and loads the module.
pub fn install_system(paths: &Paths, group: Option<&str>) -> Result<Vec<String>, BridgeError> {
    let rule = paths.rule_target();
    write_file(&rule, &rule_text(group), "writing the udev rule")?;
    let modules = paths.modules_dir.join(MODULES_NAME);
    write_file(&modules, MODULES, "writing the modules-load.d entry")?;
    Ok(vec![
        format!("udev rule: {}", rule.display()),
        format!("uhid loaded at boot: {}", modules.display()),
    ])
}

/// Removes what `install` wrote that this user may remove; returns what was removed and the
/// root command for the rest.
pub fn uninstall(paths: &Paths, binary: &Path) -> Installed {
    let mut out = Installed::default();
    for p in [paths.unit_target(), paths.settings.clone()] {
        if std::fs::remove_file(&p).is_ok() {
            out.done.push(format!("removed {}", p.display()));
        }
    }
    for p in [paths.rule_target(), paths.modules_dir.join(MODULES_NAME)] {
        match std::fs::remove_file(&p) {
            Ok(()) => out.done.push(format!("removed {}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => out.todo.push(format!(
                "sudo rm {}   # needs root (or `sudo {} key uninstall`)",
                p.display(),
                binary.display()
            )),
            Err(_) => {}
        }
    }
    out
}

fn write_file(path: &Path, text: &str, what: &'static str) -> Result<(), BridgeError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| BridgeError::file(what, path, e))?;
    }
    std::fs::write(path, text).map_err(|e| BridgeError::file(what, path, e))
}

/// The hidraw node of a running key (`hidraw3`), found by its `HID_ID` in sysfs.
pub fn find_hidraw(sys_class_hidraw: &Path) -> Option<String> {
    let mut found: Vec<String> = std::fs::read_dir(sys_class_hidraw)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("device/uevent"))
                .is_ok_and(|u| u.lines().any(|l| l == format!("HID_ID={HID_ID}")))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Whether `path` opens for reading and writing (opening `/dev/uhid` creates nothing).
fn uhid_access(path: &Path) -> Result<(), std::io::Error> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
}

/// `hybrid-bridge key status`: whether a key runs and which phone it will use, and the
/// state of its setup.
pub fn status_text(paths: &Paths, links: &crate::links::LinkStore) -> String {
    let mut out = String::new();
    let running = RunningKey::read(&paths.running);
    let node = find_hidraw(&paths.hidraw);
    match (&running, &node) {
        (Some(k), node) => out.push_str(&format!(
            "key: running (pid {}, since {}){}\n",
            k.pid,
            crate::units::human_time(k.started),
            node.as_ref()
                .map(|n| format!(", /dev/{n}"))
                .unwrap_or_default()
        )),
        (None, Some(n)) => out.push_str(&format!(
            "key: a key with our IDs is at /dev/{n}, started by another user or outside this session\n"
        )),
        (None, None) => out.push_str("key: not running; start it with `hybrid-bridge key` (or enable the login service)\n"),
    }
    let phone = running
        .as_ref()
        .map(|k| k.phone.clone())
        .unwrap_or_else(|| Settings::load(&paths.settings).ok().and_then(|s| s.phone));
    match phone {
        Some(name) => {
            let linked = links.get(&name).is_ok();
            out.push_str(&format!(
                "phone: {name:?}{}\n",
                if linked {
                    " (linked; asked without a QR code)"
                } else {
                    " (no longer linked: a QR code is shown instead; link it again with a QR sign-in)"
                }
            ));
        }
        None => out.push_str("phone: a QR code for each request (`hybrid-bridge key install --phone NAME` sets a linked phone)\n"),
    }
    for c in doctor_checks(paths) {
        out.push_str(&format!("{}: {}\n", c.name, c.detail));
    }
    out
}

/// The `doctor` checks for the key. Missing pieces are failures once the key is set up (a
/// unit or a rule exists) and information otherwise: a person who never ran `key install`
/// has nothing to fix.
pub fn doctor_checks(paths: &Paths) -> Vec<Check> {
    let unit = paths.installed_unit();
    let rule = paths.installed_rule();
    let set_up = unit.is_some() || rule.is_some();
    let missing = if set_up { Status::Fail } else { Status::Info };
    let check = |name: &str, status, detail: String| Check::new(Section::Key, name, status, detail);
    let mut checks = Vec::new();
    checks.push(match uhid_access(&paths.uhid) {
        Ok(()) => check("uhid access", Status::Pass, format!("{} opens for reading and writing", paths.uhid.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => check(
            "uhid access",
            missing,
            format!("{} does not exist (the uhid module is not loaded)", paths.uhid.display()),
        )
        .next("sudo modprobe uhid; `hybrid-bridge key install` has it loaded at boot"),
        Err(e) => check("uhid access", missing, format!("cannot open {}: {e}", paths.uhid.display()))
            .next("run `hybrid-bridge key install` and the root command it prints; then `sudo udevadm trigger /sys/class/misc/uhid`"),
    });
    checks.push(match &rule {
        Some(p) => check("udev rule", Status::Pass, p.display().to_string()),
        None => check(
            "udev rule",
            missing,
            format!("no {RULE_NAME} in {}", paths.rules_dirs[0].display()),
        )
        .next("run `hybrid-bridge key install` and the root command it prints"),
    });
    checks.push(match &unit {
        Some(p) => check("login service", Status::Pass, p.display().to_string()),
        None => check(
            "login service",
            Status::Info,
            format!("no {UNIT_NAME}: the key does not start at login"),
        )
        .next("`hybrid-bridge key install` writes it"),
    });
    checks.push(match find_hidraw(&paths.hidraw) {
        Some(n) => check(
            "key device",
            Status::Pass,
            format!("/dev/{n} has the key's IDs (1209:F1D0): the key is running"),
        ),
        None => check(
            "key device",
            if unit.is_some() {
                Status::Fail
            } else {
                Status::Info
            },
            "no hidraw node with the key's IDs (1209:F1D0): the key is not running".into(),
        )
        .next(format!(
            "start it: `hybrid-bridge key`, or `systemctl --user start {UNIT_NAME}`"
        )),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidraw(root: &Path, name: &str, hid_id: &str) {
        let dir = root.join("sys/class/hidraw").join(name).join("device");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("uevent"),
            format!("DRIVER=hid-generic\nHID_ID={hid_id}\nHID_NAME=x\n"),
        )
        .unwrap();
    }

    #[test]
    fn the_unit_runs_this_binary_with_the_given_flags_quoted_for_systemd() {
        let text = unit_text(
            Path::new("/home/a b/.cargo/bin/hybrid-bridge"),
            &["--phone".into(), "Pixel \"8\" 100%".into(), "$HOME".into()],
        );
        assert!(
            text.contains(r#"ExecStart="/home/a b/.cargo/bin/hybrid-bridge" "key" "--phone" "Pixel \"8\" 100%%" "$$HOME""#),
            "{text}"
        );
        assert!(text.contains("[Install]\nWantedBy=default.target"));
        assert!(!text.contains("/usr/bin/hybrid-bridge"));
    }

    #[test]
    fn the_shipped_rule_gives_uhid_and_the_keys_hidraw_node_to_the_seat() {
        assert!(RULE.contains(
            r#"KERNEL=="uhid", SUBSYSTEM=="misc", TAG+="uaccess", OPTIONS+="static_node=uhid""#
        ));
        assert!(
            RULE.contains(r#"SUBSYSTEM=="hidraw", KERNELS=="0003:1209:F1D0.*", TAG+="uaccess""#)
        );
        let g = rule_text(Some("fido"));
        assert!(g.contains(r#"GROUP="fido", MODE="0660""#));
        assert!(!g.contains("uaccess"));
        assert_eq!(MODULES.lines().last(), Some("uhid"));
    }

    #[test]
    fn install_as_a_user_writes_the_unit_and_prints_the_root_command() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        // The system folders cannot be written (a plain file stands where /etc would be),
        // as for a user who is not root.
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/udev"), "").unwrap();
        let done = install(&paths, Path::new("/opt/hb"), &[], Some("Pixel 8"), None).unwrap();
        assert!(paths.installed_unit().is_some());
        assert_eq!(
            Settings::load(&paths.settings).unwrap().phone.as_deref(),
            Some("Pixel 8")
        );
        assert!(
            done.todo[0].starts_with("sudo /opt/hb key install --system"),
            "{:?}",
            done.todo
        );
        assert!(done.todo[0].contains(RULE_NAME));
        assert!(done.todo[1].contains("systemctl --user"));
    }

    #[test]
    fn install_with_rights_writes_everything_and_doctor_then_passes_but_for_the_running_key() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        let before = doctor_checks(&paths);
        assert!(
            before.iter().all(|c| c.status == Status::Info),
            "nothing installed is nothing to fix: {before:?}"
        );
        let done = install(
            &paths,
            Path::new("/opt/hb"),
            &["--no-window".into()],
            None,
            None,
        )
        .unwrap();
        assert!(
            done.todo.iter().all(|t| !t.starts_with("sudo")),
            "{:?}",
            done.todo
        );
        assert_eq!(
            std::fs::read_to_string(paths.installed_rule().unwrap()).unwrap(),
            RULE
        );
        assert_eq!(
            std::fs::read_to_string(paths.modules_dir.join(MODULES_NAME)).unwrap(),
            MODULES
        );
        std::fs::create_dir_all(paths.uhid.parent().unwrap()).unwrap();
        std::fs::write(&paths.uhid, "").unwrap();
        let checks = doctor_checks(&paths);
        let status = |name: &str| checks.iter().find(|c| c.name == name).unwrap().status;
        assert_eq!(status("uhid access"), Status::Pass);
        assert_eq!(status("udev rule"), Status::Pass);
        assert_eq!(status("login service"), Status::Pass);
        assert_eq!(
            status("key device"),
            Status::Fail,
            "installed but not running"
        );
        hidraw(root.path(), "hidraw0", "0003:0000046D:0000C52B");
        hidraw(root.path(), "hidraw4", HID_ID);
        assert_eq!(find_hidraw(&paths.hidraw).as_deref(), Some("hidraw4"));
        let checks = doctor_checks(&paths);
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:?}"
        );
        // Uninstall removes what it wrote.
        let gone = uninstall(&paths, Path::new("/opt/hb"));
        assert_eq!(gone.done.len(), 3, "{:?}", gone.done);
        assert!(paths.installed_unit().is_none() && paths.installed_rule().is_none());
    }

    #[test]
    fn status_names_the_phone_and_says_when_it_is_no_longer_linked() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        let links = crate::links::LinkStore::new(root.path().join("links.json"));
        let text = status_text(&paths, &links);
        assert!(text.contains("key: not running"), "{text}");
        assert!(text.contains("phone: a QR code for each request"), "{text}");
        Settings {
            phone: Some("Pixel 8".into()),
        }
        .save(&paths.settings)
        .unwrap();
        let text = status_text(&paths, &links);
        assert!(
            text.contains("phone: \"Pixel 8\" (no longer linked"),
            "{text}"
        );
    }
}
