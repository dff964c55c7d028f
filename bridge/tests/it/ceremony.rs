//! Ceremonies against the scripted phone: the happy paths and every bad-input case.

use std::sync::Arc;
use std::time::Duration;

use bridge::{BridgeError, Event, Phase, Recorder};
use hybrid_protocol::ctap::Status;
use hybrid_protocol::session::Revision;

use crate::harness::{get_assertion, wait_for, Env, Fault, CREDENTIAL_ID, PHONE_NAME};

#[tokio::test]
async fn qr_sign_in_succeeds_and_reports_each_phase() {
    let env = Env::new(Fault::None).await;
    let (r, rec) = env.qr(get_assertion("example.com"), vec![]).await;
    let out = r.unwrap();
    assert_eq!(out.revision, Revision::One);
    assert_eq!(out.get_info.versions[0], "FIDO_2_0");
    let phases: Vec<Phase> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Phase { phase } => Some(phase),
            _ => None,
        })
        .collect();
    assert_eq!(
        phases,
        [
            Phase::ShowingQr,
            Phase::AwaitingAdvert,
            Phase::Connecting,
            Phase::Handshaking,
            Phase::AwaitingUser,
            Phase::Done
        ]
    );
    assert!(
        env.paths()[0].starts_with("/cable/connect/010203/"),
        "{:?}",
        env.paths()
    );
    assert!(env.links.list().unwrap().is_empty(), "no link was offered");
}

#[tokio::test]
async fn wrong_key_and_malformed_adverts_are_ignored_then_the_right_one_matches() {
    let env = Env::new(Fault::None).await;
    let junk = vec![
        format!("fff9:{}", "ab".repeat(20)), // wrong key
        "fff9:zz".into(),                    // malformed
        format!("fde2:{}", "01".repeat(19)), // too short
    ];
    let (r, _) = env.qr(get_assertion("example.com"), junk).await;
    r.unwrap();
}

#[tokio::test]
async fn only_wrong_adverts_time_out_naming_the_stage() {
    let mut env = Env::new(Fault::None).await;
    env.config.timeouts.advert = Duration::from_millis(300);
    let rec = Arc::new(Recorder::default());
    let mut scanner = env.scanner();
    let r2 = rec.clone();
    let config = env.config.clone();
    let task = tokio::spawn(async move {
        bridge::qr_transaction(&get_assertion("example.com"), &config, &mut scanner, &*r2).await
    });
    wait_for(|| rec.qr_url()).await;
    crate::harness::append(&env.adverts, &format!("fff9:{}", "cd".repeat(20)));
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            BridgeError::Timeout {
                phase: Phase::AwaitingAdvert,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 3);
    assert!(
        err.to_string()
            .contains("no advert matched this QR code in 300 ms"),
        "{err}"
    );
}

async fn qr_error(fault: Fault) -> BridgeError {
    let env = Env::new(fault).await;
    let (r, _) = env.qr(get_assertion("example.com"), vec![]).await;
    r.unwrap_err()
}

#[tokio::test]
async fn relay_statuses_map_to_clear_errors() {
    for (status, words) in [
        (404, "does not know this tunnel"),
        (400, "malformed"),
        (409, "already in use"),
        (429, "rate-limiting"),
        (503, "full or shutting down"),
        (502, "server-side"),
    ] {
        let err = qr_error(Fault::Refuse(status)).await;
        assert!(
            matches!(&err, BridgeError::Relay(e) if e.status() == Some(status)),
            "{err:?}"
        );
        assert!(err.to_string().contains(words), "{status}: {err}");
        assert_eq!(err.exit_code(), 5);
    }
}

#[tokio::test]
async fn relay_without_the_subprotocol_is_refused() {
    let err = qr_error(Fault::NoSubprotocol).await;
    assert!(err.to_string().contains("fido.cable"), "{err}");
}

#[tokio::test]
async fn short_msg2_is_a_handshake_error() {
    let err = qr_error(Fault::ShortMsg2).await;
    assert!(matches!(err, BridgeError::Handshake(_)), "{err:?}");
    assert!(err.to_string().contains("81 bytes, got 80"), "{err}");
    assert_eq!(err.exit_code(), 6);
}

#[tokio::test]
async fn msg2_failing_authentication_is_a_handshake_error() {
    let err = qr_error(Fault::TamperedMsg2).await;
    assert!(err.to_string().contains("failed authentication"), "{err}");
}

#[tokio::test]
async fn bad_post_handshake_message() {
    let err = qr_error(Fault::BadPostHandshake).await;
    assert!(err.to_string().contains("post-handshake"), "{err}");
}

#[tokio::test]
async fn ctap_error_status_is_explained() {
    let err = qr_error(Fault::CtapStatus(Status::NoCredentials as u8)).await;
    assert!(
        matches!(
            err,
            BridgeError::Ctap {
                status: Status::NoCredentials,
                code: 0x2e,
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no passkey for this site"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 7);
}

#[tokio::test]
async fn phone_closing_before_the_reply() {
    let err = qr_error(Fault::CloseBeforeReply).await;
    assert!(matches!(err, BridgeError::Closed { .. }), "{err:?}");
}

#[tokio::test]
async fn text_frame_is_refused() {
    let err = qr_error(Fault::TextFrame).await;
    assert!(err.to_string().contains("text"), "{err}");
}

#[tokio::test]
async fn revision_0_phone_works() {
    let env = Env::new(Fault::Revision0).await;
    let (r, _) = env.qr(get_assertion("example.com"), vec![]).await;
    assert_eq!(r.unwrap().revision, Revision::Zero);
}

#[tokio::test]
async fn unverified_link_is_never_stored() {
    let env = Env::new(Fault::BadLink).await;
    let (r, rec) = env.qr(get_assertion("example.com"), vec![]).await;
    let out = r.unwrap();
    assert_eq!(out.linked, None);
    assert!(env.links.list().unwrap().is_empty());
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, Event::LinkIgnored { .. })));
}

#[tokio::test]
async fn late_link_is_stored_then_linked_sign_in_works_then_410_forgets() {
    let env = Env::new(Fault::GoodLink).await;
    let (r, _) = env.qr(get_assertion("example.com"), vec![]).await;
    assert_eq!(r.unwrap().linked.as_deref(), Some(PHONE_NAME));
    let links = env.links.list().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].tunnel_domain, "cable.ua5v.com");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.links.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Linked sign-in: no QR code, through /cable/contact.
    let mut scanner = env.scanner();
    let rec = Recorder::default();
    let out = bridge::linked_transaction(
        PHONE_NAME,
        &get_assertion("example.com"),
        &env.config,
        &mut scanner,
        &rec,
    )
    .await
    .unwrap();
    assert!(!out.response.is_empty());
    assert!(rec.qr_url().is_none());
    assert!(
        env.paths().iter().any(|p| p.starts_with("/cable/contact/")),
        "{:?}",
        env.paths()
    );

    // With the relay's phone-connected signal (a `00` message before message 2).
    let mut config = env.config.clone();
    config.signal_connection = true;
    bridge::linked_transaction(
        PHONE_NAME,
        &get_assertion("example.com"),
        &config,
        &mut scanner,
        &rec,
    )
    .await
    .unwrap();

    // The relay says 410: the link is forgotten.
    let gone = Env::new(Fault::Refuse(410)).await;
    let mut config = gone.config.clone();
    config.links = Some(env.links.clone());
    let err = bridge::linked_transaction(
        PHONE_NAME,
        &get_assertion("example.com"),
        &config,
        &mut gone.scanner(),
        &rec,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BridgeError::LinkGone { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 8);
    assert!(env.links.list().unwrap().is_empty());
}

/// Links the scripted phone with a QR sign-in, so that linked sign-ins can follow.
async fn linked_env() -> Env {
    let env = Env::new(Fault::GoodLink).await;
    let (r, _) = env.qr(get_assertion("example.com"), vec![]).await;
    assert_eq!(r.unwrap().linked.as_deref(), Some(PHONE_NAME));
    env
}

fn contacts(env: &Env) -> usize {
    env.paths()
        .iter()
        .filter(|p| p.starts_with("/cable/contact/"))
        .count()
}

/// A linked sign-in to example.com through `env`'s relay with `config`, bounded at 30 s.
async fn linked_sign_in(
    env: &Env,
    config: &bridge::BridgeConfig,
    rec: &Recorder,
) -> Result<bridge::CtapOutcome, BridgeError> {
    tokio::time::timeout(
        Duration::from_secs(30),
        bridge::linked_transaction(
            PHONE_NAME,
            &get_assertion("example.com"),
            config,
            &mut env.scanner(),
            rec,
        ),
    )
    .await
    .expect("within 30 s")
}

#[tokio::test]
async fn a_linked_sign_in_tries_a_busy_relay_again_until_it_serves() {
    let env = linked_env().await;
    env.relay_busy_for(2);
    let rec = Recorder::default();
    let out = linked_sign_in(&env, &env.config, &rec).await.unwrap();
    assert!(!out.response.is_empty());
    assert_eq!(contacts(&env), 3, "two busy answers, then the phone");
    let waits = busy_waits(&rec);
    assert_eq!(waits.len(), 2, "{:?}", rec.events());
    assert!(waits[0] < waits[1], "the wait grows: {waits:?}");
}

#[tokio::test]
async fn a_relay_that_stays_busy_fails_the_linked_sign_in_within_its_timeout() {
    let env = linked_env().await;
    env.relay_busy_for(u32::MAX);
    let mut config = env.config.clone();
    config.timeouts.advert = Duration::from_secs(2);
    let rec = Recorder::default();
    let err = linked_sign_in(&env, &config, &rec).await.unwrap_err();
    let tries = contacts(&env);
    assert!(tries > 2, "tried again before giving up: {tries}");
    assert_eq!(err.exit_code(), 5, "a relay error: {err}");
    let msg = err.to_string();
    assert!(
        msg.contains("busy") && msg.contains(&format!("{tries} tries")) && msg.contains("2 s"),
        "{msg}"
    );
    assert!(
        !env.links.list().unwrap().is_empty(),
        "a busy relay does not cost the link"
    );
}

#[tokio::test]
async fn a_linked_sign_in_tries_a_draining_relay_again_until_it_serves() {
    let env = linked_env().await;
    env.relay_draining_for(2, None);
    let rec = Recorder::default();
    let out = linked_sign_in(&env, &env.config, &rec).await.unwrap();
    assert!(!out.response.is_empty());
    assert_eq!(contacts(&env), 3, "two 503 answers, then the phone");
    assert_eq!(busy_waits(&rec).len(), 2, "{:?}", rec.events());
}

#[tokio::test]
async fn a_draining_relay_s_retry_after_sets_the_wait() {
    let env = linked_env().await;
    env.relay_draining_for(1, Some("1"));
    let rec = Recorder::default();
    let out = linked_sign_in(&env, &env.config, &rec).await.unwrap();
    assert!(!out.response.is_empty());
    assert_eq!(
        busy_waits(&rec),
        [Duration::from_secs(1)],
        "the first step is at most 250 ms; the relay asked for 1 s"
    );
}

#[tokio::test]
async fn a_relay_that_keeps_draining_fails_the_linked_sign_in_within_its_timeout() {
    let env = linked_env().await;
    env.relay_draining_for(u32::MAX, None);
    let mut config = env.config.clone();
    config.timeouts.advert = Duration::from_secs(2);
    let err = linked_sign_in(&env, &config, &Recorder::default())
        .await
        .unwrap_err();
    let tries = contacts(&env);
    assert!(tries > 2, "tried again before giving up: {tries}");
    assert_eq!(err.exit_code(), 5, "a relay error: {err}");
    let msg = err.to_string();
    assert!(
        msg.contains("503") && msg.contains(&format!("{tries} tries")),
        "{msg}"
    );
    assert!(!env.links.list().unwrap().is_empty());
}

fn busy_waits(rec: &Recorder) -> Vec<Duration> {
    rec.events()
        .iter()
        .filter_map(|e| match e {
            Event::RelayBusy { retry_in_ms } => Some(Duration::from_millis(*retry_in_ms)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn register_produces_registration_response_json() {
    let env = Env::new(Fault::None).await;
    let options = bridge::RegistrationOptions::from_json(
        r#"{"rp":{"id":"example.com","name":"Example"},"user":{"id":"dXNlcg","name":"alice"},
            "challenge":"AAECAwQFBgcICQoLDA0ODw","pubKeyCredParams":[{"type":"public-key","alg":-7}],
            "extensions":{"credProps":true}}"#,
        None,
    )
    .unwrap();
    let rec = Arc::new(Recorder::default());
    let mut scanner = env.scanner();
    let config = env.config.clone();
    let r2 = rec.clone();
    let task =
        tokio::spawn(async move { bridge::register(&options, &config, &mut scanner, &*r2).await });
    env.phone_scans_qr(&rec, &[]).await;
    let reg = task.await.unwrap().unwrap();
    let json = serde_json::to_value(&reg.json).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(json["id"], b64.encode(CREDENTIAL_ID));
    assert_eq!(json["type"], "public-key");
    assert_eq!(json["authenticatorAttachment"], "cross-platform");
    assert_eq!(
        json["response"]["transports"],
        serde_json::json!(["hybrid", "internal"])
    );
    assert_eq!(json["clientExtensionResults"]["credProps"]["rk"], false);
    let cd = b64
        .decode(json["response"]["clientDataJSON"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(cd).unwrap(),
        r#"{"type":"webauthn.create","challenge":"AAECAwQFBgcICQoLDA0ODw","origin":"https://example.com","crossOrigin":false}"#
    );
    let att = b64
        .decode(json["response"]["attestationObject"].as_str().unwrap())
        .unwrap();
    let v = hybrid_protocol::cbor::decode(&att).unwrap();
    assert!(format!("{v:?}").contains("none"));
}
