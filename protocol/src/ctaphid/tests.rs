//! One test per CTAPHID rule the engine implements, each driving it as a host would: reports
//! in, reports out, reassembled into messages.

use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::packet::{fragment, Packet};
use super::*;

/// An RNG that hands out the given values in turn, then counts up.
struct Script(Vec<u32>, u32);

impl RngCore for Script {
    fn next_u32(&mut self) -> u32 {
        if self.0.is_empty() {
            self.1 += 1;
            self.1
        } else {
            self.0.remove(0)
        }
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u32() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// A message as the host reassembles it from input reports.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    cid: u32,
    cmd: u8,
    data: Vec<u8>,
}

/// The engine, a clock and a host that speaks reports.
struct Rig {
    engine: Engine,
    now: Instant,
    rng: Script,
}

impl Rig {
    fn new() -> Self {
        // Simulated time needs one real instant as its origin.
        #[allow(clippy::disallowed_methods)] // tests: the origin of simulated time
        let now = Instant::now();
        Self {
            engine: Engine::new(DeviceVersion {
                major: 1,
                minor: 2,
                build: 3,
            }),
            now,
            rng: Script(Vec::new(), 0x1000),
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.engine.handle_tick(self.now);
    }

    fn send_report(&mut self, r: &[u8; REPORT_LEN]) {
        self.engine.handle_report(r, self.now, &mut self.rng);
    }

    fn send(&mut self, cid: u32, cmd: Command, data: &[u8]) {
        for r in fragment(cid, cmd as u8, data) {
            self.send_report(&r);
        }
    }

    /// Everything the engine sent since the last call, reassembled.
    fn received(&mut self) -> Vec<Msg> {
        let mut out: Vec<Msg> = Vec::new();
        let mut partial: Option<(Msg, usize)> = None;
        while let Some(r) = self.engine.poll_report() {
            match Packet::parse(&r) {
                Packet::Init {
                    cid,
                    cmd,
                    len,
                    data,
                } => {
                    assert!(partial.is_none(), "a new message before the last was whole");
                    let m = Msg {
                        cid,
                        cmd,
                        data: data[..len.min(data.len())].to_vec(),
                    };
                    if m.data.len() == len {
                        out.push(m);
                    } else {
                        partial = Some((m, len));
                    }
                }
                Packet::Cont { cid, data, .. } => {
                    let (mut m, len) = partial.take().expect("a continuation after an init");
                    assert_eq!(m.cid, cid);
                    let take = (len - m.data.len()).min(data.len());
                    m.data.extend_from_slice(&data[..take]);
                    if m.data.len() == len {
                        out.push(m);
                    } else {
                        partial = Some((m, len));
                    }
                }
            }
        }
        assert!(partial.is_none(), "a message was cut short");
        out
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    /// Allocates a channel through the broadcast channel.
    fn channel(&mut self) -> u32 {
        self.send(BROADCAST_CID, Command::Init, &[9; 8]);
        let m = self.received().pop().expect("an INIT reply");
        u32::from_be_bytes(m.data[8..12].try_into().unwrap())
    }

    /// Sends a CBOR request and returns its id.
    fn request(&mut self, cid: u32, payload: &[u8]) -> RequestId {
        self.send(cid, Command::Cbor, payload);
        match self.events().as_slice() {
            [Event::Request {
                id,
                cid: c,
                payload: p,
            }] => {
                assert_eq!((*c, p.as_slice()), (cid, payload));
                *id
            }
            other => panic!("expected one request, got {other:?}"),
        }
    }
}

fn error(cid: u32, e: HidError) -> Msg {
    Msg {
        cid,
        cmd: Command::Error as u8,
        data: vec![e as u8],
    }
}

fn cbor(cid: u32, data: &[u8]) -> Msg {
    Msg {
        cid,
        cmd: Command::Cbor as u8,
        data: data.to_vec(),
    }
}

fn keepalive(cid: u32, s: KeepaliveStatus) -> Msg {
    Msg {
        cid,
        cmd: Command::Keepalive as u8,
        data: vec![s as u8],
    }
}

#[test]
fn init_on_the_broadcast_channel_allocates_a_channel_and_echoes_the_nonce() {
    let mut rig = Rig::new();
    rig.rng = Script(vec![0xdead_beef], 0);
    let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
    rig.send(BROADCAST_CID, Command::Init, &nonce);
    let reply = rig.received();
    assert_eq!(reply.len(), 1);
    let m = &reply[0];
    assert_eq!((m.cid, m.cmd), (BROADCAST_CID, Command::Init as u8));
    let mut expected = nonce.to_vec();
    expected.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    expected.extend_from_slice(&[2, 1, 2, 3, 0x01 | 0x04 | 0x08]);
    assert_eq!(m.data, expected);
    // The new channel works.
    rig.send(0xdead_beef, Command::Ping, b"hi");
    assert_eq!(rig.received()[0].data, b"hi");
}

#[test]
fn allocation_skips_the_reserved_and_the_allocated_channels() {
    let mut rig = Rig::new();
    rig.rng = Script(vec![0, BROADCAST_CID, 5, 5, 6], 0);
    assert_eq!(rig.channel(), 5);
    assert_eq!(rig.channel(), 6);
}

#[test]
fn init_with_a_wrong_length_is_an_invalid_length() {
    let mut rig = Rig::new();
    rig.send(BROADCAST_CID, Command::Init, &[1; 7]);
    assert_eq!(
        rig.received(),
        vec![error(BROADCAST_CID, HidError::InvalidLength)]
    );
    let cid = rig.channel();
    rig.send(cid, Command::Init, &[1; 9]);
    assert_eq!(rig.received(), vec![error(cid, HidError::InvalidLength)]);
}

#[test]
fn the_reserved_broadcast_and_unallocated_channels_are_refused() {
    let mut rig = Rig::new();
    rig.send(0, Command::Init, &[0; 8]);
    assert_eq!(rig.received(), vec![error(0, HidError::InvalidChannel)]);
    rig.send(BROADCAST_CID, Command::Ping, b"x");
    assert_eq!(
        rig.received(),
        vec![error(BROADCAST_CID, HidError::InvalidChannel)]
    );
    rig.send(0x1234_5678, Command::Cbor, &[0x04]);
    assert_eq!(
        rig.received(),
        vec![error(0x1234_5678, HidError::InvalidChannel)]
    );
    assert!(rig.events().is_empty());
}

#[test]
fn ping_echoes_up_to_the_largest_message() {
    let mut rig = Rig::new();
    let cid = rig.channel();
    let big: Vec<u8> = (0..MAX_MESSAGE_LEN).map(|i| (i * 7) as u8).collect();
    rig.send(cid, Command::Ping, &big);
    let reply = rig.received();
    assert_eq!(reply.len(), 1);
    assert_eq!(
        (reply[0].cmd, reply[0].data.len()),
        (Command::Ping as u8, 7609)
    );
    assert_eq!(reply[0].data, big);
}

#[test]
fn a_message_longer_than_7609_bytes_is_an_invalid_length() {
    let mut rig = Rig::new();
    let cid = rig.channel();
    let mut r = fragment(cid, Command::Cbor as u8, &[0x04])[0];
    r[5..7].copy_from_slice(&7610u16.to_be_bytes());
    rig.send_report(&r);
    assert_eq!(rig.received(), vec![error(cid, HidError::InvalidLength)]);
    assert!(rig.events().is_empty());
    assert!(!rig.engine.is_processing());
}

#[test]
fn a_continuation_out_of_order_is_an_invalid_seq_and_drops_the_message() {
    let mut rig = Rig::new();
    let cid = rig.channel();
    let reports = fragment(cid, Command::Cbor as u8, &[0x01; 200]);
    rig.send_report(&reports[0]);
    rig.send_report(&reports[2]);
    assert_eq!(rig.received(), vec![error(cid, HidError::InvalidSeq)]);
    // The rest of the broken message is spurious now, and ignored.
    rig.send_report(&reports[1]);
    rig.send_report(&reports[3]);
    assert!(rig.received().is_empty());
    assert!(rig.events().is_empty());
    // The channel works again.
    rig.send(cid, Command::Ping, b"ok");
    assert_eq!(rig.received()[0].data, b"ok");
}

#[test]
fn continuation_packets_without_a_message_are_ignored() {
    let mut rig = Rig::new();
    let cid = rig.channel();
    let reports = fragment(cid, Command::Ping as u8, &[7; 100]);
    rig.send_report(&reports[1]);
    assert!(rig.received().is_empty());
    // On an unallocated channel too: no answer at all.
    let stray = fragment(0x4242_4242, Command::Ping as u8, &[7; 100]);
    rig.send_report(&stray[1]);
    assert!(rig.received().is_empty());
}

#[test]
fn a_new_message_on_a_channel_still_receiving_one_is_an_invalid_seq() {
    let mut rig = Rig::new();
    let cid = rig.channel();
    let reports = fragment(cid, Command::Ping as u8, &[7; 100]);
    rig.send_report(&reports[0]);
    rig.send(cid, Command::Ping, b"again");
    assert_eq!(rig.received(), vec![error(cid, HidError::InvalidSeq)]);
}

#[test]
fn another_channel_is_busy_while_a_message_is_received_and_the_message_still_completes() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let b = rig.channel();
    let payload: Vec<u8> = (0..300).map(|i| i as u8).collect();
    let reports = fragment(a, Command::Ping as u8, &payload);
    rig.send_report(&reports[0]);
    rig.send_report(&reports[1]);
    // b's whole message, and a stray continuation on b, interleave with a's packets.
    rig.send(b, Command::Ping, b"b");
    rig.send_report(&fragment(b, Command::Ping as u8, &[0; 100])[1]);
    for r in &reports[2..] {
        rig.send_report(r);
    }
    let got = rig.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], error(b, HidError::ChannelBusy));
    assert_eq!((got[1].cid, &got[1].data), (a, &payload));
    // Then b is served.
    rig.send(b, Command::Ping, b"b");
    assert_eq!(rig.received()[0].data, b"b");
}

#[test]
fn another_channel_is_busy_while_a_request_is_processed_and_keepalives_go_on() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let b = rig.channel();
    let id = rig.request(a, &[0x01, 0xa0]);
    rig.send(b, Command::Cbor, &[0x04]);
    rig.send(a, Command::Ping, b"x");
    assert_eq!(
        rig.received(),
        vec![
            error(b, HidError::ChannelBusy),
            error(a, HidError::ChannelBusy)
        ]
    );
    rig.advance(Duration::from_millis(100));
    assert_eq!(
        rig.received(),
        vec![keepalive(a, KeepaliveStatus::Processing)]
    );
    // INIT on the broadcast channel is always answered: the next program gets a channel.
    let c = rig.channel();
    assert!(![a, b].contains(&c));
    rig.engine.handle_reply(id, &[0x00, 0xa0]).unwrap();
    assert_eq!(rig.received(), vec![cbor(a, &[0x00, 0xa0])]);
    rig.send(b, Command::Ping, b"now");
    assert_eq!(rig.received()[0].data, b"now");
}

#[test]
fn a_half_sent_message_times_out_and_frees_the_device() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let b = rig.channel();
    let reports = fragment(a, Command::Cbor as u8, &[0x01; 200]);
    rig.send_report(&reports[0]);
    rig.send_report(&reports[1]);
    assert_eq!(
        rig.engine.poll_timeout(),
        Some(rig.now + MESSAGE_TIMEOUT),
        "the deadline restarts with each packet"
    );
    rig.advance(MESSAGE_TIMEOUT - Duration::from_millis(1));
    assert!(rig.received().is_empty());
    rig.advance(Duration::from_millis(1));
    assert_eq!(rig.received(), vec![error(a, HidError::MessageTimeout)]);
    assert!(rig.events().is_empty());
    rig.send_report(&reports[2]);
    assert!(rig.received().is_empty(), "the rest is spurious");
    rig.send(b, Command::Ping, b"free");
    assert_eq!(rig.received()[0].data, b"free");
    assert_eq!(rig.engine.poll_timeout(), None);
}

#[test]
fn a_report_after_the_deadline_times_out_before_it_is_read() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let reports = fragment(a, Command::Ping as u8, &[1; 100]);
    rig.send_report(&reports[0]);
    rig.now += MESSAGE_TIMEOUT;
    rig.send_report(&reports[1]);
    assert_eq!(rig.received(), vec![error(a, HidError::MessageTimeout)]);
}

#[test]
fn cbor_is_handed_out_and_the_reply_goes_back_in_as_many_reports_as_it_needs() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let request: Vec<u8> = std::iter::once(0x02)
        .chain((0..7608).map(|i| i as u8))
        .collect();
    let id = rig.request(a, &request);
    assert!(rig.engine.is_processing());
    let reply: Vec<u8> = (0..MAX_MESSAGE_LEN).map(|i| (i % 251) as u8).collect();
    rig.engine.handle_reply(id, &reply).unwrap();
    assert_eq!(rig.received(), vec![cbor(a, &reply)]);
    assert!(!rig.engine.is_processing());
    assert_eq!(
        rig.engine.handle_reply(id, &[0]),
        Err(ReplyError::NotPending(id))
    );
    assert!(rig.received().is_empty());
}

#[test]
fn an_empty_cbor_message_is_an_invalid_length() {
    let mut rig = Rig::new();
    let a = rig.channel();
    rig.send(a, Command::Cbor, &[]);
    assert_eq!(rig.received(), vec![error(a, HidError::InvalidLength)]);
    assert!(rig.events().is_empty());
}

#[test]
fn a_reply_that_cannot_be_carried_becomes_ctap1_err_other() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let id = rig.request(a, &[0x01]);
    assert_eq!(
        rig.engine.handle_reply(id, &vec![0; MAX_MESSAGE_LEN + 1]),
        Err(ReplyError::TooLong(7610))
    );
    assert_eq!(rig.received(), vec![cbor(a, &[CTAP1_ERR_OTHER])]);
    let id = rig.request(a, &[0x01]);
    assert_eq!(rig.engine.handle_reply(id, &[]), Err(ReplyError::Empty));
    assert_eq!(rig.received(), vec![cbor(a, &[CTAP1_ERR_OTHER])]);
}

#[test]
fn keepalives_go_out_every_100_ms_with_the_current_status_until_the_reply() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let id = rig.request(a, &[0x01]);
    rig.advance(Duration::from_millis(99));
    assert!(rig.received().is_empty());
    rig.advance(Duration::from_millis(1));
    assert_eq!(
        rig.received(),
        vec![keepalive(a, KeepaliveStatus::Processing)]
    );
    // A status change goes out at once, and the cadence restarts from it.
    rig.advance(Duration::from_millis(30));
    rig.engine
        .handle_status(id, KeepaliveStatus::UpNeeded, rig.now);
    assert_eq!(
        rig.received(),
        vec![keepalive(a, KeepaliveStatus::UpNeeded)]
    );
    rig.engine
        .handle_status(id, KeepaliveStatus::UpNeeded, rig.now);
    assert!(rig.received().is_empty(), "no repeat for the same status");
    for _ in 0..5 {
        rig.advance(Duration::from_millis(100));
        assert_eq!(
            rig.received(),
            vec![keepalive(a, KeepaliveStatus::UpNeeded)]
        );
    }
    // A late tick sends one keepalive, not a burst.
    rig.advance(Duration::from_millis(1000));
    assert_eq!(rig.received().len(), 1);
    rig.engine.handle_reply(id, &[0x00]).unwrap();
    rig.advance(Duration::from_millis(500));
    assert_eq!(rig.received(), vec![cbor(a, &[0x00])]);
    assert_eq!(rig.engine.poll_timeout(), None);
}

#[test]
fn cancel_answers_the_pending_request_with_keepalive_cancel_and_is_never_answered_itself() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let b = rig.channel();
    // Nothing pending: nothing happens.
    rig.send(a, Command::Cancel, &[]);
    assert!(rig.received().is_empty());
    let id = rig.request(a, &[0x02]);
    // Another channel's CANCEL neither cancels nor gets a busy error.
    rig.send(b, Command::Cancel, &[]);
    assert!(rig.received().is_empty());
    assert!(rig.events().is_empty());
    rig.send(a, Command::Cancel, &[]);
    assert_eq!(rig.received(), vec![cbor(a, &[CTAP2_ERR_KEEPALIVE_CANCEL])]);
    assert_eq!(
        rig.events(),
        vec![Event::Cancelled {
            id,
            reason: CancelReason::HostCancelled
        }]
    );
    // The late answer goes nowhere; the device is free.
    assert_eq!(
        rig.engine.handle_reply(id, &[0x00]),
        Err(ReplyError::NotPending(id))
    );
    rig.advance(Duration::from_millis(300));
    assert!(rig.received().is_empty(), "no keepalives after a cancel");
    rig.send(b, Command::Ping, b"b");
    assert_eq!(rig.received()[0].data, b"b");
}

#[test]
fn cancel_drops_a_half_received_message_on_its_channel() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let reports = fragment(a, Command::Cbor as u8, &[0x01; 100]);
    rig.send_report(&reports[0]);
    rig.send(a, Command::Cancel, &[]);
    rig.send_report(&reports[1]);
    assert!(rig.received().is_empty());
    assert!(rig.events().is_empty());
}

#[test]
fn init_on_a_busy_channel_resynchronises_it() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let id = rig.request(a, &[0x01]);
    rig.send(a, Command::Init, &[5; 8]);
    let reply = rig.received();
    assert_eq!(reply.len(), 1);
    assert_eq!((reply[0].cid, reply[0].cmd), (a, Command::Init as u8));
    assert_eq!(&reply[0].data[..8], &[5; 8]);
    assert_eq!(
        u32::from_be_bytes(reply[0].data[8..12].try_into().unwrap()),
        a,
        "a resynchronised channel keeps its ID"
    );
    assert_eq!(
        rig.events(),
        vec![Event::Cancelled {
            id,
            reason: CancelReason::Resynchronised
        }]
    );
    // And a half-received message.
    let reports = fragment(a, Command::Ping as u8, &[1; 100]);
    rig.send_report(&reports[0]);
    rig.send(a, Command::Init, &[6; 8]);
    rig.send_report(&reports[1]);
    let reply = rig.received();
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert_eq!(reply[0].cmd, Command::Init as u8);
    rig.send(a, Command::Ping, b"clean");
    assert_eq!(rig.received()[0].data, b"clean");
}

#[test]
fn msg_and_unknown_commands_are_invalid_commands() {
    let mut rig = Rig::new();
    let a = rig.channel();
    // U2F_VERSION as an APDU.
    rig.send(a, Command::Msg, &[0x00, 0x03, 0x00, 0x00, 0x00]);
    rig.send(a, Command::Keepalive, &[1]);
    rig.send(a, Command::Error, &[1]);
    for r in fragment(a, 0x40, b"vendor") {
        rig.send_report(&r);
    }
    assert_eq!(rig.received(), vec![error(a, HidError::InvalidCommand); 4]);
}

#[test]
fn wink_answers_empty_and_is_reported() {
    let mut rig = Rig::new();
    let a = rig.channel();
    rig.send(a, Command::Wink, &[]);
    assert_eq!(
        rig.received(),
        vec![Msg {
            cid: a,
            cmd: Command::Wink as u8,
            data: vec![]
        }]
    );
    assert_eq!(rig.events(), vec![Event::Wink { cid: a }]);
    rig.send(a, Command::Wink, &[1]);
    assert_eq!(rig.received(), vec![error(a, HidError::InvalidLength)]);
}

#[test]
fn lock_keeps_other_channels_out_until_it_expires_or_is_released() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let b = rig.channel();
    rig.send(a, Command::Lock, &[11]);
    assert_eq!(rig.received(), vec![error(a, HidError::InvalidParameter)]);
    rig.send(a, Command::Lock, &[1, 2]);
    assert_eq!(rig.received(), vec![error(a, HidError::InvalidLength)]);
    rig.send(a, Command::Lock, &[2]);
    assert_eq!(rig.received()[0].cmd, Command::Lock as u8);
    rig.send(b, Command::Ping, b"b");
    rig.send(BROADCAST_CID, Command::Init, &[0; 8]);
    assert_eq!(
        rig.received(),
        vec![
            error(b, HidError::ChannelBusy),
            error(BROADCAST_CID, HidError::ChannelBusy)
        ]
    );
    rig.send(a, Command::Ping, b"a");
    assert_eq!(rig.received()[0].data, b"a", "the lock holder is served");
    assert_eq!(
        rig.engine.poll_timeout(),
        Some(rig.now + Duration::from_secs(2))
    );
    rig.advance(Duration::from_secs(2));
    rig.send(b, Command::Ping, b"b");
    assert_eq!(rig.received()[0].data, b"b", "the lock expired");
    rig.send(a, Command::Lock, &[10]);
    rig.send(a, Command::Lock, &[0]);
    let _ = rig.received();
    rig.send(b, Command::Ping, b"b");
    assert_eq!(rig.received()[0].data, b"b", "the lock was released");
}

#[test]
fn the_host_closing_the_device_cancels_the_pending_request() {
    let mut rig = Rig::new();
    let a = rig.channel();
    let id = rig.request(a, &[0x01]);
    rig.advance(Duration::from_millis(100));
    rig.engine.handle_host_closed();
    assert!(rig.received().is_empty(), "queued reports are dropped");
    assert_eq!(
        rig.events(),
        vec![Event::Cancelled {
            id,
            reason: CancelReason::HostClosed
        }]
    );
    assert!(rig.engine.handle_reply(id, &[0]).is_err());
    rig.send(a, Command::Ping, b"still allocated");
    assert_eq!(rig.received()[0].data, b"still allocated");
}

#[test]
fn the_least_recently_used_channel_is_forgotten_beyond_the_limit() {
    let mut rig = Rig::new();
    let first = rig.channel();
    let second = rig.channel();
    for _ in 0..MAX_CHANNELS - 2 {
        rig.channel();
    }
    // `first` is used again, so `second` is now the least recently used.
    rig.send(first, Command::Ping, b"1");
    let _ = rig.received();
    rig.channel();
    rig.send(second, Command::Ping, b"2");
    assert_eq!(
        rig.received(),
        vec![error(second, HidError::InvalidChannel)]
    );
    rig.send(first, Command::Ping, b"1");
    assert_eq!(rig.received()[0].data, b"1");
}

#[test]
fn never_panics_on_arbitrary_reports() {
    let mut rig = Rig::new();
    let a = rig.channel();
    // A xorshift stream of reports, many on the allocated channel and the broadcast one.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000 {
        let mut r = [0u8; REPORT_LEN];
        for chunk in r.chunks_mut(8) {
            chunk.copy_from_slice(&next().to_le_bytes()[..chunk.len()]);
        }
        match i % 4 {
            0 => r[..4].copy_from_slice(&a.to_be_bytes()),
            1 => r[..4].copy_from_slice(&BROADCAST_CID.to_be_bytes()),
            _ => {}
        }
        rig.send_report(&r);
        if i % 7 == 0 {
            rig.advance(Duration::from_millis(next() % 400));
        }
        for e in rig.events() {
            if let Event::Request { id, .. } = e {
                let _ = rig.engine.handle_reply(id, &[0]);
            }
        }
        let _ = rig.received();
    }
}
