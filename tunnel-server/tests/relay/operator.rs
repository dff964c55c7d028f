//! What an operator runs: `tunnel-server health` (the container's HEALTHCHECK), `--check`,
//! `--print-config`, and the deploy files that use them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use test_support::net::closed_port;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tunnel_server::{Config, TlsConfig};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_tunnel-server");

/// Runs the binary with `args` and extra environment, bounded by [`WAIT`].
async fn run_bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).kill_on_drop(true);
    // The test's own environment must not configure the binary.
    for (k, _) in std::env::vars() {
        if k.starts_with("TUNNEL_SERVER_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the binary finishes in time")
        .expect("the binary runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn health_exits_0_for_a_live_relay_and_1_for_a_closed_port() {
    let server = start(config()).await;
    let addr = server.addr().to_string();

    let out = run_bin(&["health", "--address", &addr], &[]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("/healthz") && stdout.contains("200"),
        "{stdout}"
    );

    // The configured address (flag, environment or file) is used when none is given, and an
    // unspecified address (0.0.0.0, as in a container) means this machine.
    let everywhere = format!("0.0.0.0:{}", server.addr().port());
    let out = run_bin(&["health"], &[("TUNNEL_SERVER_LISTEN", &everywhere)]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    let closed = closed_port().to_string();
    let out = run_bin(&["health", "--address", &closed], &[]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unhealthy") && stderr.contains(&closed),
        "{stderr}"
    );
    server.shutdown().await.expect("clean shutdown");
}

/// A one-connection HTTP server that answers `reply` (or nothing, if empty) and holds on.
async fn fake_server(reply: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        if !reply.is_empty() {
            let _ = s.write_all(reply.as_bytes()).await;
        }
        tokio::time::sleep(WAIT).await;
    });
    addr
}

#[tokio::test]
async fn health_fails_on_an_error_status_and_on_silence_within_its_timeout() {
    let addr = fake_server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
    let out = run_bin(&["health", "--address", &addr.to_string()], &[]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");

    let addr = fake_server("").await;
    let started = std::time::Instant::now();
    let out = run_bin(
        &["health", "--address", &addr.to_string(), "--timeout", "1s"],
        &[],
    )
    .await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no answer"), "{stderr}");
    // Generous: the bound is 1 s; a health check that waited for the server's 10 s fails.
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// An rcgen certificate and key for `localhost`, written as PEM files in `dir`.
fn write_cert(dir: &Path, name: &str) -> TlsConfig {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let tls = TlsConfig {
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&tls.cert, cert.cert.pem()).expect("write cert");
    std::fs::write(&tls.key, cert.key_pair.serialize_pem()).expect("write key");
    tls
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn health_speaks_tls_to_a_relay_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = write_cert(dir.path(), "relay");
    let other = write_cert(dir.path(), "other");
    let server = start(Config {
        tls: Some(tls.clone()),
        ..config()
    })
    .await;
    let addr = server.addr().to_string();
    let out = run_bin(
        &[
            "health",
            "--address",
            &addr,
            "--tls-cert",
            path_str(&tls.cert),
            "--tls-key",
            path_str(&tls.key),
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("https://"), "{:?}", text(&out));

    // Another certificate than the configured one is not this relay.
    let out = run_bin(
        &[
            "health",
            "--address",
            &addr,
            "--tls-cert",
            path_str(&other.cert),
            "--tls-key",
            path_str(&other.key),
        ],
        &[],
    )
    .await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn check_reads_and_parses_the_tls_files_and_names_the_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_cert(dir.path(), "good");
    let other = write_cert(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let missing = dir.path().join("missing.pem");

    let check = |cert: &Path, key: &Path| {
        let (cert, key) = (path_str(cert).to_owned(), path_str(key).to_owned());
        async move {
            run_bin(
                &[
                    "--check",
                    "--listen",
                    "0.0.0.0:8443",
                    "--tls-cert",
                    &cert,
                    "--tls-key",
                    &key,
                ],
                &[],
            )
            .await
        }
    };

    let out = check(&good.cert, &good.key).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");

    for (cert, key, named) in [
        (&missing, &good.key, &missing),
        (&good.cert, &missing, &missing),
        (&garbage, &good.key, &garbage),
        // A certificate where the key should be.
        (&good.cert, &good.cert, &good.cert),
        // A key that belongs to another certificate.
        (&good.cert, &other.key, &other.key),
    ] {
        let out = check(cert, key).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{cert:?} {key:?}: {stderr}");
        assert!(
            stderr.contains(path_str(named)),
            "{cert:?} {key:?}: the error must name {named:?}: {stderr}"
        );
    }

    // What starting would refuse, --check refuses: plain ws:// on a public address.
    let out = run_bin(&["--check", "--listen", "0.0.0.0:8443"], &[]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--insecure-plaintext"), "{stderr}");
    let out = run_bin(
        &[
            "--check",
            "--listen",
            "0.0.0.0:8443",
            "--insecure-plaintext",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}

#[tokio::test]
async fn print_config_keeps_human_durations_that_read_back() {
    let out = run_bin(&["--print-config"], &[]).await;
    let (printed, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for line in [
        "contact_expiry = \"90days\"",
        "tunnel_lifetime = \"2m\"",
        "idle_timeout = \"1m\"",
        "upgrade_timeout = \"10s\"",
    ] {
        assert!(printed.contains(line), "{line} missing in {printed}");
    }

    // What --print-config prints is a configuration file that gives the same configuration.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("printed.toml");
    let custom = run_bin(
        &[
            "--print-config",
            "--idle-timeout",
            "1m 30s",
            "--shutdown-grace",
            "1500ms",
        ],
        &[],
    )
    .await;
    let (custom, stderr) = text(&custom);
    assert!(
        custom.contains("idle_timeout = \"1m 30s\""),
        "{custom}{stderr}"
    );
    assert!(custom.contains("shutdown_grace = \"1s 500ms\""), "{custom}");
    std::fs::write(&file, &custom).expect("write");
    let again = run_bin(&["--config", path_str(&file), "--print-config"], &[]).await;
    assert_eq!(text(&again).0, custom, "{}", text(&again).1);
}

fn deploy_file(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "deploy", name]
        .iter()
        .collect();
    std::fs::read_to_string(&path).expect("deploy file readable")
}

/// The Dockerfile's HEALTHCHECK, run as the container would: its exec-form argv (the binary
/// replaced by this build's) with the image's `ENV` lines, against a live relay.
#[tokio::test]
async fn dockerfile_healthcheck_runs_the_health_subcommand() {
    let dockerfile = deploy_file("Dockerfile");
    assert!(
        !dockerfile.contains("/dev/tcp"),
        "dash has no /dev/tcp: the check always fails"
    );
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK line");
    let argv_json = &line[line.find("CMD [").expect("exec form CMD") + 4..];
    let argv: Vec<String> = serde_json::from_str(argv_json).expect("a JSON argv");
    assert_eq!(argv[0], "/usr/local/bin/tunnel-server", "{line}");
    assert_eq!(argv[1], "health", "{line}");

    let server = start(config()).await;
    let mut env: Vec<(String, String)> = Vec::new();
    for l in dockerfile.lines().filter_map(|l| l.strip_prefix("ENV ")) {
        for pair in l.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV key=value");
            env.push((k.to_string(), v.to_string()));
        }
    }
    let listen = env
        .iter_mut()
        .find(|(k, _)| k == "TUNNEL_SERVER_LISTEN")
        .expect("the image sets TUNNEL_SERVER_LISTEN so serve and health agree");
    assert!(listen.1.starts_with("0.0.0.0:"), "{}", listen.1);
    // Same image settings, this relay's port.
    listen.1 = format!("0.0.0.0:{}", server.addr().port());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let out = run_bin(&args, &env).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    server.shutdown().await.expect("clean shutdown");

    let unit = deploy_file("tunnel-server.service");
    assert!(
        unit.lines().any(|l| l.trim() == "UMask=0077"),
        "the unit must keep the contact store (bearer IDs) private"
    );
}

/// The binary with `--metrics-listen`: `/metrics` there and 404 on `--listen`; `health` and
/// `health --ready` pass on both addresses while it runs; once SIGTERM starts the drain (a
/// tunnel still open), `health --ready` on the metrics address fails with 503 and `health`
/// still passes, until the tunnel ends and the relay exits.
#[tokio::test]
async fn binary_metrics_listen_and_health_ready_during_a_drain() {
    let (listen, metrics) = (closed_port().to_string(), closed_port().to_string());
    let mut child = tokio::process::Command::new(BIN)
        .args(["--listen", &listen, "--metrics-listen", &metrics])
        .args(["--routing-id", "0A0B0C", "--shutdown-grace", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary runs");
    let (listen_addr, metrics_addr): (SocketAddr, SocketAddr) =
        (listen.parse().unwrap(), metrics.parse().unwrap());
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(metrics_addr).await.is_err()
        || tokio::net::TcpStream::connect(listen_addr).await.is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "binary did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = request_at(metrics_addr, "GET", "/metrics").await;
    assert_eq!(status_line(&m), 200, "{m}");
    assert!(m.contains("tunnel_server_build_info{version="), "{m}");
    assert_eq!(
        status_line(&request_at(listen_addr, "GET", "/metrics").await),
        404
    );
    for address in [&listen, &metrics] {
        for args in [&["health"][..], &["health", "--ready"]] {
            let mut args = args.to_vec();
            args.extend(["--address", address]);
            let out = run_bin(&args, &[("TUNNEL_SERVER_METRICS_LISTEN", &metrics)]).await;
            assert_eq!(out.status.code(), Some(0), "{args:?}: {:?}", text(&out));
        }
    }

    let t = tunnel(1);
    let url = format!("ws://{listen}{}", new_path(t));
    let (mut phone, _) = open_url(&url, &[]).await.expect("101");
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = run_bin(&["health", "--ready", "--address", &metrics], &[]).await;
        if out.status.code() == Some(1) {
            let (_, stderr) = text(&out);
            assert!(
                stderr.contains("not ready") && stderr.contains("503"),
                "{stderr}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", text(&out));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = run_bin(&["health", "--address", &metrics], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    phone.close(None).await.expect("close");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the relay exits once its tunnel is done")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}
