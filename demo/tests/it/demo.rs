//! The demo binary, as the README's first command runs it: it reaches its summary, logs
//! nothing at warn or above on the happy path even at trace level, never logs the QR secret
//! or the EID key in hex, and keeps full tunnel IDs out of INFO lines.

use std::process::Command;

#[test]
fn demo_reaches_its_summary_without_warnings_or_secret_hex() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-demo"))
        .args(["-vv", "--dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("bridge runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    assert!(
        stdout.contains("all four ceremonies succeeded and verified"),
        "{stdout}"
    );
    // The relying party says which kind of credential it got, from the BE/BS flags it saw.
    assert!(stdout.contains("synced passkey (BE=1, BS=1)"), "{stdout}");
    assert!(
        stdout.contains("device-bound credential (BE=0, BS=0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&dir.path().display().to_string()),
        "the summary says where the files are"
    );
    for file in ["phone.json", "links.json", "adverts.txt"] {
        assert!(dir.path().join(file).exists(), "{file} was written");
    }
    let logs = format!("{stdout}\n{stderr}");
    for line in logs.lines() {
        assert!(
            !line.contains(" WARN ") && !line.contains(" ERROR "),
            "happy path logged: {line}"
        );
    }
    // Every QR code the demo showed: none of its secrets may appear in the logs as hex.
    let urls: Vec<&str> = logs
        .split_whitespace()
        .filter(|w| w.starts_with("FIDO:/"))
        .collect();
    assert_eq!(urls.len(), 3, "three QR ceremonies, three QR codes");
    for url in urls {
        let qr = hybrid_protocol::qr::QrCode::parse(url).unwrap();
        let lower = logs.to_lowercase();
        for (what, bytes) in [
            ("QR secret", qr.secret.expose().to_vec()),
            ("EID key", qr.secret.eid_key().expose()[..16].to_vec()),
        ] {
            assert!(
                !lower.contains(&hex::encode(&bytes)),
                "the {what} appears in the logs"
            );
        }
        let tunnel = qr.secret.tunnel_id().to_hex();
        for line in logs.lines().filter(|l| l.contains(" INFO ")) {
            assert!(
                !line.to_uppercase().contains(&tunnel),
                "a full tunnel ID at INFO: {line}"
            );
        }
    }
}

#[test]
fn the_summary_is_an_80_column_table_and_progress_shows_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-demo"))
        .arg("--dir")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && stderr.contains('█'),
        "the QR code in plain blocks, no colour codes off a terminal"
    );
    let summary = stdout
        .split("all four ceremonies succeeded and verified")
        .nth(1)
        .expect("the summary");
    for line in summary.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
        for enum_name in [
            "AwaitingAdvert",
            "Handshaking",
            "AwaitingUser",
            "Connecting",
        ] {
            assert!(!line.contains(enum_name), "a Rust enum name: {line}");
        }
    }
    let header = summary
        .lines()
        .find(|l| l.starts_with("ceremony"))
        .expect("a table header");
    assert!(
        header.contains("handshake") && header.contains("total"),
        "{header}"
    );
    for row in ["register", "sign in", "linked"] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("a {row} row in {summary}"));
        let total: f64 = line
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("a number at the end of {line:?}"));
        assert!(total > 0.0, "{line}");
    }
    // Progress lines carry milliseconds, and not all of them read 0.000.
    let stamps: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split(" s]").next())
        .collect();
    assert!(stamps.len() > 5, "{stderr}");
    for s in &stamps {
        let (_, frac) = s.trim().split_once('.').expect("a decimal stamp");
        assert_eq!(frac.len(), 3, "milliseconds in {s:?}");
    }
    assert!(stamps.iter().any(|s| s.trim() != "0.000"), "{stamps:?}");
}
