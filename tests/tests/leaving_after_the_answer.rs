//! Once the answer has crossed, either side leaving without the hybrid shutdown message (a
//! close, the relay reporting the peer gone, a stream that just ends) is a success on both.

use super::*;

/// Messages a QR registration carries on one socket up to and including the phone's
/// answer: Noise msg1 and msg2, the post-handshake message, the linking update (the stack's
/// phone holds a contact ID), the request, the answer.
const THROUGH_THE_ANSWER: usize = 6;

async fn register_cut(path_prefix: &'static str, relay_side: CutEnd) {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = failures::cut_stack(
        &dir,
        Cut {
            path_prefix,
            after: THROUGH_THE_ANSWER,
            sockets: usize::MAX,
            relay_side,
        },
    )
    .await;
    let rp = rp();
    let (pending, options) = registration_options(&rp, "heidi");
    let run = stack
        .register(&options, &Silent)
        .await
        .expect("both sides count the ceremony a success");
    assert!(matches!(
        run.phone.operation,
        phone_sim::Operation::MadeCredential { .. }
    ));
    let json = serde_json::to_string(&run.bridge.json).unwrap();
    rp.finish_registration(&pending, &json)
        .expect("webauthn-rs accepts the registration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_that_leaves_without_shutdown_after_the_answer() {
    // The desktop's socket is cut the moment the answer reached it: its shutdown never
    // crosses, its TCP stream ends, and the relay tells the phone its peer went away (1001).
    register_cut("/cable/connect", CutEnd::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_leaves_right_after_its_answer() {
    // The phone's socket is cut right after its answer: the relay sees a normal close,
    // forwards the answer and then closes the desktop; the phone's own stream ends without
    // a close frame.
    register_cut("/cable/new", CutEnd::Close).await;
}
