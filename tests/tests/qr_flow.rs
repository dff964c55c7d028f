//! The QR flow end to end: a registration and a sign-in through the relay, each verified by
//! webauthn-rs, and a second ceremony that shares nothing with the first.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_sign_in_verified_by_webauthn_rs() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = stack(&dir, PhoneConfig::default()).await;
    let rp = rp();
    let cred = register(&mut stack, &rp, "alice").await;
    let (pending, options) = sign_in_options(&rp, &cred);
    let run = stack
        .sign_in(&options, &Silent)
        .await
        .expect("sign-in ceremony");
    let result = rp
        .finish_authentication(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
        .expect("webauthn-rs accepts the assertion");
    assert!(result.user_verified(), "UV must be reported");
    assert_eq!(result.cred_id(), &cred.cred_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ceremony_reuses_nothing_from_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = stack(
        &dir,
        PhoneConfig {
            link: false,
            ..PhoneConfig::default()
        },
    )
    .await;
    stack.config.links = None;
    let rp = rp();
    let urls = std::sync::Mutex::new(Vec::<String>::new());
    let record = |e: &Event, _: Duration| {
        if let Event::QrCode { url } = e {
            urls.lock().unwrap().push(url.clone());
        }
    };
    let mut lines_before = 0;
    let mut adverts = Vec::new();
    for user in ["first", "second"] {
        let (pending, options) = registration_options(&rp, user);
        let run = stack.register(&options, &record).await.expect("ceremony");
        rp.finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .expect("webauthn-rs accepts it");
        let text = std::fs::read_to_string(stack.adverts()).unwrap();
        let lines: Vec<String> = text
            .lines()
            .skip(lines_before)
            .map(str::to_string)
            .collect();
        lines_before += lines.len();
        adverts.push(lines);
    }
    let urls = urls.into_inner().unwrap();
    assert_eq!(urls.len(), 2);
    let (a, b) = (
        hybrid_protocol::qr::QrCode::parse(&urls[0]).unwrap(),
        hybrid_protocol::qr::QrCode::parse(&urls[1]).unwrap(),
    );
    assert_ne!(
        a.identity_key, b.identity_key,
        "a fresh identity key per ceremony"
    );
    assert_ne!(a.secret, b.secret, "a fresh QR secret per ceremony");
    assert_ne!(
        a.secret.tunnel_id(),
        b.secret.tunnel_id(),
        "a fresh tunnel per ceremony"
    );
    assert!(!adverts[0].is_empty() && !adverts[1].is_empty());
    assert!(
        adverts[1].iter().all(|l| !adverts[0].contains(l)),
        "no advert is repeated"
    );
    // The first ceremony's adverts do not decrypt under the second ceremony's key.
    for l in &adverts[0] {
        let line: hybrid_protocol::medium::AdvertLine = l.parse().unwrap();
        assert!(hybrid_protocol::eid::decrypt(&b.secret.eid_key(), &line.data).is_err());
    }
    assert_eq!(stack.phone().unwrap().store().credentials().len(), 2);
}
