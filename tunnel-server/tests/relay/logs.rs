//! Guard tests on logging: a full QR ceremony and a contact wake-up log nothing at WARN or
//! above, and the INFO log never holds a full tunnel ID, contact ID or payload. Each runs in a
//! process of its own ([`CapturedLog::in_own_process`]).

use hybrid_protocol::tunnel::{ContactId, TunnelPath};

use crate::log_capture::CapturedLog;
use crate::support::*;

#[tokio::test]
async fn happy_paths_log_no_warnings_and_no_full_ids() {
    let Some(captured) = CapturedLog::in_own_process(
        "logs::happy_paths_log_no_warnings_and_no_full_ids",
        tracing::Level::INFO,
    ) else {
        return;
    };

    let server = start(config()).await;
    let t = tunnel(0x5a);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, b"secret-msg1").await;
    assert_eq!(recv(&mut phone).await, b"secret-msg1");
    desktop.close(None).await.unwrap();
    let _ = closed(&mut phone).await;

    let (mut reg, resp) = open(&server, "/cable/register", &[]).await.unwrap();
    let id =
        ContactId::from_base64url(resp.headers()["X-caBLE-Contact-ID"].to_str().unwrap()).unwrap();
    let payload = "C0FFEE0123456789";
    let mut client = open(
        &server,
        &TunnelPath::Contact(id.clone()).to_path(),
        &[("X-caBLE-Client-Payload", payload)],
    )
    .await
    .unwrap()
    .0;
    let wake: serde_json::Value = serde_json::from_slice(&recv(&mut reg).await).unwrap();
    let tunnel_hex = wake["tunnel_id"].as_str().unwrap().to_string();
    let mut linked = ok(
        &server,
        &format!(
            "/cable/connect/{}/{tunnel_hex}",
            wake["routing_id"].as_str().unwrap()
        ),
    )
    .await;
    send(&mut linked, b"x").await;
    assert_eq!(recv(&mut client).await, b"x");
    client.close(None).await.unwrap();
    let _ = closed(&mut linked).await;
    server.shutdown().await.unwrap();

    let log = captured.text();
    assert!(log.contains("tunnel closed"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    for secret in [
        t.to_hex(),
        tunnel_hex,
        id.to_base64url(),
        payload.to_string(),
        "secret-msg1".to_string(),
    ] {
        assert!(
            !log.to_uppercase().contains(&secret.to_uppercase()),
            "{secret} in {log}"
        );
    }
}
