//! The native messaging host, mostly through the real binary as a browser would
//! run it: framing and its limits, bad messages, the RP ID check before any QR code, cancel
//! and stdin EOF mid-ceremony, full create and get ceremonies against the scripted phone
//! behind the in-test relay (QR and linked), a site's report of a linked phone's passkey as
//! unknown, phone errors as DOMException names, and the browser manifests' install and
//! uninstall.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use base64::Engine as _;
use bridge::native_host::framing::{self, FrameError, FrameWriter};
use bridge::native_host::{CHROMIUM_EXTENSION_ID, FIREFOX_EXTENSION_ID, HOST_NAME};
use bridge::{Event, Progress as _, Recorder};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::harness::{Env, Fault, CREDENTIAL_ID, PHONE_NAME};

/// Generous bound for "promptly": a bug (waiting for a stage timeout of 60 s, or forever)
/// clearly fails it.
const PROMPT: Duration = Duration::from_secs(15);

fn binary() -> &'static str {
    option_env!("CARGO_BIN_EXE_hybrid-bridge")
        .or(option_env!("CARGO_BIN_EXE_bridge"))
        .expect("the bridge binary is built for integration tests")
}

struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    _dir: tempfile::TempDir,
}

impl Host {
    /// `native-host` with these flags (after the global `--links-file`), stderr to a file.
    fn spawn(links: &Path, flags: &[OsString]) -> Self {
        let mut cmd = Command::new(binary());
        cmd.arg("--links-file")
            .arg(links)
            .arg("native-host")
            .args(flags);
        Self::start(cmd)
    }

    fn start(mut cmd: Command) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self {
            stdin: child.stdin.take(),
            stdout: child.stdout.take().unwrap(),
            child,
            _dir: dir,
        }
    }

    /// A host with a QR-flow setup whose phone never answers (advert file nobody writes).
    fn idle() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let adverts = dir.path().join("adverts");
        std::fs::write(&adverts, "").unwrap();
        let mut h = Self::spawn(
            &dir.path().join("links.json"),
            &[
                "--advert-file".into(),
                adverts.into(),
                "--tunnel-override".into(),
                "ws://127.0.0.1:9".into(),
                "--advert-timeout".into(),
                "60".into(),
            ],
        );
        h._dir = dir;
        h
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(&framing::encode_frame(v.to_string().as_bytes()))
            .await;
    }

    /// The next message, or `None` when the host closed stdout.
    async fn recv_opt(&mut self) -> Option<Value> {
        tokio::time::timeout(PROMPT, async {
            let mut len = [0u8; 4];
            self.stdout.read_exact(&mut len).await.ok()?;
            let len = u32::from_ne_bytes(len) as usize;
            assert!(len < 1024 * 1024, "host sent a {len}-byte message");
            let mut body = vec![0; len];
            self.stdout.read_exact(&mut body).await.unwrap();
            Some(serde_json::from_slice(&body).unwrap())
        })
        .await
        .expect("the host answers promptly")
    }

    async fn recv(&mut self) -> Value {
        self.recv_opt().await.expect("a message from the host")
    }

    /// Messages up to and including the first that is not an event.
    async fn until_reply(&mut self) -> (Vec<Value>, Value) {
        let mut events = vec![];
        loop {
            let m = self.recv().await;
            if m["type"] == "event" {
                events.push(m);
            } else {
                return (events, m);
            }
        }
    }

    /// What the host logged.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stderr")).unwrap()
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    async fn exit(&mut self) -> ExitStatus {
        tokio::time::timeout(PROMPT, self.child.wait())
            .await
            .expect("the host exits promptly")
            .unwrap()
    }
}

fn assert_error(m: &Value, name: &str, code: &str) {
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(
        (m["name"].as_str(), m["code"].as_str()),
        (Some(name), Some(code)),
        "{m}"
    );
    assert!(!m["message"].as_str().unwrap_or("").is_empty(), "{m}");
}

/// The host's next message is the QR code event (the request passed every check), and the
/// host then ends cleanly at the end of its input.
async fn assert_reaches_the_qr_code(mut host: Host) {
    let m = host.recv().await;
    assert_eq!(
        (m["type"].as_str(), m["event"].as_str()),
        (Some("event"), Some("qr")),
        "{m}"
    );
    host.close_stdin();
    assert!(host.exit().await.success());
}

fn creation_options(rp_id: &str) -> Value {
    json!({
        "rp": {"id": rp_id, "name": "Example"},
        "user": {"id": "dXNlcg", "name": "alice", "displayName": "Alice"},
        "challenge": "AAECAwQFBgcICQoLDA0ODw",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "preferred"},
    })
}

fn create(id: &str, origin: &str, rp_id: &str) -> Value {
    json!({"type": "create", "id": id, "origin": origin, "options": creation_options(rp_id), "phone": null})
}

fn get(id: &str, origin: &str, rp_id: &str, phone: Option<&str>) -> Value {
    json!({"type": "get", "id": id, "origin": origin, "phone": phone,
        "options": {"rpId": rp_id, "challenge": "EBESExQVFhcYGRobHB0eHw", "userVerification": "preferred"}})
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[test]
fn framing_round_trip_and_limits() {
    let mut w = FrameWriter::new(Vec::new());
    let msg = json!({"type": "event", "id": "r1", "event": "qr", "url": "FIDO:/123"});
    w.send(&msg).unwrap();
    w.send(&json!({"type": "phones", "phones": []})).unwrap();
    let bytes = w.into_inner();
    let mut r = &bytes[..];
    let first = framing::read_frame(&mut r, framing::MAX_REQUEST)
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&first).unwrap(), msg);
    assert!(framing::read_frame(&mut r, framing::MAX_REQUEST)
        .unwrap()
        .is_some());
    assert!(framing::read_frame(&mut r, framing::MAX_REQUEST)
        .unwrap()
        .is_none());

    // Every cut of a frame is either a clean end (nothing read) or a typed truncation.
    let frame = framing::encode_frame(br#"{"type":"phones"}"#);
    for cut in 0..frame.len() {
        match framing::read_frame(&mut &frame[..cut], framing::MAX_REQUEST) {
            Ok(None) => assert_eq!(cut, 0),
            Err(FrameError::TruncatedLength { got }) => assert_eq!(got, cut),
            Err(FrameError::TruncatedBody { got, len }) => assert_eq!((got, len), (cut - 4, 17)),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // A huge length is refused from the 4 length bytes alone.
    let huge = u32::MAX.to_ne_bytes();
    assert!(matches!(
        framing::read_frame(&mut &huge[..], framing::MAX_REQUEST),
        Err(FrameError::TooLarge {
            len: 0xFFFF_FFFF,
            ..
        })
    ));
}

#[test]
fn reply_over_the_limit_becomes_an_error_with_the_same_id() {
    let mut w = FrameWriter::new(Vec::new());
    let big = json!({"type": "result", "id": "r9", "credential": {"x": "a".repeat(2 << 20)}});
    w.send(&big).unwrap();
    let bytes = w.into_inner();
    assert!(bytes.len() < 4096, "{} bytes sent", bytes.len());
    let body = framing::read_frame(&mut &bytes[..], framing::MAX_REQUEST)
        .unwrap()
        .unwrap();
    let m: Value = serde_json::from_slice(&body).unwrap();
    assert_error(&m, "UnknownError", "too_large");
    assert_eq!(m["id"], "r9");
}

#[tokio::test]
async fn a_phones_list_over_1_mib_is_refused_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("links.json");
    let many: Vec<Value> = (0..700)
        .map(|i| {
            json!({"name": format!("{i:04} {}", "p".repeat(1000)), "contact_id": "AA",
                "link_id": "0000000000000000", "link_secret": "00".repeat(32),
                "phone_public_key": "04", "tunnel_domain": "cable.ua5v.com", "linked_at": 1})
        })
        .collect();
    std::fs::write(&links, json!({"version": 1, "links": many}).to_string()).unwrap();
    let mut host = Host::spawn(&links, &[]);
    host.send(json!({"type": "phones", "id": "p1"})).await;
    let m = host.recv().await;
    assert_error(&m, "UnknownError", "too_large");
    assert_eq!(m["id"], "p1");
    std::fs::write(&links, json!({"version": 1, "links": []}).to_string()).unwrap();
    host.send(json!({"type": "phones", "id": "p2"})).await;
    assert_eq!(
        host.recv().await,
        json!({"type": "phones", "id": "p2", "phones": []})
    );
    host.close_stdin();
    assert!(host.exit().await.success());
}

#[tokio::test]
async fn truncated_length_is_a_clear_error_and_a_clean_exit() {
    let mut host = Host::idle();
    host.send_raw(&[7, 0]).await;
    host.close_stdin();
    let m = host.recv().await;
    assert_error(&m, "TypeError", "bad_request");
    assert!(
        m["message"]
            .as_str()
            .unwrap()
            .contains("message length (2 of 4 bytes)"),
        "{m}"
    );
    assert_eq!(host.exit().await.code(), Some(2));
}

#[tokio::test]
async fn truncated_body_is_a_clear_error_and_a_clean_exit() {
    let mut host = Host::idle();
    let frame = framing::encode_frame(br#"{"type":"phones","id":"x"}"#);
    host.send_raw(&frame[..10]).await;
    host.close_stdin();
    let m = host.recv().await;
    assert_error(&m, "TypeError", "bad_request");
    assert!(
        m["message"].as_str().unwrap().contains("6 of 26 bytes"),
        "{m}"
    );
    assert_eq!(host.exit().await.code(), Some(2));
}

#[tokio::test]
async fn huge_length_is_refused_at_once_without_waiting_for_the_body() {
    let mut host = Host::idle();
    // stdin stays open: the host must not wait for 4 GiB that never come.
    host.send_raw(&u32::MAX.to_ne_bytes()).await;
    let m = host.recv().await;
    assert_error(&m, "TypeError", "bad_request");
    assert!(
        m["message"].as_str().unwrap().contains("4294967295 bytes"),
        "{m}"
    );
    assert_eq!(host.exit().await.code(), Some(2));
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_host_keeps_serving() {
    let mut host = Host::idle();
    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (b"hello".to_vec(), None, "not JSON"),
        (b"\xff\xfe{}".to_vec(), None, "not JSON"),
        (vec![], None, "not JSON"),
        (b"[1,2]".to_vec(), None, "no \"type\""),
        (
            br#"{"type":"frobnicate","id":"u1"}"#.to_vec(),
            Some("u1"),
            "unknown message type",
        ),
        (
            br#"{"type":"create","id":"u2","origin":"https://example.com"}"#.to_vec(),
            Some("u2"),
            "options",
        ),
        (
            br#"{"type":"get","id":"u3","origin":"https://example.com","options":"x"}"#.to_vec(),
            Some("u3"),
            "must be an object",
        ),
        (
            br#"{"type":"phones","id":{"a":1}}"#.to_vec(),
            None,
            "\"id\" must be a string",
        ),
        (
            format!(r#"{{"type":"phones","id":"{}"}}"#, "i".repeat(500)).into_bytes(),
            None,
            "\"id\" must be a string",
        ),
    ];
    for (body, id, says) in cases {
        host.send_raw(&framing::encode_frame(&body)).await;
        let m = host.recv().await;
        assert_error(&m, "TypeError", "bad_request");
        assert_eq!(m["id"].as_str(), id, "{m}");
        assert!(
            m["message"].as_str().unwrap().contains(says),
            "{says:?} in {m}"
        );
    }
    // Malformed W3C options inside a well-formed request: TypeError too, after the RP check.
    let mut bad = create("u4", "https://example.com", "example.com");
    bad["options"]["challenge"] = "not base64!".into();
    host.send(bad).await;
    let (events, m) = host.until_reply().await;
    assert!(events.is_empty(), "{events:?}");
    assert_error(&m, "TypeError", "bad_request");
    host.send(json!({"type": "phones"})).await;
    assert_eq!(host.recv().await["type"], "phones");
    host.close_stdin();
    assert!(host.exit().await.success());
}

/// `{rpId: A, publicKey: {rpId: B}}` (both the page's own site) could be shown as A by the
/// extension and signed as B: the host refuses the wrapper before any QR code, so what is
/// checked and shown is what is signed.
#[tokio::test]
async fn options_wrapped_in_public_key_are_a_type_error_before_any_qr_code() {
    let mut host = Host::idle();
    let mut wrapped = get("w1", "https://login.example.com", "login.example.com", None);
    wrapped["options"]["publicKey"] =
        json!({"rpId": "example.com", "challenge": "EBESExQVFhcYGRobHB0eHw"});
    let mut create_wrapped = create("w2", "https://login.example.com", "login.example.com");
    create_wrapped["options"]["publicKey"] = creation_options("example.com");
    for req in [wrapped, create_wrapped] {
        let id = req["id"].clone();
        host.send(req).await;
        let m = host.recv().await;
        assert_error(&m, "TypeError", "bad_request");
        assert!(m["message"].as_str().unwrap().contains("publicKey"), "{m}");
        assert_eq!(m["id"], id);
    }
    host.close_stdin();
    assert!(host.exit().await.success());
}

#[tokio::test]
async fn rp_id_not_matching_the_origin_is_security_error_before_any_qr_code() {
    let mut host = Host::idle();
    let cases = [
        create("s1", "https://example.com", "evil.com"),
        create("s2", "https://example.com", "login.example.com"),
        create("s3", "https://example.com", "com"),
        create("s4", "http://example.com", "example.com"),
        get("s5", "https://example.com", "other.example", None),
        get("s6", "null", "example.com", None),
        get("s7", "https://shop.co.uk", "co.uk", None),
    ];
    for req in cases {
        let id = req["id"].clone();
        host.send(req).await;
        // The very next message is the error: no QR code, no other event.
        let m = host.recv().await;
        assert_error(&m, "SecurityError", m["code"].as_str().unwrap_or("?"));
        assert!(
            ["rp_id_mismatch", "insecure_origin"].contains(&m["code"].as_str().unwrap()),
            "{m}"
        );
        assert_eq!(m["id"], id);
    }
    // A cross-origin frame inside a page that is not a secure context is refused too.
    let mut framed = get("s8", "https://example.com", "example.com", None);
    framed["topOrigin"] = "http://top.example".into();
    host.send(framed).await;
    let m = host.recv().await;
    assert_error(&m, "SecurityError", "insecure_origin");
    assert_eq!(m["id"], "s8");
    // A parent domain of the origin's host is fine: this one gets as far as the QR code.
    host.send(get("ok", "https://login.example.com", "example.com", None))
        .await;
    assert_reaches_the_qr_code(host).await;
}

#[tokio::test]
async fn a_related_origin_request_passes_only_with_a_list_naming_the_origin_and_a_registrable_rp_id(
) {
    let mut host = Host::idle();
    let shop = "https://shop.example.net:8443";
    let listed = json!(["https://example.test", shop]);
    let related = |mut req: Value, origins: &Value| {
        req["relatedOrigins"] = origins.clone();
        req
    };
    let refused = [
        // Not flagged related: the RP ID must be the host or a parent of it.
        get("r1", shop, "example.test", None),
        // Flagged related, but the list does not name this origin (another port).
        related(
            get("r2", "https://shop.example.net", "example.test", None),
            &listed,
        ),
        related(create("r3", shop, "example.test"), &json!([])),
        // A public suffix is refused whatever the list says.
        related(get("r4", shop, "co.uk", None), &json!([shop])),
        related(create("r5", shop, "test"), &json!([shop])),
        related(get("r6", shop, "github.io", None), &json!([shop])),
        // An IP address as the RP ID, and a page that is not a secure context.
        related(get("r7", shop, "127.0.0.1", None), &json!([shop])),
        related(
            get("r8", "http://shop.example.net", "example.test", None),
            &json!(["http://shop.example.net"]),
        ),
        // More than five sites before the origin.
        related(
            get("r9", shop, "example.test", None),
            &json!([
                "https://a.com",
                "https://b.com",
                "https://c.com",
                "https://d.com",
                "https://e.com",
                shop
            ]),
        ),
    ];
    for req in refused {
        let id = req["id"].clone();
        host.send(req).await;
        let m = host.recv().await;
        assert_eq!(m["type"], "error", "{id}: {m}");
        assert_eq!(m["name"], "SecurityError", "{id}: {m}");
        assert_eq!(m["id"], id);
    }
    // A list that is not an array of strings is no request the host reads.
    host.send(related(
        get("r10", shop, "example.test", None),
        &json!("https://shop.example.net:8443"),
    ))
    .await;
    let m = host.recv().await;
    assert_eq!(
        (m["type"].as_str(), m["id"].as_str()),
        (Some("error"), Some("r10")),
        "{m}"
    );
    assert_ne!(m["name"], "SecurityError", "{m}");
    // The phones check before the overlay: the same rules.
    host.send(json!({"type": "phones", "id": "p1", "origin": shop, "rpId": "example.test", "relatedOrigins": listed}))
        .await;
    let m = host.recv().await;
    assert_eq!(
        (m["type"].as_str(), m["id"].as_str()),
        (Some("phones"), Some("p1")),
        "{m}"
    );
    for (id, rp, origins) in [
        ("p2", "co.uk", json!([shop])),
        ("p3", "example.test", json!(["https://example.test"])),
    ] {
        host.send(json!({"type": "phones", "id": id, "origin": shop, "rpId": rp, "relatedOrigins": origins}))
            .await;
        let m = host.recv().await;
        assert_error(&m, "SecurityError", "rp_id_mismatch");
        assert_eq!(m["id"], id);
    }
    // Listed, with a registrable RP ID: the ceremony gets as far as the QR code.
    host.send(related(create("ok", shop, "example.test"), &listed))
        .await;
    assert_reaches_the_qr_code(host).await;
}

#[tokio::test]
async fn cancel_ends_the_ceremony_with_not_allowed_error_promptly() {
    let mut host = Host::idle();
    host.send(create("c1", "https://example.com", "example.com"))
        .await;
    let qr = host.recv().await;
    assert_eq!(qr["event"], "qr", "{qr}");
    assert_eq!(qr["id"], "c1");
    assert!(qr["url"].as_str().unwrap().starts_with("FIDO:/"), "{qr}");
    assert!(qr["svg"].as_str().unwrap().contains("<svg"), "{qr}");
    // One ceremony at a time.
    host.send(get("c2", "https://example.com", "example.com", None))
        .await;
    assert_error(&host.recv().await, "NotAllowedError", "busy");
    // Cancelling another id does nothing; cancelling ours ends it (the advert wait is 60 s).
    host.send(json!({"type": "cancel", "id": "other"})).await;
    host.send(json!({"type": "cancel", "id": "c1"})).await;
    let m = host.recv().await;
    assert_error(&m, "NotAllowedError", "cancelled");
    assert_eq!(m["id"], "c1");
    // The host serves the next request.
    host.send(get("c3", "https://example.com", "example.com", None))
        .await;
    assert_eq!(host.recv().await["event"], "qr");
    host.send(json!({"type": "cancel"})).await;
    assert_error(&host.recv().await, "NotAllowedError", "cancelled");
    host.close_stdin();
    assert!(host.exit().await.success());
}

#[tokio::test]
async fn stdin_eof_mid_ceremony_ends_the_process_promptly() {
    let mut host = Host::idle();
    host.send(create("e1", "https://example.com", "example.com"))
        .await;
    assert_eq!(host.recv().await["event"], "qr");
    host.close_stdin();
    assert!(host.exit().await.success());
    assert_eq!(host.recv_opt().await, None);
}

fn env_flags(env: &Env) -> Vec<OsString> {
    let relay = env.config.tunnel.tunnel_override.clone().unwrap();
    let mut f: Vec<OsString> = vec!["--advert-file".into(), env.adverts.clone().into()];
    for (k, v) in [
        ("--tunnel-override", relay.as_str()),
        ("--advert-timeout", "10"),
        ("--connect-timeout", "10"),
        ("--handshake-timeout", "10"),
        ("--user-timeout", "10"),
        ("--linger", "500ms"),
    ] {
        f.push(k.into());
        f.push(v.into());
    }
    f
}

/// Runs one QR ceremony: the scripted phone "scans" the QR event's URL.
async fn qr_ceremony(host: &mut Host, env: &Env, req: Value) -> (Vec<Value>, Value) {
    host.send(req).await;
    let qr = host.recv().await;
    assert_eq!(qr["event"], "qr", "{qr}");
    let recorder = Recorder::default();
    recorder.on_event(
        &Event::QrCode {
            url: qr["url"].as_str().unwrap().to_string(),
        },
        Duration::ZERO,
    );
    env.phone_scans_qr(&recorder, &[]).await;
    let (mut events, reply) = host.until_reply().await;
    events.insert(0, qr);
    (events, reply)
}

fn event_names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

fn client_data(credential: &Value) -> Value {
    serde_json::from_slice(&b64(credential["response"]["clientDataJSON"]
        .as_str()
        .unwrap()))
    .unwrap()
}

#[tokio::test]
async fn create_and_get_through_the_host_with_qr_and_linked_phone() {
    let env = Env::new(Fault::GoodLink).await;
    let mut flags = env_flags(&env);
    flags.push("-vv".into());
    let mut host = Host::spawn(env.links.path(), &flags);
    let origin = "https://login.example.com";

    let (events, m) = qr_ceremony(&mut host, &env, create("r1", origin, "example.com")).await;
    let qr_url = events[0]["url"].as_str().unwrap().to_string();
    assert_eq!(m["type"], "result", "{m}");
    assert_eq!(m["id"], "r1");
    assert_eq!(
        event_names(&events),
        [
            "qr",
            "advert",
            "connecting",
            "connected",
            "waiting",
            "linked"
        ]
    );
    assert!(events.iter().all(|e| e["id"] == "r1"));
    let cred = &m["credential"];
    assert_eq!(b64(cred["rawId"].as_str().unwrap()), CREDENTIAL_ID);
    assert_eq!(cred["type"], "public-key");
    assert!(cred["response"]["attestationObject"].is_string());
    let cd = client_data(cred);
    assert_eq!(
        (cd["type"].as_str(), cd["origin"].as_str()),
        (Some("webauthn.create"), Some(origin))
    );
    assert_eq!(cd["challenge"], "AAECAwQFBgcICQoLDA0ODw");

    host.send(json!({"type": "phones", "id": "p"})).await;
    let phones = host.recv().await;
    assert_eq!(phones["phones"][0]["name"], PHONE_NAME, "{phones}");
    let phone_id = phones["phones"][0]["id"].as_str().unwrap().to_string();

    let (_, m) = qr_ceremony(&mut host, &env, get("g1", origin, "example.com", None)).await;
    assert_eq!(m["type"], "result", "{m}");
    let cred = &m["credential"];
    assert_eq!(b64(cred["id"].as_str().unwrap()), CREDENTIAL_ID);
    assert_eq!(
        b64(cred["response"]["userHandle"].as_str().unwrap()),
        b"user"
    );
    assert_eq!(client_data(cred)["type"], "webauthn.get");

    // From a cross-origin frame: clientDataJSON says so, with the top-level origin, in the
    // order a browser writes it.
    let mut framed = get("g0", origin, "example.com", None);
    framed["topOrigin"] = "https://top.example/".into();
    let (_, m) = qr_ceremony(&mut host, &env, framed).await;
    assert_eq!(m["type"], "result", "{m}");
    let raw = b64(m["credential"]["response"]["clientDataJSON"]
        .as_str()
        .unwrap());
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        format!(
            r#"{{"type":"webauthn.get","challenge":"EBESExQVFhcYGRobHB0eHw","origin":"{origin}","crossOrigin":true,"topOrigin":"https://top.example"}}"#
        )
    );
    // A topOrigin equal to the origin is a top-level page.
    let mut same = get("g00", origin, "example.com", None);
    same["topOrigin"] = origin.into();
    let (_, m) = qr_ceremony(&mut host, &env, same).await;
    assert_eq!(client_data(&m["credential"])["crossOrigin"], false, "{m}");
    assert!(client_data(&m["credential"]).get("topOrigin").is_none());

    // The linked phone: no QR code at all.
    host.send(get("g2", origin, "example.com", Some(&phone_id)))
        .await;
    let (events, m) = host.until_reply().await;
    assert_eq!(m["type"], "result", "{m}");
    assert_eq!(
        event_names(&events),
        ["contacting", "advert", "connected", "waiting"]
    );
    assert_eq!(client_data(&m["credential"])["origin"], origin);
    assert!(env.paths().iter().any(|p| p.starts_with("/cable/contact/")));

    // A draining relay (503, Retry-After: 1): the overlay hears of the wait, then the phone.
    env.relay_draining_for(1, Some("1"));
    host.send(get("g2b", origin, "example.com", Some(&phone_id)))
        .await;
    let (events, m) = host.until_reply().await;
    assert_eq!(m["type"], "result", "{m}");
    assert_eq!(
        event_names(&events),
        ["contacting", "relay-busy", "advert", "connected", "waiting"]
    );
    assert_eq!(events[1]["retryInMs"], 1000, "{}", events[1]);
    assert_eq!(events[1]["id"], "g2b");

    // Registration with the linked phone works the same way.
    let mut req = create("r2", origin, "example.com");
    req["phone"] = phone_id.clone().into();
    host.send(req).await;
    let (events, m) = host.until_reply().await;
    assert_eq!(m["type"], "result", "{m}");
    assert_eq!(
        event_names(&events),
        ["contacting", "advert", "connected", "waiting"]
    );
    assert_eq!(client_data(&m["credential"])["type"], "webauthn.create");

    // An unknown phone fails before anything happens.
    host.send(get("g3", origin, "example.com", Some("no such phone")))
        .await;
    let (events, m) = host.until_reply().await;
    assert!(events.is_empty());
    assert_error(&m, "NotAllowedError", "unknown_phone");

    host.close_stdin();
    assert!(host.exit().await.success());
    // The QR code carries the session secret: it goes to the extension only, never into
    // the log, even at trace level.
    let log = host.stderr();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging is on"
    );
    let digits = qr_url.trim_start_matches("FIDO:/");
    assert!(
        !log.contains("FIDO:/") && !log.contains(&digits[..40]),
        "QR secret in the log"
    );
}

/// `unknown-credential` (a site's `signalUnknownCredential`) names the linked phone that
/// made or used that passkey through this computer, once, and `phones` and `phones list`
/// show the report; the origin and RP ID are checked as for a ceremony.
#[tokio::test]
async fn a_passkey_reported_unknown_is_recorded_on_the_linked_phone_that_holds_it() {
    let env = Env::new(Fault::GoodLink).await;
    let mut host = Host::spawn(env.links.path(), &env_flags(&env));
    let origin = "https://login.example.com";
    let unknown = |id: &str, origin: &str, rp_id: &str, cred: &[u8]| {
        json!({"type": "unknown-credential", "id": id, "origin": origin, "rpId": rp_id,
            "credentialId": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cred)})
    };

    // Before any ceremony: no phone holds it.
    host.send(unknown("s0", origin, "example.com", &CREDENTIAL_ID))
        .await;
    let m = host.recv().await;
    assert_eq!(
        m,
        json!({"type": "unknown-credential", "id": "s0", "phone": null})
    );

    // A QR registration links the phone, which remembers the passkey.
    let (_, m) = qr_ceremony(&mut host, &env, create("r1", origin, "example.com")).await;
    assert_eq!(m["type"], "result", "{m}");
    let stored = env.links.get(PHONE_NAME).unwrap();
    assert_eq!(
        stored.credentials,
        [bridge::links::credential_key("example.com", &CREDENTIAL_ID)]
    );
    assert!(
        !std::fs::read_to_string(env.links.path())
            .unwrap()
            .contains(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(CREDENTIAL_ID)),
        "the credential ID itself is not stored"
    );

    // Another ID, or the same ID under another RP ID of this origin: not this phone's.
    host.send(unknown("s1", origin, "example.com", b"some other id"))
        .await;
    assert_eq!(host.recv().await["phone"], Value::Null);
    host.send(unknown("s2", origin, "login.example.com", &CREDENTIAL_ID))
        .await;
    assert_eq!(host.recv().await["phone"], Value::Null);
    // Another site's RP ID, an insecure origin, a malformed ID: refused, nothing recorded.
    host.send(unknown("s3", origin, "example.org", &CREDENTIAL_ID))
        .await;
    assert_error(&host.recv().await, "SecurityError", "rp_id_mismatch");
    host.send(unknown(
        "s4",
        "http://example.com",
        "example.com",
        &CREDENTIAL_ID,
    ))
    .await;
    assert_error(&host.recv().await, "SecurityError", "insecure_origin");
    let mut padded = unknown("s5", origin, "example.com", &CREDENTIAL_ID);
    padded["credentialId"] = "AAECAw==".into();
    host.send(padded).await;
    assert_error(&host.recv().await, "TypeError", "bad_request");
    assert!(env
        .links
        .get(PHONE_NAME)
        .unwrap()
        .reported_unknown
        .is_empty());

    // The site reports it: the phone is named, once.
    host.send(unknown("s6", origin, "example.com", &CREDENTIAL_ID))
        .await;
    let m = host.recv().await;
    assert_eq!(
        m,
        json!({"type": "unknown-credential", "id": "s6", "phone": PHONE_NAME})
    );
    host.send(unknown("s7", origin, "example.com", &CREDENTIAL_ID))
        .await;
    assert_eq!(host.recv().await["phone"], Value::Null);
    host.send(json!({"type": "phones", "id": "p"})).await;
    let phones = host.recv().await;
    let reports = &phones["phones"][0]["reportedUnknown"];
    assert_eq!(reports[0]["rpId"], "example.com", "{phones}");
    assert!(
        reports[0]["at"].as_u64().unwrap() > 1_700_000_000,
        "{phones}"
    );

    // A sign-in with the linked phone remembers the passkey again.
    host.send(get("g1", origin, "example.com", Some(PHONE_NAME)))
        .await;
    let (_, m) = host.until_reply().await;
    assert_eq!(m["type"], "result", "{m}");
    host.send(unknown("s8", origin, "example.com", &CREDENTIAL_ID))
        .await;
    assert_eq!(host.recv().await["phone"], PHONE_NAME);
    host.close_stdin();
    assert!(host.exit().await.success());

    // `phones list` tells the person under the phone's line.
    let out = std::process::Command::new(binary())
        .arg("--links-file")
        .arg(env.links.path())
        .args(["phones", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with(PHONE_NAME), "{text}");
    for l in &lines[1..] {
        assert!(
            l.starts_with("  example.com reported a passkey on this phone unknown on ")
                && l.ends_with("; delete it in the phone's passkey manager"),
            "{text}"
        );
    }

    // Once dealt with on the phone, `phones dismiss` clears them: another site's name
    // clears nothing, the site's own clears both.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(binary())
            .arg("--links-file")
            .arg(env.links.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (_, said) = cli(&["phones", "dismiss", PHONE_NAME, "--site", "example.org"]);
    assert!(
        said.starts_with("dismissed 0 reports from example.org"),
        "{said}"
    );
    assert_eq!(cli(&["phones", "list"]).0.lines().count(), 3);
    let (_, said) = cli(&["phones", "dismiss", PHONE_NAME, "--site", "example.com"]);
    assert!(
        said.starts_with("dismissed 2 reports from example.com"),
        "{said}"
    );
    let (text, _) = cli(&["phones", "list"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(env
        .links
        .get(PHONE_NAME)
        .unwrap()
        .reported_unknown
        .is_empty());
}

#[tokio::test]
async fn phone_errors_are_the_dom_exceptions_a_browser_throws() {
    for (status, name, code) in [
        (0x19, "InvalidStateError", "excluded"),
        (0x26, "NotSupportedError", "unsupported_algorithm"),
        (0x27, "NotAllowedError", "denied"),
    ] {
        let env = Env::new(Fault::CtapStatus(status)).await;
        let mut host = Host::spawn(env.links.path(), &env_flags(&env));
        let (_, m) = qr_ceremony(
            &mut host,
            &env,
            create("x", "https://example.com", "example.com"),
        )
        .await;
        assert_error(&m, name, code);
        assert_eq!(m["id"], "x");
        host.close_stdin();
        assert!(host.exit().await.success());
    }
}

fn run_cli(home: &Path, args: &[&OsString]) -> std::process::Output {
    std::process::Command::new(binary())
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .args(args)
        .output()
        .unwrap()
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

#[tokio::test]
async fn install_writes_manifests_naming_only_our_extension_and_uninstall_removes_them() {
    let home = tempfile::tempdir().unwrap();
    let ud = home.path().join("chromium-profile");
    let links = home.path().join("links.json");
    let adverts = home.path().join("adverts");
    let args = [
        os("browser"),
        os("install"),
        os("--chromium-user-data-dir"),
        os(&ud),
        os("--"),
        os("--links-file"),
        os(&links),
        os("--advert-file"),
        os(&adverts),
        os("--tunnel-override"),
        os("ws://127.0.0.1:9"),
    ];
    let out = run_cli(home.path(), &args.iter().collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chromium_origin = format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/");
    let dirs: [(PathBuf, bool); 4] = [
        (
            home.path().join(".config/chromium/NativeMessagingHosts"),
            false,
        ),
        (
            home.path()
                .join(".config/google-chrome/NativeMessagingHosts"),
            false,
        ),
        (home.path().join(".mozilla/native-messaging-hosts"), true),
        (ud.join("NativeMessagingHosts"), false),
    ];
    for (dir, firefox) in &dirs {
        let manifest = dir.join(format!("{HOST_NAME}.json"));
        let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        assert_eq!(m["name"], HOST_NAME);
        assert_eq!(m["type"], "stdio");
        if *firefox {
            assert_eq!(m["allowed_extensions"], json!([FIREFOX_EXTENSION_ID]));
            assert!(m.get("allowed_origins").is_none());
        } else {
            assert_eq!(m["allowed_origins"], json!([chromium_origin]));
            assert!(m.get("allowed_extensions").is_none());
        }
        let launcher = PathBuf::from(m["path"].as_str().unwrap());
        assert!(
            launcher.is_absolute() && launcher.starts_with(dir),
            "{launcher:?}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&launcher).unwrap().permissions().mode() & 0o111,
            0o111
        );
    }
    // The launcher is what a browser runs: with the browser's own argument appended, it
    // serves with the installed settings (the links file here).
    std::fs::write(&links, json!({"version": 1, "links": []}).to_string()).unwrap();
    let launcher = dirs[3].0.join(format!("{HOST_NAME}.sh"));
    let mut cmd = Command::new(&launcher);
    cmd.arg(&chromium_origin);
    let mut host = Host::start(cmd);
    host.send(json!({"type": "phones", "id": "l"})).await;
    assert_eq!(
        host.recv().await,
        json!({"type": "phones", "id": "l", "phones": []})
    );
    host.close_stdin();
    assert!(host.exit().await.success());
    // Firefox appends the manifest path and the extension id.
    let mut cmd = Command::new(dirs[2].0.join(format!("{HOST_NAME}.sh")));
    cmd.arg(dirs[2].0.join(format!("{HOST_NAME}.json")))
        .arg(FIREFOX_EXTENSION_ID);
    let mut host = Host::start(cmd);
    host.send(json!({"type": "phones"})).await;
    assert_eq!(host.recv().await["type"], "phones");
    host.close_stdin();
    assert!(host.exit().await.success());

    let un = [
        os("browser"),
        os("uninstall"),
        os("--chromium-user-data-dir"),
        os(&ud),
    ];
    let out = run_cli(home.path(), &un.iter().collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("removed ")
            .count(),
        8
    );
    for (dir, _) in &dirs {
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "{dir:?} is empty"
        );
    }
}

#[test]
fn install_only_into_a_user_data_dir_and_refuse_bad_host_flags() {
    let home = tempfile::tempdir().unwrap();
    let ud = home.path().join("ud");
    let base = [
        os("browser"),
        os("install"),
        os("--chromium-user-data-dir"),
        os(&ud),
        os("--only-user-data-dir"),
        os("--"),
    ];
    for (flags, says) in [
        (vec!["--no-such-flag"], "--no-such-flag"),
        (vec!["--advert-timeout", "nan"], "\"nan\" is not a duration"),
        (
            vec!["--advert-file", "/tmp/a", "stray"],
            "unexpected argument \"stray\"",
        ),
    ] {
        let mut args: Vec<OsString> = base.to_vec();
        args.extend(flags.iter().map(os));
        let out = run_cli(home.path(), &args.iter().collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && err.contains("native-host"),
            "{says} in {err}"
        );
        assert!(!ud.exists(), "nothing written for {flags:?}");
    }

    let good = &base[..5];
    let out = run_cli(home.path(), &good.iter().collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ud
        .join(format!("NativeMessagingHosts/{HOST_NAME}.json"))
        .exists());
    assert!(!home.path().join(".config").exists() && !home.path().join(".mozilla").exists());
}

#[test]
fn help_teaches_install_and_the_host() {
    let home = tempfile::tempdir().unwrap();
    let args = [os("browser"), os("install"), os("--help")];
    let out = run_cli(home.path(), &args.iter().collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "Examples:",
        "--chromium-user-data-dir",
        "--tunnel-override",
        "uninstall",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    let args = [os("native-host"), os("--help")];
    let out = run_cli(home.path(), &args.iter().collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROTOCOL.md") && text.contains("--advert-file"),
        "{text}"
    );
}

/// The relying party's `timeout` ends the ceremony like a browser's timer: clamped to at
/// least 10 s, `NotAllowedError`, long before the 600 s advert stage would. Paused time.
#[tokio::test(start_paused = true)]
async fn the_sites_timeout_is_clamped_and_ends_the_ceremony() {
    use bridge::native_host::driver::{self, HostConfig};
    use bridge::native_host::messages::{CeremonyKind, CeremonyRequest};
    let dir = tempfile::tempdir().unwrap();
    let links = bridge::LinkStore::new(dir.path().join("links.json"));
    let config = HostConfig {
        bridge: bridge::BridgeConfig {
            tunnel: bridge::TunnelConfig {
                tunnel_override: Some("ws://127.0.0.1:9".into()),
                ..Default::default()
            },
            timeouts: bridge::Timeouts {
                advert: Duration::from_secs(600),
                connect: Duration::from_secs(600),
                ble_connect: Duration::from_secs(600),
                handshake: Duration::from_secs(600),
                user: Duration::from_secs(600),
                linger: Duration::ZERO,
            },
            links: Some(links.clone()),
            ..Default::default()
        },
        links,
        advert_file: Some(dir.path().join("adverts")),
        adapter: None,
    };
    for (timeout_ms, says) in [(1, "10 s"), (15_000, "15 s")] {
        let req = CeremonyRequest {
            kind: CeremonyKind::Get,
            id: "t".into(),
            origin: "https://example.com".into(),
            options: json!({"challenge": "AAECAwQFBgcICQoLDA0ODw", "timeout": timeout_ms}),
            phone: None,
            top_origin: None,
            related_origins: None,
        };
        let started = tokio::time::Instant::now();
        let e = driver::run(&req, &config, &bridge::Silent)
            .await
            .unwrap_err();
        assert_eq!(
            (e.name, e.code),
            (
                bridge::native_host::dom::DomName::NotAllowedError,
                "timeout"
            )
        );
        assert!(e.message.contains(says), "{says} in {}", e.message);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
    }
}
