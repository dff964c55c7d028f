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
            "com",
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
