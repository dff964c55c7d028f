//! What every connection task shares, and the guard each one holds: the server's [`Phase`],
//! the routing table and contact registry behind one lock, the optional contact store, the
//! metrics, the per-client connection counts and registration token buckets (a client is an
//! address prefix: [`client_key`]), the bytes held for absent peers (the queued-bytes budget),
//! and [`ConnGuard`], which releases a connection's slots and keeps shutdown waiting until it
//! is dropped. This is the bottom of the module graph: the listener (`server`), HTTP routing
//! (`http`) and the WebSocket tasks (`relay`, `contact::socket`) all use it, and it uses none
//! of them, only the plain parts of the contact channel (its registry, store and mint limit).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use crate::config::Config;
use crate::contact::mint_limit::MintLimiter;
use crate::contact::registry::Contacts;
use crate::contact::store::{ContactStore, SharedStore};
use crate::lent::Lent;
use crate::metrics::{Gauges, Metrics, Rejection};
use crate::table::Table;

/// An upgraded WebSocket connection (plain TCP or TLS underneath), its connection lent so the
/// relay can take it back while the socket is quiet.
pub(crate) type Ws = WebSocketStream<Lent>;

/// What `/cable/connect` hands the waiting socket's task through the table: its socket, and
/// its connection guard, held until the tunnel ends.
pub(crate) struct Joiner {
    pub(crate) ws: Ws,
    pub(crate) _guard: Arc<ConnGuard>,
}

/// Where the server is in its life; tasks watch this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Accepting and relaying.
    Running,
    /// Not ready: new tunnels, wake-ups and registrations get 503 and registration sockets
    /// close, but a waiting tunnel may still be joined and live tunnels finish.
    Draining,
    /// The grace period is over: everything closes with 1001.
    Closing,
}

/// Waits until the server reaches `phase` (or is gone).
pub(crate) async fn reached(rx: &mut watch::Receiver<Phase>, phase: Phase) {
    let _ = rx.wait_for(|p| *p >= phase).await;
}

/// The mutable tables, behind one lock that is never held across an `.await`.
pub(crate) struct State {
    pub(crate) table: Table<Joiner>,
    pub(crate) contacts: Contacts,
}

/// What every task shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The optional `--contact-store` file.
    pub(crate) contact_store: SharedStore,
    pub(crate) metrics: Metrics,
    pub(crate) phase: watch::Receiver<Phase>,
    state: Mutex<State>,
    /// Connections per client key ([`client_key`]).
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Token buckets for minting contact IDs, per client key.
    mints: MintLimiter,
    /// Bytes charged to the queued-bytes budget (`limits.max_queued_bytes`).
    queued: AtomicUsize,
}

/// The key per-client limits count by: the address's leading `v4_prefix` or `v6_prefix` bits
/// (an IPv4-mapped IPv6 address counts as IPv4), the rest zeroed.
pub(crate) fn client_key(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(v4_prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(v6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        state: State,
        contact_store: Option<ContactStore>,
        phase: watch::Receiver<Phase>,
    ) -> Self {
        Self {
            config,
            contact_store: SharedStore::new(contact_store),
            metrics: Metrics::default(),
            phase,
            state: Mutex::new(state),
            per_ip: Mutex::new(HashMap::new()),
            mints: MintLimiter::default(),
            queued: AtomicUsize::new(0),
        }
    }

    /// Charges `n` bytes to the queued-bytes budget; false (nothing charged) if it would go
    /// over `limits.max_queued_bytes`.
    pub(crate) fn charge_queued(&self, n: usize) -> bool {
        let max = self.config.limits.max_queued_bytes;
        self.queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                q.checked_add(n).filter(|&total| total <= max)
            })
            .is_ok()
    }

    /// Gives back `n` bytes charged with [`charge_queued`](Self::charge_queued).
    pub(crate) fn release_queued(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the tables inconsistent in a way that
        // matters more than stopping the relay would, so recover the guard.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn gauges(&self) -> Gauges {
        let s = self.state();
        Gauges {
            tunnels_open: s.table.len(),
            tunnels_paired: s.table.paired(),
            contacts: s.contacts.len(),
            registrations_connected: s.contacts.connected(),
            tasks: tokio::runtime::Handle::try_current()
                .ok()
                .map(|h| h.metrics().num_alive_tasks()),
        }
    }
}

/// Held by every task that serves a connection: releases the connection slots and, for a
/// connection accepted before shutdown began, keeps shutdown waiting until it is dropped. One
/// accepted while draining does not (it can only be refused or join a tunnel, whose own
/// guard holds the drain).
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    /// The client key ([`client_key`]), not the exact address.
    ip: IpAddr,
    /// The exact address, for the mint limits of the prefixes around it.
    peer: IpAddr,
    _permit: OwnedSemaphorePermit,
    _drain: Option<mpsc::Sender<()>>,
}

impl ConnGuard {
    /// Applies the connection limits to a new connection from `peer`; `None` means drop it.
    /// `drain` is the sender shutdown waits on (it closes once every guard holding it is
    /// gone); `None` while the server is already draining.
    pub(crate) fn admit(
        shared: &Arc<Shared>,
        permits: &Arc<Semaphore>,
        drain: Option<&mpsc::Sender<()>>,
        peer: SocketAddr,
    ) -> Option<Self> {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.metrics.rejected(Rejection::ConnectionLimit);
            debug!("connection limit reached; dropping a connection");
            return None;
        };
        let l = &shared.config.limits;
        let ip = client_key(peer.ip(), l.ipv4_client_prefix, l.ipv6_client_prefix);
        let per_ip = l.max_connections_per_ip;
        if per_ip != 0 {
            let mut map = shared.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let n = map.entry(ip).or_insert(0);
            if *n >= per_ip {
                drop(map);
                shared.metrics.rejected(Rejection::PerIpLimit);
                debug!("per-client connection limit reached; dropping a connection");
                return None;
            }
            *n += 1;
        }
        Some(Self {
            shared: shared.clone(),
            ip,
            peer: peer.ip().to_canonical(),
            _permit: permit,
            _drain: drain.cloned(),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether this client may mint another contact ID now (`contact::mint_limit`: per
    /// client, per IPv6 /48 and /32, and relay-wide).
    pub(crate) fn allow_registration(
        &self,
        now: std::time::Instant,
    ) -> Result<(), crate::contact::mint_limit::Limited> {
        let limits = &self.shared.config.limits;
        self.shared
            .mints
            .handle_mint(self.ip, self.peer, limits, now)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.shared.config.limits.max_connections_per_ip == 0 {
            return;
        }
        let mut map = self
            .shared
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str, v4: u8, v6: u8) -> String {
        client_key(ip.parse().unwrap(), v4, v6).to_string()
    }

    #[test]
    fn ipv6_clients_are_counted_by_slash_64() {
        assert_eq!(key("2001:db8::1", 32, 64), key("2001:db8::2", 32, 64));
        assert_eq!(key("2001:db8::1", 32, 64), "2001:db8::");
        assert_eq!(
            key("2001:db8:0:0:ffff:ffff:ffff:ffff", 32, 64),
            "2001:db8::"
        );
        assert_ne!(key("2001:db8:0:1::1", 32, 64), key("2001:db8::1", 32, 64));
        assert_eq!(key("2001:db8::1", 32, 128), "2001:db8::1");
        assert_eq!(key("2001:db8:ab:cd::1", 32, 48), "2001:db8:ab::");
    }

    #[test]
    fn ipv4_clients_are_exact_or_slash_24() {
        assert_eq!(key("192.0.2.7", 32, 64), "192.0.2.7");
        assert_ne!(key("192.0.2.7", 32, 64), key("192.0.2.8", 32, 64));
        assert_eq!(key("192.0.2.7", 24, 64), "192.0.2.0");
        assert_eq!(key("192.0.2.7", 24, 64), key("192.0.2.200", 24, 64));
        assert_ne!(key("192.0.2.7", 24, 64), key("192.0.3.7", 24, 64));
        // An IPv4-mapped IPv6 address (a dual-stack listener) is the IPv4 client.
        assert_eq!(key("::ffff:192.0.2.7", 24, 64), "192.0.2.0");
        assert_eq!(key("::ffff:192.0.2.7", 32, 64), "192.0.2.7");
    }
}
