//! The client against the real relay (`tunnel-server` on loopback): both ends of a tunnel,
//! the phone's registration socket, and every way the relay refuses or ends a connection
//! turned into the one typed error.

use std::time::Duration;

use hybrid_protocol::tunnel::{ContactId, RoutingId, TunnelId, TunnelPath, ROUTING_ID_HEADER};
use tunnel_client::{RelayError, Route, TunnelConfig};
use tunnel_server::{Config, RunningServer};

async fn relay(tweak: impl FnOnce(&mut Config)) -> (RunningServer, TunnelConfig) {
    let mut cfg = Config::default();
    cfg.limits.shutdown_grace = Duration::from_millis(100);
    tweak(&mut cfg);
    let server = RunningServer::start(cfg).await.unwrap();
    let client = TunnelConfig::new(Some(server.ws_url()), vec![], None);
    (server, client)
}

fn new_route(id: u8) -> Route {
    Route::Tunnel(TunnelPath::New(TunnelId([id; 16])))
}

async fn pair(client: &TunnelConfig, id: u8) -> (tunnel_client::Tunnel, tunnel_client::Tunnel) {
    let phone = client.open("unused", &new_route(id), &[]).await.unwrap();
    let routing = RoutingId::from_hex(phone.required_header(ROUTING_ID_HEADER).unwrap()).unwrap();
    let desktop = client
        .open(
            "unused",
            &Route::Tunnel(TunnelPath::Connect(routing, TunnelId([id; 16]))),
            &[],
        )
        .await
        .unwrap();
    (phone, desktop)
}

#[tokio::test]
async fn both_ends_exchange_messages_and_a_normal_close_ends_the_other_side() {
    let (server, client) = relay(|_| {}).await;
    let (mut phone, mut desktop) = pair(&client, 1).await;
    desktop.send(b"msg1".to_vec()).await.unwrap();
    assert_eq!(phone.recv().await.unwrap().as_deref(), Some(&b"msg1"[..]));
    phone.send(vec![7; 4000]).await.unwrap();
    assert_eq!(desktop.recv().await.unwrap(), Some(vec![7; 4000]));
    // The desktop ends the tunnel: the phone sees the other side end, not an error.
    desktop.close().await;
    assert_eq!(phone.recv().await.unwrap(), None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusals_carry_the_http_status() {
    let (server, client) = relay(|_| {}).await;
    let missing = Route::Tunnel(TunnelPath::Connect(server.routing_id(), TunnelId([9; 16])));
    let e = client.open("unused", &missing, &[]).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    // The same tunnel ID twice: 409.
    let _first = client.open("unused", &new_route(2), &[]).await.unwrap();
    let e = client.open("unused", &new_route(2), &[]).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_relay_closing_for_size_says_message_too_big() {
    let (server, client) = relay(|c| c.limits.max_message_size = 1024).await;
    let (mut phone, mut desktop) = pair(&client, 3).await;
    desktop.send(vec![0; 4096]).await.unwrap();
    let e = desktop.recv().await.unwrap_err();
    assert!(
        matches!(e, RelayError::ClosedByRelay { code: 1009, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("the relay closed the tunnel: message too big (1009)"),
        "{e}"
    );
    // The phone's side of the same tunnel ends too, and says why.
    let r = phone.recv().await;
    assert!(r.is_err() || r.as_ref().unwrap().is_none(), "{r:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_relay_closing_for_message_count_is_a_policy_close() {
    let (server, client) = relay(|c| c.limits.messages_per_side = 2).await;
    let (mut phone, mut desktop) = pair(&client, 4).await;
    let mut closed = None;
    for _ in 0..4 {
        if desktop.send(vec![1; 10]).await.is_err() {
            break;
        }
    }
    for _ in 0..4 {
        match phone.recv().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                closed = Some(e);
                break;
            }
        }
    }
    let e = match closed {
        Some(e) => e,
        None => desktop.recv().await.unwrap_err(),
    };
    assert!(
        matches!(e, RelayError::ClosedByRelay { code: 1008, .. }),
        "{e:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_relay_shutting_down_is_going_away() {
    let (server, client) = relay(|_| {}).await;
    let mut phone = client.open("unused", &new_route(5), &[]).await.unwrap();
    let waiting = tokio::spawn(async move { phone.recv().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown().await.unwrap();
    let e = waiting.await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            RelayError::ClosedByRelay { code: 1001, .. } | RelayError::Dropped { .. }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable_and_bad_settings_are_local() {
    let port = test_support::net::closed_port().port();
    let client = TunnelConfig::new(Some(format!("ws://127.0.0.1:{port}")), vec![], None);
    let e = client.open("unused", &new_route(6), &[]).await.unwrap_err();
    assert!(
        matches!(e, RelayError::Unreachable { .. }) && !e.is_local(),
        "{e}"
    );
    let client = TunnelConfig::new(Some("http://127.0.0.1:1".into()), vec![], None);
    let e = client.check().unwrap_err();
    assert!(e.is_local(), "{e}");
}

#[tokio::test]
async fn a_relay_gone_before_answering_the_upgrade_is_a_lost_connection() {
    // A relay process that is killed after its kernel accepted the connection, before it
    // answered: the request is read, then the socket closes.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let (mut tcp, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
    });
    let client = TunnelConfig::new(Some(format!("ws://{addr}")), vec![], None);
    let e = client.open("unused", &new_route(8), &[]).await.unwrap_err();
    server.await.unwrap();
    assert!(matches!(e, RelayError::Dropped { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("before answering the WebSocket upgrade"),
        "{e}"
    );
}

#[tokio::test]
async fn the_registration_socket_mints_a_contact_id() {
    let (server, client) = relay(|_| {}).await;
    let reg = client
        .open("unused", &Route::Register(None), &[])
        .await
        .unwrap();
    let id = reg.required_header("X-caBLE-Contact-ID").unwrap();
    assert!(!id.is_empty());
    assert!(reg.header("X-No-Such-Header").unwrap().is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refusal_says_what_the_relay_said() {
    let (server, client) = relay(|_| {}).await;
    let reg = client
        .open("unused", &Route::Register(None), &[])
        .await
        .unwrap();
    let id = ContactId::from_base64url(reg.required_header("X-caBLE-Contact-ID").unwrap()).unwrap();
    // Resuming without the phone's registration secret: the relay explains the 403 in its body.
    let e = client
        .open("unused", &Route::Register(Some(id)), &[])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("it said: resuming this contact ID needs the X-caBLE-Registration-Secret"),
        "{text}"
    );
    // A bare status phrase adds nothing and is not repeated.
    let missing = Route::Tunnel(TunnelPath::Connect(server.routing_id(), TunnelId([9; 16])));
    let text = client
        .open("unused", &missing, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(!text.contains("it said"), "{text}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connect_to_keeps_the_name_and_changes_the_address() {
    let (server, _) = relay(|_| {}).await;
    let addr = server.ws_url().trim_start_matches("ws://").to_string();
    let client = TunnelConfig::new(
        Some("ws://relay.invalid".into()),
        vec![("relay.invalid".into(), addr)],
        None,
    );
    let t = client.open("unused", &new_route(7), &[]).await.unwrap();
    assert!(t.url().starts_with("ws://relay.invalid/cable/new/"));
    server.shutdown().await.unwrap();
}
