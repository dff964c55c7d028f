//! Every status code: 400, 403, 404, 405, 409, 410, 503, and `/healthz`, `/readyz`,
//! `/metrics` (with what the metrics say after a ceremony).

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tunnel_server::Config;

use crate::support::*;

#[tokio::test]
async fn healthz_and_metrics() {
    let server = start(config()).await;
    let health = get(&server, "/healthz").await;
    assert_eq!(status_line(&health), 200);
    assert!(health.ends_with("ok\n"));
    let m = get(&server, "/metrics").await;
    assert_eq!(status_line(&m), 200);
    assert!(m.contains("text/plain; version=0.0.4"));
    assert!(m.contains("# TYPE tunnel_server_tunnels_open gauge"));
}

#[tokio::test]
async fn missing_subprotocol_is_400() {
    let server = start(config()).await;
    let r = raw(&server, &upgrade_request("GET", &new_path(tunnel(1)), "")).await;
    assert_eq!(status_line(&r), 400);
    let r = raw(
        &server,
        &upgrade_request(
            "GET",
            &new_path(tunnel(1)),
            "Sec-WebSocket-Protocol: chat\r\n",
        ),
    )
    .await;
    assert_eq!(status_line(&r), 400);
    assert_eq!(
        metric(
            &server,
            "tunnel_server_rejected_total{reason=\"no_subprotocol\"}"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn wrong_upgrade_headers_are_400() {
    let server = start(config()).await;
    let path = new_path(tunnel(1));
    let plain_get =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: fido.cable\r\n\r\n");
    assert_eq!(status_line(&raw(&server, plain_get.as_bytes()).await), 400);
    let bad_version = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: fido.cable\r\n\r\n"
    );
    assert_eq!(
        status_line(&raw(&server, bad_version.as_bytes()).await),
        400
    );
    let no_key = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: fido.cable\r\n\r\n"
    );
    assert_eq!(status_line(&raw(&server, no_key.as_bytes()).await), 400);
}

#[tokio::test]
async fn malformed_paths_are_400_and_unknown_paths_404() {
    let server = start(config()).await;
    for path in [
        "/cable/new/ABC",
        "/cable/new/ZZABABABABABABABABABABABABABABAB",
        "/cable/connect/0102/ABABABABABABABABABABABABABABABAB",
        "/cable/connect/0A0B0C",
        "/cable/new/ABABABABABABABABABABABABABABABAB/extra",
        "/cable/contact/a=b",
        "/cable/register/%%%",
    ] {
        assert_eq!(status(open(&server, path, &[]).await), 400, "{path}");
    }
    for path in ["/", "/cable", "/favicon.ico", "/cablex/new/AB"] {
        assert_eq!(status(open(&server, path, &[]).await), 404, "{path}");
    }
}

#[tokio::test]
async fn non_get_is_405() {
    let server = start(config()).await;
    let extra = "Sec-WebSocket-Protocol: fido.cable\r\nContent-Length: 0\r\n";
    let r = raw(
        &server,
        &upgrade_request("POST", &new_path(tunnel(1)), extra),
    )
    .await;
    assert_eq!(status_line(&r), 405);
    assert!(r.to_ascii_lowercase().contains("allow: get"));
}

#[tokio::test]
async fn duplicate_new_is_409_and_connect_unknown_or_paired_is_404() {
    let server = start(config()).await;
    let t = tunnel(7);
    assert_eq!(status(open(&server, &connect_path(t), &[]).await), 404);
    let _phone = ok(&server, &new_path(t)).await;
    assert_eq!(status(open(&server, &new_path(t), &[]).await), 409);
    let _desktop = ok(&server, &connect_path(t)).await;
    assert_eq!(status(open(&server, &connect_path(t), &[]).await), 404);
    assert_eq!(status(open(&server, &new_path(t), &[]).await), 409);
}

#[tokio::test]
async fn origin_allow_list_is_403_only_when_present_and_wrong() {
    let server = start(Config {
        allowed_origins: vec!["wss://cable.example".into()],
        ..config()
    })
    .await;
    let (t1, t2, t3) = (tunnel(1), tunnel(2), tunnel(3));
    assert_eq!(
        status(
            open(
                &server,
                &new_path(t1),
                &[("Origin", "https://evil.example")]
            )
            .await
        ),
        403
    );
    open(&server, &new_path(t2), &[("Origin", "wss://cable.example")])
        .await
        .unwrap();
    open(&server, &new_path(t3), &[]).await.unwrap();
}

#[tokio::test]
async fn table_full_is_503() {
    let mut c = config();
    c.limits.max_tunnels = 1;
    let server = start(c).await;
    let _a = ok(&server, &new_path(tunnel(1))).await;
    assert_eq!(status(open(&server, &new_path(tunnel(2)), &[]).await), 503);
}

/// Load balancers and uptime checkers probe with HEAD: it answers like GET, without a body.
#[tokio::test]
async fn head_probes_answer_like_get_without_a_body() {
    let server = start(config()).await;
    for path in ["/healthz", "/readyz"] {
        let got = get(&server, path).await;
        assert_eq!(status_line(&got), 200, "GET {path}: {got}");
        let head = request_at(server.addr(), "HEAD", path).await;
        assert_eq!(status_line(&head), 200, "HEAD {path}: {head}");
        let (headers, body) = head
            .split_once("\r\n\r\n")
            .expect("a complete response head");
        assert_eq!(body, "", "HEAD {path} sent a body");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{headers}"
        );
    }
    let r = request_at(server.addr(), "POST", "/healthz").await;
    assert_eq!(status_line(&r), 405, "{r}");
    assert!(r.to_ascii_lowercase().contains("allow: get, head"), "{r}");
}

#[tokio::test]
async fn readyz_is_ready_while_running() {
    let server = start(config()).await;
    let r = get(&server, "/readyz").await;
    assert_eq!(status_line(&r), 200, "{r}");
    assert!(r.ends_with("ready\n"), "{r}");
}

/// `/metrics` text: each family's `# TYPE` and each sample's value.
struct Exposition {
    types: Vec<(String, String)>,
    samples: Vec<(String, f64)>,
}

impl Exposition {
    fn parse(response: &str) -> Self {
        let body = response.split_once("\r\n\r\n").map_or(response, |(_, b)| b);
        let mut types = Vec::new();
        let mut samples = Vec::new();
        for line in body.lines().filter(|l| !l.is_empty()) {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').expect("# TYPE <name> <kind>");
                types.push((name.to_string(), kind.to_string()));
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("<series> <value>");
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value: {line}"));
                samples.push((series.to_string(), value));
            }
        }
        Self { types, samples }
    }

    fn value(&self, series: &str) -> f64 {
        self.samples
            .iter()
            .find(|(s, _)| s == series)
            .unwrap_or_else(|| panic!("no sample {series}"))
            .1
    }

    fn kind(&self, name: &str) -> &str {
        &self
            .types
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no # TYPE for {name}"))
            .1
    }

    /// Prometheus naming: `tunnel_server_` prefix; a counter ends in `_total`, once; a unit
    /// (bytes, seconds, messages) ends the name or comes right before `_total`; a histogram's
    /// samples are its `_bucket`, `_sum` and `_count`; every sample belongs to a family.
    fn check_names(&self) {
        for (name, kind) in &self.types {
            assert!(name.starts_with("tunnel_server_"), "{name}");
            let stem = if kind == "counter" {
                name.strip_suffix("_total")
                    .unwrap_or_else(|| panic!("counter {name} does not end in _total"))
            } else {
                name.as_str()
            };
            assert!(!stem.contains("_total"), "{name}: _total not at the end");
            for unit in ["_bytes", "_seconds", "_messages"] {
                assert!(
                    !stem.contains(unit) || stem.ends_with(unit),
                    "{name}: the unit {unit} must come last (before _total)"
                );
            }
        }
        for (series, _) in &self.samples {
            let name = series.split('{').next().unwrap_or_default();
            let family = self.types.iter().find(|(n, kind)| {
                n == name
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name.strip_suffix(s) == Some(n.as_str())))
            });
            assert!(family.is_some(), "sample {series} has no # TYPE");
        }
    }
}

/// After a real ceremony through the relay: the latency histograms counted it (in buckets
/// at or above the 500 ms the joiner waited), the build info is there, bytes and messages
/// relayed add up, and every name follows Prometheus' conventions.
#[tokio::test]
async fn metrics_after_a_ceremony_have_latency_histograms_build_info_and_prometheus_names() {
    let server = start(config()).await;
    let before = Exposition::parse(&get(&server, "/metrics").await);
    assert_eq!(
        before.value("tunnel_server_time_to_pair_seconds_count"),
        0.0
    );
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    // The joiner arrives at least this long after the first socket.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, &[1; 100]).await;
    assert_eq!(recv(&mut phone).await, [1; 100]);
    send(&mut phone, &[2; 50]).await;
    assert_eq!(recv(&mut desktop).await, [2; 50]);
    desktop.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
    await_metric(&server, "tunnel_server_ceremonies_completed_total", 1).await;
    await_metric(&server, "tunnel_server_tunnel_lifetime_seconds_count", 1).await;

    let response = get(&server, "/metrics").await;
    let m = Exposition::parse(&response);
    m.check_names();
    for h in [
        "tunnel_server_time_to_pair_seconds",
        "tunnel_server_tunnel_lifetime_seconds",
    ] {
        assert_eq!(m.kind(h), "histogram");
        assert_eq!(m.value(&format!("{h}_count")), 1.0, "{h}");
        assert_eq!(m.value(&format!("{h}_bucket{{le=\"+Inf\"}}")), 1.0, "{h}");
        // 500 ms at least (scheduling may shave a little off where the relay starts counting).
        assert_eq!(m.value(&format!("{h}_bucket{{le=\"0.25\"}}")), 0.0, "{h}");
        // Generous: the whole test takes well under a minute.
        assert_eq!(m.value(&format!("{h}_bucket{{le=\"60\"}}")), 1.0, "{h}");
        let sum = m.value(&format!("{h}_sum"));
        assert!((0.25..60.0).contains(&sum), "{h}_sum {sum}");
        let buckets: Vec<f64> = m
            .samples
            .iter()
            .filter(|(s, _)| s.starts_with(&format!("{h}_bucket{{")))
            .map(|(_, v)| *v)
            .collect();
        assert!(buckets.len() >= 10, "{h}: {buckets:?}");
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{h}: buckets are cumulative: {buckets:?}"
        );
    }
    let build = format!(
        "tunnel_server_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.value(&build), 1.0, "{response}");
    assert_eq!(m.value("tunnel_server_relayed_bytes_total"), 150.0);
    assert_eq!(m.value("tunnel_server_relayed_messages_total"), 2.0);
}

/// With `metrics_listen`, the metrics move to that address: the public listener answers 404
/// to `/metrics` (and still serves the probes), the metrics listener serves the operator
/// pages and nothing else.
#[tokio::test]
async fn metrics_listen_serves_metrics_there_and_not_on_the_public_listener() {
    let server = start(Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..config()
    })
    .await;
    let metrics = server.metrics_addr().expect("a metrics listener");
    assert_ne!(metrics, server.addr());

    let public = get(&server, "/metrics").await;
    assert_eq!(status_line(&public), 404, "{public}");
    assert!(!public.contains("tunnel_server_"), "{public}");
    assert_eq!(status_line(&get(&server, "/healthz").await), 200);
    assert_eq!(status_line(&get(&server, "/readyz").await), 200);

    let m = request_at(metrics, "GET", "/metrics").await;
    assert_eq!(status_line(&m), 200, "{m}");
    assert!(m.contains("text/plain; version=0.0.4"), "{m}");
    Exposition::parse(&m).check_names();
    // The public 404 was counted, and the metrics listener sees the relay's own counters.
    assert_eq!(
        Exposition::parse(&m).value("tunnel_server_rejected_total{reason=\"not_found\"}"),
        1.0
    );
    for path in ["/healthz", "/readyz"] {
        let r = request_at(metrics, "GET", path).await;
        assert_eq!(status_line(&r), 200, "{path}: {r}");
        let head = request_at(metrics, "HEAD", path).await;
        assert_eq!(status_line(&head), 200, "{path}: {head}");
        assert!(
            head.ends_with("\r\n\r\n"),
            "HEAD {path} sent a body: {head}"
        );
    }
    let post = request_at(metrics, "POST", "/metrics").await;
    assert_eq!(status_line(&post), 405, "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    // No tunnels there.
    let tunnel = request_at(metrics, "GET", &new_path(tunnel(1))).await;
    assert_eq!(status_line(&tunnel), 404, "{tunnel}");

    server.shutdown().await.expect("clean shutdown");
    assert!(
        tokio::net::TcpStream::connect(metrics).await.is_err(),
        "the metrics listener stops with the relay"
    );
}

/// The README's metrics section lists exactly the families `/metrics` serves, and every
/// `reason` label; its TOML example parses.
#[tokio::test]
async fn readme_lists_every_metric() {
    let server = start(config()).await;
    let m = Exposition::parse(&get(&server, "/metrics").await);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README readable");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .expect("a ## Metrics section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let listed: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `tunnel_server_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let mut served: Vec<String> = m
        .types
        .iter()
        .map(|(n, _)| n.trim_start_matches("tunnel_server_").to_string())
        .collect();
    served.sort();
    let mut listed: Vec<String> = listed
        .iter()
        .map(|n| n.split('{').next().unwrap_or_default().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, served, "README ## Metrics table vs /metrics");
    for (series, _) in &m.samples {
        if let Some(reason) = series.split("reason=\"").nth(1) {
            let reason = reason.split('"').next().unwrap_or_default();
            assert!(
                section.contains(&format!("`{reason}`")),
                "README ## Metrics does not list the reason {reason}"
            );
        }
    }
    // The configuration example (with `metrics_listen`) is a valid configuration file.
    let example = readme
        .split("```toml\n")
        .find(|b| b.starts_with("listen = "))
        .and_then(|b| b.split("```").next())
        .expect("the README's TOML configuration example");
    let c: Config = toml::from_str(example).expect("the README's TOML example parses");
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
}
