//! The relay never logs a registration secret, at any level: minting,
//! resuming with it, and refused resumes with a wrong one are captured at TRACE and searched
//! for the secrets in base64url and hex, in a process of its own ([`CapturedLog::in_own_process`]).

use hybrid_protocol::contact::RegistrationSecret;

use crate::log_capture::CapturedLog;
use crate::support::*;

#[tokio::test]
async fn registration_secrets_never_reach_the_log() {
    let Some(captured) = CapturedLog::in_own_process(
        "registration_logs::registration_secrets_never_reach_the_log",
        tracing::Level::TRACE,
    ) else {
        return;
    };

    let server = start(config()).await;
    let (reg, id, secret) = register_with_secret(&server).await;
    drop(reg);
    let resume = resume_path(&id);
    let (resumed, _) = open(&server, &resume, &[(SECRET_HEADER, secret.as_str())])
        .await
        .unwrap();
    drop(resumed);
    let wrong = RegistrationSecret::from_bytes([0x5a; 32]);
    let wrong_text = wrong.to_base64url().to_string();
    assert_eq!(
        status(open(&server, &resume, &[(SECRET_HEADER, wrong_text.as_str())]).await),
        403
    );
    assert_eq!(status(open(&server, &resume, &[]).await), 403);
    server.shutdown().await.unwrap();

    let log = captured.text();
    assert!(log.contains("request rejected"), "the capture works: {log}");
    let bytes = RegistrationSecret::from_base64url(&secret).unwrap();
    for s in [
        secret.clone(),
        hex::encode(bytes.expose()),
        wrong_text,
        hex::encode(wrong.expose()),
    ] {
        assert!(
            !log.to_lowercase().contains(&s.to_lowercase()),
            "a registration secret is in the log: {log}"
        );
    }
}
