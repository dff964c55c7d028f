//! The contact registry (README "Contact channel", "Contact registry"): the contact IDs this
//! instance minted, their phones' registration sockets and the wake-ups waiting for them, as a
//! plain struct with no sockets and no clock (callers pass `now`). Inputs are named
//! `handle_*`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hybrid_protocol::contact::WakeUp;
use hybrid_protocol::tunnel::{ContactId, RoutingId};
use tokio::sync::mpsc;

use crate::table::Refusal;

/// Length of the random part of a contact ID (after the 3-byte routing ID).
pub(crate) const CONTACT_RANDOM_LEN: usize = 16;

type Key = [u8; CONTACT_RANDOM_LEN];

/// Contact IDs this instance minted, and the registration socket (if any) of each.
///
/// An entry is *unconfirmed* from minting until its phone proves it is a lasting
/// registration: it resumes the ID (`/cable/register/<id>`, with its secret), or one of its
/// registration sockets stays connected for `unconfirmed_expiry` (README "Threat model").
/// Unconfirmed entries are forgotten `unconfirmed_expiry` after they were last seen; entries
/// restored from store lines without a confirmation ([`Status::Restored`]) and
/// confirmed ones after `expiry`. When the registry is full, a mint first drops expired
/// entries, then evicts the least recently seen entry that is not connected and has not
/// proved it is in use: unconfirmed (fresh ones before restored ones), then confirmed but
/// never woken or resumed since ([`Status::Confirmed`]). Entries in use ([`Status::Used`])
/// and connected ones are never evicted.
///
/// To keep every mint (and every refusal) amortised O(1) under the state lock, the entries
/// that are not connected sit in one queue per [`Status`], least recently seen first, with
/// lazy deletion: a queue slot holds the stamp the entry had when it was queued, and a slot
/// whose entry is gone or has a newer stamp is stale and skipped. Connected entries have stamp
/// 0 and so no live slot. A queue is compacted once it holds more than twice as many slots as
/// the registry has entries.
pub(crate) struct Contacts {
    routing_id: RoutingId,
    max: usize,
    max_pending: usize,
    expiry: Duration,
    unconfirmed_expiry: Duration,
    next_gen: u64,
    contacts: HashMap<Key, Contact>,
    /// Not-connected entries per [`Status`], least recently seen first (lazy deletion).
    queues: [VecDeque<(Key, u64)>; 4],
    /// Entries with a registration socket.
    connected: usize,
    /// Queue slots looked at, for the test that a refused mint does not scan the registry.
    #[cfg(test)]
    examined: usize,
}

/// How long an entry has proved to last; indexes [`Contacts::queues`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Minted by this process and not confirmed: forgotten after the short unconfirmed expiry,
    /// first to be evicted, never written to the contact store.
    Unconfirmed = 0,
    /// Restored from a store line without a confirmation (a real phone or a
    /// squat; nobody can tell): unconfirmed, but kept for the full expiry unless the registry
    /// needs room, so a phone that is offline across the upgrade keeps its links.
    Restored = 1,
    /// Its phone resumed it, or stayed connected for the unconfirmed expiry: kept for the
    /// full expiry, but not yet woken or resumed again (since it was confirmed, or since
    /// this process restored it), so a mint into a full registry may evict it after every
    /// unconfirmed entry: minting and confirming is all a squatter has to do.
    Confirmed = 2,
    /// Confirmed, and since then woken (a `/cable/contact` for it) or resumed again: a phone
    /// in use, never evicted for a mint.
    Used = 3,
}

/// What [`Contacts::handle_confirm`] changed, so the caller can persist it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Confirmation {
    /// Unknown, or already confirmed: nothing to persist.
    Unchanged,
    /// A fresh mint is now confirmed: the store has never seen it.
    Minted,
    /// A restored entry is now confirmed: the store already has its mint line.
    Restored,
}

struct Contact {
    /// When its phone last registered, resumed or was connected.
    last_seen: Instant,
    status: Status,
    /// This entry's slot in `queues[status]`; 0 while connected (no live slot).
    stamp: u64,
    /// The live registration socket: its generation and wake-up channel.
    socket: Option<(u64, mpsc::Sender<WakeUp>)>,
    /// Wake-ups waiting for the phone to reconnect, with their expiry.
    pending: VecDeque<(WakeUp, Instant)>,
}

impl Contact {
    fn new(now: Instant, status: Status) -> Self {
        Self {
            last_seen: now,
            status,
            stamp: 0,
            socket: None,
            pending: VecDeque::new(),
        }
    }

    /// Whether the contact store holds this entry (so forgetting it must be recorded).
    fn stored(&self) -> bool {
        self.status != Status::Unconfirmed
    }
}

impl Contacts {
    pub(crate) fn new(
        routing_id: RoutingId,
        max: usize,
        max_pending: usize,
        expiry: Duration,
        unconfirmed_expiry: Duration,
    ) -> Self {
        Self {
            routing_id,
            max,
            max_pending,
            expiry,
            unconfirmed_expiry,
            next_gen: 0,
            contacts: HashMap::new(),
            queues: Default::default(),
            connected: 0,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// `/cable/register`: mints a contact ID from `random`, unconfirmed. Expired entries are
    /// forgotten first and, when the registry is full, the least recently seen entry that is
    /// not connected and not in use is evicted (unconfirmed, restored, then confirmed but
    /// never woken or resumed since); the keys of forgotten entries the contact store holds
    /// are returned so the caller can record that. `Full` when every entry is in use or
    /// connected.
    pub(crate) fn handle_register(
        &mut self,
        random: Key,
        now: Instant,
    ) -> Result<(ContactId, Vec<Key>), Refusal> {
        let mut forgotten = Vec::new();
        for status in [
            Status::Unconfirmed,
            Status::Restored,
            Status::Confirmed,
            Status::Used,
        ] {
            while let Some(key) = self.oldest(status) {
                if !self.is_expired(&key, now) {
                    break;
                }
                self.forget(key, &mut forgotten);
            }
        }
        for status in [Status::Unconfirmed, Status::Restored, Status::Confirmed] {
            if self.contacts.len() < self.max {
                break;
            }
            if let Some(key) = self.oldest(status) {
                tracing::debug!(
                    ?status,
                    "contact registry full: evicting the least recently seen contact ID not in use"
                );
                self.forget(key, &mut forgotten);
            }
        }
        if self.contacts.len() >= self.max || self.contacts.contains_key(&random) {
            return Err(Refusal::Full);
        }
        self.contacts
            .insert(random, Contact::new(now, Status::Unconfirmed));
        self.enqueue(random);
        let mut id = self.routing_id.0.to_vec();
        id.extend_from_slice(&random);
        Ok((ContactId(id), forgotten))
    }

    /// Contact IDs from the contact store, with whether each was confirmed; beyond `max`, the
    /// first are kept. Their expiry counts from `now`; unconfirmed ones are
    /// [`Status::Restored`].
    pub(crate) fn handle_restore(
        &mut self,
        keys: impl IntoIterator<Item = (Key, bool)>,
        now: Instant,
    ) {
        for (key, confirmed) in keys {
            if self.contacts.len() >= self.max {
                break;
            }
            if self.contacts.contains_key(&key) {
                continue;
            }
            let status = if confirmed {
                Status::Confirmed
            } else {
                Status::Restored
            };
            self.contacts.insert(key, Contact::new(now, status));
            self.enqueue(key);
        }
    }

    /// The key of a contact ID this instance minted and still knows (not revoked, not
    /// expired), else `Gone`.
    pub(crate) fn lookup(&self, id: &ContactId, now: Instant) -> Result<Key, Refusal> {
        let key = self.key(id).ok_or(Refusal::Gone)?;
        if self.contacts.contains_key(&key) && !self.is_expired(&key, now) {
            Ok(key)
        } else {
            Err(Refusal::Gone)
        }
    }

    fn key(&self, id: &ContactId) -> Option<Key> {
        let (routing, random) = id.0.split_at_checked(3)?;
        if routing != self.routing_id.0 {
            return None;
        }
        random.try_into().ok()
    }

    /// Its phone resumed the entry with its secret (`/cable/register/<id>`): the first
    /// resume confirms it ([`Self::handle_confirm`]); one after that shows it in use
    /// ([`Status::Used`]), never evicted.
    pub(crate) fn handle_resume(&mut self, key: Key, now: Instant) -> Confirmation {
        match self.contacts.get(&key).map(|c| c.status) {
            Some(Status::Confirmed) => {
                self.mark_used(key, now);
                Confirmation::Unchanged
            }
            Some(Status::Used) | None => Confirmation::Unchanged,
            Some(Status::Unconfirmed | Status::Restored) => self.handle_confirm(key, now),
        }
    }

    /// Its phone proved the entry lasts (it resumed with its secret, or stayed connected for
    /// the unconfirmed expiry): it is kept for the full expiry.
    pub(crate) fn handle_confirm(&mut self, key: Key, now: Instant) -> Confirmation {
        let Some(c) = self.contacts.get_mut(&key) else {
            return Confirmation::Unchanged;
        };
        let was = c.status;
        if matches!(was, Status::Confirmed | Status::Used) {
            return Confirmation::Unchanged;
        }
        c.status = Status::Confirmed;
        c.last_seen = now;
        if c.socket.is_none() {
            self.enqueue(key);
        }
        if was == Status::Restored {
            Confirmation::Restored
        } else {
            Confirmation::Minted
        }
    }

    /// A registration socket is up: it replaces any older one (whose channel closes) and
    /// receives the unexpired pending wake-ups.
    pub(crate) fn handle_attach(
        &mut self,
        key: Key,
        sink: mpsc::Sender<WakeUp>,
        now: Instant,
    ) -> Result<(u64, Vec<WakeUp>), Refusal> {
        let contact = self.contacts.get_mut(&key).ok_or(Refusal::Gone)?;
        self.next_gen += 1;
        if contact.socket.is_none() {
            self.connected += 1;
        }
        contact.socket = Some((self.next_gen, sink));
        contact.last_seen = now;
        // Connected: out of its queue, so never evicted or expired.
        contact.stamp = 0;
        let pending = contact
            .pending
            .drain(..)
            .filter(|(_, expiry)| *expiry > now)
            .map(|(w, _)| w)
            .collect();
        Ok((self.next_gen, pending))
    }

    /// The registration socket with this generation closed.
    pub(crate) fn handle_detach(&mut self, key: Key, gen: u64, now: Instant) {
        if let Some(c) = self.contacts.get_mut(&key) {
            if matches!(&c.socket, Some((g, _)) if *g == gen) {
                c.socket = None;
                c.last_seen = now;
                self.connected -= 1;
                self.enqueue(key);
            }
        }
    }

    /// `/cable/contact`: hands the wake-up to the live socket, or keeps it until `expiry`. A
    /// confirmed entry that is woken is in use ([`Status::Used`]).
    pub(crate) fn handle_contact(
        &mut self,
        key: Key,
        wake: WakeUp,
        now: Instant,
        expiry: Instant,
    ) -> Result<(), Refusal> {
        let max_pending = self.max_pending;
        if self.contacts.get(&key).ok_or(Refusal::Gone)?.status == Status::Confirmed {
            self.mark_used(key, now);
        }
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
    /// Returns whether the contact store holds it (so the revocation must be recorded).
    pub(crate) fn handle_revoke(&mut self, key: Key) -> bool {
        match self.contacts.remove(&key) {
            Some(c) => {
                if c.socket.is_some() {
                    self.connected -= 1;
                }
                c.stored()
            }
            None => false,
        }
    }

    /// Registration sockets connected.
    pub(crate) fn connected(&self) -> usize {
        self.connected
    }

    /// Contact IDs known.
    pub(crate) fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Not connected and not seen for its status's expiry: its phone is gone, re-registered,
    /// or never was a phone.
    fn is_expired(&self, key: &Key, now: Instant) -> bool {
        self.contacts.get(key).is_some_and(|c| {
            let expiry = match c.status {
                Status::Unconfirmed => self.unconfirmed_expiry,
                Status::Restored | Status::Confirmed | Status::Used => self.expiry,
            };
            c.socket.is_none() && now.saturating_duration_since(c.last_seen) >= expiry
        })
    }

    /// A confirmed entry was woken or resumed again: it moves to [`Status::Used`] (and its
    /// queue, if it is not connected).
    fn mark_used(&mut self, key: Key, now: Instant) {
        let Some(c) = self.contacts.get_mut(&key) else {
            return;
        };
        c.status = Status::Used;
        c.last_seen = now;
        if c.socket.is_none() {
            self.enqueue(key);
        }
    }

    /// Gives a not-connected entry a fresh slot at the back of its status's queue (its older
    /// slot, if any, goes stale). Compacts the queue when stale slots outnumber the registry.
    fn enqueue(&mut self, key: Key) {
        let Some(c) = self.contacts.get_mut(&key) else {
            return;
        };
        self.next_gen += 1;
        c.stamp = self.next_gen;
        let queue = &mut self.queues[c.status as usize];
        queue.push_back((key, self.next_gen));
        if queue.len() > 2 * self.contacts.len() + 64 {
            let contacts = &self.contacts;
            queue.retain(|(k, s)| contacts.get(k).is_some_and(|c| c.stamp == *s));
        }
    }

    /// The least recently seen not-connected entry of `status`, dropping stale slots on the
    /// way (each slot is dropped once, so this is amortised O(1)).
    fn oldest(&mut self, status: Status) -> Option<Key> {
        let queue = &mut self.queues[status as usize];
        while let Some(&(key, stamp)) = queue.front() {
            #[cfg(test)]
            {
                self.examined += 1;
            }
            if self
                .contacts
                .get(&key)
                .is_some_and(|c| c.stamp == stamp && c.status == status)
            {
                return Some(key);
            }
            queue.pop_front();
        }
        None
    }

    /// Forgets an entry found by [`Self::oldest`] (expired or evicted).
    fn forget(&mut self, key: Key, forgotten: &mut Vec<Key>) {
        if let Some(c) = self.contacts.remove(&key) {
            if c.stored() {
                forgotten.push(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_protocol::tunnel::TunnelId;

    #[test]
    fn contacts_mint_wake_revoke() {
        let r = RoutingId([1, 2, 3]);
        let mut c = Contacts::new(r, 2, 2, Duration::from_secs(3600), Duration::from_secs(60));
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
        assert!(
            !c.handle_revoke(key),
            "an unconfirmed ID is not in the store"
        );
        assert_eq!(c.lookup(&id, now).unwrap_err(), Refusal::Gone);
        assert!(c.handle_contact(key, wake(6), now, later).is_err());
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const MINUTE: Duration = Duration::from_secs(60);

    fn key(n: u32) -> Key {
        let mut k = [0; 16];
        k[..4].copy_from_slice(&n.to_le_bytes());
        k
    }

    /// A mint nobody uses is forgotten after the unconfirmed expiry, not the
    /// full one; a confirmed contact ID keeps the full expiry.
    #[test]
    fn unused_mints_expire_after_the_short_window_confirmed_ones_do_not() {
        let mut c = Contacts::new(RoutingId([0; 3]), 10, 1, HOUR, MINUTE);
        let t0 = Instant::now();
        let (squat, _) = c.handle_register(key(1), t0).unwrap();
        let (phone, _) = c.handle_register(key(2), t0).unwrap();
        assert_eq!(c.handle_confirm(key(2), t0), Confirmation::Minted);
        assert_eq!(c.handle_confirm(key(2), t0), Confirmation::Unchanged);
        let later = t0 + MINUTE;
        assert_eq!(c.lookup(&squat, later).unwrap_err(), Refusal::Gone);
        assert!(c.lookup(&phone, later).is_ok());
        let (_, forgotten) = c.handle_register(key(3), later).unwrap();
        assert!(forgotten.is_empty(), "the squat was never stored");
        assert_eq!(c.len(), 2, "the expired squat is gone");
        assert_eq!(c.lookup(&phone, t0 + HOUR).unwrap_err(), Refusal::Gone);
    }

    /// A full registry evicts the least recently seen unconfirmed entry that is not connected,
    /// fresh mints before restored ones; entries in use and connected ones stay; when only
    /// they are left, the mint is refused.
    #[test]
    fn a_full_registry_evicts_the_least_recently_seen_unconfirmed_entry() {
        let mut c = Contacts::new(RoutingId([0; 3]), 4, 1, HOUR, MINUTE);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        c.handle_restore([(key(10), false), (key(11), true)], t0);
        // key(11)'s phone came back after this process restored it: in use.
        assert_eq!(c.handle_resume(key(11), t0), Confirmation::Unchanged);
        c.handle_register(key(1), at(1)).unwrap();
        c.handle_register(key(2), at(2)).unwrap();
        // key(1) connects and disconnects: seen more recently than key(2).
        let (tx, _rx) = mpsc::channel(1);
        let (gen, _) = c.handle_attach(key(1), tx, at(3)).unwrap();
        c.handle_detach(key(1), gen, at(4));
        let (_, forgotten) = c.handle_register(key(3), at(5)).unwrap();
        assert!(forgotten.is_empty());
        assert!(
            !c.contacts.contains_key(&key(2)),
            "the LRU fresh mint went first"
        );
        let (_, _) = c.handle_register(key(4), at(6)).unwrap();
        assert!(!c.contacts.contains_key(&key(1)));
        // key(3) and key(4) are connected now: only the restored entry is evictable.
        let (tx, _rx3) = mpsc::channel(1);
        c.handle_attach(key(3), tx, at(7)).unwrap();
        let (tx, _rx4) = mpsc::channel(1);
        c.handle_attach(key(4), tx, at(7)).unwrap();
        let (_, forgotten) = c.handle_register(key(5), at(8)).unwrap();
        assert_eq!(
            forgotten,
            vec![key(10)],
            "the restored entry is in the store"
        );
        let (tx, _rx5) = mpsc::channel(1);
        c.handle_attach(key(5), tx, at(9)).unwrap();
        // In use key(11) and connected key(3), key(4), key(5): nothing to evict.
        assert_eq!(
            c.handle_register(key(6), at(10)).unwrap_err(),
            Refusal::Full
        );
        assert!(c.contacts.contains_key(&key(11)));
        assert_eq!(c.connected(), 3);
    }

    /// A restored entry is unconfirmed with the full expiry; its phone resuming confirms it.
    #[test]
    fn restored_entries_keep_the_full_expiry_until_evicted_or_confirmed() {
        let mut c = Contacts::new(RoutingId([0; 3]), 4, 1, HOUR, MINUTE);
        let t0 = Instant::now();
        c.handle_restore([(key(1), false), (key(2), false)], t0);
        let id = |k: Key| {
            let mut v = vec![0; 3];
            v.extend_from_slice(&k);
            ContactId(v)
        };
        assert!(c.lookup(&id(key(1)), t0 + MINUTE * 2).is_ok());
        assert_eq!(c.handle_confirm(key(1), t0), Confirmation::Restored);
        assert_eq!(c.lookup(&id(key(2)), t0 + HOUR).unwrap_err(), Refusal::Gone);
    }

    /// The refusal path is a few queue slots, not a scan: with 10,000 entries in use, a
    /// refused mint looks at no more than one slot per queue (a `retain` over the registry
    /// would touch all 10,000 per refusal).
    #[test]
    fn a_refused_mint_does_not_scan_the_registry() {
        let n = 10_000;
        let mut c = Contacts::new(RoutingId([0; 3]), n, 1, HOUR, MINUTE);
        let t0 = Instant::now();
        for i in 0..n as u32 {
            c.handle_register(key(i), t0).unwrap();
            let _ = c.handle_resume(key(i), t0);
            let _ = c.handle_resume(key(i), t0);
        }
        // The first refusal drops the stale slots the confirmations left (once each).
        assert_eq!(
            c.handle_register(key(u32::MAX), t0).unwrap_err(),
            Refusal::Full
        );
        c.examined = 0;
        for i in 0..100 {
            let k = key(u32::MAX - i);
            assert_eq!(c.handle_register(k, t0).unwrap_err(), Refusal::Full);
        }
        assert!(c.examined <= 100 * 4, "examined {} queue slots", c.examined);
        assert_eq!(c.len(), n);
    }

    /// Lazy deletion cannot grow a queue without bound: a phone that reconnects again and
    /// again leaves stale slots that compaction removes.
    #[test]
    fn queues_stay_bounded_by_the_registry() {
        let mut c = Contacts::new(RoutingId([0; 3]), 10, 1, HOUR, MINUTE);
        let t0 = Instant::now();
        c.handle_register(key(1), t0).unwrap();
        let _ = c.handle_confirm(key(1), t0);
        for _ in 0..10_000 {
            let (tx, _rx) = mpsc::channel(1);
            let (gen, _) = c.handle_attach(key(1), tx, t0).unwrap();
            c.handle_detach(key(1), gen, t0);
        }
        let slots: usize = c.queues.iter().map(VecDeque::len).sum();
        assert!(slots <= 3 * (2 + 64), "{slots} queue slots for one entry");
        assert_eq!(c.connected(), 0);
    }

    /// Minting and confirming is all a squatter has to do, so a full registry evicts
    /// confirmed entries that were never woken or resumed again (least recently seen first)
    /// before it refuses; a woken entry or one resumed again is in use and stays.
    #[test]
    fn a_full_registry_evicts_confirmed_entries_never_woken_or_resumed() {
        let mut c = Contacts::new(RoutingId([0; 3]), 3, 1, HOUR, MINUTE);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for i in 1..=3 {
            c.handle_register(key(i), at(u64::from(i))).unwrap();
            assert_eq!(
                c.handle_resume(key(i), at(u64::from(i))),
                Confirmation::Minted
            );
        }
        // key(1) is woken, key(2) resumed again; key(3) was only minted and confirmed.
        let wake = WakeUp {
            tunnel_id: TunnelId([7; 16]),
            routing_id: RoutingId([0; 3]),
            client_payload: "a1".into(),
        };
        c.handle_contact(key(1), wake, at(4), at(100)).unwrap();
        assert_eq!(c.handle_resume(key(2), at(5)), Confirmation::Unchanged);
        let (_, forgotten) = c.handle_register(key(4), at(6)).unwrap();
        assert_eq!(
            forgotten,
            vec![key(3)],
            "the confirmed, never used entry made room"
        );
        assert!(c.contacts.contains_key(&key(1)) && c.contacts.contains_key(&key(2)));
        // key(4) unconfirmed goes before any confirmed one; then only entries in use are left.
        let (_, forgotten) = c.handle_register(key(5), at(7)).unwrap();
        assert!(
            forgotten.is_empty(),
            "the unconfirmed key(4) was never stored"
        );
        assert!(!c.contacts.contains_key(&key(4)));
        let _ = c.handle_resume(key(5), at(8));
        let _ = c.handle_resume(key(5), at(9));
        assert_eq!(
            c.handle_register(key(6), at(10)).unwrap_err(),
            Refusal::Full
        );
        // Staying connected past the window confirms, but is not a use.
        let mut c = Contacts::new(RoutingId([0; 3]), 1, 1, HOUR, MINUTE);
        c.handle_register(key(1), t0).unwrap();
        assert_eq!(c.handle_confirm(key(1), t0), Confirmation::Minted);
        assert_eq!(c.handle_confirm(key(1), at(1)), Confirmation::Unchanged);
        assert_eq!(c.contacts[&key(1)].status, Status::Confirmed);
    }
}
