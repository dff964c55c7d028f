//! The security key's checks: `/dev/uhid` access, the udev rule, the login service, and a
//! hidraw node with the key's IDs (the key running). Missing pieces are failures once the key
//! is set up (a rule or a unit exists) and information otherwise: a person who never ran
//! `hybrid-bridge key install` has nothing to fix.

use crate::commands::key::install::{Paths, SetupState, RULE_NAME, UNIT_NAME};

use super::{Check, Section, Status};

/// The checks for this machine and user.
pub(super) fn checks() -> Vec<Check> {
    match Paths::system() {
        Ok(paths) => checks_for(&paths, &SetupState::read(&paths)),
        Err(e) => vec![
            Check::new(Section::Key, "key files", Status::Fail, e.to_string())
                .next("set HOME (or XDG_CONFIG_HOME)"),
        ],
    }
}

fn checks_for(paths: &Paths, state: &SetupState) -> Vec<Check> {
    let missing = if state.set_up() {
        Status::Fail
    } else {
        Status::Info
    };
    let check = |name: &str, status, detail: String| Check::new(Section::Key, name, status, detail);
    let uhid = paths.uhid.display();
    vec![
        match &state.uhid {
            Ok(()) => check(
                "uhid access",
                Status::Pass,
                format!("{uhid} opens for reading and writing"),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => check(
                "uhid access",
                missing,
                format!("{uhid} does not exist (the uhid module is not loaded)"),
            )
            .next("sudo modprobe uhid; `hybrid-bridge key install` has it loaded at boot"),
            Err(e) => check("uhid access", missing, format!("cannot open {uhid}: {e}")).next(
                "run `hybrid-bridge key install` and the root command it prints \
                 (it applies the rule with `udevadm trigger /sys/class/misc/uhid`)",
            ),
        },
        match &state.rule {
            Some(p) => check("udev rule", Status::Pass, p.display().to_string()),
            None => check(
                "udev rule",
                missing,
                format!("no {RULE_NAME} in {}", paths.rules_dirs[0].display()),
            )
            .next("run `hybrid-bridge key install` and the root command it prints"),
        },
        match &state.unit {
            Some(p) => check("login service", Status::Pass, p.display().to_string()),
            None => check(
                "login service",
                Status::Info,
                format!("no {UNIT_NAME}: the key does not start at login"),
            )
            .next("`hybrid-bridge key install` writes it"),
        },
        match &state.hidraw {
            Some(n) => check(
                "key device",
                Status::Pass,
                format!("/dev/{n} has the key's IDs (1209:F1D0): the key is running"),
            ),
            None => check(
                "key device",
                if state.unit.is_some() {
                    Status::Fail
                } else {
                    Status::Info
                },
                "no hidraw node with the key's IDs (1209:F1D0): the key is not running".into(),
            )
            .next(format!(
                "start it: `hybrid-bridge key`, or `systemctl --user start {UNIT_NAME}`"
            )),
        },
    ]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn state(set_up: bool, running: bool) -> SetupState {
        let installed = set_up.then(|| PathBuf::from("/x"));
        SetupState {
            uhid: if set_up {
                Ok(())
            } else {
                Err(std::io::ErrorKind::NotFound.into())
            },
            rule: installed.clone(),
            unit: installed,
            hidraw: running.then(|| "hidraw4".to_string()),
        }
    }

    fn statuses(checks: &[Check]) -> Vec<(String, Status)> {
        checks.iter().map(|c| (c.name.clone(), c.status)).collect()
    }

    #[test]
    fn nothing_installed_is_information_not_a_fault() {
        let paths = Paths::under(std::path::Path::new("/nonexistent"));
        let checks = checks_for(&paths, &state(false, false));
        assert!(
            checks.iter().all(|c| c.status == Status::Info),
            "{checks:?}"
        );
        assert!(checks[0].next.as_deref().unwrap().contains("modprobe uhid"));
    }

    #[test]
    fn an_installed_key_that_is_not_running_fails_and_a_running_one_passes() {
        let paths = Paths::under(std::path::Path::new("/nonexistent"));
        let stopped = checks_for(&paths, &state(true, false));
        assert_eq!(
            statuses(&stopped),
            vec![
                ("uhid access".to_string(), Status::Pass),
                ("udev rule".to_string(), Status::Pass),
                ("login service".to_string(), Status::Pass),
                ("key device".to_string(), Status::Fail),
            ]
        );
        let running = checks_for(&paths, &state(true, true));
        assert!(
            running.iter().all(|c| c.status == Status::Pass),
            "{running:?}"
        );
        assert!(running[3].detail.contains("/dev/hidraw4"));
    }
}
