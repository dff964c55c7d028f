//! The key's CTAP2 routing, with the requests Firefox ESR and Chromium send (as logged against
//! a uhid key in `/work/shared/qemu/browsers/sample-*.txt`), libfido2's and OpenSSH's.

use ciborium::value::Value;
use hybrid_protocol::cbor::{self, int, text};
use sha2::{Digest as _, Sha256};

use super::*;

fn map(entries: Vec<(Value, Value)>) -> Value {
    Value::Map(entries)
}

fn descriptor(id: &[u8]) -> Value {
    map(vec![
        (text("id"), cbor::bytes(id)),
        (text("type"), text("public-key")),
    ])
}

fn es256() -> Value {
    Value::Array(vec![map(vec![
        (text("alg"), int(-7)),
        (text("type"), text("public-key")),
    ])])
}

fn request(cmd: u8, body: &Value) -> Vec<u8> {
    let mut out = vec![cmd];
    ciborium::into_writer(body, &mut out).unwrap();
    out
}

fn decode(reply: &[u8]) -> (u8, Value) {
    let v = if reply.len() > 1 {
        cbor::decode(&reply[1..]).expect("the key answers canonical CBOR")
    } else {
        Value::Null
    };
    (reply[0], v)
}

fn field(v: &Value, key: i64) -> Option<&Value> {
    match v {
        Value::Map(m) => m.iter().find_map(|(k, v)| (*k == int(key)).then_some(v)),
        _ => None,
    }
}

fn expect_phone(route: Route, payload: &[u8]) -> Asked {
    match route {
        Route::Phone { request, asked } => {
            // Byte for byte: the command and the CBOR exactly as the platform sent them.
            assert_eq!(request.command as u8, payload[0]);
            assert_eq!(request.body, &payload[1..]);
            asked
        }
        other => panic!("expected the phone, got {other:?}"),
    }
}

fn expect_local(route: Route) -> (u8, Value) {
    match route {
        Route::Local { reply, what } => {
            eprintln!("answered locally: {what}");
            decode(&reply)
        }
        other => panic!("expected a local answer, got {other:?}"),
    }
}

/// Firefox ESR 153, `create()`: rp without name, user without displayName, hmac-secret false.
fn firefox_make_credential() -> Vec<u8> {
    request(
        0x01,
        &map(vec![
            (int(1), cbor::bytes(&[1; 32])),
            (int(2), map(vec![(text("id"), text("localhost"))])),
            (
                int(3),
                map(vec![
                    (text("id"), cbor::bytes(&[2; 16])),
                    (text("name"), text("alice")),
                ]),
            ),
            (int(4), es256()),
            (int(6), map(vec![(text("hmac-secret"), Value::Bool(false))])),
            (int(7), map(vec![(text("rk"), Value::Bool(false))])),
        ]),
    )
}

/// Firefox ESR 153, `get()` with an allow list: the silent probe (clientDataHash of "").
fn firefox_probe(ids: &[&[u8]]) -> Vec<u8> {
    request(
        0x02,
        &map(vec![
            (int(1), text("localhost")),
            (int(2), cbor::bytes(&Sha256::digest(b""))),
            (
                int(3),
                Value::Array(ids.iter().map(|id| descriptor(id)).collect()),
            ),
            (int(5), map(vec![(text("up"), Value::Bool(false))])),
        ]),
    )
}

/// Firefox ESR 153, the real `get()` after the probe.
fn firefox_get_assertion(ids: &[&[u8]]) -> Vec<u8> {
    request(
        0x02,
        &map(vec![
            (int(1), text("localhost")),
            (int(2), cbor::bytes(&[3; 32])),
            (
                int(3),
                Value::Array(ids.iter().map(|id| descriptor(id)).collect()),
            ),
            (int(5), map(vec![(text("up"), Value::Bool(true))])),
        ]),
    )
}

#[test]
fn get_info_describes_what_the_phone_does_over_hybrid() {
    let mut key = KeyCtap::new();
    let (status, info) = expect_local(key.route(&[0x04]));
    assert_eq!(status, 0);
    assert_eq!(field(&info, 1), Some(&Value::Array(vec![text("FIDO_2_0")])));
    assert_eq!(
        field(&info, 2),
        None,
        "no CTAP extensions: hmac-secret is not offered"
    );
    assert_eq!(field(&info, 3), Some(&cbor::bytes(&AAGUID)));
    let options = field(&info, 4).unwrap();
    for (name, value) in [("plat", false), ("rk", true), ("up", true), ("uv", true)] {
        assert!(
            matches!(options, Value::Map(m) if m.contains(&(text(name), Value::Bool(value)))),
            "option {name} should be {value}"
        );
    }
    assert!(
        !matches!(options, Value::Map(m) if m.iter().any(|(k, _)| *k == text("clientPin"))),
        "no PIN"
    );
    assert_eq!(field(&info, 5), Some(&int(7609)));
    assert_eq!(field(&info, 7), Some(&int(40)));
    assert_eq!(field(&info, 8), Some(&int(128)));
    assert_eq!(field(&info, 10), Some(&es256()));
    // And the protocol crate's reader (the one the bridge uses for phones) accepts it.
    let parsed = hybrid_protocol::ctap::GetInfo::from_cbor(&get_info()[1..]).unwrap();
    assert_eq!(parsed.algorithms, vec![-7]);
    let (status, _) = expect_local(key.route(&[0x04, 0xa0]));
    assert_eq!(status, status::INVALID_LENGTH);
}

#[test]
fn a_whole_allow_list_at_the_limits_fits_in_one_ctaphid_message() {
    let ids: Vec<Vec<u8>> = (0..MAX_CREDENTIAL_COUNT)
        .map(|i| vec![i as u8; MAX_CREDENTIAL_ID_LEN])
        .collect();
    let refs: Vec<&[u8]> = ids.iter().map(Vec::as_slice).collect();
    // With the longest RP ID a platform accepts (253 characters) and transports hints.
    let long_rp = "a".repeat(253);
    let body = request(
        0x02,
        &map(vec![
            (int(1), text(&long_rp)),
            (int(2), cbor::bytes(&[3; 32])),
            (
                int(3),
                Value::Array(
                    refs.iter()
                        .map(|id| {
                            map(vec![
                                (text("id"), cbor::bytes(id)),
                                (text("type"), text("public-key")),
                                (
                                    text("transports"),
                                    Value::Array(vec![text("hybrid"), text("internal")]),
                                ),
                            ])
                        })
                        .collect(),
                ),
            ),
            (int(5), map(vec![(text("uv"), Value::Bool(true))])),
        ]),
    );
    assert!(body.len() <= MAX_MESSAGE_LEN, "{} bytes", body.len());
}

#[test]
fn firefox_make_credential_goes_to_the_phone_byte_for_byte() {
    let mut key = KeyCtap::new();
    let payload = firefox_make_credential();
    let asked = expect_phone(key.route(&payload), &payload);
    assert_eq!(
        asked,
        Asked {
            command: Command::MakeCredential,
            rp_id: Some("localhost".into())
        }
    );
}

#[test]
fn firefox_probe_is_answered_by_the_key_and_the_real_request_goes_to_the_phone() {
    let mut key = KeyCtap::new();
    let cred = [0xc1; 16];
    let (status, reply) = expect_local(key.route(&firefox_probe(&[&cred])));
    assert_eq!(status, 0);
    assert_eq!(
        field(&reply, 1),
        Some(&descriptor(&cred)),
        "the listed credential"
    );
    let Some(Value::Bytes(auth_data)) = field(&reply, 2) else {
        panic!("authenticator data")
    };
    assert_eq!(&auth_data[..32], &Sha256::digest(b"localhost")[..]);
    assert_eq!(auth_data[32], 0, "no UP, no UV: nobody was asked");
    assert_eq!(auth_data.len(), 37);
    assert!(matches!(field(&reply, 3), Some(Value::Bytes(s)) if !s.is_empty()));
    assert_eq!(field(&reply, 5), None, "one credential: no count");
    let real = firefox_get_assertion(&[&cred]);
    let asked = expect_phone(key.route(&real), &real);
    assert_eq!(asked.rp_id.as_deref(), Some("localhost"));
}

#[test]
fn a_probe_reports_every_listed_credential_so_the_phone_gets_the_whole_list() {
    let mut key = KeyCtap::new();
    let ids: [&[u8]; 3] = [&[1; 16], &[2; 40], &[3; 65]];
    let (status, reply) = expect_local(key.route(&firefox_probe(&ids)));
    assert_eq!(status, 0);
    assert_eq!(field(&reply, 1), Some(&descriptor(ids[0])));
    assert_eq!(field(&reply, 5), Some(&int(3)));
    for id in &ids[1..] {
        let (status, next) = expect_local(key.route(&[0x08]));
        assert_eq!(status, 0);
        assert_eq!(field(&next, 1), Some(&descriptor(id)));
        assert_eq!(field(&next, 5), None, "omitted in getNextAssertion");
    }
    let (status, _) = expect_local(key.route(&[0x08]));
    assert_eq!(status, status::NOT_ALLOWED);
}

#[test]
fn any_other_command_ends_a_probes_get_next_assertion() {
    let mut key = KeyCtap::new();
    let _ = key.route(&firefox_probe(&[&[1; 16], &[2; 16]]));
    let _ = key.route(&[0x04]);
    let (status, _) = expect_local(key.route(&[0x08]));
    assert_eq!(status, status::NOT_ALLOWED);
}

#[test]
fn a_probe_without_an_allow_list_finds_nothing_and_asks_nobody() {
    let mut key = KeyCtap::new();
    let payload = request(
        0x02,
        &map(vec![
            (int(1), text("example.com")),
            (int(2), cbor::bytes(&[0; 32])),
            (int(5), map(vec![(text("up"), Value::Bool(false))])),
        ]),
    );
    let (status, _) = expect_local(key.route(&payload));
    assert_eq!(status, status::NO_CREDENTIALS);
}

#[test]
fn chromium_requests_go_to_the_phone_byte_for_byte() {
    let mut key = KeyCtap::new();
    // create(): rp with name, user with displayName, no options.
    let create = request(
        0x01,
        &map(vec![
            (int(1), cbor::bytes(&[1; 32])),
            (
                int(2),
                map(vec![
                    (text("id"), text("localhost")),
                    (text("name"), text("x")),
                ]),
            ),
            (
                int(3),
                map(vec![
                    (text("id"), cbor::bytes(&[2; 16])),
                    (text("name"), text("alice")),
                    (text("displayName"), text("Alice")),
                ]),
            ),
            (int(4), es256()),
        ]),
    );
    expect_phone(key.route(&create), &create);
    // get(): one request, no probe.
    let get = request(
        0x02,
        &map(vec![
            (int(1), text("localhost")),
            (int(2), cbor::bytes(&[3; 32])),
            (int(3), Value::Array(vec![descriptor(&[9; 16])])),
        ]),
    );
    expect_phone(key.route(&get), &get);
}

#[test]
fn openssh_enrolment_and_signing_go_to_the_phone() {
    let mut key = KeyCtap::new();
    // ssh-keygen -t ecdsa-sk: rp "ssh:" without name, user "openssh", no options.
    let enrol = request(
        0x01,
        &map(vec![
            (int(1), cbor::bytes(&[1; 32])),
            (int(2), map(vec![(text("id"), text("ssh:"))])),
            (
                int(3),
                map(vec![
                    (text("id"), cbor::bytes(&[0; 32])),
                    (text("name"), text("openssh")),
                    (text("displayName"), text("openssh")),
                ]),
            ),
            (int(4), es256()),
        ]),
    );
    let asked = expect_phone(key.route(&enrol), &enrol);
    assert_eq!(asked.rp_id.as_deref(), Some("ssh:"));
    let sign = request(
        0x02,
        &map(vec![
            (int(1), text("ssh:")),
            (int(2), cbor::bytes(&[4; 32])),
            (int(3), Value::Array(vec![descriptor(&[7; 16])])),
            (int(5), map(vec![(text("up"), Value::Bool(true))])),
        ]),
    );
    expect_phone(key.route(&sign), &sign);
}

#[test]
fn touch_only_requests_are_refused_without_asking_the_phone() {
    let mut key = KeyCtap::new();
    for rp in [".dummy", "make.me.blink"] {
        let payload = request(
            0x01,
            &map(vec![
                (int(1), cbor::bytes(&[0; 32])),
                (int(2), map(vec![(text("id"), text(rp))])),
                (int(3), map(vec![(text("id"), cbor::bytes(&[0]))])),
                (int(4), es256()),
            ]),
        );
        let (status, _) = expect_local(key.route(&payload));
        assert_eq!(status, status::OPERATION_DENIED, "{rp}");
    }
    let selection = request(
        0x01,
        &map(vec![
            (int(1), cbor::bytes(&[0; 32])),
            (int(2), map(vec![(text("id"), text("example.com"))])),
            (int(3), map(vec![(text("id"), cbor::bytes(&[0]))])),
            (int(4), es256()),
            (int(8), cbor::bytes(&[])),
            (int(9), int(1)),
        ]),
    );
    let (status, _) = expect_local(key.route(&selection));
    assert_eq!(status, status::OPERATION_DENIED);
}

#[test]
fn commands_a_phone_cannot_serve_get_invalid_command() {
    let mut key = KeyCtap::new();
    for cmd in [
        0x06, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x40, 0x41, 0x50, 0xbf, 0xff,
    ] {
        let (status, _) = expect_local(key.route(&[cmd, 0xa0]));
        assert_eq!(status, status::INVALID_COMMAND, "command {cmd:#04x}");
    }
}

#[test]
fn bytes_that_are_no_cbor_map_are_invalid_cbor() {
    let mut key = KeyCtap::new();
    for payload in [
        &[0x01][..],
        &[0x01, 0x80],
        &[0x02, 0xff],
        &[0x02, 0xa1, 0x01],
    ] {
        let (status, _) = expect_local(key.route(payload));
        assert_eq!(status, status::INVALID_CBOR, "{payload:02x?}");
    }
    let (status, _) = expect_local(key.route(&[]));
    assert_eq!(status, status::INVALID_LENGTH);
}

#[test]
fn routing_never_panics_on_truncations_and_bit_flips() {
    let samples = [
        firefox_make_credential(),
        firefox_probe(&[&[1; 16], &[2; 16]]),
        firefox_get_assertion(&[&[1; 16]]),
    ];
    for good in samples {
        let mut key = KeyCtap::new();
        for n in 0..good.len() {
            let _ = key.route(&good[..n]);
            let _ = key.route(&[0x08]);
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                let _ = key.route(&b);
                let _ = key.route(&[0x08]);
            }
        }
    }
}

/// A phone's getAssertion answer, as Chromium's phone (and phone-sim) writes it.
fn phone_assertion(transports: bool) -> Vec<u8> {
    let mut credential = vec![
        (text("id"), cbor::bytes(&[7; 16])),
        (text("type"), text("public-key")),
    ];
    if transports {
        credential.push((
            text("transports"),
            Value::Array(vec![text("internal"), text("cable")]),
        ));
    }
    cbor::encode(&map(vec![
        (int(1), Value::Map(credential)),
        (int(2), cbor::bytes(&[0xad; 37])),
        (int(3), cbor::bytes(&[0x30, 0x44, 1, 2, 3])),
        (int(4), map(vec![(text("id"), cbor::bytes(b"u"))])),
        (int(6), Value::Bool(true)),
        (int(99), text("a member no platform knows")),
    ]))
}

#[test]
fn a_phones_assertion_reaches_the_platform_without_transports_and_otherwise_unchanged() {
    let phone = phone_assertion(true);
    let out = reply_for_platform(Command::GetAssertion, &phone);
    let without = phone_assertion(false);
    assert_eq!(&*out, &without[..], "only the transports are gone");
    // Everything after the credential (from key 2, the authenticator data) is the phone's
    // own bytes.
    let from_key_2 = |b: &[u8]| {
        let at = b.windows(3).position(|w| w == [0x02, 0x58, 37]).unwrap();
        b[at..].to_vec()
    };
    assert_eq!(from_key_2(&out), from_key_2(&phone));
    // Nothing to take out: the same bytes, not a copy.
    assert!(matches!(
        reply_for_platform(Command::GetAssertion, &without),
        std::borrow::Cow::Borrowed(_)
    ));
    // makeCredential answers and replies that are not canonical CBOR pass unchanged.
    assert_eq!(
        &*reply_for_platform(Command::MakeCredential, &phone),
        &phone[..]
    );
    let mut odd = phone.clone();
    odd.push(0);
    assert_eq!(&*reply_for_platform(Command::GetAssertion, &odd), &odd[..]);
}
