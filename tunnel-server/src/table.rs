//! The routing table (HYBRID.md §5.3) and the contact registry (§8, our contact channel), as
//! plain structs with no sockets and no clock: callers pass `now`. Inputs are named
//! `handle_*`. A tunnel slot is `Waiting` from its first socket (`/cable/new` or
//! `/cable/contact`) until `/cable/connect` takes the joiner channel, then `Paired` until the
//! relay task reports it closed; slots carry a generation so a stale close never removes a
//! newer tunnel with the same ID.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hybrid_protocol::tunnel::{ContactId, RoutingId, TunnelId};
use tokio::sync::{mpsc, oneshot};

/// Why the table refused a request; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `/cable/new` for a tunnel ID that is live (409).
    Conflict,
    /// `/cable/connect` for a tunnel that is unknown or already paired (404).
    UnknownTunnel,
    /// A contact ID this instance did not mint, or one that was revoked (410).
    Gone,
    /// A capacity limit (503).
    Full,
}

/// Tables smaller than this are never shrunk.
const MIN_SHRINK_CAPACITY: usize = 1024;

/// The tunnel table. `J` is what the second socket hands the waiting one (in the server, its
/// WebSocket).
pub(crate) struct Table<J> {
    tunnels: HashMap<TunnelId, Slot<J>>,
    next_gen: u64,
    max: usize,
    paired: usize,
}

enum Slot<J> {
    Waiting {
        gen: u64,
        joiner: oneshot::Sender<J>,
    },
    Paired {
        gen: u64,
    },
}

impl<J> Table<J> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            tunnels: HashMap::new(),
            next_gen: 0,
            max,
            paired: 0,
        }
    }

    /// The first socket of a tunnel arrives: returns the slot's generation and the channel on
    /// which the joiner will arrive.
    pub(crate) fn handle_open(
        &mut self,
        id: TunnelId,
    ) -> Result<(u64, oneshot::Receiver<J>), Refusal> {
        if let Some(slot) = self.tunnels.get(&id) {
            let stale = matches!(slot, Slot::Waiting { joiner, .. } if joiner.is_closed());
            if !stale {
                return Err(Refusal::Conflict);
            }
            self.tunnels.remove(&id);
        }
        if self.tunnels.len() >= self.max {
            return Err(Refusal::Full);
        }
        self.next_gen += 1;
        let gen = self.next_gen;
        let (tx, rx) = oneshot::channel();
        self.tunnels.insert(id, Slot::Waiting { gen, joiner: tx });
        Ok((gen, rx))
    }

    /// The second socket (`/cable/connect`) arrives: takes the joiner channel and marks the
    /// tunnel paired, so another `/cable/connect` gets 404.
    pub(crate) fn handle_connect(&mut self, id: TunnelId) -> Result<oneshot::Sender<J>, Refusal> {
        let Some(slot) = self.tunnels.get_mut(&id) else {
            return Err(Refusal::UnknownTunnel);
        };
        match slot {
            Slot::Paired { .. } => Err(Refusal::UnknownTunnel),
            Slot::Waiting { gen, joiner } if !joiner.is_closed() => {
                let gen = *gen;
                let Slot::Waiting { joiner, .. } = std::mem::replace(slot, Slot::Paired { gen })
                else {
                    return Err(Refusal::UnknownTunnel);
                };
                self.paired += 1;
                Ok(joiner)
            }
            Slot::Waiting { .. } => {
                self.tunnels.remove(&id);
                Err(Refusal::UnknownTunnel)
            }
        }
    }

    /// The tunnel with this generation is over (either socket closed, or it never upgraded).
    pub(crate) fn handle_closed(&mut self, id: TunnelId, gen: u64) {
        let current = match self.tunnels.get(&id) {
            Some(Slot::Waiting { gen: g, .. }) => *g == gen,
            Some(Slot::Paired { gen: g }) => *g == gen,
            None => false,
        };
        if current {
            if let Some(Slot::Paired { .. }) = self.tunnels.remove(&id) {
                self.paired -= 1;
            }
            self.shrink();
        }
    }

    /// Gives a burst's memory back: once the table holds under an eighth of what it has room
    /// for, it shrinks to twice its size. Rehashing only after the table lost most of its
    /// entries keeps the cost amortised.
    fn shrink(&mut self) {
        let (len, cap) = (self.tunnels.len(), self.tunnels.capacity());
        if cap > MIN_SHRINK_CAPACITY && len < cap / 8 {
            self.tunnels.shrink_to(len * 2);
        }
    }

    /// Whether a tunnel is still waiting for its second socket.
    pub(crate) fn is_waiting(&self, id: &TunnelId) -> bool {
        matches!(self.tunnels.get(id), Some(Slot::Waiting { joiner, .. }) if !joiner.is_closed())
    }

    /// Tunnels open (waiting or paired).
    pub(crate) fn len(&self) -> usize {
        self.tunnels.len()
    }

    /// Tunnels paired.
    pub(crate) fn paired(&self) -> usize {
        self.paired
    }
}

/// A wake-up for a linked phone: the tunnel it should join and the client's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WakeUp {
    pub(crate) tunnel_id: TunnelId,
    pub(crate) routing_id: RoutingId,
    /// The `X-caBLE-Client-Payload` header value as received (validated hex).
    pub(crate) client_payload: String,
}

impl WakeUp {
    /// The JSON text sent to the phone (see README "Contact channel").
    pub(crate) fn to_json(&self) -> String {
        serde_json::json!({
            "tunnel_id": self.tunnel_id.to_hex(),
            "routing_id": self.routing_id.to_hex(),
            "client_payload": self.client_payload,
        })
        .to_string()
    }
}

/// Length of the random part of a contact ID (after the 3-byte routing ID).
pub(crate) const CONTACT_RANDOM_LEN: usize = 16;

/// Contact IDs this instance minted, and the registration socket (if any) of each.
pub(crate) struct Contacts {
    routing_id: RoutingId,
    max: usize,
    max_pending: usize,
    expiry: Duration,
    next_gen: u64,
    contacts: HashMap<[u8; CONTACT_RANDOM_LEN], Contact>,
}

struct Contact {
    /// When its phone last registered or was connected.
    last_seen: Instant,
    /// The live registration socket: its generation and wake-up channel.
    socket: Option<(u64, mpsc::Sender<WakeUp>)>,
    /// Wake-ups waiting for the phone to reconnect, with their expiry.
    pending: VecDeque<(WakeUp, Instant)>,
}

impl Contact {
    fn new(now: Instant) -> Self {
        Self {
            last_seen: now,
            socket: None,
            pending: VecDeque::new(),
        }
    }

    /// Not connected and not seen for `expiry`: its phone is gone or has re-registered.
    fn expired(&self, now: Instant, expiry: Duration) -> bool {
        self.socket.is_none() && now.saturating_duration_since(self.last_seen) >= expiry
    }
}

impl Contacts {
    pub(crate) fn new(
        routing_id: RoutingId,
        max: usize,
        max_pending: usize,
        expiry: Duration,
    ) -> Self {
        Self {
            routing_id,
            max,
            max_pending,
            expiry,
            next_gen: 0,
            contacts: HashMap::new(),
        }
    }

    /// `/cable/register`: mints a contact ID from `random`. When the registry is full, expired
    /// contacts are forgotten first; their keys are returned so the caller can persist that.
    pub(crate) fn handle_register(
        &mut self,
        random: [u8; CONTACT_RANDOM_LEN],
        now: Instant,
    ) -> Result<(ContactId, Vec<[u8; CONTACT_RANDOM_LEN]>), Refusal> {
        let mut expired = Vec::new();
        if self.contacts.len() >= self.max {
            let expiry = self.expiry;
            self.contacts.retain(|k, c| {
                let keep = !c.expired(now, expiry);
                if !keep {
                    expired.push(*k);
                }
                keep
            });
        }
        if self.contacts.len() >= self.max || self.contacts.contains_key(&random) {
            return Err(Refusal::Full);
        }
        self.contacts.insert(random, Contact::new(now));
        let mut id = self.routing_id.0.to_vec();
        id.extend_from_slice(&random);
        Ok((ContactId(id), expired))
    }

    /// Contact IDs minted before a restart (from the contact store); beyond `max`, the oldest
    /// are kept.
    /// Their expiry counts from `now`.
    pub(crate) fn handle_restore(
        &mut self,
        keys: impl IntoIterator<Item = [u8; CONTACT_RANDOM_LEN]>,
        now: Instant,
    ) {
        for key in keys {
            if self.contacts.len() >= self.max {
                break;
            }
            self.contacts
                .entry(key)
                .or_insert_with(|| Contact::new(now));
        }
    }

    /// The key of a contact ID this instance minted and still knows (not revoked, not
    /// expired), else `Gone`.
    pub(crate) fn lookup(
        &self,
        id: &ContactId,
        now: Instant,
    ) -> Result<[u8; CONTACT_RANDOM_LEN], Refusal> {
        let key = self.key(id).ok_or(Refusal::Gone)?;
        match self.contacts.get(&key) {
            Some(c) if !c.expired(now, self.expiry) => Ok(key),
            _ => Err(Refusal::Gone),
        }
    }

    fn key(&self, id: &ContactId) -> Option<[u8; CONTACT_RANDOM_LEN]> {
        let (routing, random) = id.0.split_at_checked(3)?;
        if routing != self.routing_id.0 {
            return None;
        }
        random.try_into().ok()
    }

    /// A registration socket is up: it replaces any older one (whose channel closes) and
    /// receives the unexpired pending wake-ups.
    pub(crate) fn handle_attach(
        &mut self,
        key: [u8; CONTACT_RANDOM_LEN],
        sink: mpsc::Sender<WakeUp>,
        now: Instant,
    ) -> Result<(u64, Vec<WakeUp>), Refusal> {
        let contact = self.contacts.get_mut(&key).ok_or(Refusal::Gone)?;
        self.next_gen += 1;
        contact.socket = Some((self.next_gen, sink));
        contact.last_seen = now;
        let pending = contact
            .pending
            .drain(..)
            .filter(|(_, expiry)| *expiry > now)
            .map(|(w, _)| w)
            .collect();
        Ok((self.next_gen, pending))
    }

    /// The registration socket with this generation closed.
    pub(crate) fn handle_detach(&mut self, key: [u8; CONTACT_RANDOM_LEN], gen: u64, now: Instant) {
        if let Some(c) = self.contacts.get_mut(&key) {
            if matches!(&c.socket, Some((g, _)) if *g == gen) {
                c.socket = None;
                c.last_seen = now;
            }
        }
    }

    /// `/cable/contact`: hands the wake-up to the live socket, or keeps it until `expiry`.
    pub(crate) fn handle_contact(
        &mut self,
        key: [u8; CONTACT_RANDOM_LEN],
        wake: WakeUp,
        now: Instant,
        expiry: Instant,
    ) -> Result<(), Refusal> {
        let max_pending = self.max_pending;
        let contact = self.contacts.get_mut(&key).ok_or(Refusal::Gone)?;
        let wake = match &contact.socket {
            Some((_, sink)) => match sink.try_send(wake) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(w) | mpsc::error::TrySendError::Closed(w)) => w,
            },
            None => wake,
        };
        contact.pending.retain(|(_, e)| *e > now);
        if max_pending == 0 {
            return Ok(());
        }
        while contact.pending.len() >= max_pending {
            contact.pending.pop_front();
        }
        contact.pending.push_back((wake, expiry));
        Ok(())
    }

    /// The phone revoked its contact ID: it is forgotten (so it is `Gone` from now on).
    pub(crate) fn handle_revoke(&mut self, key: [u8; CONTACT_RANDOM_LEN]) {
        self.contacts.remove(&key);
    }

    /// Registration sockets connected.
    pub(crate) fn connected(&self) -> usize {
        self.contacts
            .values()
            .filter(|c| c.socket.is_some())
            .count()
    }

    /// Contact IDs known.
    pub(crate) fn len(&self) -> usize {
        self.contacts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T: TunnelId = TunnelId([7; 16]);

    #[test]
    fn open_connect_close() {
        let mut t: Table<u8> = Table::new(10);
        let (gen, mut rx) = t.handle_open(T).unwrap();
        assert_eq!(t.handle_open(T).unwrap_err(), Refusal::Conflict);
        assert!(t.is_waiting(&T));
        let tx = t.handle_connect(T).unwrap();
        assert_eq!(t.paired(), 1);
        assert_eq!(t.handle_connect(T).unwrap_err(), Refusal::UnknownTunnel);
        assert_eq!(t.handle_open(T).unwrap_err(), Refusal::Conflict);
        tx.send(5).unwrap();
        assert_eq!(rx.try_recv().unwrap(), 5);
        t.handle_closed(T, gen + 100);
        assert_eq!(t.len(), 1);
        t.handle_closed(T, gen);
        assert_eq!((t.len(), t.paired()), (0, 0));
        assert_eq!(
            t.handle_connect(TunnelId([1; 16])).unwrap_err(),
            Refusal::UnknownTunnel
        );
    }

    #[test]
    fn table_gives_memory_back_after_a_burst() {
        let mut t: Table<u8> = Table::new(100_000);
        let ids: Vec<TunnelId> = (0..20_000u32)
            .map(|i| {
                let mut id = [0; 16];
                id[..4].copy_from_slice(&i.to_le_bytes());
                TunnelId(id)
            })
            .collect();
        let gens: Vec<u64> = ids.iter().map(|id| t.handle_open(*id).unwrap().0).collect();
        let peak = t.tunnels.capacity();
        assert!(peak >= 20_000);
        for (id, gen) in ids.iter().zip(&gens).skip(10) {
            t.handle_closed(*id, *gen);
        }
        assert_eq!(t.len(), 10);
        assert!(
            t.tunnels.capacity() <= MIN_SHRINK_CAPACITY,
            "{}",
            t.tunnels.capacity()
        );
        // The survivors are still there.
        assert!(ids[..10].iter().all(|id| t.tunnels.contains_key(id)));
    }

    #[test]
    fn abandoned_waiting_slot_is_reusable_and_capacity_holds() {
        let mut t: Table<u8> = Table::new(1);
        let (_, rx) = t.handle_open(T).unwrap();
        assert_eq!(t.handle_open(TunnelId([1; 16])).unwrap_err(), Refusal::Full);
        drop(rx);
        assert!(!t.is_waiting(&T));
        assert_eq!(t.handle_connect(T).unwrap_err(), Refusal::UnknownTunnel);
        t.handle_open(T).unwrap();
    }

    #[test]
    fn contacts_mint_wake_revoke() {
        let r = RoutingId([1, 2, 3]);
        let mut c = Contacts::new(r, 2, 2, Duration::from_secs(3600));
        let now = Instant::now();
        let (id, _) = c.handle_register([9; 16], now).unwrap();
        assert_eq!(&id.0[..3], &[1, 2, 3]);
        assert_eq!(id.0.len(), 19);
        let key = c.lookup(&id, now).unwrap();
        assert_eq!(
            c.lookup(&ContactId(vec![9, 9, 9]), now).unwrap_err(),
            Refusal::Gone
        );
        let mut other = id.clone();
        other.0[0] ^= 1;
        assert_eq!(c.lookup(&other, now).unwrap_err(), Refusal::Gone);

        let wake = |n: u8| WakeUp {
            tunnel_id: TunnelId([n; 16]),
            routing_id: r,
            client_payload: "A0".into(),
        };
        let later = now + Duration::from_secs(10);
        for n in 0..3 {
            c.handle_contact(key, wake(n), now, later).unwrap();
        }
        let (tx, mut rx) = mpsc::channel(4);
        let (gen, pending) = c.handle_attach(key, tx, now).unwrap();
        assert_eq!(
            pending,
            vec![wake(1), wake(2)],
            "oldest dropped beyond the bound"
        );
        assert_eq!(c.connected(), 1);
        c.handle_contact(key, wake(4), now, later).unwrap();
        assert_eq!(rx.try_recv().unwrap(), wake(4));
        c.handle_detach(key, gen, now);
        assert_eq!(c.connected(), 0);
        c.handle_contact(key, wake(5), now, now).unwrap();
        let (tx, _rx) = mpsc::channel(4);
        let (_, pending) = c.handle_attach(key, tx, later).unwrap();
        assert!(pending.is_empty(), "expired wake-ups are dropped");
        c.handle_revoke(key);
        assert_eq!(c.lookup(&id, now).unwrap_err(), Refusal::Gone);
        assert!(c.handle_contact(key, wake(6), now, later).is_err());
    }

    #[test]
    fn full_registry_forgets_only_expired_unconnected_contacts() {
        let expiry = Duration::from_secs(100);
        let mut c = Contacts::new(RoutingId([0; 3]), 2, 1, expiry);
        let t0 = Instant::now();
        let (a, _) = c.handle_register([1; 16], t0).unwrap();
        let (b, _) = c.handle_register([2; 16], t0).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        c.handle_attach([2; 16], tx, t0).unwrap();
        assert_eq!(c.handle_register([3; 16], t0).unwrap_err(), Refusal::Full);
        let later = t0 + expiry;
        assert_eq!(c.lookup(&a, later).unwrap_err(), Refusal::Gone, "expired");
        assert!(
            c.lookup(&b, later).is_ok(),
            "connected contacts never expire"
        );
        let (_, expired) = c.handle_register([3; 16], later).unwrap();
        assert_eq!(expired, vec![[1; 16]]);
    }

    #[test]
    fn wake_up_json_shape() {
        let w = WakeUp {
            tunnel_id: TunnelId([0xab; 16]),
            routing_id: RoutingId([1, 2, 0xcd]),
            client_payload: "a1b2".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&w.to_json()).unwrap();
        assert_eq!(v["tunnel_id"], "AB".repeat(16));
        assert_eq!(v["routing_id"], "0102CD");
        assert_eq!(v["client_payload"], "a1b2");
    }
}
