//! Every status code: 400, 403, 404, 405, 409, 410, 503, and `/healthz`, `/metrics`.

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
