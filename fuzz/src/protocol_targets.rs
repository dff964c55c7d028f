//! The bodies of the protocol crate's fuzz targets, shared by the libFuzzer binaries in
//! `fuzz/fuzz_targets/` and by `protocol/tests/it/fuzz_regressions.rs`, which replays the
//! committed corpus and every crash ever found through these same functions with `cargo test`.
//! Expensive state (P-256 keys, transport keys) is built once per process, and what sits
//! behind a MAC or an AEAD tag is reached by encrypting the fuzzer's bytes under fixed keys
//! first, so each input costs only the parsing it exercises. Where one target covers several
//! entry points, the input's first byte picks one. Every target returns whether its parser
//! accepted the input, so the regression test can check that valid seeds still parse;
//! [`seeds`] builds those valid inputs.

use std::sync::{Mutex, OnceLock};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hybrid_protocol::ctap::{
    self, AuthenticatorData, CredentialDescriptor, GetAssertionRequest, GetAssertionResponse,
    GetInfo, MakeCredentialRequest, MakeCredentialResponse,
};
use hybrid_protocol::handshake::{Initiator, Responder};
use hybrid_protocol::keys::{EidKey, IdentityKey, LinkSecret, Psk, PublicKey, QrSecret};
use hybrid_protocol::linking::{handshake_signature, ClientPayload, LinkingInfo};
use hybrid_protocol::medium::AdvertLine;
use hybrid_protocol::qr::{self, QrCode, RequestType};
use hybrid_protocol::session::{Message, PostHandshake, Role, Session, Update};
use hybrid_protocol::tunnel::{ContactId, Domain, RoutingId, TunnelId, TunnelPath};
use hybrid_protocol::{cbor, eid};
use rand_core::{CryptoRng, RngCore};

/// The protocol targets, in the order the CI script runs them.
pub const TARGETS: [&str; 8] = [
    "qr",
    "advert",
    "ctap",
    "handshake",
    "frame",
    "linking",
    "tunnel",
    "ctaphid",
];

/// Runs the named target on one input; `None` for an unknown name.
pub fn run(target: &str, data: &[u8]) -> Option<bool> {
    Some(match target {
        "qr" => qr(data),
        "advert" => advert(data),
        "ctap" => ctap(data),
        "handshake" => handshake(data),
        "frame" => frame(data),
        "linking" => linking(data),
        "tunnel" => tunnel(data),
        "ctaphid" => ctaphid(data),
        _ => return None,
    })
}

/// A deterministic RNG, so one input always takes the same path (libFuzzer needs that) and a
/// fixed message 2 answers the fixed message 1. Not a CSPRNG; fuzzing only.
struct FixedRng(u64);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let n = chunk.len();
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..n]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FixedRng {}

/// Keys every target shares, built once per process.
struct Fixture {
    /// The client's QR identity key.
    client: IdentityKey,
    client_public: PublicKey,
    /// The phone's identity key (linked flow, linking info key 4).
    phone: IdentityKey,
    phone_public: PublicKey,
    psk: Psk,
    /// The handshake hash a link's signature is checked against.
    hash: [u8; 32],
    eid_key: EidKey,
    /// Phone → client transport key (the client's read key).
    to_client: [u8; 32],
    to_client_cipher: Aes256Gcm,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let client = IdentityKey::from_bytes(&[3; 32]).expect("a valid scalar");
        let phone = IdentityKey::from_bytes(&[5; 32]).expect("a valid scalar");
        let to_client = [0x42; 32];
        Fixture {
            client_public: client.public_key(),
            phone_public: phone.public_key(),
            client,
            phone,
            psk: Psk::from_bytes([4; 32]),
            hash: [0x11; 32],
            eid_key: EidKey::from_bytes([7; 64]),
            to_client,
            to_client_cipher: Aes256Gcm::new(&to_client.into()),
        }
    })
}

/// The client's session of [`frame`], keyed by the fixture (writes with `[0x24; 32]`).
fn client_session() -> &'static Mutex<Session> {
    static SESSION: OnceLock<Mutex<Session>> = OnceLock::new();
    SESSION.get_or_init(|| {
        let f = fixture();
        Mutex::new(Session::new(
            Role::Client,
            &[0x24; 32],
            &f.to_client,
            [0; 32],
        ))
    })
}

/// Encrypts `padded` (padding count included) as the phone's first frame.
fn seal(padded: &[u8]) -> Vec<u8> {
    let nonce = Nonce::from([0u8; 12]);
    fixture()
        .to_client_cipher
        .encrypt(&nonce, padded)
        .expect("AES-GCM encrypts any length the fuzzer produces")
}

/// QR codes: the `FIDO:/` text, its digits, and the CBOR map.
pub fn qr(data: &[u8]) -> bool {
    let mut ok = QrCode::from_cbor(data).is_ok();
    if let Ok(text) = std::str::from_utf8(data) {
        ok |= QrCode::parse(text).is_ok();
        let _ = qr::digits_decode(text);
    }
    ok
}

/// BLE adverts. Mode 0: raw service data (trial decryption; the tag almost never matches).
/// Mode 1: 16 plaintext bytes, encrypted and tagged under the fixed key, then any suffix
/// bytes, so the plaintext and suffix parsers see fuzzed bytes. Mode 2: a line of the
/// simulated medium's advert file. Mode 3: 128-bit UUID text and a bare suffix.
pub fn advert(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let key = &fixture().eid_key;
    match mode % 4 {
        0 => eid::decrypt(key, rest).is_ok(),
        1 => {
            let Some((plain, suffix)) = rest.split_first_chunk::<16>() else {
                return false;
            };
            let mut service = eid::encrypt_raw(key, plain).to_vec();
            service.extend_from_slice(suffix);
            eid::decrypt(key, &service).is_ok()
        }
        2 => std::str::from_utf8(rest).is_ok_and(|t| t.parse::<AdvertLine>().is_ok()),
        _ => {
            let uuid = std::str::from_utf8(rest).is_ok_and(|t| eid::uuid128_to_16(t).is_some());
            eid::AdvertSuffix::parse(rest).is_some() || uuid
        }
    }
}

/// CTAP2: requests and responses (with and without the status byte), getInfo, authenticator
/// data and COSE keys.
pub fn ctap(data: &[u8]) -> bool {
    let mut ok = MakeCredentialRequest::from_cbor(data).is_ok();
    ok |= GetAssertionRequest::from_cbor(data).is_ok();
    ok |= MakeCredentialResponse::from_cbor(data).is_ok();
    ok |= GetAssertionResponse::from_cbor(data).is_ok();
    ok |= GetInfo::from_cbor(data).is_ok();
    ok |= AuthenticatorData::parse(data).is_ok();
    if let Ok((status, body)) = ctap::split_response(data) {
        let _ = status.explain();
        ok |= MakeCredentialResponse::from_cbor(body).is_ok();
        ok |= GetAssertionResponse::from_cbor(body).is_ok();
        ok |= GetInfo::from_cbor(body).is_ok();
    }
    if let Ok(value) = cbor::decode(data) {
        ok |= ctap::parse_cose_key_es256(value).is_ok();
    }
    ok
}

/// Noise handshake messages with fixed keys and a fixed RNG. Mode 0: message 1 at the phone,
/// QR flow. Mode 1: message 1 at the phone, linked flow. Mode 2: message 2 at the client, QR
/// flow. Mode 3: message 2 at the client, linked flow. Modes 2 and 3 start a handshake per
/// input (message 2 only means something to the state that sent message 1).
pub fn handshake(data: &[u8]) -> bool {
    let Some((&mode, msg)) = data.split_first() else {
        return false;
    };
    let f = fixture();
    let mut rng = FixedRng(mode as u64);
    match mode % 4 {
        0 => Responder::respond_qr(&f.client_public, &f.psk, msg, &mut rng).is_ok(),
        1 => Responder::respond_linked(&f.phone, &f.psk, msg, &mut rng).is_ok(),
        2 => {
            let (waiting, _) =
                Initiator::start_qr(&f.client, &f.psk, &mut rng).expect("fixed keys start");
            waiting.finish(msg).is_ok()
        }
        _ => {
            let (waiting, _) = Initiator::start_linked(&f.phone_public, &f.psk, &mut rng)
                .expect("fixed keys start");
            waiting.finish(msg).is_ok()
        }
    }
}

/// Transport frames at the client. Mode 0: a chosen padded plaintext (padding count last),
/// encrypted under the fixed key, through `decrypt_message` (padding, type byte, CBOR of
/// revision 1). Mode 1: the same through `decrypt` and `PostHandshake::decode` (revisions 0
/// and 1). Mode 2: the bytes as a ciphertext (length checks and tag failure).
pub fn frame(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let mut session = client_session().lock().unwrap_or_else(|e| e.into_inner());
    session.dangerous_set_sequence_for_testing(0, 0);
    match mode % 3 {
        0 => session.decrypt_message(&seal(rest)).is_ok(),
        1 => session
            .decrypt(&seal(rest))
            .is_ok_and(|plain| PostHandshake::decode(&plain).is_ok()),
        _ => session.decrypt_message(rest).is_ok(),
    }
}

/// Linking. Mode 0: an update message's CBOR, its link checked against the fixed QR key and
/// handshake hash. Mode 1: a post-handshake message (either revision) and its link, checked
/// likewise. Mode 2: a client payload's CBOR. Mode 3: a client payload header (hex).
pub fn linking(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let f = fixture();
    let verify =
        |link: Option<LinkingInfo>| link.is_some_and(|l| l.verify(&f.client, &f.hash).is_ok());
    match mode % 4 {
        0 => Update::decode(rest).is_ok_and(|u| verify(u.linking)),
        1 => PostHandshake::decode(rest).is_ok_and(|(ph, _)| verify(ph.linking)),
        2 => ClientPayload::from_cbor(rest).is_ok(),
        _ => std::str::from_utf8(rest).is_ok_and(|t| ClientPayload::from_header(t).is_ok()),
    }
}

/// Relay paths and the identifiers in them. (`Domain::from_name` is left out: it is a search
/// over 65,280 SHA-256 names by design, for the relay operator's own `domain` command.)
pub fn tunnel(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let _ = TunnelId::from_hex(text);
    let _ = RoutingId::from_hex(text);
    let _ = ContactId::from_base64url(text);
    TunnelPath::parse(text).is_ok()
}

/// The CTAPHID engine of a security key, driven by a script of host actions. Each step's
/// first byte picks the action: `0x00..=0x3f` a 64-byte report taken from the input (its
/// channel replaced by the last allocated one when bit 0 is set, by the broadcast channel
/// when bit 1 is set), `0x40` a tick of the next byte × 10 ms, `0x41` a reply to the pending
/// request of the next two bytes' length, `0x42` a keepalive status change, `0x43` the host
/// closing the device. Every report the engine sends must parse, and every message it
/// starts must be complete. Accepted: the engine handed out at least one request.
pub fn ctaphid(data: &[u8]) -> bool {
    use hybrid_protocol::ctaphid::{
        Engine, Event, KeepaliveStatus, Packet, BROADCAST_CID, REPORT_LEN,
    };
    use std::time::{Duration, Instant};

    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    // Simulated time needs one real instant as its origin.
    #[allow(clippy::disallowed_methods)] // the fuzz target's origin of simulated time
    let mut now = *ORIGIN.get_or_init(Instant::now);
    let mut engine = Engine::new(Default::default());
    let mut rng = FixedRng(1);
    let mut last_cid = BROADCAST_CID;
    let mut pending = None;
    let mut requests = 0usize;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op {
            0x00..=0x3f => {
                let mut report = [0u8; REPORT_LEN];
                let n = rest.len().min(REPORT_LEN);
                report[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                if op & 1 != 0 {
                    report[..4].copy_from_slice(&last_cid.to_be_bytes());
                }
                if op & 2 != 0 {
                    report[..4].copy_from_slice(&BROADCAST_CID.to_be_bytes());
                }
                engine.handle_report(&report, now, &mut rng);
            }
            0x40 => {
                let (&t, tail) = rest.split_first().unwrap_or((&1, &[]));
                rest = tail;
                now += Duration::from_millis(u64::from(t) * 10);
                engine.handle_tick(now);
            }
            0x41 => {
                let len = match rest {
                    [a, b, tail @ ..] => {
                        rest = tail;
                        usize::from(u16::from_be_bytes([*a, *b]))
                    }
                    _ => 1,
                };
                if let Some(id) = pending.take() {
                    let _ = engine.handle_reply(id, &vec![0u8; len]);
                }
            }
            0x42 => {
                if let Some(id) = pending {
                    engine.handle_status(id, KeepaliveStatus::UpNeeded, now);
                }
            }
            0x43 => engine.handle_host_closed(),
            _ => {}
        }
        while let Some(e) = engine.poll_event() {
            match e {
                Event::Request { id, .. } => {
                    requests += 1;
                    pending = Some(id);
                }
                Event::Cancelled { id, .. } if pending == Some(id) => pending = None,
                _ => {}
            }
        }
        let mut remaining = 0usize;
        while let Some(r) = engine.poll_report() {
            match Packet::parse(&r) {
                Packet::Init { cid, cmd, len, .. } => {
                    assert_eq!(remaining, 0, "a message started before the last was whole");
                    assert!(len <= hybrid_protocol::ctaphid::MAX_MESSAGE_LEN);
                    if cmd == 0x06 && cid == BROADCAST_CID && len == 17 {
                        last_cid = u32::from_be_bytes([r[15], r[16], r[17], r[18]]);
                    }
                    remaining = len.saturating_sub(57);
                }
                Packet::Cont { .. } => {
                    assert!(remaining > 0, "a continuation with no message");
                    remaining = remaining.saturating_sub(59);
                }
            }
        }
        assert_eq!(remaining, 0, "a message was cut short");
    }
    requests > 0
}

/// A CTAPHID script ([`ctaphid`]) of reports: each is the action byte 0x00 and 64 bytes.
fn ctaphid_script(steps: &[Vec<u8>]) -> Vec<u8> {
    steps.concat()
}

/// Valid inputs for every target, as `(target, name, bytes)`: the seed corpus, built from the
/// same fixed keys the targets use. Each one is accepted by its target.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let f = fixture();
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_string(), bytes));
    };
    let with_mode = |mode: u8, bytes: &[u8]| [&[mode][..], bytes].concat();

    // QR: this implementation's code and Chrome's (docs/PROTOCOL.md#vectors).
    let code = QrCode::new(
        f.client_public,
        QrSecret::from_bytes([9; 16]),
        1_700_000_000,
        true,
        RequestType::MakeCredential,
    );
    add("qr", "cbor", code.to_cbor());
    add("qr", "url", code.to_url().into_bytes());
    let chrome = hex::decode("a600582103dd39afaf50b1b5b05ac1dad0b2848a00c0f6ec4e65a25687ca4f3c71dae50bea0150871bcec9c1227f91ccb86c9ffacd9eac0202031a6356217b04f505626d63").expect("hex");
    add(
        "qr",
        "chrome-url",
        format!("FIDO:/{}", qr::digits_encode(&chrome)).into_bytes(),
    );
    add("qr", "chrome-cbor", chrome);

    // Adverts.
    let plain = eid::EidPlaintext {
        nonce: [1; 10],
        routing_id: RoutingId([1, 2, 3]),
        domain: Domain(0),
    };
    let service = eid::encrypt(&f.eid_key, &plain);
    let suffix = eid::AdvertSuffix {
        l2cap_psm: Some(0x80),
    }
    .to_bytes();
    add("advert", "service-data", with_mode(0, &service));
    add(
        "advert",
        "plaintext-suffix",
        with_mode(1, &[&plain.to_bytes()[..], &suffix].concat()),
    );
    let line = AdvertLine {
        uuid16: 0xfff9,
        data: service.to_vec(),
        rssi: Some(-58),
    };
    add("advert", "line", with_mode(2, line.to_string().as_bytes()));
    add(
        "advert",
        "uuid128",
        with_mode(3, eid::uuid16_to_128(0xfff9).as_bytes()),
    );

    // CTAP.
    let descriptor = CredentialDescriptor {
        id: vec![9; 16],
        transports: Some(vec!["hybrid".into(), "internal".into()]),
    };
    let mc = MakeCredentialRequest {
        client_data_hash: [3; 32],
        rp: ctap::RelyingParty {
            id: "example.com".into(),
            name: Some("Example".into()),
        },
        user: ctap::User {
            id: vec![1, 2],
            name: Some("a".into()),
            display_name: Some("A".into()),
        },
        algorithms: vec![ctap::ES256],
        exclude_list: vec![descriptor.clone()],
        extensions: Default::default(),
        options: Default::default(),
    };
    add("ctap", "make-credential", mc.to_cbor());
    let ga = GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: [3; 32],
        allow_list: vec![descriptor.clone()],
        prf: None,
        options: Default::default(),
    };
    add("ctap", "get-assertion", ga.to_cbor());
    let auth_data = AuthenticatorData {
        rp_id_hash: [8; 32],
        flags: ctap::flags::UP,
        sign_count: 0,
        attested_credential: Some(ctap::AttestedCredential {
            aaguid: [0; 16],
            credential_id: vec![9; 16],
            public_key: f.phone_public,
        }),
        extensions: None,
    }
    .to_bytes();
    add("ctap", "auth-data", auth_data.clone());
    // Built by hand (fmt "none") so the seed does not depend on how the crate models it.
    let mc_response = cbor::encode(&ciborium::value::Value::Map(vec![
        (cbor::int(1), cbor::text("none")),
        (cbor::int(2), cbor::bytes(&auth_data)),
        (cbor::int(3), ciborium::value::Value::Map(vec![])),
    ]));
    add(
        "ctap",
        "make-credential-response",
        [&[0][..], &mc_response].concat(),
    );
    let ga_response = GetAssertionResponse {
        credential: descriptor,
        auth_data,
        signature: vec![0x30; 70],
        user: None,
        user_selected: None,
        prf_results: None,
    };
    add(
        "ctap",
        "get-assertion-response",
        [&[0][..], &ga_response.to_cbor()].concat(),
    );
    let info = GetInfo {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        extensions: vec!["prf".into()],
        aaguid: [0; 16],
        options: [("rk".to_string(), true), ("uv".to_string(), true)].into(),
        transports: vec!["hybrid".into()],
        algorithms: vec![ctap::ES256],
    };
    add("ctap", "get-info", info.to_cbor());
    add("ctap", "cose-key", ctap::cose_key_es256(&f.phone_public));

    // Handshakes: each message answers the fixed state its mode builds.
    let (_, m1_qr) = Initiator::start_qr(&f.client, &f.psk, &mut FixedRng(100)).expect("start");
    add("handshake", "msg1-qr", with_mode(0, &m1_qr));
    let (_, m1_linked) =
        Initiator::start_linked(&f.phone_public, &f.psk, &mut FixedRng(101)).expect("start");
    add("handshake", "msg1-linked", with_mode(1, &m1_linked));
    let (_, m1) = Initiator::start_qr(&f.client, &f.psk, &mut FixedRng(2)).expect("start");
    let (_, m2_qr) =
        Responder::respond_qr(&f.client_public, &f.psk, &m1, &mut FixedRng(102)).expect("respond");
    add("handshake", "msg2-qr", with_mode(2, &m2_qr));
    let (_, m1) =
        Initiator::start_linked(&f.phone_public, &f.psk, &mut FixedRng(3)).expect("start");
    let (_, m2_linked) =
        Responder::respond_linked(&f.phone, &f.psk, &m1, &mut FixedRng(103)).expect("respond");
    add("handshake", "msg2-linked", with_mode(3, &m2_linked));

    // Frames: plaintexts padded as `Session::encrypt` pads them.
    let pad = |plain: &[u8]| {
        let len = (plain.len() + 1).div_ceil(32) * 32;
        let mut v = plain.to_vec();
        v.resize(len - 1, 0);
        v.push((len - plain.len() - 1) as u8);
        v
    };
    let link = LinkingInfo {
        contact_id: vec![0xc0; 40],
        link_id: [1; 8],
        link_secret: LinkSecret::from_bytes([2; 32]),
        authenticator_public_key: f.phone_public,
        name: "Pixel".into(),
        handshake_signature: handshake_signature(&f.phone, &f.client_public, &f.hash),
        play_services_tag: Some(true),
    };
    let update = Message::Update(Update {
        linking: Some(link.clone()),
    });
    for (name, message) in [
        ("shutdown", Message::Shutdown),
        ("ctap", Message::Ctap(vec![0, 0xa0])),
        ("update", update),
        ("json", Message::Json("{\"a\":1}".into())),
    ] {
        add("frame", name, with_mode(0, &pad(&message.encode())));
    }
    let post = PostHandshake::ctap(info.to_cbor());
    add(
        "frame",
        "post-handshake",
        with_mode(1, &pad(&post.encode())),
    );
    let legacy = PostHandshake {
        get_info: Some(info.to_cbor()),
        linking: Some(link.clone()),
        features: vec!["ctap".into()],
    };
    let legacy = legacy.encode_revision0_for_testing();
    add("frame", "post-handshake-rev0", with_mode(1, &pad(&legacy)));
    let mut ciphertext = seal(&pad(&Message::Shutdown.encode()));
    ciphertext.insert(0, 2);
    add("frame", "ciphertext", ciphertext);

    // Linking.
    let update = Update {
        linking: Some(link),
    };
    add("linking", "update", with_mode(0, &update.encode()));
    add("linking", "post-handshake-rev0", with_mode(1, &legacy));
    let payload = ClientPayload {
        link_id: [1; 8],
        client_nonce: [2; 16],
        request_type: RequestType::GetAssertion,
    };
    add(
        "linking",
        "client-payload",
        with_mode(2, &payload.to_cbor()),
    );
    add(
        "linking",
        "client-payload-header",
        with_mode(3, payload.to_header().as_bytes()),
    );

    // Tunnel paths.
    let tunnel_id = TunnelId([0xab; 16]);
    for (name, path) in [
        ("new", TunnelPath::New(tunnel_id)),
        (
            "connect",
            TunnelPath::Connect(RoutingId([1, 2, 3]), tunnel_id),
        ),
        ("contact", TunnelPath::Contact(ContactId(vec![0xfb; 40]))),
    ] {
        add("tunnel", name, path.to_path().into_bytes());
    }
    add(
        "tunnel",
        "query",
        b"/cable/new/ABABABABABABABABABABABABABABABAB?x=1".to_vec(),
    );

    // CTAPHID: INIT on the broadcast channel, then on the allocated channel (bit 0) a
    // getInfo, a two-packet makeCredential-sized message, a PING, a CANCEL, a tick.
    let report = |op: u8, cid: u32, first: &[u8]| {
        let mut r = vec![op];
        r.extend_from_slice(&cid.to_be_bytes());
        r.extend_from_slice(first);
        r.resize(65, 0);
        r
    };
    let init = report(0x00, 0xffff_ffff, &[0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    let get_info = report(0x01, 0, &[0x90, 0, 1, 0x04]);
    let mut long = vec![0x81, 0, 100];
    long.extend(std::iter::repeat_n(0xa5, 57));
    let long_init = report(0x01, 0, &long);
    let long_cont = report(0x01, 0, &[0x00]);
    add(
        "ctaphid",
        "init-getinfo-reply",
        ctaphid_script(&[init.clone(), get_info.clone(), vec![0x41, 0, 3]]),
    );
    add(
        "ctaphid",
        "ping-two-packets",
        ctaphid_script(&[init.clone(), long_init, long_cont, get_info.clone()]),
    );
    add(
        "ctaphid",
        "keepalive-cancel",
        ctaphid_script(&[
            init,
            get_info,
            vec![0x42, 0x40, 20],
            report(0x01, 0, &[0x91, 0, 0]),
            vec![0x40, 200],
        ]),
    );
    out
}
