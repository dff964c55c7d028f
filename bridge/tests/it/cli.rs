//! The real binary.

use std::process::Command;

fn bridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
}

#[test]
fn help_teaches_with_examples() {
    let out = bridge().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Examples:") && text.contains("--tunnel-override"),
        "{text}"
    );
}

#[test]
fn public_suffix_rp_id_is_a_usage_error() {
    let out = bridge()
        .args([
            "register",
            "--rp-id",
            "co.uk",
            "--origin",
            "https://shop.co.uk",
            "--user-name",
            "a",
            "--advert-file",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public suffix"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "printed once: {err}");
}

#[test]
fn advert_timeout_exit_code_and_qr_file() {
    let dir = tempfile::tempdir().unwrap();
    let qr = dir.path().join("qr.txt");
    let out = bridge()
        .args([
            "-q",
            "sign-in",
            "--rp-id",
            "example.com",
            "--advert-timeout",
            "0.3",
            "--no-link",
        ])
        .arg("--advert-file")
        .arg(dir.path().join("adverts"))
        .arg("--qr-file")
        .arg(&qr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(std::fs::read_to_string(&qr).unwrap().starts_with("FIDO:/"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no advert matched this QR code in 300 ms")
    );
}

#[test]
fn phones_forget_unknown_is_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bridge()
        .arg("--links-file")
        .arg(dir.path().join("l.json"))
        .args(["phones", "forget", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_challenge_and_credential_ids_beginning_with_a_hyphen_are_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = bridge()
        .args([
            "-q",
            "sign-in",
            "--rp-id",
            "example.com",
            "--challenge",
            "-Uab_AAECAwQFBgcICQoLDA",
            "--allow",
            "-AID",
            "--allow=-BAU",
            "--advert-timeout",
            "300ms",
            "--no-link",
        ])
        .arg("--advert-file")
        .arg(dir.path().join("adverts"))
        .arg("--qr-file")
        .arg(dir.path().join("qr.txt"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the sign-in ran and timed out: {err}"
    );
    assert!(err.contains("no advert matched"), "{err}");
}

/// A sign-in that can only time out (nobody advertises), with the QR URL in a file.
fn waiting_sign_in(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    bridge()
        .args(extra)
        .args([
            "sign-in",
            "--rp-id",
            "example.com",
            "--advert-timeout",
            "300ms",
            "--no-link",
        ])
        .arg("--advert-file")
        .arg(dir.join("adverts"))
        .arg("--qr-file")
        .arg(dir.join("qr.txt"))
        .output()
        .unwrap()
}

#[test]
fn an_error_with_a_cause_prints_it_once() {
    let out = bridge()
        .args(["register", "--options", "/nonexistent/options.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn unusable_outputs_and_relays_are_refused_before_the_qr_code_shows() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, std::path::PathBuf, &str); 4] = [
        (
            "--out",
            dir.path().join("missing/result.json"),
            "does not exist",
        ),
        (
            "--qr-png",
            dir.path().join("missing/qr.png"),
            "does not exist",
        ),
        ("--out", dir.path().to_path_buf(), "is a folder"),
        ("--tunnel-override", "http://relay.example".into(), "ws://"),
    ];
    for (flag, value, words) in cases {
        let out = bridge()
            .args(["register", "--rp-id", "example.com", "--user-name", "a"])
            .args(["--advert-timeout", "5s"])
            .arg("--advert-file")
            .arg(dir.path().join("adverts"))
            .arg("--qr-file")
            .arg(dir.path().join("qr.txt"))
            .arg(flag)
            .arg(&value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value:?}: {err}");
        assert!(err.contains(words), "{flag}: {err}");
        assert!(
            !dir.path().join("qr.txt").exists(),
            "{flag}: no QR code may be shown before the check"
        );
    }
}

#[test]
fn events_json_is_json_lines_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = waiting_sign_in(dir.path(), &["--events", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(events[0]["event"], "phase", "{err}");
    assert!(events.iter().any(|e| e["event"] == "qr_code"), "{err}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error", "{err}");
    assert_eq!(last["exit_code"], 3);
    assert_eq!(last["phase"], "awaiting_advert");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("no advert matched"),
        "{last}"
    );
}

#[test]
fn no_colour_off_a_terminal_and_quiet_keeps_the_qr_code() {
    let dir = tempfile::tempdir().unwrap();
    // stderr is a pipe here: no ANSI codes by default, the QR code in plain blocks.
    let out = waiting_sign_in(dir.path(), &["-q"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\u{1b}'),
        "ANSI codes off a terminal: {err:?}"
    );
    assert!(
        err.contains('█') && err.contains("FIDO:/"),
        "-q keeps the QR: {err}"
    );
    assert!(
        !err.contains("waiting for the phone"),
        "-q hides progress: {err}"
    );
    // --color always forces colour; NO_COLOR does not override an explicit flag.
    let out = bridge()
        .env("NO_COLOR", "1")
        .args(["--color", "always"])
        .args([
            "sign-in",
            "--rp-id",
            "example.com",
            "--advert-timeout",
            "200ms",
            "--no-link",
        ])
        .arg("--advert-file")
        .arg(dir.path().join("adverts"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("\u{1b}[30;47m"));
}

#[test]
fn completions_and_a_manual_page() {
    let out = bridge().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hybrid-bridge") && text.contains("sign-in"),
        "{text}"
    );
    let out = bridge().arg("man").output().unwrap();
    assert!(out.status.success());
    let roff = String::from_utf8_lossy(&out.stdout);
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH hybrid-bridge"),
        "{roff}"
    );
}

#[test]
fn help_names_values_and_groups_flags() {
    let out = bridge().args(["sign-in", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for words in [
        "--advert-timeout <DURATION>",
        "--advert-file <FILE>",
        "--tunnel-override <URL>",
        "Timeouts:",
        "Relay:",
        "QR code:",
    ] {
        assert!(text.contains(words), "{words} missing from:\n{text}");
    }
}

#[test]
fn the_key_without_uhid_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = bridge()
        .args(["key", "--no-window", "--advert-file"])
        .arg(dir.path().join("adverts"))
        .arg("--uhid")
        .arg(dir.path().join("uhid"))
        .env("HOME", dir.path())
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("sudo modprobe uhid"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "printed once: {err}");
}

#[test]
fn key_status_says_it_is_not_running_and_which_phone_it_would_ask() {
    let dir = tempfile::tempdir().unwrap();
    let out = bridge()
        .args(["key", "status"])
        .env("HOME", dir.path())
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .arg("--links-file")
        .arg(dir.path().join("links.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("key: not running"), "{text}");
    assert!(text.contains("phone: a QR code for each request"), "{text}");
}

#[test]
fn key_help_teaches_the_three_commands() {
    let out = bridge().args(["key", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "hybrid-bridge key install",
        "hybrid-bridge key --no-window",
        "hybrid-bridge key status",
        "ssh-keygen -t ecdsa-sk",
        "hmac-secret",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[test]
fn the_key_says_whether_it_shows_a_window_or_the_terminal_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = bridge();
        c.args(["key", "--advert-file"])
            .arg(dir.path().join("adverts"))
            .arg("--uhid")
            .arg(dir.path().join("uhid"))
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[]);
    assert!(
        err.contains("no display (neither WAYLAND_DISPLAY nor DISPLAY is set); showing QR codes and stages on this terminal"),
        "{err}"
    );
    let missing = dir.path().join("no-such-window");
    let err = run(&[
        ("DISPLAY", ":99"),
        ("HYBRID_BRIDGE_WINDOW", missing.to_str().unwrap()),
    ]);
    assert!(
        err.contains("the window cannot open: cannot run") && err.contains("on this terminal"),
        "{err}"
    );
    let fine = dir.path().join("window");
    std::fs::write(&fine, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fine, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = run(&[
        ("DISPLAY", ":99"),
        ("HYBRID_BRIDGE_WINDOW", fine.to_str().unwrap()),
    ]);
    assert!(err.contains("each request opens a window"), "{err}");
}
