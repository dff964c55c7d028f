//! The real binary: `domain` subcommand and configuration errors.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tunnel-server"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn domain_prints_names_ranges_and_searches() {
    assert_eq!(run(&["domain", "266"]).1, "266 cable.wufkweyy3uaxb.com\n");
    assert_eq!(
        run(&["domain", "256..258"]).1,
        "256 cable.qz2ekwmnd332c.info\n257 cable.4a6bwmj6hiyyd.net\n"
    );
    assert_eq!(
        run(&["domain", "--find", "cable.my4kstlhndi4c.net"]).1,
        "63872 cable.my4kstlhndi4c.net\n"
    );
    assert_eq!(
        run(&["domain", "256..300", "--contains", "wufk"]).1,
        "266 cable.wufkweyy3uaxb.com\n"
    );
    let (ok, _, err) = run(&["domain", "--find", "example.com"]);
    assert!(!ok);
    assert!(err.contains("no domain number has the name"), "{err}");
}

#[test]
fn bad_configuration_is_reported_not_panicked() {
    let (ok, _, err) = run(&["--routing-id", "XYZ"]);
    assert!(!ok);
    assert!(err.contains("6 hex digits"), "{err}");
    let (ok, _, err) = run(&["--max-message-size", "10"]);
    assert!(!ok);
    assert!(
        err.contains("max message size must be at least 256"),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.pem",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent.pem"), "{err}");
}

#[test]
fn environment_variables_configure_the_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_tunnel-server"))
        .env("TUNNEL_SERVER_MAX_MESSAGE_SIZE", "10")
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max message size must be at least 256"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tunnel-server"))
        .env("TUNNEL_SERVER_IDLE_TIMEOUT", "soon")
        .output()
        .expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"soon\" is not a duration")
            && err.contains("write e.g. 500ms, 30s, 2m, 1m30s or 1h"),
        "{err}"
    );
}

#[test]
fn print_config_shows_the_resolved_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "routing_id = \"0a0b0c\"\n[limits]\nidle_timeout = \"5s\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tunnel-server"))
        .args([
            "--config",
            path.to_str().expect("utf-8 path"),
            "--print-config",
        ])
        .args(["--messages-per-side", "9"])
        .env("TUNNEL_SERVER_MAX_TUNNELS", "77")
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "routing_id = \"0A0B0C\"",
        "idle_timeout = \"5s\"",
        "messages_per_side = 9",
        "max_tunnels = 77",
        "tunnel_lifetime = \"2m\"",
    ] {
        assert!(text.contains(line), "{line} missing in {text}");
    }
}

#[test]
fn toml_config_file_is_read_and_errors_name_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "routing_id = \"0A0B0C\"\nunknown_key = 1\n").expect("write");
    let (ok, _, err) = run(&["--config", path.to_str().expect("utf-8 path")]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml") && err.contains("unknown_key"),
        "{err}"
    );
}

#[test]
fn sigterm_shuts_the_binary_down_cleanly() {
    let port = test_support::net::closed_port().port();
    let child = Command::new(env!("CARGO_BIN_EXE_tunnel-server"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "binary did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = child.wait_with_output().expect("binary exits");
    assert!(out.status.success(), "{:?}", out.status);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("\"message\":\"shut down\""), "{log}");
}

#[test]
fn a_busy_metrics_address_is_a_clear_error_with_its_cause_once() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = busy.local_addr().expect("addr").to_string();
    let (ok, _, err) = run(&["--listen", "127.0.0.1:0", "--metrics-listen", &busy]);
    assert!(!ok);
    assert!(
        err.contains(&format!("cannot listen on {busy} for metrics")),
        "{err}"
    );
    assert_eq!(err.matches("in use").count(), 1, "{err}");
}

/// Starts the binary under `sh -c "<limits> && exec …"`, waits until it logs that it listens,
/// stops it and returns its (JSON) log.
fn log_under_ulimit(limits: &str, args: &[&str]) -> String {
    use std::io::BufRead as _;
    let script = format!("{limits} && exec \"$0\" \"$@\"");
    let mut child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_tunnel-server")])
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sh runs");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("tunnel server listening");
            log.push_str(&line);
            log.push('\n');
            if done {
                break;
            }
        }
        let _ = tx.send(log);
    });
    let log = rx.recv_timeout(std::time::Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let log = log.expect("the binary logs that it listens within 10 s");
    assert!(log.contains("tunnel server listening"), "{log}");
    log
}

/// The connection cap is reconciled with RLIMIT_NOFILE at startup.
#[test]
fn open_file_limit_is_raised_or_the_connection_cap_lowered() {
    // Soft 256 under a higher hard limit: raised as far as 1,000 connections need.
    let log = log_under_ulimit(
        "ulimit -Sn 256 && ulimit -Hn 4096",
        &["--max-connections", "1000"],
    );
    assert!(log.contains("raised the open-file limit"), "{log}");
    assert!(log.contains("\"to\":1064"), "{log}");
    assert!(!log.contains("lowered max connections"), "{log}");
    // Hard limit 512: the default 100,000 cannot fit; lowered to 512 − 64 with a warning.
    let log = log_under_ulimit("ulimit -n 512", &[]);
    assert!(log.contains("\"level\":\"WARN\""), "{log}");
    assert!(log.contains("lowered max connections"), "{log}");
    assert!(log.contains("\"max_connections\":448"), "{log}");
}

/// Runs the binary in a UTS namespace of its own whose host name is `host`, as a
/// StatefulSet pod's is its pod name (unprivileged through a user namespace when not root).
fn run_as_host(host: &str, args: &[&str]) -> (bool, String, String) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = Command::new("unshare");
    if !root {
        cmd.args(["--user", "--map-root-user"]);
    }
    let out = cmd
        .args([
            "--uts",
            "sh",
            "-c",
            "hostname \"$0\" && shift && exec \"$@\"",
        ])
        .arg(host)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_tunnel-server"))
        .args(args)
        .output()
        .expect("unshare runs (util-linux); the fleet tests need it");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn routing_id_from_hostname_adds_the_pod_ordinal() {
    let (ok, out, err) = run_as_host(
        "relay-4",
        &[
            "--routing-id",
            "0A0B00",
            "--routing-id-from-hostname",
            "--print-config",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("routing_id = \"0A0B04\"\n"), "{out}");
    // Resolved once: the printed configuration reads back as this pod's.
    assert!(out.contains("routing_id_from_hostname = false\n"), "{out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        "routing_id = \"0A0BFE\"\nrouting_id_from_hostname = true\n",
    )
    .expect("write");
    let config = path.to_str().expect("utf-8 path");
    let (ok, out, err) = run_as_host("relay-3", &["--config", config, "--check"]);
    assert!(ok, "{err}");
    assert!(out.contains("routing ID 0A0C01"), "{out}");

    for (host, why) in [
        ("relay", "ending in -<ordinal>"),
        ("relay-x", "\"relay-x\""),
    ] {
        let (ok, _, err) = run_as_host(host, &["--config", config, "--check"]);
        assert!(!ok, "{host}");
        assert!(err.contains(why), "{host}: {err}");
    }
    let (ok, _, err) = run_as_host(
        "relay-2",
        &[
            "--routing-id",
            "FFFFFE",
            "--routing-id-from-hostname",
            "--check",
        ],
    );
    assert!(!ok);
    assert!(err.contains("passes FFFFFF"), "{err}");
}

/// `deploy/kubernetes/router.conf` and `relay-pods.yaml` are what `tunnel-server fleet`
/// renders from `relay.toml` for the StatefulSet's replica count: nobody edited one without
/// the others (the fleet test runs router.conf against real relays).
#[test]
fn shipped_fleet_files_are_what_fleet_renders() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).expect("deploy file");
    let statefulset = read("relay-statefulset.yaml");
    let replicas = statefulset
        .lines()
        .find_map(|l| l.strip_prefix("  replicas: "))
        .expect("the StatefulSet has replicas");
    let config = format!("{dir}/relay.toml");
    for (output, file) in [("router", "router.conf"), ("services", "relay-pods.yaml")] {
        let (ok, rendered, err) =
            run(&["fleet", output, "--replicas", replicas, "--config", &config]);
        assert!(ok, "{err}");
        assert!(
            rendered == read(file),
            "deploy/kubernetes/{file} differs from `tunnel-server fleet {output} --replicas \
             {replicas} --config relay.toml`: render it again (README \"Run a fleet on \
             Kubernetes\")"
        );
    }
    let router = read("router.conf");
    assert!(router.contains(&format!("{replicas} pods, routing ID 0A0B00 + ordinal")));
    let pods = read("relay-pods.yaml");
    assert_eq!(pods.matches("kind: Service").count().to_string(), replicas);
}

#[test]
fn fleet_says_what_it_cannot_render() {
    let (ok, _, err) = run(&["fleet", "router", "--replicas", "0"]);
    assert!(!ok);
    assert!(err.contains("1 to 1000 replicas"), "{err}");
    let (ok, _, err) = run(&["fleet", "services", "--name", "Relay"]);
    assert!(!ok);
    assert!(err.contains("StatefulSet name"), "{err}");
    let (ok, out, _) = run(&[
        "fleet",
        "services",
        "--replicas",
        "1",
        "--routing-id",
        "0A0B0C",
    ]);
    assert!(ok);
    assert!(
        out.contains("tunnel-server/contact-prefix: \"CgsM\""),
        "{out}"
    );
}

/// The configuration the Debian package installs as /etc/tunnel-server/relay.toml passes the
/// unit's `ExecStartPre` check (its contact store's folder, the unit's StateDirectory, stands
/// in a temporary folder here) and serves loopback for a proxy; the manual page the package
/// installs names every subcommand.
#[test]
fn shipped_package_config_checks_and_the_man_page_renders() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/relay.toml");
    let text = std::fs::read_to_string(config).expect("relay.toml");
    assert!(
        text.contains("\ncontact_store = \"/var/lib/tunnel-server/contacts\"\n"),
        "{text}"
    );
    let state = tempfile::tempdir().expect("tempdir");
    let store = state.path().join("contacts");
    let store = store.to_str().expect("utf-8 path");
    let (ok, out, err) = run(&["--config", config, "--contact-store", store, "--check"]);
    assert!(ok, "{err}");
    assert!(out.contains("configuration ok"), "{out}");
    let (ok, out, err) = run(&[
        "--config",
        config,
        "--contact-store",
        store,
        "--print-config",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:8080\"\n"), "{out}");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/tunnel-server.service"
    ))
    .expect("unit");
    for line in [
        "StateDirectory=tunnel-server\n",
        "ExecStartPre=/usr/bin/tunnel-server --config /etc/tunnel-server/relay.toml --check\n",
    ] {
        assert!(unit.contains(line), "{line} in {unit}");
    }

    let (ok, man, err) = run(&["man"]);
    assert!(ok, "{err}");
    assert!(man.contains(".TH tunnel-server"), "{man}");
    for sub in ["domain", "health", "fleet", "man"] {
        assert!(man.contains(sub), "{sub} in the manual page");
    }
}
