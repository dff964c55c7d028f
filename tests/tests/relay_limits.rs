//! A relay that closes the tunnel on its own (its limits) is reported as the relay's doing,
//! with the close code and exit code 5 — not as "the phone may have cancelled" (exit 6).

use super::*;

async fn limited_stack(
    dir: &tempfile::TempDir,
    tweak: impl FnOnce(&mut tunnel_server::Config),
) -> Stack {
    let mut cfg = tunnel_server::Config::default();
    tweak(&mut cfg);
    let relay = tunnel_server::RunningServer::start(cfg).await.unwrap();
    let url = relay.ws_url();
    let mut stack = Stack::with_relay_url(
        dir.path().to_path_buf(),
        Some(relay),
        url,
        PhoneConfig {
            timeout: Duration::from_secs(5),
            // Packed attestation makes the makeCredential reply well over 256 bytes.
            attestation: Attestation::Packed,
            ..PhoneConfig::default()
        },
        knobs(),
    )
    .unwrap();
    stack.config.timeouts.handshake = Duration::from_secs(5);
    stack.config.timeouts.user = Duration::from_secs(5);
    stack
}

async fn relay_error(tweak: impl FnOnce(&mut tunnel_server::Config)) -> BridgeError {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = limited_stack(&dir, tweak).await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "heidi");
    stack
        .register(&options, &Silent)
        .await
        .err()
        .expect("the relay ends the ceremony")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_relays_size_limit_is_the_relays_close() {
    // The smallest limit the relay accepts: the handshake fits, the phone's reply does not.
    let err = relay_error(|c| c.limits.max_message_size = 256).await;
    assert!(
        matches!(
            &err,
            BridgeError::Relay(bridge::RelayError::ClosedByRelay { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 5, "{err}");
    assert!(
        err.to_string().starts_with("the relay closed the tunnel: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_messages_is_a_policy_close_from_the_relay() {
    // The phone's third message (its linking update or CTAP reply) is one too many.
    let err = relay_error(|c| c.limits.messages_per_side = 2).await;
    assert!(
        matches!(
            &err,
            BridgeError::Relay(bridge::RelayError::ClosedByRelay { code: 1008, .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 5);
    assert!(
        err.to_string()
            .starts_with("the relay closed the tunnel: policy violation"),
        "{err}"
    );
}
