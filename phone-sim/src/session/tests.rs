//! The session machine driven by an in-memory desktop (`hybrid_protocol`'s `Initiator`):
//! every transition, every error, the rule for leaving after the answer, and bad input at
//! every state. No sockets, no clock: time is a value the tests move.

use std::time::{Duration, Instant};

use hybrid_protocol::ctap::{
    self, CtapError, GetAssertionRequest, MakeCredentialExtensions, MakeCredentialRequest, Options,
    RelyingParty, Status, User,
};
use hybrid_protocol::eid;
use hybrid_protocol::handshake::Initiator;
use hybrid_protocol::keys::{IdentityKey, QrSecret, RootSecret};
use hybrid_protocol::linking::LinkingInfo;
use hybrid_protocol::qr::{QrCode, RequestType};
use hybrid_protocol::session::{Message, PostHandshake, Session};
use hybrid_protocol::tunnel::{ContactId, Domain, RoutingId};
use rand::rngs::StdRng;
use rand::SeedableRng as _;

use super::io::{Frame, FrameKind};
use super::*;
use crate::authenticator::Done;
use crate::error::PhoneError;

const TIMEOUT: Duration = Duration::from_secs(120);
const MC: u8 = ctap::Command::MakeCredential as u8;
const GA: u8 = ctap::Command::GetAssertion as u8;

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

/// A desktop's identity and the QR code it shows.
fn desktop(rng: &mut StdRng, linking: bool) -> (IdentityKey, QrCode) {
    let identity = IdentityKey::random(rng);
    let qr = QrCode::new(
        identity.public_key(),
        QrSecret::random(rng).unwrap(),
        1_700_000_000,
        linking,
        RequestType::MakeCredential,
    );
    (identity, qr)
}

fn config() -> SessionConfig {
    SessionConfig {
        domain: Domain(0),
        fault: None,
        timeout: TIMEOUT,
    }
}

fn mc_request() -> Vec<u8> {
    let req = MakeCredentialRequest {
        client_data_hash: [0x11; 32],
        rp: RelyingParty {
            id: "example.com".into(),
            name: Some("Example".into()),
        },
        user: User {
            id: b"u".to_vec(),
            name: Some("alice".into()),
            display_name: Some("Alice".into()),
        },
        algorithms: vec![ctap::ES256],
        exclude_list: Vec::new(),
        extensions: MakeCredentialExtensions::default(),
        options: Options::default(),
    };
    let mut bytes = vec![MC];
    bytes.extend(req.to_cbor());
    bytes
}

fn created() -> Answer {
    Ok((
        vec![0xa0],
        Done::Created {
            rp_id: "example.com".into(),
            credential_id: vec![1, 2, 3],
        },
    ))
}

fn made() -> Operation {
    Operation::MadeCredential {
        rp_id: "example.com".into(),
        credential_id: vec![1, 2, 3],
    }
}

fn lost() -> PhoneError {
    PhoneError::Relay {
        context: "a test",
        error: tunnel_client::RelayError::Dropped {
            reason: "the test cut it".into(),
        },
    }
}

fn transmits(s: &mut PhoneSession) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

/// The frames among `t`, with their kinds.
fn frames(t: Vec<Transmit>) -> Vec<Frame> {
    t.into_iter()
        .filter_map(|t| match t {
            Transmit::Send(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// A phone session and the desktop talking to it, at a time the test moves.
struct Pair {
    phone: PhoneSession,
    desktop: Session,
    desktop_identity: IdentityKey,
    now: Instant,
    rng: StdRng,
}

/// A QR session through the handshake and the post-handshake message, with `link` offered.
fn qr_pair(link: Option<LinkOffer>) -> Pair {
    let mut rng = rng();
    let (identity, qr) = desktop(&mut rng, link.is_some());
    let now = Instant::now();
    let mut phone =
        PhoneSession::qr(&qr, RoutingId([1, 2, 3]), link, config(), now, &mut rng).unwrap();
    let [Transmit::Advertise(advert)] = transmits(&mut phone)[..] else {
        panic!("the first transmit is the advert");
    };
    assert_eq!(phone.poll_timeout(), Some(now + TIMEOUT));
    let matched = eid::decrypt(&qr.secret.eid_key(), &advert).expect("the advert is ours");
    assert_eq!(matched.plaintext.routing_id, RoutingId([1, 2, 3]));
    let psk = matched.psk(qr.secret.expose());
    let (waiting, msg1) = Initiator::start_qr(&identity, &psk, &mut rng).unwrap();
    phone.handle_message(now, &msg1, &mut rng);
    let t = transmits(&mut phone);
    assert_eq!(t[0], Transmit::StopAdvertising);
    let f = frames(t);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        (f[0].kind, f[1].kind),
        (FrameKind::Handshake, FrameKind::PostHandshake)
    );
    let mut desktop = waiting.finish(&f[0].bytes).unwrap();
    let (ph, _) = PostHandshake::decode(&desktop.decrypt(&f[1].bytes).unwrap()).unwrap();
    assert!(ph.supports_ctap());
    Pair {
        phone,
        desktop,
        desktop_identity: identity,
        now,
        rng,
    }
}

impl Pair {
    fn send(&mut self, m: &Message) {
        let frame = self.desktop.encrypt_message(m).unwrap();
        self.phone.handle_message(self.now, &frame, &mut self.rng);
    }

    /// The phone's CTAP replies (status, body) among its transmits, with their kinds.
    fn replies(&mut self) -> Vec<(FrameKind, Status, Vec<u8>)> {
        frames(transmits(&mut self.phone))
            .into_iter()
            .map(|f| match self.desktop.decrypt_message(&f.bytes).unwrap() {
                Message::Ctap(r) => (f.kind, Status::from_byte(r[0]), r[1..].to_vec()),
                other => panic!("a CTAP reply, got {other:?}"),
            })
            .collect()
    }

    /// Sends makeCredential and checks the machine asks the phone to run it.
    fn request(&mut self) {
        self.send(&Message::Ctap(mc_request()));
        assert!(transmits(&mut self.phone).is_empty());
        assert!(matches!(
            self.phone.poll_event(),
            Some(Event::Request(c)) if matches!(*c, Command::MakeCredential(_))
        ));
        assert_eq!(self.phone.poll_timeout(), None, "the user takes their time");
    }

    /// Through the answer: the reply to makeCredential is out.
    fn answered(&mut self) {
        self.request();
        self.phone.handle_answer(self.now, created());
        let replies = self.replies();
        assert_eq!(
            replies,
            vec![(FrameKind::Answer, Status::Ok, vec![0xa0])],
            "the answer"
        );
        assert!(self.phone.poll_end().is_none());
    }

    fn end(&mut self) -> Result<Outcome, PhoneError> {
        assert!(self.phone.poll_event().is_none());
        self.phone.poll_end().expect("the session ended")
    }
}

fn outcome(operation: Operation, get_info_served: usize) -> Outcome {
    Outcome {
        operation,
        get_info_served,
        link_id: None,
    }
}

#[test]
fn a_qr_session_serves_get_info_and_one_command_then_ends_on_shutdown() {
    let mut p = qr_pair(None);
    p.send(&Message::Ctap(vec![ctap::Command::GetInfo as u8]));
    let replies = p.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].0, replies[0].1),
        (FrameKind::GetInfo, Status::Ok)
    );
    assert_eq!(
        ctap::GetInfo::from_cbor(&replies[0].2).unwrap(),
        crate::authenticator::get_info()
    );
    p.answered();
    // getInfo is still served after the answer.
    p.send(&Message::Ctap(vec![ctap::Command::GetInfo as u8]));
    assert_eq!(p.replies()[0].0, FrameKind::GetInfo);
    p.send(&Message::Shutdown);
    assert_eq!(p.end().unwrap(), outcome(made(), 2));
    assert!(p.phone.poll_end().is_none(), "the end is handed out once");
    // Input after the end does nothing.
    p.phone.handle_channel_closed(p.now);
    p.phone.handle_timeout(p.now + TIMEOUT * 2);
    assert!(transmits(&mut p.phone).is_empty() && p.phone.poll_end().is_none());
}

#[test]
fn an_offered_link_is_stored_before_its_linking_information_goes_out() {
    let mut rng = rng();
    let root = RootSecret::random(&mut rng).unwrap();
    let contact = ContactId(vec![1, 2, 3, 4]);
    let link_id = [9; 8];
    let offer = LinkOffer {
        link_secret: root.paired_secret(&contact.0, &link_id),
        contact_id: contact.clone(),
        link_id,
        identity: root.identity_key(),
        name: "a phone".into(),
    };
    let mut p = qr_pair(Some(offer));
    assert!(matches!(
        p.phone.poll_event(),
        Some(Event::StoreLink { link_id }) if link_id == [9; 8]
    ));
    assert!(
        transmits(&mut p.phone).is_empty(),
        "nothing before it is stored"
    );
    assert_eq!(p.phone.poll_timeout(), None);
    p.phone.handle_link_stored(p.now);
    let f = frames(transmits(&mut p.phone));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, FrameKind::Linking);
    let hash = *p.desktop.handshake_hash();
    let Message::Update(update) = p.desktop.decrypt_message(&f[0].bytes).unwrap() else {
        panic!("an update");
    };
    let info: LinkingInfo = update.linking.expect("linking information");
    assert_eq!(
        (info.contact_id.clone(), info.name.clone()),
        (contact.0, "a phone".into())
    );
    let verified = info
        .verify(&p.desktop_identity, &hash)
        .expect("it verifies");
    assert_eq!(verified.info().link_id, link_id);
    p.answered();
    p.send(&Message::Shutdown);
    let end = p.end().unwrap();
    assert_eq!(end.link_id, Some(link_id));
}

#[test]
fn a_linked_session_answers_the_nk_handshake_and_sends_no_link() {
    let mut rng = rng();
    let root = RootSecret::random(&mut rng).unwrap();
    let identity = root.identity_key();
    let phone_key = identity.public_key();
    let secret = root.paired_secret(&[1, 2, 3], &[4; 8]);
    let nonce = [5; 16];
    let now = Instant::now();
    let mut phone = PhoneSession::linked(
        identity,
        &secret,
        &nonce,
        RoutingId([7, 8, 9]),
        config(),
        now,
        &mut rng,
    )
    .unwrap();
    let [Transmit::Advertise(advert)] = transmits(&mut phone)[..] else {
        panic!("the advert");
    };
    let matched = eid::decrypt(&secret.eid_key(&nonce), &advert).unwrap();
    let psk = matched.psk(secret.expose());
    let (waiting, msg1) = Initiator::start_linked(&phone_key, &psk, &mut rng).unwrap();
    phone.handle_message(now, &msg1, &mut rng);
    let f = frames(transmits(&mut phone));
    let mut desktop = waiting.finish(&f[0].bytes).unwrap();
    assert!(phone.poll_event().is_none(), "no link in a linked session");
    let frame = desktop.encrypt_message(&Message::Shutdown).unwrap();
    phone.handle_message(now, &frame, &mut rng);
    assert_eq!(
        phone.poll_end().unwrap().unwrap(),
        outcome(Operation::NoRequest, 0)
    );
}

/// Once the answer is out, the desktop leaving in any way, or going quiet, is a success.
#[test]
fn the_desktop_leaving_in_any_way_after_the_answer_is_a_success() {
    type Leave = fn(&mut Pair);
    let ways: [(&str, Leave); 6] = [
        ("shutdown", |p| p.send(&Message::Shutdown)),
        ("close", |p| p.phone.handle_channel_closed(p.now)),
        ("relay reports the peer gone", |p| {
            p.phone.handle_channel_lost(p.now, lost())
        }),
        ("silence", |p| p.phone.handle_timeout(p.now + TIMEOUT)),
        ("a getInfo reply that cannot be sent", |p| {
            p.send(&Message::Ctap(vec![ctap::Command::GetInfo as u8]));
            let _ = transmits(&mut p.phone);
            p.phone.handle_send_failed(FrameKind::GetInfo, lost());
        }),
        ("an update, then a close", |p| {
            p.send(&Message::Update(hybrid_protocol::session::Update {
                linking: None,
            }));
            p.phone.handle_channel_closed(p.now);
        }),
    ];
    for (how, leave) in ways {
        let mut p = qr_pair(None);
        p.answered();
        leave(&mut p);
        assert!(transmits(&mut p.phone).is_empty(), "{how}");
        let end = p.end();
        assert!(
            matches!(&end, Ok(o) if o.operation == made()),
            "{how}: {end:?}"
        );
    }
}

/// Before the answer, the same ways of leaving fail the session.
#[test]
fn the_desktop_leaving_before_the_answer_fails_the_session() {
    let mut p = qr_pair(None);
    p.phone.handle_channel_closed(p.now);
    let e = p.end().unwrap_err();
    assert!(
        e.to_string()
            .contains("the desktop ended the tunnel before any request"),
        "{e}"
    );

    let mut p = qr_pair(None);
    p.phone.handle_channel_lost(p.now, lost());
    assert!(matches!(p.end(), Err(PhoneError::Relay { .. })));

    let mut p = qr_pair(None);
    p.phone
        .handle_timeout(p.now + TIMEOUT - Duration::from_millis(1));
    assert!(p.phone.poll_end().is_none(), "not yet due");
    p.phone.handle_timeout(p.now + TIMEOUT);
    let e = p.end().unwrap_err();
    assert!(
        matches!(e, PhoneError::Timeout { context: "waiting for the desktop's request", after } if after == TIMEOUT),
        "{e:?}"
    );

    // The answer itself cannot be sent: it never reached the desktop.
    let mut p = qr_pair(None);
    p.request();
    p.phone.handle_answer(p.now, created());
    let _ = transmits(&mut p.phone);
    p.phone.handle_send_failed(FrameKind::Answer, lost());
    assert!(matches!(p.end(), Err(PhoneError::Relay { .. })));

    // A getInfo reply that cannot be sent before the answer.
    let mut p = qr_pair(None);
    p.send(&Message::Ctap(vec![ctap::Command::GetInfo as u8]));
    let _ = transmits(&mut p.phone);
    p.phone.handle_send_failed(FrameKind::GetInfo, lost());
    assert!(matches!(p.end(), Err(PhoneError::Relay { .. })));
}

#[test]
fn while_advertising_a_close_a_lost_channel_or_silence_fail_and_stop_the_advert() {
    type Input = fn(&mut PhoneSession, Instant);
    let cases: [(&str, Input); 3] = [
        ("close", |s, now| s.handle_channel_closed(now)),
        ("lost", |s, now| s.handle_channel_lost(now, lost())),
        ("silence", |s, now| s.handle_timeout(now + TIMEOUT)),
    ];
    for (how, input) in cases {
        let mut rng = rng();
        let (_, qr) = desktop(&mut rng, false);
        let now = Instant::now();
        let mut s =
            PhoneSession::qr(&qr, RoutingId([0; 3]), None, config(), now, &mut rng).unwrap();
        assert_eq!(s.waiting_for(), "waiting for the desktop's handshake");
        let _ = transmits(&mut s);
        input(&mut s, now);
        assert_eq!(transmits(&mut s), vec![Transmit::StopAdvertising], "{how}");
        let e = s.poll_end().unwrap().unwrap_err();
        let expected = match how {
            "close" => "ended the tunnel before its handshake message",
            "lost" => "the test cut it",
            _ => "advertising and waiting for the desktop's handshake",
        };
        assert!(e.to_string().contains(expected), "{how}: {e}");
    }
}

#[test]
fn a_bad_handshake_message_fails_after_stopping_the_advert() {
    let mut rng = rng();
    let (_, qr) = desktop(&mut rng, false);
    let now = Instant::now();
    let mut s = PhoneSession::qr(&qr, RoutingId([0; 3]), None, config(), now, &mut rng).unwrap();
    let _ = transmits(&mut s);
    s.handle_message(now, &[0; 10], &mut rng);
    assert_eq!(transmits(&mut s), vec![Transmit::StopAdvertising]);
    let e = s.poll_end().unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            PhoneError::Protocol {
                context: "answering the QR handshake",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn messages_the_phone_cannot_serve_fail_the_session() {
    // A frame that does not decrypt.
    let mut p = qr_pair(None);
    p.phone.handle_message(p.now, &[0x55; 48], &mut p.rng);
    assert!(matches!(
        p.end(),
        Err(PhoneError::Protocol {
            context: "reading a message from the desktop",
            ..
        })
    ));
    // JSON, which this phone did not offer.
    let mut p = qr_pair(None);
    p.send(&Message::Json("{}".into()));
    let e = p.end().unwrap_err();
    assert!(e.to_string().contains("\"dc\" feature"), "{e}");
    // An unsupported command ends the session without a reply.
    let mut p = qr_pair(None);
    p.send(&Message::Ctap(vec![0x06]));
    assert!(transmits(&mut p.phone).is_empty());
    let e = p.end().unwrap_err();
    assert!(
        e.to_string().contains("unsupported CTAP command 0x06"),
        "{e}"
    );
    // getInfo with parameters is a bad request, answered with its status.
    let mut p = qr_pair(None);
    p.send(&Message::Ctap(vec![ctap::Command::GetInfo as u8, 0xa0]));
    assert_eq!(p.replies()[0].0, FrameKind::ErrorReply);
    assert!(matches!(
        p.end(),
        Err(PhoneError::BadRequest {
            status: Status::InvalidLength,
            replied: true,
            ..
        })
    ));
}

#[test]
fn a_malformed_request_is_refused_with_its_status_and_says_whether_that_was_sent() {
    for sent in [true, false] {
        let mut p = qr_pair(None);
        p.send(&Message::Ctap(vec![MC, 0xff]));
        let replies = p.replies();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].0, FrameKind::ErrorReply);
        assert_ne!(replies[0].1, Status::Ok);
        if !sent {
            p.phone.handle_send_failed(FrameKind::ErrorReply, lost());
        }
        match p.end() {
            Err(PhoneError::BadRequest {
                status, replied, ..
            }) => {
                assert_eq!(status, replies[0].1);
                assert_eq!(replied, sent);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_second_command_after_the_answer_is_not_allowed() {
    let ga = GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: [0x22; 32],
        allow_list: Vec::new(),
        prf: None,
        options: Options::default(),
    };
    let ga = [vec![GA], ga.to_cbor()].concat();
    for second in [mc_request(), ga, vec![ctap::Command::Selection as u8]] {
        let mut p = qr_pair(None);
        p.answered();
        p.send(&Message::Ctap(second));
        let replies = p.replies();
        assert_eq!(
            (replies[0].0, replies[0].1),
            (FrameKind::ErrorReply, Status::NotAllowed)
        );
        assert!(matches!(
            p.end(),
            Err(PhoneError::BadRequest {
                status: Status::NotAllowed,
                replied: true,
                ..
            })
        ));
    }
}

#[test]
fn selection_and_shutdown_before_a_command_end_the_session() {
    let mut p = qr_pair(None);
    p.send(&Message::Ctap(vec![ctap::Command::Selection as u8]));
    assert!(transmits(&mut p.phone).is_empty());
    assert_eq!(p.end().unwrap(), outcome(Operation::Selected, 0));
    let mut p = qr_pair(None);
    p.send(&Message::Update(hybrid_protocol::session::Update {
        linking: None,
    }));
    assert!(transmits(&mut p.phone).is_empty(), "updates are ignored");
    p.send(&Message::Shutdown);
    assert_eq!(p.end().unwrap(), outcome(Operation::NoRequest, 0));
}

#[test]
fn refusals_the_protocol_expects_succeed_and_other_errors_fail() {
    for status in [
        Status::OperationDenied,
        Status::NoCredentials,
        Status::CredentialExcluded,
    ] {
        let mut p = qr_pair(None);
        p.request();
        p.phone.handle_answer(
            p.now,
            Err(CtapError {
                status,
                message: "no".into(),
            }),
        );
        assert_eq!(p.replies(), vec![(FrameKind::Answer, status, Vec::new())]);
        p.phone.handle_channel_closed(p.now);
        assert_eq!(p.end().unwrap(), outcome(Operation::Refused { status }, 0));
    }
    let mut p = qr_pair(None);
    p.request();
    p.phone.handle_answer(
        p.now,
        Err(CtapError {
            status: Status::UnsupportedAlgorithm,
            message: "only ES256".into(),
        }),
    );
    assert_eq!(
        p.replies(),
        vec![(FrameKind::Answer, Status::UnsupportedAlgorithm, Vec::new())]
    );
    assert!(matches!(
        p.end(),
        Err(PhoneError::BadRequest {
            status: Status::UnsupportedAlgorithm,
            replied: true,
            ..
        })
    ));
}

/// What the desktop sends while the phone asks its user is handled, in order, once the phone
/// has answered, as if it had been read afterwards.
#[test]
fn input_during_the_approval_is_handled_after_the_answer() {
    let mut p = qr_pair(None);
    p.request();
    p.send(&Message::Ctap(vec![ctap::Command::GetInfo as u8]));
    p.phone.handle_channel_closed(p.now);
    assert!(transmits(&mut p.phone).is_empty() && p.phone.poll_end().is_none());
    p.phone.handle_answer(p.now, created());
    let kinds: Vec<FrameKind> = p.replies().into_iter().map(|r| r.0).collect();
    assert_eq!(kinds, vec![FrameKind::Answer, FrameKind::GetInfo]);
    assert_eq!(p.end().unwrap(), outcome(made(), 1));
}

#[test]
fn the_deadline_restarts_with_each_message_and_stops_while_the_phone_works() {
    let mut p = qr_pair(None);
    assert_eq!(p.phone.poll_timeout(), Some(p.now + TIMEOUT));
    p.now += Duration::from_secs(100);
    p.send(&Message::Ctap(vec![ctap::Command::GetInfo as u8]));
    let _ = transmits(&mut p.phone);
    assert_eq!(p.phone.poll_timeout(), Some(p.now + TIMEOUT));
    p.request();
    p.phone.handle_timeout(p.now + TIMEOUT * 10);
    assert!(
        p.phone.poll_end().is_none(),
        "no timeout while the user decides"
    );
    p.now += Duration::from_secs(600);
    p.phone.handle_answer(p.now, created());
    assert_eq!(p.phone.poll_timeout(), Some(p.now + TIMEOUT));
    assert_eq!(p.phone.waiting_for(), "waiting for the desktop's shutdown");
}

#[test]
fn inputs_nobody_asked_for_are_ignored() {
    let mut p = qr_pair(None);
    p.phone.handle_answer(p.now, created());
    p.phone.handle_link_stored(p.now);
    assert!(transmits(&mut p.phone).is_empty());
    assert!(p.phone.poll_event().is_none() && p.phone.poll_end().is_none());
    // The session goes on.
    p.answered();
}

/// Truncations and bit flips of real messages, at every state that reads the desktop, end
/// the session or leave it waiting; none panics.
#[test]
fn bad_input_at_every_state_never_panics() {
    let mutations = |bytes: &[u8]| -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 1 << (i % 8);
            out.push(b);
        }
        out
    };
    // Message 1.
    let mut rng = rng();
    let (identity, qr) = desktop(&mut rng, false);
    let psk = {
        let mut s = PhoneSession::qr(
            &qr,
            RoutingId([0; 3]),
            None,
            config(),
            Instant::now(),
            &mut rng,
        )
        .unwrap();
        let [Transmit::Advertise(advert)] = transmits(&mut s)[..] else {
            panic!()
        };
        eid::decrypt(&qr.secret.eid_key(), &advert)
            .unwrap()
            .psk(qr.secret.expose())
    };
    let (_, msg1) = Initiator::start_qr(&identity, &psk, &mut rng).unwrap();
    for m in mutations(&msg1) {
        let now = Instant::now();
        let mut s =
            PhoneSession::qr(&qr, RoutingId([0; 3]), None, config(), now, &mut rng).unwrap();
        s.handle_message(now, &m, &mut rng);
        let _ = transmits(&mut s);
        let _ = s.poll_end();
    }
    // Frames before and after the answer.
    let mut p = qr_pair(None);
    let request = p
        .desktop
        .encrypt_message(&Message::Ctap(mc_request()))
        .unwrap();
    let shutdown = p.desktop.encrypt_message(&Message::Shutdown).unwrap();
    for answered in [false, true] {
        for frame in [&request, &shutdown] {
            // Any change fails the frame's tag, so every eighth of the longer frame's
            // mutations covers the same paths at a fraction of the handshakes.
            let step = if frame.len() > 64 { 8 } else { 1 };
            for m in mutations(frame).into_iter().step_by(step) {
                let mut p = qr_pair(None);
                if answered {
                    p.answered();
                }
                p.phone.handle_message(p.now, &m, &mut p.rng);
                let _ = transmits(&mut p.phone);
                let _ = p.phone.poll_event();
                let _ = p.phone.poll_end();
            }
        }
    }
}

#[test]
fn a_get_assertion_is_answered_with_what_the_phone_signed() {
    let mut p = qr_pair(None);
    let ga = GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: [0x22; 32],
        allow_list: Vec::new(),
        prf: None,
        options: Options::default(),
    };
    p.send(&Message::Ctap([vec![GA], ga.to_cbor()].concat()));
    assert!(matches!(
        p.phone.poll_event(),
        Some(Event::Request(c)) if matches!(*c, Command::GetAssertion(_))
    ));
    let asserted = Done::Asserted {
        rp_id: "example.com".into(),
        credential_id: vec![7],
    };
    p.phone.handle_answer(p.now, Ok((vec![0xa1], asserted)));
    assert_eq!(
        p.replies(),
        vec![(FrameKind::Answer, Status::Ok, vec![0xa1])]
    );
    p.phone.handle_channel_closed(p.now);
    let operation = Operation::GotAssertion {
        rp_id: "example.com".into(),
        credential_id: vec![7],
    };
    assert_eq!(p.end().unwrap(), outcome(operation, 0));
}

/// A desktop that leaves while the phone stores its link: the linking information still goes
/// out (it was promised once stored), then the session fails, as no request came.
#[test]
fn a_close_while_the_link_is_stored_fails_the_session_after_the_link_goes_out() {
    let mut rng = rng();
    let root = RootSecret::random(&mut rng).unwrap();
    let contact = ContactId(vec![1, 2, 3, 4]);
    let offer = LinkOffer {
        link_secret: root.paired_secret(&contact.0, &[9; 8]),
        contact_id: contact,
        link_id: [9; 8],
        identity: root.identity_key(),
        name: "a phone".into(),
    };
    let mut p = qr_pair(Some(offer));
    let _ = p.phone.poll_event();
    p.phone.handle_channel_closed(p.now);
    assert!(
        p.phone.poll_end().is_none(),
        "kept until the link is stored"
    );
    p.phone.handle_link_stored(p.now);
    let f = frames(transmits(&mut p.phone));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, FrameKind::Linking);
    let e = p.end().unwrap_err();
    assert!(e.to_string().contains("before any request"), "{e}");
}

#[test]
fn a_handshake_frame_that_cannot_be_sent_fails_the_session_and_drops_the_rest() {
    let mut rng = rng();
    let (identity, qr) = desktop(&mut rng, false);
    let now = Instant::now();
    let mut s = PhoneSession::qr(&qr, RoutingId([0; 3]), None, config(), now, &mut rng).unwrap();
    let [Transmit::Advertise(advert)] = transmits(&mut s)[..] else {
        panic!("the advert");
    };
    let psk = eid::decrypt(&qr.secret.eid_key(), &advert)
        .unwrap()
        .psk(qr.secret.expose());
    let (_, msg1) = Initiator::start_qr(&identity, &psk, &mut rng).unwrap();
    s.handle_message(now, &msg1, &mut rng);
    assert_eq!(s.poll_transmit(), Some(Transmit::StopAdvertising));
    let Some(Transmit::Send(frame)) = s.poll_transmit() else {
        panic!("message 2");
    };
    assert_eq!(frame.kind, FrameKind::Handshake);
    s.handle_send_failed(frame.kind, lost());
    assert_eq!(
        s.poll_transmit(),
        None,
        "the post-handshake message is dropped"
    );
    assert_eq!(s.poll_timeout(), None);
    assert!(matches!(s.poll_end(), Some(Err(PhoneError::Relay { .. }))));
}
