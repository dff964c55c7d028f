//! The real `phone-sim` binary: help, store commands, a full scan session, the terminal
//! prompt, and a log guard (no secret hex in a debug log of a whole sign-in).

use std::process::Stdio;

use hybrid_protocol::ctap::Status;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_phone-sim");

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn help_explains_every_mode() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for mode in ["scan", "linked", "credentials", "links", "Examples:"] {
        assert!(text.contains(mode), "{mode} missing from --help:\n{text}");
    }
    for (mode, needle) in [
        ("scan", "--qr-image"),
        ("scan", "--fault"),
        ("scan", "--drop"),
        ("linked", "--sessions"),
        ("credentials", "delete"),
        ("links", "revoke"),
    ] {
        let out = run(&[mode, "--help"]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains(needle),
            "{needle} missing from {mode} --help:\n{text}"
        );
    }
}

#[test]
fn store_commands_and_corrupt_store() {
    let f = files();
    let store = f.store.to_str().unwrap();
    let out = run(&["--store", store, "credentials", "list"]);
    assert!(
        !out.status.success(),
        "a missing store is not created by list"
    );
    phone_sim::Store::open_or_create(&f.store, &mut rand_core::OsRng).unwrap();
    let out = run(&["--store", store, "credentials", "list"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = run(&["--store", store, "links", "revoke", "00"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no link has the ID"));
    std::fs::write(&f.store, b"{\"version\":1,").unwrap();
    let out = run(&["--store", store, "credentials", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("phone.json") && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(std::fs::read(&f.store).unwrap(), b"{\"version\":1,");
}

/// How the scripted desktop leaves once it has read the phone's answer.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// The hybrid shutdown message, then it reads until the phone closes.
    Shutdown,
    /// A WebSocket close frame and no shutdown: the relay tells the phone its peer went away.
    WebSocketClose,
    /// The TCP stream dropped with no close frame: the relay notices and tells the phone.
    TcpDrop,
    /// The phone's own stream to the relay ends (no close frame, no shutdown): a proxy in
    /// front of the relay drops the phone's connection the moment the desktop has the answer.
    PhoneStreamEnds,
}

/// Runs `phone-sim scan` against a relay while the scripted desktop registers a passkey and
/// leaves with a shutdown message.
async fn scan_session(
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> (Status, String, String, Files, Desktop) {
    let (status, out, f, desktop) = scan_session_leaving(Leave::Shutdown, extra, stdin).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    (status, stdout, stderr, f, desktop)
}

/// Like [`scan_session`], leaving as `leave` says; returns the phone's whole output.
async fn scan_session_leaving(
    leave: Leave,
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> (Status, std::process::Output, Files, Desktop) {
    let relay = relay().await;
    let url = relay.ws_url();
    let (cut, phone_url) = match leave {
        Leave::PhoneStreamEnds => {
            let (cut, proxy, url) = cutting_proxy(relay.addr()).await;
            (Some((cut, proxy)), url)
        }
        _ => (None, url.clone()),
    };
    let f = files();
    let desktop = Desktop::new(true);
    let mut args = vec![
        "--store".to_string(),
        f.store.display().to_string(),
        "scan".into(),
        "--qr".into(),
        desktop.qr.to_url(),
        "--tunnel".into(),
        phone_url,
        "--medium-file".into(),
        f.adverts.display().to_string(),
        "--interval-ms".into(),
        "20".into(),
        "--timeout".into(),
        "10".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).await.unwrap();
    }
    drop(input);
    let mut ch = desktop.open(&url, &f.adverts).await;
    let (status, _) = ch
        .ctap(MC, &mc_request("example.com", b"user", true).to_cbor())
        .await
        .unwrap();
    match leave {
        Leave::Shutdown => {
            ch.shutdown().await;
        }
        Leave::WebSocketClose => {
            ch.ws.close(None).await.unwrap();
        }
        Leave::TcpDrop => drop(ch),
        Leave::PhoneStreamEnds => {
            let (cut, proxy) = cut.expect("a proxy for this way of leaving");
            cut.send(()).unwrap();
            // The phone's stream is gone before the desktop's socket is.
            proxy.await.unwrap();
            drop(ch);
        }
    }
    let out = tokio::time::timeout(STEP, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (status, out, f, desktop)
}

/// A TCP proxy in front of the relay at `relay`: copies bytes both ways until the returned
/// sender fires, then drops both streams (the phone sees its stream end without a close frame);
/// the task ends once they are dropped.
async fn cutting_proxy(
    relay: std::net::SocketAddr,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    String,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // phone-sim opens one connection per QR session.
        let (mut phone, _) = listener.accept().await.unwrap();
        let mut upstream = tokio::net::TcpStream::connect(relay).await.unwrap();
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut phone, &mut upstream) => {}
            _ = rx => {}
        }
    });
    (tx, task, format!("ws://{addr}"))
}

/// Once the phone has sent its answer, the desktop leaving in any way ends the session as a
/// success: phone-sim exits 0 and says what it did.
#[tokio::test]
async fn a_desktop_leaving_after_the_answer_without_shutdown_is_a_success() {
    for leave in [
        Leave::WebSocketClose,
        Leave::TcpDrop,
        Leave::PhoneStreamEnds,
    ] {
        let (status, out, f, _) = scan_session_leaving(leave, &["--no-link"], None).await;
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(status, Status::Ok, "{leave:?}");
        assert_eq!(out.status.code(), Some(0), "{leave:?}: {stderr}");
        assert!(
            stdout.contains("created a credential for example.com"),
            "{leave:?}: {stdout}"
        );
        assert!(!stderr.contains("phone-sim:"), "{leave:?}: {stderr}");
        assert_eq!(
            phone_sim::Store::load(&f.store)
                .unwrap()
                .credentials()
                .len(),
            1,
            "{leave:?}"
        );
    }
}

#[tokio::test]
async fn scan_with_the_binary_and_no_secrets_in_the_log() {
    let (status, stdout, stderr, f, desktop) =
        scan_session(&["--attestation", "packed"], None).await;
    assert_eq!(status, Status::Ok);
    assert!(
        stdout.contains("created a credential for example.com"),
        "{stdout}"
    );
    // The request asked for a discoverable credential: the phone says it made a passkey.
    assert!(stdout.contains("kind: discoverable (a passkey"), "{stdout}");
    assert!(stdout.contains("linked: link "), "{stdout}");
    let store = phone_sim::Store::load(&f.store).unwrap();
    let mut secrets = vec![
        hex::encode(store.root_secret().expose()),
        hex::encode(desktop.qr.secret.expose()),
        hex::encode(store.identity_key().to_bytes().as_ref()),
    ];
    let cred = &store.credentials()[0];
    let raw = serde_json::to_value(cred).unwrap();
    secrets.push(raw["private_key"].as_str().unwrap().to_string());
    secrets.push(raw["prf_secret"].as_str().unwrap().to_string());
    let link = &store.links()[0];
    let mut link_id = [0u8; 8];
    hex::decode_to_slice(&link.link_id, &mut link_id).unwrap();
    secrets.push(hex::encode(store.link_secret(&link_id).unwrap().expose()));
    assert!(!stderr.is_empty());
    for s in secrets {
        assert!(
            !stderr.to_lowercase().contains(&s[..16]),
            "secret {}… in the log:\n{stderr}",
            &s[..8]
        );
    }
    assert!(
        !stderr.contains(" WARN ") && !stderr.contains("ERROR"),
        "{stderr}"
    );
    let out = run(&["--store", f.store.to_str().unwrap(), "credentials", "list"]);
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("example.com") && list.contains("discoverable"),
        "{list}"
    );
    let id = &cred.id[..6];
    let out = run(&[
        "--store",
        f.store.to_str().unwrap(),
        "credentials",
        "delete",
        id,
    ]);
    assert!(out.status.success());
    assert!(phone_sim::Store::load(&f.store)
        .unwrap()
        .credentials()
        .is_empty());
    let out = run(&["--store", f.store.to_str().unwrap(), "links", "list"]);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains(&link.link_id));
}

#[tokio::test]
async fn prompt_reads_the_answer_from_the_terminal() {
    let (status, stdout, stderr, f, _) =
        scan_session(&["--approve", "prompt", "--no-link"], Some(b"n\n")).await;
    assert_eq!(status, Status::OperationDenied);
    assert!(stderr.contains("Approve? [y/N]"), "{stderr}");
    assert!(stdout.contains("OperationDenied"), "{stdout}");
    assert!(!stdout.contains("linked"), "{stdout}");
    assert!(phone_sim::Store::load(&f.store)
        .unwrap()
        .credentials()
        .is_empty());
    let (status, _, _, f, _) = scan_session(&["--approve", "prompt"], Some(b"y\n")).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(
        phone_sim::Store::load(&f.store)
            .unwrap()
            .credentials()
            .len(),
        1
    );
}

#[test]
fn qr_from_stdin_and_bad_qr_exit_code() {
    use std::io::Write as _;
    let f = files();
    let mut child = std::process::Command::new(BIN)
        .args([
            "--store",
            f.store.to_str().unwrap(),
            "scan",
            "--qr-file",
            "-",
        ])
        .args(["--medium-file", f.adverts.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FIDO:/12x\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot use this QR code") && err.contains("not a decimal digit"),
        "{err}"
    );
    let out = run(&["scan", "--qr", "x"]);
    assert!(!out.status.success(), "a medium is required");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--advert-file"));
}

/// The RP ID, user name and display name are the desktop's choice: listing and deleting
/// credentials print them without their control characters (no screen clear, no title change).
#[test]
fn credentials_list_prints_no_control_characters_a_desktop_chose() {
    let f = files();
    let store_path = f.store.display().to_string();
    let mut store = phone_sim::Store::open_or_create(&f.store, &mut rand_core::OsRng).unwrap();
    let hostile = "example.com\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m";
    store.add_credential(phone_sim::StoredCredential {
        id: "AAAA".into(),
        rp_id: hostile.into(),
        rp_name: Some(hostile.into()),
        user_id: "dXNlcg".into(),
        user_name: Some(hostile.into()),
        user_display_name: Some(hostile.into()),
        discoverable: true,
        kind: Default::default(),
        created_at: 1,
        private_key: phone_sim::store::SecretHex::new(&[0x42; 32]),
        prf_secret: phone_sim::store::SecretHex::new(&[0x43; 32]),
    });
    store.save().unwrap();
    for args in [
        ["--store", &store_path, "credentials", "list"].as_slice(),
        ["--store", &store_path, "credentials", "delete", "AAAA"].as_slice(),
    ] {
        let shown = test_support::terminal::printed_safely(&run(args));
        assert!(shown.contains("example.com"), "{args:?}: {shown}");
    }
}
