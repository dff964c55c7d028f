//! `hybrid-bridge doctor` through the real binary, one test per ✗ path: no system bus, a bus
//! without BlueZ, mock BlueZ (python-dbusmock's `bluez5` template, `test_support::bluez`)
//! without an adapter or with it powered off, a relay that upgrades without `fido.cable`, a
//! TLS 1.2-only relay (trusted through `--extra-ca`), an unresolvable relay, bad manifests and
//! a corrupt links file; plus the passing paths (adapter and adverts heard, an installed host).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hybrid_protocol::eid::{self, EidPlaintext};
use hybrid_protocol::keys::QrSecret;
use hybrid_protocol::tunnel::{Domain, RoutingId};
use test_support::bluez::{Adapter, Bus, ScanMock};

fn doctor(args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"));
    cmd.arg("doctor").args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Bounded: a hanging check fails the test instead of hanging it.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("doctor {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

/// The line of check `name` (after its mark), e.g. `line(t, "adapter")` → "✗ adapter: …".
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .map(str::trim)
        .find(|l| {
            l.get(4..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}:")))
        })
        .unwrap_or_else(|| panic!("no check {name:?} in:\n{text}"))
}

#[test]
fn no_system_bus_is_a_failed_dbus_check_and_the_rest_are_skipped() {
    let (out, text) = doctor(
        &["--only", "bluetooth"],
        &[(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/system_bus",
        )],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let l = line(&text, "D-Bus system bus");
    assert!(
        l.starts_with('✗') && l.contains("/nonexistent/system_bus"),
        "{l}"
    );
    assert!(text.contains("→ start D-Bus"), "{text}");
    for later in ["BlueZ", "adapter", "adapter powered", "LE scanning"] {
        assert!(line(&text, later).starts_with('–'), "{text}");
    }
    // The same as JSON, for a support ticket.
    let (out, json) = doctor(
        &["--only", "bluetooth", "--json"],
        &[(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/system_bus",
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["failed"], 1);
    assert_eq!(v["checks"][0]["name"], "D-Bus system bus");
    assert_eq!(v["checks"][0]["status"], "fail");
    assert!(v["checks"][0]["next"].as_str().unwrap().contains("dbus"));
    assert_eq!(v["checks"][1]["status"], "skip");
}

#[test]
fn a_bus_without_bluez_fails_the_bluez_check() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let (out, text) = doctor(
        &["--only", "bluetooth"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", bus.address())],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "D-Bus system bus").starts_with('✓'), "{text}");
    let l = line(&text, "BlueZ");
    assert!(l.starts_with('✗') && l.contains("org.bluez"), "{text}");
    assert!(text.contains("systemctl start bluetooth"), "{text}");
}

#[test]
fn mock_bluez_without_an_adapter_fails_the_adapter_check() {
    let dir = tempfile::tempdir().unwrap();
    let mock = ScanMock::start(dir.path(), Adapter::Missing);
    let (out, text) = doctor(
        &["--only", "bluetooth"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", mock.address())],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "BlueZ").starts_with('✓'), "{text}");
    let l = line(&text, "adapter");
    assert!(
        l.starts_with('✗') && l.contains("no Bluetooth adapter"),
        "{text}"
    );
    assert!(line(&text, "adapter powered").starts_with('–'), "{text}");
}

#[test]
fn mock_bluez_with_the_adapter_off_fails_the_power_check() {
    let dir = tempfile::tempdir().unwrap();
    let mock = ScanMock::start(dir.path(), Adapter::Off);
    let (out, text) = doctor(
        &["--only", "bluetooth"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", mock.address())],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "adapter").starts_with("✓ adapter: hci0"),
        "{text}"
    );
    let l = line(&text, "adapter powered");
    assert!(l.starts_with('✗') && l.contains("off"), "{text}");
    assert!(text.contains("bluetoothctl power on"), "{text}");
    assert!(line(&text, "LE scanning").starts_with('–'), "{text}");
}

#[test]
fn mock_bluez_reports_the_adapter_and_the_hybrid_adverts_it_hears() {
    let dir = tempfile::tempdir().unwrap();
    let mut mock = ScanMock::start(dir.path(), Adapter::Powered);
    let secret = QrSecret::from_bytes([0x22; 16]);
    let pt = EidPlaintext::new(RoutingId([1, 2, 3]), Domain(0), &mut rand_core::OsRng).unwrap();
    let advert = hex::encode(eid::encrypt(&secret.eid_key(), &pt));
    mock.advert("11:22:33:44:55:66", "fff9", &advert, -61);
    mock.advert("11:22:33:44:55:67", "180f", "64", -70);
    let (out, text) = doctor(
        &["--only", "bluetooth", "--scan-time", "2s"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", mock.address())],
    );
    assert!(out.status.success(), "{text}");
    assert!(
        line(&text, "adapter").starts_with("✓ adapter: hci0"),
        "{text}"
    );
    assert!(line(&text, "adapter powered").starts_with('✓'), "{text}");
    assert!(line(&text, "LE scanning").starts_with('✓'), "{text}");
    let l = line(&text, "adverts heard");
    assert!(l.starts_with('✓'), "{text}");
    assert!(l.contains("hybrid advert(s) from 1 device(s)"), "{l}");
    assert!(
        l.contains("from 2 device(s)"),
        "the battery advert counts as service data: {l}"
    );
    assert!(text.contains("all checks passed"), "{text}");
}

/// A WebSocket server on 127.0.0.1 that upgrades without any subprotocol.
async fn not_a_relay() -> u16 {
    test_support::net::serve_each(|tcp| async move {
        let _ = tokio_tungstenite::accept_async(tcp).await;
    })
    .await
    .port()
}

async fn doctor_async(args: Vec<String>) -> (Output, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        doctor(&args, &[])
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_fido_cable_subprotocol_fails_the_upgrade() {
    let port = not_a_relay().await;
    let url = format!("ws://127.0.0.1:{port}");
    let (out, text) = doctor_async(
        ["--only", "relays", "--no-public-relays", "--relay", &url]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        line(&text, &format!("{url} dns")).starts_with('✓'),
        "{text}"
    );
    assert!(
        line(&text, &format!("{url} tcp")).starts_with('✓'),
        "{text}"
    );
    assert!(
        line(&text, &format!("{url} tls")).starts_with('–'),
        "{text}"
    );
    let l = line(&text, &format!("{url} websocket"));
    assert!(
        l.starts_with('✗') && l.contains("did not select the fido.cable subprotocol"),
        "{text}"
    );
    assert!(text.contains("→ it is not a caBLE tunnel relay"), "{text}");
    assert!(l.contains(" ms)"), "each step is timed: {l}");
}

/// A relay on 127.0.0.1 speaking only TLS 1.2 (certificate for localhost), which upgrades
/// with `fido.cable`; returns its port and the CA file.
async fn tls12_relay(dir: &Path) -> (u16, std::path::PathBuf) {
    use rustls_pki_types::pem::PemObject as _;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(cert.key_pair.serialize_pem().as_bytes())
            .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let relay = test_support::net::serve_each(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = test_support::ws::accept_fido_cable(tls, &[]).await;
        }
    })
    .await;
    (relay.port(), ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_1_2_only_relay_fails_the_tls_check_but_still_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca) = tls12_relay(dir.path()).await;
    let url = format!("wss://localhost:{port}");
    let (out, text) = doctor_async(vec![
        "--only".into(),
        "relays".into(),
        "--no-public-relays".into(),
        "--relay".into(),
        url.clone(),
        "--extra-ca".into(),
        ca.display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    let l = line(&text, &format!("{url} tls"));
    assert!(
        l.starts_with('✗') && l.contains("TLS 1.2 instead of TLS 1.3"),
        "{text}"
    );
    assert!(text.contains("enable it on the relay"), "{text}");
    let l = line(&text, &format!("{url} websocket"));
    assert!(l.starts_with('✓') && l.contains("fido.cable"), "{text}");

    // Without the CA the certificate is not trusted, and doctor says how to fix that.
    let (_, text) = doctor_async(vec![
        "--only".into(),
        "relays".into(),
        "--no-public-relays".into(),
        "--relay".into(),
        url.clone(),
    ])
    .await;
    let l = line(&text, &format!("{url} tls"));
    assert!(
        l.starts_with('✗') && l.to_lowercase().contains("certificate"),
        "{text}"
    );
    assert!(text.contains("--extra-ca"), "{text}");
}

#[test]
fn an_unresolvable_relay_fails_at_dns_quickly_and_public_relays_are_checked() {
    let start = Instant::now();
    let (out, text) = doctor(
        &[
            "--only",
            "relays",
            "--relay",
            "wss://relay.invalid",
            "--step-timeout",
            "3s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let l = line(&text, "wss://relay.invalid dns");
    assert!(
        l.starts_with('✗') && l.contains("cannot resolve relay.invalid"),
        "{text}"
    );
    for later in ["tcp", "tls", "websocket"] {
        assert!(line(&text, &format!("wss://relay.invalid {later}")).starts_with('–'));
    }
    // Google's and Apple's domains: checked (passing or not, depending on the network).
    for d in ["cable.ua5v.com (Google) dns", "cable.auth.com (Apple) dns"] {
        let l = line(&text, d);
        assert!(l.starts_with('✓') || l.starts_with('✗'), "{l}");
    }
    // Every step is bounded: 3 s each at most, four steps, run concurrently; generous.
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn bad_manifests_fail_and_an_installed_host_passes() {
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().display().to_string();
    let config = home.path().join(".config");
    let env = [("HOME", home_s.as_str()), ("XDG_CONFIG_HOME", "")];
    // Nothing installed: information, not failure.
    let (out, text) = doctor(&["--only", "browser"], &env);
    assert!(out.status.success(), "{text}");
    assert!(
        line(&text, "Chromium").starts_with("○ Chromium: not installed"),
        "{text}"
    );

    // Install for Firefox and Chrome with this binary: both pass.
    let status = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
        .args([
            "browser",
            "install",
            "--browser",
            "firefox",
            "--browser",
            "chrome",
        ])
        .env("HOME", &home_s)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let (out, text) = doctor(&["--only", "browser"], &env);
    assert!(out.status.success(), "{text}");
    assert!(
        line(&text, "Firefox").starts_with("✓ Firefox: installed"),
        "{text}"
    );
    assert!(
        line(&text, "Chrome").starts_with("✓ Chrome: installed"),
        "{text}"
    );

    // Chromium's manifest is not JSON; Chrome's allows another extension; Firefox's launcher
    // starts another binary.
    let chromium = config.join("chromium/NativeMessagingHosts");
    std::fs::create_dir_all(&chromium).unwrap();
    std::fs::write(chromium.join("org.hybridbridge.host.json"), "{ not json").unwrap();
    let chrome = config.join("google-chrome/NativeMessagingHosts/org.hybridbridge.host.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    m["allowed_origins"] =
        serde_json::json!(["chrome-extension://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"]);
    std::fs::write(&chrome, m.to_string()).unwrap();
    let launcher = home
        .path()
        .join(".mozilla/native-messaging-hosts/org.hybridbridge.host.sh");
    std::fs::write(
        &launcher,
        "#!/bin/sh\nexec '/usr/bin/other-bridge' native-host \"$@\"\n",
    )
    .unwrap();
    let (out, text) = doctor(&["--only", "browser"], &env);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let l = line(&text, "Chromium");
    assert!(l.starts_with('✗') && l.contains("not valid JSON"), "{text}");
    let l = line(&text, "Chrome");
    assert!(
        l.starts_with('✗') && l.contains("does not allow the hybrid-bridge extension"),
        "{text}"
    );
    let l = line(&text, "Firefox");
    assert!(
        l.starts_with('✗') && l.contains("does not start this binary"),
        "{text}"
    );
    assert!(text.contains("3 checks failed"), "{text}");
}

#[test]
fn a_corrupt_links_file_fails_and_a_linked_phones_relay_is_probed() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("links.json");
    std::fs::write(&links, "[not json").unwrap();
    let links_s = links.display().to_string();
    let (out, text) = doctor(&["--only", "links", "--links-file", &links_s], &[]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "links file").starts_with('✗'), "{text}");

    // A linked phone whose relay cannot be reached (a closed port on loopback).
    let port = test_support::net::closed_port().port();
    std::fs::write(
        &links,
        serde_json::json!({"version": 1, "links": [{
            "name": "Pixel", "contact_id": "AAAA", "link_id": "00".repeat(8),
            "link_secret": "11".repeat(32), "phone_public_key": "04".repeat(65),
            "tunnel_domain": "cable.ua5v.com", "linked_at": 1_700_000_000u64,
        }]})
        .to_string(),
    )
    .unwrap();
    let (out, text) = doctor(
        &[
            "--only",
            "links",
            "--links-file",
            &links_s,
            "--tunnel-override",
            &format!("ws://127.0.0.1:{port}"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "links file").starts_with("✓ links file: 1 linked"),
        "{text}"
    );
    let l = line(&text, "\"Pixel\"");
    assert!(
        l.starts_with('✗') && l.contains("unreachable: tcp"),
        "{text}"
    );
}

/// `browser install --system --root` writes what the Debian package ships: one launcher and a
/// manifest in every browser's system folder, allowing the extension ID given; doctor checks
/// them there (and fails a manifest allowing another ID than the one it is told).
#[test]
fn system_manifests_in_a_staging_tree_pass_for_every_browser() {
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let root_s = root.path().display().to_string();
    let home_s = home.path().display().to_string();
    let id = "abcdefghijklmnopabcdefghijklmnop";
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
        .args(["browser", "install", "--system", "--root", &root_s])
        .args(["--host-binary", env!("CARGO_BIN_EXE_hybrid-bridge")])
        .args(["--chromium-extension-id", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let launcher =
        std::fs::read_to_string(root.path().join("usr/lib/hybrid-bridge/native-host")).unwrap();
    assert!(
        launcher.contains(&format!(
            "exec '{}' native-host",
            env!("CARGO_BIN_EXE_hybrid-bridge")
        )),
        "{launcher}"
    );
    for dir in [
        "etc/chromium/native-messaging-hosts",
        "etc/opt/chrome/native-messaging-hosts",
        "etc/opt/brave/native-messaging-hosts",
        "etc/opt/edge/native-messaging-hosts",
        "etc/opt/vivaldi/native-messaging-hosts",
        "usr/lib/mozilla/native-messaging-hosts",
    ] {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.path().join(dir).join("org.hybridbridge.host.json"))
                .unwrap(),
        )
        .unwrap();
        // The manifest names the final path, not the staging tree.
        assert_eq!(m["path"], "/usr/lib/hybrid-bridge/native-host", "{dir}");
        if dir.contains("mozilla") {
            assert_eq!(m["allowed_extensions"][0], "hybrid-bridge@hybridbridge.org");
        } else {
            assert_eq!(m["allowed_origins"][0], format!("chrome-extension://{id}/"));
        }
    }
    // The package's own files also name every system folder browser install writes.
    let cargo_toml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    for browser in [
        "chromium",
        "opt/chrome",
        "opt/brave",
        "opt/edge",
        "opt/vivaldi",
    ] {
        assert!(
            cargo_toml.contains(&format!("\"etc/{browser}/native-messaging-hosts/\"")),
            "bridge/Cargo.toml [package.metadata.deb] ships no manifest for {browser}"
        );
    }
    let env = [("HOME", home_s.as_str()), ("XDG_CONFIG_HOME", "")];
    let args = ["--only", "browser", "--system", "--root", &root_s];
    let (out, text) = doctor(
        &[&args[..], &["--chromium-extension-id", id]].concat(),
        &env,
    );
    assert!(out.status.success(), "{text}");
    for b in ["Chromium", "Chrome", "Brave", "Edge", "Vivaldi", "Firefox"] {
        let l = line(&text, &format!("{b} (system)"));
        assert!(l.starts_with('✓'), "{text}");
    }
    // Told to expect the published extension, doctor fails the manifests allowing another.
    let (out, text) = doctor(&args, &env);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let l = line(&text, "Chromium (system)");
    assert!(
        l.starts_with('✗') && l.contains("does not allow the hybrid-bridge extension"),
        "{text}"
    );
}

/// Snap's Firefox and Flatpak browsers start no host from the usual folders: doctor names each
/// one found (fake trees below --root and HOME) with what the person does, and passes Snap's
/// Firefox once the WebExtensions portal and a Firefox manifest are there.
#[test]
fn sandboxed_browsers_are_named_with_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let root_s = root.path().display().to_string();
    let home_s = home.path().display().to_string();
    let env = [("HOME", home_s.as_str()), ("XDG_CONFIG_HOME", "")];
    let args = ["--only", "browser", "--system", "--root", root_s.as_str()];

    // Nothing sandboxed: no such lines.
    let (_, text) = doctor(&args, &env);
    assert!(
        !text.contains("Snap") && !text.contains("Flatpak"),
        "{text}"
    );

    std::fs::create_dir_all(root.path().join("snap/bin")).unwrap();
    std::fs::write(root.path().join("snap/bin/firefox"), "").unwrap();
    std::fs::create_dir_all(home.path().join(".var/app/org.mozilla.firefox")).unwrap();
    std::fs::create_dir_all(
        root.path()
            .join("var/lib/flatpak/app/org.chromium.Chromium"),
    )
    .unwrap();
    let (out, text) = doctor(&args, &env);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let snap = line(&text, "Firefox (Snap)");
    assert!(
        snap.starts_with('✗')
            && snap.contains("WebExtensions portal")
            && snap.contains("does not offer it"),
        "{text}"
    );
    assert!(
        text.contains("install Firefox from a Debian package"),
        "{text}"
    );
    for b in ["Firefox (Flatpak)", "Chromium (Flatpak)"] {
        let l = line(&text, b);
        assert!(l.starts_with('✗') && l.contains("sandbox"), "{text}");
    }

    // The portal, but no Firefox host yet: what to install.
    let interfaces = root.path().join("usr/share/dbus-1/interfaces");
    std::fs::create_dir_all(&interfaces).unwrap();
    std::fs::write(
        interfaces.join("org.freedesktop.portal.WebExtensions.xml"),
        "<node/>",
    )
    .unwrap();
    let (_, text) = doctor(&args, &env);
    let snap = line(&text, "Firefox (Snap)");
    assert!(
        snap.starts_with('✗') && snap.contains("no Firefox host manifest"),
        "{text}"
    );

    // And with the host installed for Firefox: Snap's Firefox passes.
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
        .args([
            "browser",
            "install",
            "--system",
            "--root",
            &root_s,
            "--browser",
            "firefox",
        ])
        .args(["--host-binary", env!("CARGO_BIN_EXE_hybrid-bridge")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (_, text) = doctor(&args, &env);
    assert!(line(&text, "Firefox (Snap)").starts_with('✓'), "{text}");
    assert!(line(&text, "Firefox (system)").starts_with('✓'), "{text}");
}
