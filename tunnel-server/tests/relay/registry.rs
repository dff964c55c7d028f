//! Contact-registry squatting: minted contact IDs nobody uses expire after
//! the unconfirmed window, a full registry evicts the least recently seen unconfirmed entry,
//! then confirmed ones never woken or resumed since (never one in use or connected), unused
//! mints never reach the contact store so a restart cannot bring a squatted registry back,
//! and browsers (any `Origin`) cannot mint.

use std::time::Duration;

use hybrid_protocol::tunnel::{ContactId, TunnelPath};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::support::*;

const PAYLOAD: &str = "A301480102030405060708025010";

/// A phone that registered: its socket (if kept), contact ID and secret.
struct Minted {
    ws: Option<Ws>,
    id: ContactId,
    secret: String,
}

async fn mint(server: &tunnel_server::RunningServer) -> Minted {
    let (ws, id, secret) = register_with_secret(server).await;
    Minted {
        ws: Some(ws),
        id,
        secret,
    }
}

/// A squat: mints and hangs up at once, as a flood does.
async fn squat(server: &tunnel_server::RunningServer) -> Minted {
    let mut m = mint(server).await;
    hang_up(server, &mut m).await;
    m
}

/// Closes the registration socket and waits until the relay has seen it go.
async fn hang_up(server: &tunnel_server::RunningServer, m: &mut Minted) {
    let connected = metric(server, "tunnel_server_registrations_connected").await;
    drop(m.ws.take());
    await_metric(
        server,
        "tunnel_server_registrations_connected",
        connected - 1,
    )
    .await;
}

/// Resumes with the phone's secret: the status (101 on success).
async fn resume(server: &tunnel_server::RunningServer, m: &Minted) -> u16 {
    match open(
        server,
        &resume_path(&m.id),
        &[(SECRET_HEADER, m.secret.as_str())],
    )
    .await
    {
        Ok(_) => 101,
        Err(e) => status(Err(e)),
    }
}

/// Whether the relay still knows the contact ID (a desktop's wake-up is 101, not 410). A
/// wake-up does not confirm anything.
async fn known(server: &tunnel_server::RunningServer, m: &Minted) -> bool {
    let path = TunnelPath::Contact(m.id.clone()).to_path();
    match open(server, &path, &[("X-caBLE-Client-Payload", PAYLOAD)]).await {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(status(Err(e)), 410);
            false
        }
    }
}

fn squattable(max_contacts: usize) -> tunnel_server::Config {
    let mut c = config();
    c.limits.max_contacts = max_contacts;
    // The squatter has many addresses; the rate limits are not what is tested here.
    c.limits.registrations_per_ip_per_minute = 0;
    c.limits.registrations_per_minute = 0;
    c
}

/// Unused mints are forgotten once the unconfirmed window passes (not the 90-day expiry), so a
/// registry filled with them admits real phones again.
#[tokio::test]
async fn never_used_mints_expire_after_the_unconfirmed_window() {
    let mut c = squattable(5);
    c.limits.unconfirmed_contact_expiry = Duration::from_millis(200);
    let server = start(c).await;
    let mut squats = Vec::new();
    for _ in 0..5 {
        squats.push(squat(&server).await);
    }
    // Generous: four times the window.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        resume(&server, &squats[0]).await,
        410,
        "an unused mint expired"
    );
    let _phone = mint(&server).await;
    for s in &squats[1..] {
        assert!(!known(&server, s).await);
    }
    assert_eq!(
        metric(&server, "tunnel_server_contacts").await,
        1,
        "expired mints are gone, not just refused"
    );
}

/// A registry full of unused mints admits a new phone before their window passes, by
/// evicting the least recently seen unconfirmed entry that is not connected. A phone in use
/// (it resumed, and came back again) and a connected one are never evicted; once only such
/// entries are left, a mint is refused (503).
#[tokio::test]
async fn a_full_registry_evicts_the_least_recently_seen_unused_mint() {
    let server = start(squattable(4)).await;
    let mut confirmed = mint(&server).await;
    hang_up(&server, &mut confirmed).await;
    assert_eq!(resume(&server, &confirmed).await, 101);
    await_metric(&server, "tunnel_server_registrations_connected", 0).await;
    // The phone reconnects later: in use, so never evicted.
    assert_eq!(resume(&server, &confirmed).await, 101);
    await_metric(&server, "tunnel_server_registrations_connected", 0).await;
    let connected = mint(&server).await;
    let first = squat(&server).await;
    let second = squat(&server).await;
    assert_eq!(metric(&server, "tunnel_server_contacts").await, 4);

    let new_phone = mint(&server).await;
    assert!(!known(&server, &first).await, "the oldest unused mint went");
    assert!(known(&server, &second).await);
    let newer_phone = mint(&server).await;
    assert!(!known(&server, &second).await);
    // Left: one confirmed and three connected entries.
    assert_eq!(
        status(open(&server, "/cable/register", &[]).await),
        503,
        "nothing evictable"
    );
    assert!(known(&server, &confirmed).await);
    assert!(known(&server, &connected).await);
    assert_eq!(resume(&server, &confirmed).await, 101);
    drop((connected, new_phone, newer_phone));
}

/// Unused mints are never written to the store, so a restart after a squat does not bring a
/// full registry back (which would make every registration 503); a confirmed phone survives
/// the restart.
#[tokio::test]
async fn a_restart_after_a_squat_admits_a_new_phone_and_keeps_the_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("contacts");
    let with_store = || tunnel_server::Config {
        contact_store: Some(store.clone()),
        ..squattable(3)
    };
    let server = start(with_store()).await;
    let mut phone = mint(&server).await;
    hang_up(&server, &mut phone).await;
    assert_eq!(resume(&server, &phone).await, 101);
    let squats = [squat(&server).await, squat(&server).await];
    server.shutdown().await.unwrap();

    let server = start(with_store()).await;
    let new = mint(&server).await;
    let another = mint(&server).await;
    assert_eq!(resume(&server, &phone).await, 101);
    for s in &squats {
        assert_eq!(resume(&server, s).await, 410);
    }
    drop((new, another));
    server.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&store).unwrap();
    let hex_key = hex::encode(&phone.id.0[3..]);
    assert_eq!(
        text,
        format!("*{hex_key}\n!{hex_key}\n"),
        "only the confirmed phone is stored"
    );
}

/// A store without confirmation lines (`*`/`+` lines only) may be full of squats; nobody can
/// tell them from phones, so they restore unconfirmed (full expiry) and the least recently
/// seen is evicted when a new phone needs room. A phone that resumes is confirmed, stays, and
/// its confirmation is stored.
#[tokio::test]
async fn a_full_store_without_confirmations_admits_new_phones_and_keeps_phones_that_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("contacts");
    let (real, old_a, old_b) = ([0x11u8; 16], [0x22u8; 16], [0x33u8; 16]);
    let lines: String = [(b'+', real), (b'*', old_a), (b'*', old_b)]
        .iter()
        .map(|(sign, k)| format!("{}{}\n", *sign as char, hex::encode(k)))
        .collect();
    std::fs::write(&store, lines).unwrap();
    let with_store = || tunnel_server::Config {
        contact_store: Some(store.clone()),
        ..squattable(3)
    };
    let server = start(with_store()).await;
    let id = |k: [u8; 16]| {
        let mut v = ROUTING.0.to_vec();
        v.extend_from_slice(&k);
        Minted {
            ws: None,
            id: ContactId(v),
            secret: String::new(),
        }
    };
    // The real (legacy) phone comes back after the upgrade: it resumes, which confirms it.
    let legacy = id(real);
    let path = format!("/cable/register/{}", legacy.id.to_base64url());
    drop(
        open(&server, &path, &[])
            .await
            .expect("the legacy phone resumes"),
    );
    let _new = mint(&server).await;
    let _newer = mint(&server).await;
    assert!(!known(&server, &id(old_a)).await);
    assert!(!known(&server, &id(old_b)).await);
    assert!(known(&server, &legacy).await);
    server.shutdown().await.unwrap();

    let text = std::fs::read_to_string(&store).unwrap();
    assert!(
        text.contains(&format!("!{}\n", hex::encode(real))),
        "{text}"
    );
    assert!(
        text.contains(&format!("-{}\n", hex::encode(old_a))),
        "{text}"
    );
}

/// Phones send no `Origin`; browsers always do. Any page could otherwise make its visitors
/// mint, so the phone-only endpoints refuse any `Origin`, even one on the allow-list, and
/// say why. The tunnel endpoints accept a page only from the allow-list.
#[tokio::test]
async fn phone_only_endpoints_refuse_browser_origins() {
    for allowed in [vec![], vec!["https://evil.example".to_string()]] {
        let server = start(tunnel_server::Config {
            allowed_origins: allowed.clone(),
            ..config()
        })
        .await;
        let origin = [("Origin", "https://evil.example")];
        match open(&server, "/cable/register", &origin).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 403, "allow-list {allowed:?}");
                let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
                assert!(body.contains("browser"), "{body}");
            }
            Err(e) => panic!("expected 403, got {e}"),
            Ok(_) => panic!("a browser minted a contact ID (allow-list {allowed:?})"),
        }
        let phone = mint(&server).await;
        let resume_path = format!("/cable/register/{}", phone.id.to_base64url());
        let with_secret = [
            ("Origin", "https://evil.example"),
            (SECRET_HEADER, phone.secret.as_str()),
        ];
        assert_eq!(status(open(&server, &resume_path, &with_secret).await), 403);
        assert_eq!(metric(&server, "tunnel_server_contacts").await, 1);
        // A page may open tunnels only where the operator listed it (tests/relay/origins.rs).
        let page_tunnel = open(&server, &new_path(tunnel(1)), &origin).await;
        if allowed.is_empty() {
            assert_eq!(status(page_tunnel), 403);
        } else {
            page_tunnel.expect("a listed page origin may open tunnels");
        }
    }
}

/// Minting and confirming (one resume) is all a squatter has to do: a registry full of such
/// contact IDs admits a new phone by evicting the least recently seen of them, and keeps a
/// confirmed ID that was woken since.
#[tokio::test]
async fn a_registry_full_of_confirmed_squats_admits_new_phones() {
    let server = start(squattable(3)).await;
    let mut squats = Vec::new();
    for _ in 0..3 {
        let s = squat(&server).await;
        assert_eq!(resume(&server, &s).await, 101);
        await_metric(&server, "tunnel_server_registrations_connected", 0).await;
        squats.push(s);
    }
    // A desktop wakes the second one: in use.
    assert!(known(&server, &squats[1]).await);
    let _phone = mint(&server).await;
    assert!(
        !known(&server, &squats[0]).await,
        "the oldest confirmed squat went"
    );
    let _another = mint(&server).await;
    assert!(!known(&server, &squats[2]).await);
    assert!(
        known(&server, &squats[1]).await,
        "a woken ID is in use and stays"
    );
}

/// A phone that keeps its minting socket for the unconfirmed window is confirmed: after it
/// disconnects, it has the full expiry to come back, not the short one.
#[tokio::test]
async fn a_phone_connected_for_the_window_is_confirmed() {
    let mut c = config();
    c.limits.unconfirmed_contact_expiry = Duration::from_millis(200);
    let server = start(c).await;
    let mut phone = mint(&server).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    hang_up(&server, &mut phone).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(resume(&server, &phone).await, 101);
}
