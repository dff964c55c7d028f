//! The bodies of the bridge crate's fuzz targets, shared by the libFuzzer binaries in
//! `fuzz/bridge/fuzz_targets/` and by `bridge/tests/fuzz_regressions.rs`, which replays the
//! committed corpus and every crash ever found through these same functions with `cargo test`.
//! They cover what the browser (or a page, through the extension) controls: the native
//! messaging byte stream and its requests, the origin and RP ID checks, and the W3C options
//! JSON. Every target returns whether its parser accepted the input; [`seeds`] builds valid
//! inputs.

use bridge::native_host::driver::check_origin;
use bridge::native_host::framing::{read_frame, MAX_REQUEST};
use bridge::native_host::messages::Request;
use bridge::webauthn::{origin_host, AuthenticationOptions, RegistrationOptions};

/// The bridge targets, in the order the CI script runs them.
pub const TARGETS: [&str; 2] = ["native_host", "webauthn"];

/// Runs the named target on one input; `None` for an unknown name.
pub fn run(target: &str, data: &[u8]) -> Option<bool> {
    Some(match target {
        "native_host" => native_host(data),
        "webauthn" => webauthn(data),
        _ => return None,
    })
}

/// The host's stdin: length-prefixed frames read until the end or the first framing error,
/// each body parsed as a request, and each ceremony's origin and RP ID checked. Accepted when
/// the stream holds at least one ceremony that passes the origin check.
pub fn native_host(data: &[u8]) -> bool {
    let mut input = data;
    let mut ok = false;
    while let Ok(Some(body)) = read_frame(&mut input, MAX_REQUEST) {
        if let Ok(Request::Ceremony(req)) = Request::parse(&body) {
            ok |= check_origin(&req).is_ok();
        }
    }
    ok
}

/// W3C options JSON. Mode 0: creation options, origin from `rp.id`. Mode 1: creation options
/// with the origin given. Mode 2: request options, origin from `rpId`. Mode 3: request options
/// with the origin given. Accepted options are turned into their CTAP request too.
pub fn webauthn(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let Ok(json) = std::str::from_utf8(rest) else {
        return false;
    };
    let origin = (mode % 2 == 1).then_some("https://login.example.com");
    if let Some(o) = origin {
        let _ = origin_host(o);
    }
    if mode % 4 < 2 {
        RegistrationOptions::from_json(json, origin).is_ok_and(|o| {
            let _ = o.to_ctap([0; 32]);
            o.validate().is_ok()
        })
    } else {
        AuthenticationOptions::from_json(json, origin).is_ok_and(|o| {
            let _ = o.to_ctap([0; 32]);
            o.validate().is_ok()
        })
    }
}

/// Valid inputs for every target, as `(target, name, bytes)`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let create = r#"{"rp":{"id":"example.com","name":"Example"},"user":{"id":"AQIDBAUGBwg","name":"a@example.com","displayName":"A"},"challenge":"AAECAwQFBgcICQoLDA0ODxAREhM","pubKeyCredParams":[{"type":"public-key","alg":-7},{"type":"public-key","alg":-257}],"timeout":60000,"excludeCredentials":[{"type":"public-key","id":"CQkJCQkJCQkJCQkJCQkJCQ","transports":["hybrid"]}],"authenticatorSelection":{"residentKey":"required","userVerification":"preferred"},"attestation":"none","extensions":{"credProps":true,"prf":{"eval":{"first":"AQID"}}}}"#;
    let get = r#"{"rpId":"example.com","challenge":"AAECAwQFBgcICQoLDA0ODxAREhM","timeout":60000,"allowCredentials":[{"type":"public-key","id":"CQkJCQkJCQkJCQkJCQkJCQ"}],"userVerification":"required","extensions":{"prf":{"eval":{"first":"AQID"}}}}"#;
    let frame = |body: &str| {
        let mut v = (body.len() as u32).to_ne_bytes().to_vec();
        v.extend_from_slice(body.as_bytes());
        v
    };
    let create_request = format!(
        r#"{{"type":"create","id":"r1","origin":"https://login.example.com","options":{create}}}"#
    );
    let get_request = format!(
        r#"{{"type":"get","id":"r2","origin":"https://example.com","topOrigin":"https://example.com","options":{get},"phone":"p1"}}"#
    );
    let mut stream = frame(&create_request);
    stream.extend(frame(r#"{"type":"cancel","id":"r1"}"#));
    stream.extend(frame(r#"{"type":"phones","id":"r3"}"#));
    let with_mode = |mode: u8, json: &str| [&[mode][..], json.as_bytes()].concat();
    vec![
        ("native_host", "create".into(), frame(&create_request)),
        ("native_host", "get".into(), frame(&get_request)),
        ("native_host", "stream".into(), stream),
        ("webauthn", "create".into(), with_mode(0, create)),
        (
            "webauthn",
            "create-origin".into(),
            with_mode(1, &format!(r#"{{"publicKey":{create}}}"#)),
        ),
        ("webauthn", "get".into(), with_mode(2, get)),
        ("webauthn", "get-origin".into(), with_mode(3, get)),
    ]
}
