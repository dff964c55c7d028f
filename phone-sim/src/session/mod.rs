//! The phone's side of one hybrid session (docs/PROTOCOL.md#flow-qr, #flow-linked) as a pure
//! state machine: no sockets, no clock, no global randomness. Bytes from the desktop, the time
//! and the phone's answers go in through `handle_*`; frames to send, advertising commands and
//! requests for the phone go out through `poll_*`. The IO shell (`shell`) pumps them between a
//! data channel (the relay's tunnel, or any other byte pipe), the BLE advertiser and the
//! authenticator; the machine does not know which channel carries it.
//!
//! Each state is its own type and a transition consumes it (`states`):
//!
//! ```text
//!            advert out
//! AwaitingHandshake ──msg1──→ (msg2, post-handshake out) ──┬─ link offered ─→ AwaitingLinkStored
//!                                                          │                    │ stored: update out
//!                                                          └────────────────────┴─→ AwaitingRequest
//! AwaitingRequest ──getInfo──→ AwaitingRequest (reply out)
//!                 ──makeCredential | getAssertion──→ AwaitingAnswer (the phone asks its user)
//!                 ──selection──→ Done(Selected)      ──shutdown──→ Done(NoRequest)
//! AwaitingAnswer  ──answer (reply out)──→ AwaitingShutdown
//! AwaitingShutdown ──getInfo──→ AwaitingShutdown (reply out)
//!                  ──shutdown | close | the channel lost | timeout──→ Done(operation)
//! any state ──bad input, a close or a lost channel before the answer, a timeout──→ Failed
//! ```
//!
//! The rule for leaving: once the phone has handed over its answer, the desktop leaving in any
//! way (the shutdown message, a close, the relay reporting its peer gone, the stream ending, a
//! later send failing) ends the session as a success; only what happens before the answer can
//! fail it. A desktop that breaks the session rules after the answer (a second command, a
//! frame that does not decrypt) still fails it.
//!
//! # Driving it
//!
//! After creating the machine and after every input, the shell drains in this order:
//! 1. [`PhoneSession::poll_transmit`] until `None`: start or stop advertising, or send a frame
//!    on the data channel. A send that fails is reported with
//!    [`PhoneSession::handle_send_failed`] (the rest of the queue is then dropped).
//! 2. [`PhoneSession::poll_event`]: at most one request for the phone, which the shell answers
//!    with [`PhoneSession::handle_link_stored`] or [`PhoneSession::handle_answer`] (the user's
//!    approval, which may be an async prompt, happens in between); then back to 1.
//! 3. [`PhoneSession::poll_end`]: `Some` when the session is over (close the channel if it is
//!    still open).
//! 4. Otherwise wait for the data channel until [`PhoneSession::poll_timeout`], and hand what
//!    happened to [`PhoneSession::handle_message`], [`PhoneSession::handle_channel_closed`],
//!    [`PhoneSession::handle_channel_lost`] or [`PhoneSession::handle_timeout`].
//!
//! Input that arrives while the machine waits for the phone (a message read during the
//! approval, say) is kept and handled, in order, once the phone has answered.

mod io;
mod machine;
mod states;
#[cfg(test)]
mod tests;

pub(crate) use io::{Answer, Command, Event, LinkOffer, SessionConfig, Transmit};
pub use io::{Operation, Outcome};
pub(crate) use machine::PhoneSession;
