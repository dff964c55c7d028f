//! The CTAPHID device state machine (see the module above for the rules it implements).
//!
//! ```text
//!            init packet (bcnt > 57)                 last continuation
//!  Idle ───────────────────────────→ Receiving ───────────────────────────→ dispatch
//!   ↑  ←── ERR_INVALID_SEQ / ERR_MSG_TIMEOUT / INIT resync ──┘                 │ CBOR
//!   │                                                                        ↓
//!   └──────────── handle_reply / CANCEL / INIT resync / host closed ─── Processing
//! ```
//!
//! At most one message is received and at most one request processed at a time, on one
//! channel; the other channels get `ERR_CHANNEL_BUSY` meanwhile (except `INIT` on the broadcast
//! channel, which always allocates, and `CANCEL`, which is never answered). A `LOCK` makes the
//! device busy for every other channel until it expires.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::packet::{fragment, Packet, CONT_DATA_LEN, MAX_SEQ, REPORT_LEN};
use super::*;

/// The device side of CTAPHID. See the [module documentation](super).
#[derive(Debug)]
pub struct Engine {
    version: DeviceVersion,
    /// Allocated channels, least recently used first.
    channels: VecDeque<u32>,
    receiving: Option<Receiving>,
    processing: Option<Processing>,
    lock: Option<Lock>,
    next_id: u64,
    reports: VecDeque<[u8; REPORT_LEN]>,
    events: VecDeque<Event>,
}

/// A message whose continuation packets are still arriving.
#[derive(Debug)]
struct Receiving {
    cid: u32,
    cmd: u8,
    len: usize,
    data: Vec<u8>,
    next_seq: u8,
    deadline: Instant,
}

/// A request handed out and not yet answered.
#[derive(Debug)]
struct Processing {
    id: RequestId,
    cid: u32,
    status: KeepaliveStatus,
    next_keepalive: Instant,
}

#[derive(Debug)]
struct Lock {
    cid: u32,
    until: Instant,
}

impl Engine {
    /// A device reporting `version` in its `INIT` replies.
    pub fn new(version: DeviceVersion) -> Self {
        Self {
            version,
            channels: VecDeque::new(),
            receiving: None,
            processing: None,
            lock: None,
            next_id: 0,
            reports: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The capabilities the `INIT` reply reports: `WINK`, `CBOR`, and `NMSG` (no CTAP1).
    pub fn capabilities(&self) -> u8 {
        capability::WINK | capability::CBOR | capability::NMSG
    }

    /// Whether a request is handed out and not yet answered.
    pub fn is_processing(&self) -> bool {
        self.processing.is_some()
    }

    /// One output report from the host.
    pub fn handle_report(
        &mut self,
        report: &[u8; REPORT_LEN],
        now: Instant,
        rng: &mut impl RngCore,
    ) {
        self.expire(now);
        match Packet::parse(report) {
            Packet::Init {
                cid,
                cmd,
                len,
                data,
            } => self.on_init_packet(cid, cmd, len, data, now, rng),
            Packet::Cont { cid, seq, data } => self.on_continuation(cid, seq, data, now),
        }
    }

    /// Time passed: message timeouts, keepalives, lock expiry.
    pub fn handle_tick(&mut self, now: Instant) {
        self.expire(now);
        if let Some(p) = &mut self.processing {
            if now >= p.next_keepalive {
                p.next_keepalive = next_after(p.next_keepalive, now);
                let (cid, status) = (p.cid, p.status);
                self.send(cid, Command::Keepalive, &[status as u8]);
            }
        }
    }

    /// The authenticator's status for a pending request; a change goes out at once as a
    /// keepalive, so the host can tell the person to act.
    pub fn handle_status(&mut self, id: RequestId, status: KeepaliveStatus, now: Instant) {
        let Some(p) = &mut self.processing else {
            return;
        };
        if p.id != id || p.status == status {
            return;
        }
        p.status = status;
        p.next_keepalive = now + KEEPALIVE_INTERVAL;
        let cid = p.cid;
        self.send(cid, Command::Keepalive, &[status as u8]);
    }

    /// The answer (`status ‖ CBOR`) to request `id`. An answer that cannot be carried is
    /// replaced by `CTAP1_ERR_OTHER`, and the error says why.
    pub fn handle_reply(&mut self, id: RequestId, reply: &[u8]) -> Result<(), ReplyError> {
        let cid = match &self.processing {
            Some(p) if p.id == id => p.cid,
            _ => return Err(ReplyError::NotPending(id)),
        };
        self.processing = None;
        if reply.is_empty() {
            self.send(cid, Command::Cbor, &[CTAP1_ERR_OTHER]);
            return Err(ReplyError::Empty);
        }
        if reply.len() > MAX_MESSAGE_LEN {
            self.send(cid, Command::Cbor, &[CTAP1_ERR_OTHER]);
            return Err(ReplyError::TooLong(reply.len()));
        }
        self.send(cid, Command::Cbor, reply);
        Ok(())
    }

    /// The host closed the device (the last reader let go): a pending request is cancelled
    /// (nobody can read its answer), a half-received message and a lock are dropped, and
    /// unsent reports are discarded. Allocated channels stay valid.
    pub fn handle_host_closed(&mut self) {
        self.receiving = None;
        self.lock = None;
        self.reports.clear();
        if let Some(p) = self.processing.take() {
            self.events.push_back(Event::Cancelled {
                id: p.id,
                reason: CancelReason::HostClosed,
            });
        }
    }

    /// The next report to send to the host.
    #[must_use]
    pub fn poll_report(&mut self) -> Option<[u8; REPORT_LEN]> {
        self.reports.pop_front()
    }

    /// The next thing the authenticator must act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_tick`] has something to do next: a message timeout, a
    /// keepalive, a lock's end. `None`: nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.receiving.as_ref().map(|r| r.deadline),
            self.processing.as_ref().map(|p| p.next_keepalive),
            self.lock.as_ref().map(|l| l.until),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_init_packet(
        &mut self,
        cid: u32,
        cmd: u8,
        len: usize,
        data: &[u8],
        now: Instant,
        rng: &mut impl RngCore,
    ) {
        if cid == 0 {
            return self.error(cid, HidError::InvalidChannel);
        }
        let command = Command::from_byte(cmd);
        if cid == BROADCAST_CID {
            if command != Some(Command::Init) {
                return self.error(cid, HidError::InvalidChannel);
            }
            if self.locked_by_other(cid) {
                return self.error(cid, HidError::ChannelBusy);
            }
            if len != 8 {
                return self.error(cid, HidError::InvalidLength);
            }
            let new = self.allocate(rng);
            return self.answer_init(cid, &data[..8], new);
        }
        if !self.channels.contains(&cid) {
            return self.error(cid, HidError::InvalidChannel);
        }
        self.touch(cid);
        match command {
            // Never answered, and not a transaction: cancels this channel's request, or
            // drops this channel's half-received message; anything else is ignored.
            Some(Command::Cancel) => {
                if self.receiving.as_ref().is_some_and(|r| r.cid == cid) {
                    self.receiving = None;
                }
                if let Some(p) = self.processing.take_if(|p| p.cid == cid) {
                    self.send(cid, Command::Cbor, &[CTAP2_ERR_KEEPALIVE_CANCEL]);
                    self.events.push_back(Event::Cancelled {
                        id: p.id,
                        reason: CancelReason::HostCancelled,
                    });
                }
            }
            Some(Command::Init) => {
                if self.locked_by_other(cid) {
                    return self.error(cid, HidError::ChannelBusy);
                }
                if len != 8 {
                    return self.error(cid, HidError::InvalidLength);
                }
                // Resynchronisation: this channel starts afresh.
                if self.receiving.as_ref().is_some_and(|r| r.cid == cid) {
                    self.receiving = None;
                }
                if let Some(p) = self.processing.take_if(|p| p.cid == cid) {
                    self.events.push_back(Event::Cancelled {
                        id: p.id,
                        reason: CancelReason::Resynchronised,
                    });
                }
                self.answer_init(cid, &data[..8], cid);
            }
            _ => {
                if self.receiving.as_ref().is_some_and(|r| r.cid == cid) {
                    self.receiving = None;
                    return self.error(cid, HidError::InvalidSeq);
                }
                let busy = self.receiving.is_some()
                    || self.processing.is_some()
                    || self.locked_by_other(cid);
                if busy {
                    return self.error(cid, HidError::ChannelBusy);
                }
                if len > MAX_MESSAGE_LEN {
                    return self.error(cid, HidError::InvalidLength);
                }
                if len <= data.len() {
                    return self.dispatch(cid, cmd, data[..len].to_vec(), now);
                }
                let mut buf = Vec::with_capacity(len);
                buf.extend_from_slice(data);
                self.receiving = Some(Receiving {
                    cid,
                    cmd,
                    len,
                    data: buf,
                    next_seq: 0,
                    deadline: now + MESSAGE_TIMEOUT,
                });
            }
        }
    }

    fn on_continuation(&mut self, cid: u32, seq: u8, data: &[u8], now: Instant) {
        let Some(r) = self.receiving.as_mut().filter(|r| r.cid == cid) else {
            // Spurious: no message is being received on this channel.
            return;
        };
        if seq != r.next_seq {
            self.receiving = None;
            return self.error(cid, HidError::InvalidSeq);
        }
        let take = (r.len - r.data.len()).min(CONT_DATA_LEN);
        r.data.extend_from_slice(&data[..take]);
        r.next_seq = seq.saturating_add(1).min(MAX_SEQ);
        r.deadline = now + MESSAGE_TIMEOUT;
        if r.data.len() == r.len {
            let r = self.receiving.take().expect("checked above");
            self.dispatch(r.cid, r.cmd, r.data, now);
        }
    }

    /// A complete message.
    fn dispatch(&mut self, cid: u32, cmd: u8, data: Vec<u8>, now: Instant) {
        match Command::from_byte(cmd) {
            Some(Command::Ping) => self.send(cid, Command::Ping, &data),
            Some(Command::Wink) => {
                if !data.is_empty() {
                    return self.error(cid, HidError::InvalidLength);
                }
                self.send(cid, Command::Wink, &[]);
                self.events.push_back(Event::Wink { cid });
            }
            Some(Command::Lock) => {
                let &[seconds] = data.as_slice() else {
                    return self.error(cid, HidError::InvalidLength);
                };
                let duration = Duration::from_secs(u64::from(seconds));
                if duration > MAX_LOCK {
                    return self.error(cid, HidError::InvalidParameter);
                }
                self.lock = (seconds > 0).then(|| Lock {
                    cid,
                    until: now + duration,
                });
                self.send(cid, Command::Lock, &[]);
            }
            Some(Command::Cbor) => {
                if data.is_empty() {
                    return self.error(cid, HidError::InvalidLength);
                }
                let id = RequestId(self.next_id);
                self.next_id += 1;
                self.processing = Some(Processing {
                    id,
                    cid,
                    status: KeepaliveStatus::Processing,
                    next_keepalive: now + KEEPALIVE_INTERVAL,
                });
                self.events.push_back(Event::Request {
                    id,
                    cid,
                    payload: data,
                });
            }
            // MSG on a CTAP2-only key (NMSG); KEEPALIVE and ERROR go device to host only.
            _ => self.error(cid, HidError::InvalidCommand),
        }
    }

    fn answer_init(&mut self, on: u32, nonce: &[u8], cid: u32) {
        let mut body = [0u8; 17];
        body[..8].copy_from_slice(nonce);
        body[8..12].copy_from_slice(&cid.to_be_bytes());
        body[12] = PROTOCOL_VERSION;
        body[13] = self.version.major;
        body[14] = self.version.minor;
        body[15] = self.version.build;
        body[16] = self.capabilities();
        self.send(on, Command::Init, &body);
    }

    /// A fresh channel: not 0, not broadcast, not in use.
    fn allocate(&mut self, rng: &mut impl RngCore) -> u32 {
        let cid = loop {
            let c = rng.next_u32();
            if c != 0 && c != BROADCAST_CID && !self.channels.contains(&c) {
                break c;
            }
        };
        if self.channels.len() >= MAX_CHANNELS {
            // The least recently used channel goes, unless it is the one in use (it was
            // touched last, so it is not at the front unless MAX_CHANNELS is 1).
            self.channels.pop_front();
        }
        self.channels.push_back(cid);
        cid
    }

    fn touch(&mut self, cid: u32) {
        if let Some(i) = self.channels.iter().position(|&c| c == cid) {
            self.channels.remove(i);
            self.channels.push_back(cid);
        }
    }

    fn locked_by_other(&self, cid: u32) -> bool {
        self.lock.as_ref().is_some_and(|l| l.cid != cid)
    }

    fn expire(&mut self, now: Instant) {
        if let Some(r) = self.receiving.take_if(|r| now >= r.deadline) {
            self.error(r.cid, HidError::MessageTimeout);
        }
        if self.lock.as_ref().is_some_and(|l| now >= l.until) {
            self.lock = None;
        }
    }

    fn error(&mut self, cid: u32, e: HidError) {
        self.send(cid, Command::Error, &[e as u8]);
    }

    fn send(&mut self, cid: u32, cmd: Command, payload: &[u8]) {
        self.reports.extend(fragment(cid, cmd as u8, payload));
    }
}

/// The next keepalive time after `last`: one interval on, or an interval from `now` if the
/// caller ticked late (no burst of catch-up keepalives).
fn next_after(last: Instant, now: Instant) -> Instant {
    let next = last + KEEPALIVE_INTERVAL;
    if next > now {
        next
    } else {
        now + KEEPALIVE_INTERVAL
    }
}
