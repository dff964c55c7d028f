//! A phone's registration socket on the contact channel (README "Contact channel"): attached
//! to its contact ID in the registry, it delivers wake-ups (pending ones first), handles
//! `{"revoke":true}`, pings the phone, confirms the contact ID once it has stayed connected
//! for the unconfirmed expiry, and closes on shutdown or when a newer socket replaces it.

use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::contact::{is_revoke, WakeUp};
use hyper::upgrade::OnUpgrade;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::contact::registry::CONTACT_RANDOM_LEN;
use crate::metrics::CloseReason;
use crate::relay::{classify, close, closed_by_peer, peer_end, upgrade, End, Incoming};
use crate::state::{reached, ConnGuard, Phase, Shared, Ws};

/// Largest message accepted on a registration socket (`{"revoke":true}` is 15 bytes).
const REGISTRATION_MAX_MESSAGE: usize = 1024;

/// A phone's registration socket: delivers wake-ups, handles `{"revoke":true}`, pings.
pub(crate) async fn registration(
    guard: Arc<ConnGuard>,
    on: OnUpgrade,
    key: [u8; CONTACT_RANDOM_LEN],
) {
    let shared = guard.shared().clone();
    let Some(mut ws) = upgrade(on, REGISTRATION_MAX_MESSAGE).await else {
        return;
    };
    let (tx, mut rx) = mpsc::channel::<WakeUp>(8);
    let now = Instant::now().into_std();
    let attached = shared.state().contacts.handle_attach(key, tx, now);
    let Ok((gen, pending)) = attached else {
        // Revoked between the 101 and now.
        close(&mut ws, CloseCode::Normal, "contact revoked").await;
        return;
    };
    let end = serve_registration(&shared, &mut ws, &mut rx, pending, key).await;
    let now = Instant::now().into_std();
    shared.state().contacts.handle_detach(key, gen, now);
    close(&mut ws, end.code, end.text).await;
    shared.metrics.closed(end.reason);
    debug!(outcome = end.reason.label(), "registration closed");
}

async fn serve_registration(
    shared: &Shared,
    ws: &mut Ws,
    rx: &mut mpsc::Receiver<WakeUp>,
    pending: Vec<WakeUp>,
    key: [u8; CONTACT_RANDOM_LEN],
) -> End {
    let interval = shared.config.limits.registration_ping_interval;
    let mut phase = shared.phase.clone();
    // Connected for the unconfirmed expiry: a lasting registration (README "Threat model").
    let confirm = sleep_until(Instant::now() + shared.config.limits.unconfirmed_contact_expiry);
    tokio::pin!(confirm);
    let mut confirmed = false;
    for w in pending {
        if !deliver(shared, ws, &w).await {
            return End::PEER_GONE;
        }
    }
    let mut last_heard = Instant::now();
    let mut next_ping = Instant::now() + interval;
    loop {
        tokio::select! {
            w = rx.recv() => match w {
                Some(w) => {
                    if !deliver(shared, ws, &w).await {
                        return End::PEER_GONE;
                    }
                }
                None => {
                    return End::new(
                        CloseReason::Revoked,
                        CloseCode::Normal,
                        "replaced by a newer registration",
                    )
                }
            },
            m = ws.next() => {
                last_heard = Instant::now();
                match classify(m) {
                    Incoming::Data(b) => {
                        if is_revoke(&b) {
                            // Under the state lock: a racing resume's confirmation is
                            // recorded before this revocation, as the registry saw them.
                            let mut state = shared.state();
                            if state.contacts.handle_revoke(key) {
                                shared.contact_store.revoked(&key);
                            }
                            drop(state);
                            return End::new(CloseReason::Revoked, CloseCode::Normal, "contact revoked");
                        }
                    }
                    Incoming::Control => {}
                    Incoming::Closed(code) => {
                        closed_by_peer(ws).await;
                        return peer_end(code).0;
                    }
                    Incoming::Violation(end) => return end,
                }
            },
            () = sleep_until(next_ping) => {
                if last_heard.elapsed() > interval * 2 {
                    return End::new(CloseReason::Idle, CloseCode::Away, "no pong");
                }
                let ping = tokio::time::timeout(interval, ws.send(Message::Ping(Vec::new())));
                if !matches!(ping.await, Ok(Ok(()))) {
                    return End::PEER_GONE;
                }
                next_ping = Instant::now() + interval;
            },
            () = &mut confirm, if !confirmed => {
                confirmed = true;
                let now = Instant::now().into_std();
                let mut state = shared.state();
                let c = state.contacts.handle_confirm(key, now);
                shared.contact_store.confirmed(&key, c);
                drop(state);
            },
            () = reached(&mut phase, Phase::Draining) => return End::SHUTDOWN,
        }
    }
}

/// Sends a wake-up unless its tunnel is no longer waiting; false if the socket failed.
async fn deliver(shared: &Shared, ws: &mut Ws, w: &WakeUp) -> bool {
    if !shared.state().table.is_waiting(&w.tunnel_id) {
        return true;
    }
    let limit = shared.config.limits.registration_ping_interval;
    let sent = tokio::time::timeout(limit, ws.send(Message::Binary(w.to_json().into_bytes())));
    matches!(sent.await, Ok(Ok(())))
}
