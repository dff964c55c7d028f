//! Permissions and a login service for the key: `key install` writes the udev rule that opens
//! `/dev/uhid` (and the key's hidraw node) to the person at the seat, has `uhid` loaded at
//! boot, and writes a systemd *user* unit that starts the key at login; it says which part
//! needed root and prints the command for it. [`SetupState`] is what `key status` and
//! `doctor` report about the same things. The rule, the module list and the unit are files in
//! the repository (`bridge/dist/`), which the Debian package ships as they are.

use std::path::{Path, PathBuf};

use bridge::key::uhid::HID_ID;
use bridge::{BridgeError, LinkStore};

use super::settings::{config_home, KeySettings, RunningKey};

/// The udev rule, as shipped.
pub(crate) const RULE: &str = include_str!("../../../../../dist/70-hybrid-bridge-key.rules");
/// The modules-load.d entry, as shipped.
pub(crate) const MODULES: &str = include_str!("../../../../../dist/hybrid-bridge-key.conf");
/// The systemd user unit, as shipped (ExecStart names the packaged binary).
pub(crate) const UNIT: &str = include_str!("../../../../../dist/hybrid-bridge-key.service");
/// The rule's file name.
pub(crate) const RULE_NAME: &str = "70-hybrid-bridge-key.rules";
/// The modules-load.d file name.
pub(crate) const MODULES_NAME: &str = "hybrid-bridge-key.conf";
/// The unit's name.
pub(crate) const UNIT_NAME: &str = "hybrid-bridge-key.service";

/// Where everything lives; [`Paths::system`] for this machine, other roots in tests.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    /// Where `install --system` writes the rule, then where udev also reads rules.
    pub(crate) rules_dirs: Vec<PathBuf>,
    /// Where `install --system` writes the modules-load.d entry.
    pub(crate) modules_dir: PathBuf,
    /// Where `install` writes the user unit, then where systemd also reads user units.
    pub(crate) unit_dirs: Vec<PathBuf>,
    /// The uhid device file.
    pub(crate) uhid: PathBuf,
    /// `/sys/class/hidraw`.
    pub(crate) hidraw: PathBuf,
    /// The key's settings.
    pub(crate) settings: PathBuf,
    /// The running key's status file.
    pub(crate) running: PathBuf,
}

impl Paths {
    /// This machine's locations, for this user.
    pub(crate) fn system() -> Result<Self, BridgeError> {
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
            settings: KeySettings::default_path()?,
            running: RunningKey::default_path()?,
        })
    }

    /// Everything under `root` (tests): `root/etc/udev/rules.d`, `root/home/.config/…`.
    #[cfg(test)]
    pub(crate) fn under(root: &Path) -> Self {
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
    pub(crate) fn installed_rule(&self) -> Option<PathBuf> {
        self.rules_dirs
            .iter()
            .map(|d| d.join(RULE_NAME))
            .find(|p| p.is_file())
    }

    /// The installed unit, wherever systemd reads it from.
    pub(crate) fn installed_unit(&self) -> Option<PathBuf> {
        self.unit_dirs
            .iter()
            .map(|d| d.join(UNIT_NAME))
            .find(|p| p.is_file())
    }
}

/// The rule: [`RULE`], or with `group` a rule that gives `/dev/uhid` and the hidraw node to
/// that group instead of the seat's user.
pub(crate) fn rule_text(group: Option<&str>) -> String {
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
pub(crate) fn unit_text(binary: &Path, flags: &[String]) -> String {
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
pub(crate) struct Installed {
    /// Done.
    pub(crate) done: Vec<String>,
    /// Commands the person still has to run (with root, or systemctl).
    pub(crate) todo: Vec<String>,
}

/// The user's part: the settings' phone (when given), the unit. Then the root part if it can
/// be done without root (already done, or writable); otherwise the command that does it.
pub(crate) fn install(
    paths: &Paths,
    binary: &Path,
    flags: &[String],
    phone: Option<&str>,
    group: Option<&str>,
) -> Result<Installed, BridgeError> {
    let mut out = Installed::default();
    if let Some(name) = phone {
        let mut s = KeySettings::load(&paths.settings)?;
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
pub(crate) fn install_system(
    paths: &Paths,
    group: Option<&str>,
) -> Result<Vec<String>, BridgeError> {
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
pub(crate) fn uninstall(paths: &Paths, binary: &Path) -> Installed {
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
pub(crate) fn find_hidraw(sys_class_hidraw: &Path) -> Option<String> {
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

/// How far the key is set up on this machine, for `key status` and `doctor`.
#[derive(Debug)]
pub(crate) struct SetupState {
    /// Opening the uhid device file for reading and writing.
    pub(crate) uhid: Result<(), std::io::Error>,
    /// The installed udev rule.
    pub(crate) rule: Option<PathBuf>,
    /// The installed user unit.
    pub(crate) unit: Option<PathBuf>,
    /// The running key's hidraw node (`hidraw3`).
    pub(crate) hidraw: Option<String>,
}

impl SetupState {
    /// Looks at `paths`.
    pub(crate) fn read(paths: &Paths) -> Self {
        Self {
            uhid: uhid_access(&paths.uhid),
            rule: paths.installed_rule(),
            unit: paths.installed_unit(),
            hidraw: find_hidraw(&paths.hidraw),
        }
    }

    /// Whether `key install` was run (a rule or a unit exists): missing pieces are then
    /// faults, not just information.
    pub(crate) fn set_up(&self) -> bool {
        self.rule.is_some() || self.unit.is_some()
    }
}

/// `hybrid-bridge key status`: whether a key runs and which phone it will use, and the
/// state of its setup.
pub(crate) fn status_text(paths: &Paths, links: &LinkStore) -> String {
    let mut out = String::new();
    let running = RunningKey::read(&paths.running);
    let state = SetupState::read(paths);
    match (&running, &state.hidraw) {
        (Some(k), node) => out.push_str(&format!(
            "key: running (pid {}, since {}){}\n",
            k.pid,
            cli_support::human_date(k.started),
            node.as_ref()
                .map(|n| format!(", /dev/{n}"))
                .unwrap_or_default()
        )),
        (None, Some(n)) => out.push_str(&format!(
            "key: a key with our IDs is at /dev/{n}, started by another user or outside this session\n"
        )),
        (None, None) => out.push_str(
            "key: not running; start it with `hybrid-bridge key` (or enable the login service)\n",
        ),
    }
    let phone = running
        .as_ref()
        .map(|k| k.phone.clone())
        .unwrap_or_else(|| {
            KeySettings::load(&paths.settings)
                .ok()
                .and_then(|s| s.phone)
        });
    match phone {
        Some(name) => {
            let linked = links.get(&name).is_ok();
            out.push_str(&format!(
                "phone: {:?}{}\n",
                bridge::sanitize::for_terminal(&name),
                if linked {
                    " (linked; asked without a QR code)"
                } else {
                    " (no longer linked: a QR code is shown instead; link it again with a QR sign-in)"
                }
            ));
        }
        None => out.push_str(
            "phone: a QR code for each request (`hybrid-bridge key install --phone NAME` sets a linked phone)\n",
        ),
    }
    out.push_str(&format!(
        "{}: {}\n",
        paths.uhid.display(),
        match &state.uhid {
            Ok(()) => "opens for reading and writing".to_string(),
            Err(e) => e.to_string(),
        }
    ));
    let shown = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not installed (`hybrid-bridge key install`)".into())
    };
    out.push_str(&format!("udev rule: {}\n", shown(&state.rule)));
    out.push_str(&format!("login service: {}\n", shown(&state.unit)));
    out
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
            KeySettings::load(&paths.settings).unwrap().phone.as_deref(),
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
    fn install_with_rights_writes_everything_and_the_running_key_is_found_by_its_ids() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        let before = SetupState::read(&paths);
        assert!(!before.set_up() && before.uhid.is_err() && before.hidraw.is_none());
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
        let state = SetupState::read(&paths);
        assert!(state.set_up() && state.uhid.is_ok() && state.hidraw.is_none());
        hidraw(root.path(), "hidraw0", "0003:0000046D:0000C52B");
        hidraw(root.path(), "hidraw4", HID_ID);
        assert_eq!(SetupState::read(&paths).hidraw.as_deref(), Some("hidraw4"));
        // Uninstall removes what it wrote.
        let gone = uninstall(&paths, Path::new("/opt/hb"));
        assert_eq!(gone.done.len(), 3, "{:?}", gone.done);
        assert!(paths.installed_unit().is_none() && paths.installed_rule().is_none());
    }

    #[test]
    fn status_names_the_phone_and_says_when_it_is_no_longer_linked() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        let links = LinkStore::new(root.path().join("links.json"));
        let text = status_text(&paths, &links);
        assert!(text.contains("key: not running"), "{text}");
        assert!(text.contains("phone: a QR code for each request"), "{text}");
        KeySettings {
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
