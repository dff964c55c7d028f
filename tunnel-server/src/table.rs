//! The routing table (docs/PROTOCOL.md#tunnel-relay), a plain struct with no sockets and no clock. Inputs are
//! named `handle_*`. A tunnel slot is `Waiting` from its first socket (`/cable/new` or
//! `/cable/contact`) until `/cable/connect` takes the joiner channel, then `Paired` until the
//! relay task reports it closed; slots carry a generation so a stale close never removes a
//! newer tunnel with the same ID.

use std::collections::HashMap;

use hybrid_protocol::tunnel::TunnelId;
use tokio::sync::oneshot;

/// Why the table or the contact registry refused a request; each maps to one HTTP status.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
