//! The talk machine against an in-memory phone (`hybrid_protocol`'s `Responder`): every
//! transition, every error, the linger, links kept and ignored, and bad replies.

use hybrid_protocol::handshake::{Initiator, Responder};
use hybrid_protocol::keys::{Psk, RootSecret};
use hybrid_protocol::linking::{self, LinkingInfo};
use hybrid_protocol::session::Update;
use rand::rngs::StdRng;
use rand::SeedableRng as _;

use super::*;

const USER: Duration = Duration::from_secs(120);
const LINGER: Duration = Duration::from_secs(3);
const TIMEOUTS: TalkTimeouts = TalkTimeouts {
    user: USER,
    linger: LINGER,
};

/// A desktop's talk and the phone's side of the same session.
struct Pair {
    talk: Talk,
    phone: Session,
    desktop_identity: IdentityKey,
    now: Instant,
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(3)
}

fn get_info() -> Vec<u8> {
    GetInfo {
        versions: vec!["FIDO_2_0".into()],
        ..GetInfo::default()
    }
    .to_cbor()
}

/// A QR session's talk (or a linked one's, `qr: false`), through the request.
fn pair(revision: Revision, qr: bool, can_store: bool, ph_link: bool) -> Pair {
    let mut rng = rng();
    let identity = IdentityKey::random(&mut rng);
    let psk = Psk::from_bytes([7; 32]);
    let (waiting, msg1) = Initiator::start_qr(&identity, &psk, &mut rng).unwrap();
    let (phone, msg2) =
        Responder::respond_qr(&identity.public_key(), &psk, &msg1, &mut rng).unwrap();
    let desktop = waiting.finish(&msg2).unwrap();
    let mut ph = PostHandshake::ctap(get_info());
    if ph_link {
        ph.linking = Some(link_info(&identity, phone.handshake_hash()));
    }
    let linking = if qr {
        Linking::Qr {
            identity: identity.clone(),
            can_store,
        }
    } else {
        Linking::Linked
    };
    let (talk, info) = Talk::new(desktop, ph, revision, linking, TIMEOUTS).unwrap();
    assert_eq!(info.versions, ["FIDO_2_0"]);
    Pair {
        talk,
        phone,
        desktop_identity: identity,
        now: Instant::now(),
    }
}

/// Linking information a phone would send, signed over `hash` for the desktop `desktop`.
fn link_info(desktop: &IdentityKey, hash: &[u8; 32]) -> LinkingInfo {
    let root = RootSecret::from_bytes([9; 32]);
    let phone = root.identity_key();
    LinkingInfo {
        contact_id: vec![1, 2, 3],
        link_id: [4; 8],
        link_secret: root.paired_secret(&[1, 2, 3], &[4; 8]),
        authenticator_public_key: phone.public_key(),
        name: "a phone".into(),
        handshake_signature: linking::handshake_signature(&phone, &desktop.public_key(), hash),
        play_services_tag: None,
    }
}

impl Pair {
    /// Sends the request and checks the phone reads it.
    fn request(&mut self) {
        self.talk
            .send_request(self.now, Command::GetAssertion, &[0xa0]);
        let f = self.talk.poll_transmit().expect("the request");
        assert_eq!(f.kind, FrameKind::Request);
        let wire = ctap::encode_request(Command::GetAssertion, &[0xa0]);
        if self.revision() == Revision::One {
            assert_eq!(
                self.phone.decrypt_message(&f.bytes).unwrap(),
                Message::Ctap(wire)
            );
        } else {
            assert_eq!(self.phone.decrypt(&f.bytes).unwrap().to_vec(), wire);
        }
        assert_eq!(self.talk.poll_timeout(), Some(self.now + USER));
    }

    fn revision(&self) -> Revision {
        self.talk.revision
    }

    fn phone_sends(&mut self, m: &Message) {
        let frame = self.phone.encrypt_message(m).unwrap();
        self.talk.handle_message(self.now, &frame);
    }

    fn reply(&mut self, status: Status, body: &[u8]) {
        let mut r = vec![status as u8];
        r.extend_from_slice(body);
        if self.revision() == Revision::One {
            self.phone_sends(&Message::Ctap(r));
        } else {
            let frame = self.phone.encrypt(&r).unwrap();
            self.talk.handle_message(self.now, &frame);
        }
    }

    /// The frames the talk queued, with what the phone reads in each.
    fn sent(&mut self) -> Vec<(FrameKind, Message)> {
        std::iter::from_fn(|| self.talk.poll_transmit())
            .map(|f| (f.kind, self.phone.decrypt_message(&f.bytes).unwrap()))
            .collect()
    }

    fn events(&mut self) -> Vec<TalkEvent> {
        std::iter::from_fn(|| self.talk.poll_event()).collect()
    }

    fn end(&mut self) -> Result<Talked, BridgeError> {
        self.talk.poll_end().expect("the talk ended")
    }

    fn update_with_link(&mut self) {
        let hash = *self.phone.handshake_hash();
        let info = link_info(&self.desktop_identity, &hash);
        self.phone_sends(&Message::Update(Update {
            linking: Some(info),
        }));
    }
}

fn talked(linked: Option<&str>) -> Talked {
    Talked {
        response: vec![0xa1, 1, 2],
        linked: linked.map(str::to_string),
    }
}

#[test]
fn a_reply_ends_the_talk_with_a_shutdown() {
    let mut p = pair(Revision::One, false, false, false);
    assert!(p.talk.poll_end().is_none() && p.talk.poll_timeout().is_none());
    p.request();
    p.reply(Status::Ok, &[0xa1, 1, 2]);
    assert_eq!(p.sent(), vec![(FrameKind::Shutdown, Message::Shutdown)]);
    assert_eq!(p.end().unwrap(), talked(None));
    assert!(p.talk.poll_end().is_none(), "handed out once");
}

#[test]
fn revision_zero_sends_raw_frames_and_no_shutdown() {
    let mut p = pair(Revision::Zero, true, true, false);
    p.request();
    p.reply(Status::Ok, &[0xa1, 1, 2]);
    assert!(p.talk.poll_transmit().is_none());
    assert_eq!(p.end().unwrap(), talked(None), "no linger in revision 0");
}

#[test]
fn a_link_in_an_update_before_the_reply_is_stored_and_no_linger_follows() {
    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.update_with_link();
    let [TalkEvent::StoreLink(link)] = &p.events()[..] else {
        panic!("a link to store");
    };
    assert_eq!(link.info().name, "a phone");
    p.talk.handle_link_stored("a phone".into());
    p.reply(Status::Ok, &[0xa1, 1, 2]);
    let _ = p.sent();
    assert_eq!(p.end().unwrap(), talked(Some("a phone")));
}

#[test]
fn a_revision_zero_link_in_the_post_handshake_message_is_offered_first() {
    let mut p = pair(Revision::Zero, true, true, true);
    assert!(matches!(&p.events()[..], [TalkEvent::StoreLink(_)]));
    p.talk.handle_link_stored("a phone".into());
    p.request();
    p.reply(Status::Ok, &[0xa1, 1, 2]);
    assert_eq!(p.end().unwrap(), talked(Some("a phone")));
    // Storing it failed: the ceremony fails before the request goes out.
    let mut p = pair(Revision::Zero, true, true, true);
    let _ = p.events();
    p.talk
        .handle_link_store_failed(BridgeError::Internal("disk full".into()));
    assert!(matches!(p.end(), Err(BridgeError::Internal(_))));
}

#[test]
fn a_qr_session_that_can_store_a_link_lingers_for_a_late_one() {
    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.reply(Status::Ok, &[0xa1, 1, 2]);
    assert_eq!(p.sent(), vec![(FrameKind::Shutdown, Message::Shutdown)]);
    assert!(p.talk.poll_end().is_none(), "lingering");
    assert_eq!(p.talk.poll_timeout(), Some(p.now + LINGER));
    p.phone_sends(&Message::Shutdown);
    assert!(p.talk.poll_end().is_none(), "other messages are ignored");
    p.update_with_link();
    assert!(matches!(&p.events()[..], [TalkEvent::StoreLink(_)]));
    p.talk.handle_link_stored("a phone".into());
    assert_eq!(p.end().unwrap(), talked(Some("a phone")));
}

/// After the reply, the phone leaving in any way ends the linger as a success.
#[test]
fn the_phone_leaving_while_the_desktop_lingers_is_a_success() {
    type Leave = fn(&mut Pair);
    let ways: [(&str, Leave); 5] = [
        ("close", |p| p.talk.handle_channel_closed()),
        ("lost", |p| {
            p.talk
                .handle_channel_lost(BridgeError::Internal("gone".into()))
        }),
        ("linger over", |p| p.talk.handle_timeout(p.now + LINGER)),
        ("an undecryptable frame", |p| {
            p.talk.handle_message(p.now, &[0x55; 40])
        }),
        ("the shutdown cannot be sent, then a close", |p| {
            p.talk
                .handle_send_failed(FrameKind::Shutdown, BridgeError::Internal("x".into()));
            p.talk.handle_channel_closed();
        }),
    ];
    for (how, leave) in ways {
        let mut p = pair(Revision::One, true, true, false);
        p.request();
        p.reply(Status::Ok, &[0xa1, 1, 2]);
        let _ = std::iter::from_fn(|| p.talk.poll_transmit()).count();
        leave(&mut p);
        assert_eq!(p.end().unwrap(), talked(None), "{how}");
    }
}

#[test]
fn a_late_link_that_fails_to_verify_or_to_store_is_reported_ignored() {
    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.reply(Status::Ok, &[0xa1, 1, 2]);
    let _ = p.sent();
    // Signed over another session's handshake hash.
    let info = link_info(&p.desktop_identity, &[0; 32]);
    p.phone_sends(&Message::Update(Update {
        linking: Some(info),
    }));
    assert!(matches!(&p.events()[..], [TalkEvent::LinkIgnored(_)]));
    assert!(p.talk.poll_end().is_none(), "still lingering");
    p.update_with_link();
    let _ = p.events();
    p.talk
        .handle_link_store_failed(BridgeError::Internal("disk full".into()));
    let [TalkEvent::LinkIgnored(reason)] = &p.events()[..] else {
        panic!("reported");
    };
    assert!(reason.contains("disk full"), "{reason}");
    assert_eq!(p.end().unwrap(), talked(None));
}

#[test]
fn links_that_cannot_be_kept_are_reported_ignored() {
    for (qr, can_store, why) in [
        (false, true, "cannot be verified"),
        (true, false, "no links file configured"),
    ] {
        let mut p = pair(Revision::One, qr, can_store, false);
        p.request();
        p.update_with_link();
        let [TalkEvent::LinkIgnored(reason)] = &p.events()[..] else {
            panic!("ignored");
        };
        assert!(reason.contains(why), "{reason}");
        p.reply(Status::Ok, &[0xa1, 1, 2]);
        let _ = p.sent();
        assert_eq!(p.end().unwrap(), talked(None), "no linger: {why}");
    }
}

#[test]
fn before_the_reply_a_close_a_lost_tunnel_or_silence_fail_the_ceremony() {
    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.talk.handle_channel_closed();
    let e = p.end().unwrap_err();
    assert!(
        matches!(
            e,
            BridgeError::Closed {
                during: "before the phone answered"
            }
        ),
        "{e:?}"
    );

    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.talk
        .handle_channel_lost(BridgeError::Internal("gone".into()));
    assert!(matches!(p.end(), Err(BridgeError::Internal(_))));

    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.talk
        .handle_timeout(p.now + USER - Duration::from_millis(1));
    assert!(p.talk.poll_end().is_none(), "not yet due");
    p.talk.handle_timeout(p.now + USER);
    let e = p.end().unwrap_err();
    assert!(
        matches!(e, BridgeError::Timeout { phase: Phase::AwaitingUser, after } if after == USER),
        "{e:?}"
    );

    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.talk
        .handle_send_failed(FrameKind::Request, BridgeError::Internal("x".into()));
    assert!(matches!(p.end(), Err(BridgeError::Internal(_))));

    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.update_with_link();
    let _ = p.events();
    p.talk
        .handle_link_store_failed(BridgeError::Internal("disk full".into()));
    assert!(matches!(p.end(), Err(BridgeError::Internal(_))));
}

#[test]
fn an_error_status_sends_the_shutdown_and_fails_with_the_status() {
    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.reply(Status::OperationDenied, &[]);
    assert_eq!(p.sent(), vec![(FrameKind::Shutdown, Message::Shutdown)]);
    assert!(matches!(
        p.end(),
        Err(BridgeError::Ctap {
            status: Status::OperationDenied,
            code: 0x27
        })
    ));
}

#[test]
fn a_bad_reply_is_a_protocol_error_from_the_phone() {
    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.phone_sends(&Message::Shutdown);
    let e = p.end().unwrap_err();
    assert!(e.to_string().contains("expected a CTAP reply"), "{e}");
    assert_eq!(e.exit_code(), 6);

    let mut p = pair(Revision::One, true, true, false);
    p.request();
    p.talk.handle_message(p.now, &[0x55; 48]);
    assert!(matches!(
        p.end(),
        Err(BridgeError::Peer { during: DURING, .. })
    ));

    let mut p = pair(Revision::Zero, true, true, false);
    p.request();
    let empty = p.phone.encrypt(&[]).unwrap();
    p.talk.handle_message(p.now, &empty);
    assert!(matches!(
        p.end(),
        Err(BridgeError::Peer { during: DURING, .. })
    ));
}

#[test]
fn a_post_handshake_getinfo_that_does_not_parse_is_refused() {
    let mut rng = rng();
    let identity = IdentityKey::random(&mut rng);
    let psk = Psk::from_bytes([7; 32]);
    let (waiting, msg1) = Initiator::start_qr(&identity, &psk, &mut rng).unwrap();
    let (_, msg2) = Responder::respond_qr(&identity.public_key(), &psk, &msg1, &mut rng).unwrap();
    let ph = PostHandshake::ctap(vec![0xff]);
    let Err(e) = Talk::new(
        waiting.finish(&msg2).unwrap(),
        ph,
        Revision::One,
        Linking::Linked,
        TIMEOUTS,
    ) else {
        panic!("refused");
    };
    assert!(
        e.to_string().contains("getInfo of its post-handshake"),
        "{e}"
    );
}

#[test]
fn stray_inputs_do_nothing() {
    let mut p = pair(Revision::One, true, true, false);
    p.talk.handle_timeout(p.now + USER * 10);
    p.talk.handle_link_stored("x".into());
    assert!(
        p.talk.poll_end().is_none(),
        "nothing is running out before the request"
    );
    p.request();
    p.talk.send_request(p.now, Command::GetAssertion, &[0xa0]);
    assert!(p.talk.poll_transmit().is_none(), "one request per talk");
    p.reply(Status::Ok, &[0xa1, 1, 2]);
    let _ = p.sent();
    let _ = p.end();
    p.talk.handle_message(p.now, &[1, 2, 3]);
    p.talk.handle_channel_closed();
    assert!(p.talk.poll_end().is_none());
}

/// Truncations and bit flips of a real reply, before and after it is in, end the talk or
/// leave it waiting; none panics.
#[test]
fn bad_frames_never_panic() {
    let mut template = pair(Revision::One, true, true, false);
    template.request();
    let reply = template
        .phone
        .encrypt_message(&Message::Ctap(vec![0, 0xa1]))
        .unwrap();
    let mut mutations: Vec<Vec<u8>> = (0..reply.len()).map(|n| reply[..n].to_vec()).collect();
    for i in 0..reply.len() {
        let mut b = reply.clone();
        b[i] ^= 1 << (i % 8);
        mutations.push(b);
    }
    for lingering in [false, true] {
        for m in &mutations {
            let mut p = pair(Revision::One, true, true, false);
            p.request();
            if lingering {
                p.reply(Status::Ok, &[0xa1, 1, 2]);
            }
            p.talk.handle_message(p.now, m);
            let _ = std::iter::from_fn(|| p.talk.poll_transmit()).count();
            let _ = p.events();
            let _ = p.talk.poll_end();
        }
    }
}
