//! The desktop's side of a session once the handshake is done (docs/PROTOCOL.md#transport,
//! #closing, #linking) as a pure state machine: no sockets, no clock. The ceremony
//! (`ceremony`) creates it with the transport session and the phone's post-handshake
//! message, hands it the request, and pumps frames between it and the tunnel; storing a link
//! is the ceremony's too (a file), asked for with an event.
//!
//! One type per state; a transition consumes it:
//!
//! ```text
//! Ready (post-handshake: getInfo read, a revision-0 link offered)
//!   ──send_request──→ AwaitingReply (request out; linking updates may arrive and are offered)
//!   ──CTAP reply──→ answered: shutdown out (revision 1), then
//!        a QR session that can store a link and has none yet → Lingering ──a stored link,
//!              a close, the channel lost, an undecryptable frame, the linger timeout──→ Done
//!        otherwise → Done
//!   ──an error status──→ Failed(Ctap) (shutdown out first, revision 1)
//! before the reply: a close, the channel lost, the user timeout, bad input → Failed
//! ```
//!
//! Once the reply is in, the phone leaving in any way is a success: lingering only waits for
//! a late link, and nothing it sees fails the ceremony.
//!
//! Drain order, after every input: send each [`Talk::poll_transmit`] (reporting a failure
//! with [`Talk::handle_send_failed`]); handle each [`Talk::poll_event`] (a link to store
//! answers with [`Talk::handle_link_stored`] or [`Talk::handle_link_store_failed`]);
//! [`Talk::poll_end`] says when it is over; else wait for the tunnel until
//! [`Talk::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hybrid_protocol::ctap::{self, Command, GetInfo, Status};
use hybrid_protocol::error::PeerMisbehaved;
use hybrid_protocol::keys::IdentityKey;
use hybrid_protocol::linking::{LinkingInfo, VerifiedLink};
use hybrid_protocol::session::{Message, PostHandshake, Revision, Session};

use crate::error::BridgeError;
use crate::progress::Phase;

/// What the phone broke while the desktop waited for the reply.
const DURING: &str = "in its CTAP reply";

/// Whether and how links that arrive can be kept.
pub(crate) enum Linking {
    /// A QR session: a link verifies with the QR identity key; `can_store` when a links file
    /// is configured.
    Qr {
        identity: IdentityKey,
        can_store: bool,
    },
    /// A linked session: linking information cannot be verified and is ignored.
    Linked,
}

/// How long to wait for the reply, and to linger for a late link after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TalkTimeouts {
    pub(crate) user: Duration,
    pub(crate) linger: Duration,
}

/// A frame for the tunnel, and what it is.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Frame {
    pub(crate) bytes: Vec<u8>,
    pub(crate) kind: FrameKind,
}

/// What a [`Frame`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// The CTAP request: failing to send it fails the ceremony.
    Request,
    /// The shutdown after the reply: best effort.
    Shutdown,
}

/// What the ceremony does for the machine.
#[derive(Debug)]
#[must_use]
pub(crate) enum TalkEvent {
    /// A verified link to store; answer with [`Talk::handle_link_stored`] or
    /// [`Talk::handle_link_store_failed`].
    StoreLink(Box<VerifiedLink>),
    /// Linking information that is not kept, and why (for the progress report).
    LinkIgnored(String),
}

/// What a finished talk produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Talked {
    /// The response CBOR (after the `00` status).
    pub(crate) response: Vec<u8>,
    /// The name under which a verified link was stored, if any.
    pub(crate) linked: Option<String>,
}

/// One session after the handshake (see the module doc).
pub(crate) struct Talk {
    state: State,
    revision: Revision,
    timeouts: TalkTimeouts,
    deadline: Option<Instant>,
    hash: [u8; 32],
    linking: Linking,
    linked: Option<String>,
    transmits: VecDeque<Frame>,
    events: VecDeque<TalkEvent>,
}

enum State {
    Ready(Ready),
    AwaitingReply(AwaitingReply),
    Lingering(Lingering),
    Ended(Result<Talked, BridgeError>),
    Over,
}

/// Post-handshake: nothing sent yet.
struct Ready {
    session: Session,
}

/// The request is out.
struct AwaitingReply {
    session: Session,
}

/// The reply is in and the shutdown out; waiting a little for a late link.
struct Lingering {
    session: Session,
    response: Vec<u8>,
}

impl Talk {
    /// Reads the phone's post-handshake message: its getInfo (returned; the desktop answers
    /// getInfo from it) and, in revision 0, linking information (offered as an event).
    pub(crate) fn new(
        session: Session,
        ph: PostHandshake,
        revision: Revision,
        linking: Linking,
        timeouts: TalkTimeouts,
    ) -> Result<(Self, GetInfo), BridgeError> {
        let get_info = GetInfo::from_cbor(&ph.get_info.clone().unwrap_or_default()).map_err(
            BridgeError::peer("in the getInfo of its post-handshake message"),
        )?;
        let mut talk = Self {
            hash: *session.handshake_hash(),
            state: State::Ready(Ready { session }),
            revision,
            timeouts,
            deadline: None,
            linking,
            linked: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        if let Some(info) = ph.linking {
            talk.offer_link(info);
        }
        Ok((talk, get_info))
    }

    /// Sends the CTAP request; the reply is awaited for the user timeout.
    pub(crate) fn send_request(&mut self, now: Instant, command: Command, body: &[u8]) {
        let mut session = match self.take() {
            State::Ready(Ready { session }) => session,
            other => {
                tracing::debug!("a request after the first one, or after the end; ignored");
                self.state = other;
                return;
            }
        };
        let wire = ctap::encode_request(command, body);
        let frame = match self.revision {
            Revision::One => session.encrypt_message(&Message::Ctap(wire)),
            Revision::Zero => session.encrypt(&wire),
        };
        self.state = match frame {
            Ok(bytes) => {
                self.transmits.push_back(Frame {
                    bytes,
                    kind: FrameKind::Request,
                });
                self.deadline = Some(now + self.timeouts.user);
                State::AwaitingReply(AwaitingReply { session })
            }
            Err(e) => State::Ended(Err(BridgeError::Internal(e.to_string()))),
        };
    }

    /// A message from the phone.
    pub(crate) fn handle_message(&mut self, now: Instant, frame: &[u8]) {
        self.state = match self.take() {
            State::AwaitingReply(s) => self.on_reply_frame(s, now, frame),
            State::Lingering(s) => self.on_late_frame(s, frame),
            other => other,
        };
    }

    /// The tunnel ended (a close, or the stream ended).
    pub(crate) fn handle_channel_closed(&mut self) {
        self.end_channel(BridgeError::Closed {
            during: "before the phone answered",
        });
    }

    /// The tunnel failed, or the relay closed it on its own.
    pub(crate) fn handle_channel_lost(&mut self, error: BridgeError) {
        self.end_channel(error);
    }

    /// Sending a [`Frame`] failed: the request's failure fails the ceremony; a shutdown's is
    /// ignored (the linger or the end notices the tunnel is gone).
    pub(crate) fn handle_send_failed(&mut self, kind: FrameKind, error: BridgeError) {
        match kind {
            FrameKind::Request => {
                self.transmits.clear();
                self.state = match self.take() {
                    State::Over => State::Over,
                    _ => State::Ended(Err(error)),
                };
            }
            FrameKind::Shutdown => tracing::debug!("sending the shutdown failed: {error}"),
        }
    }

    /// The time passed [`poll_timeout`](Self::poll_timeout) (an earlier call does nothing).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.state = match self.take() {
            State::AwaitingReply(_) => State::Ended(Err(BridgeError::Timeout {
                phase: Phase::AwaitingUser,
                after: self.timeouts.user,
            })),
            State::Lingering(s) => self.done(s.response),
            other => other,
        };
    }

    /// The link of [`TalkEvent::StoreLink`] is stored under `name`.
    pub(crate) fn handle_link_stored(&mut self, name: String) {
        self.linked = Some(name);
        self.state = match self.take() {
            State::Lingering(s) => self.done(s.response),
            other => other,
        };
    }

    /// Storing the link of [`TalkEvent::StoreLink`] failed: before the reply that fails the
    /// ceremony; after it the link is only reported ignored.
    pub(crate) fn handle_link_store_failed(&mut self, error: BridgeError) {
        self.state = match self.take() {
            State::Lingering(s) => {
                tracing::debug!("storing a late link failed: {error}");
                self.events
                    .push_back(TalkEvent::LinkIgnored(error.to_string()));
                self.done(s.response)
            }
            State::Ready(_) | State::AwaitingReply(_) => State::Ended(Err(error)),
            other => other,
        };
    }

    /// The next frame for the tunnel.
    #[must_use]
    pub(crate) fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmits.pop_front()
    }

    /// The next thing for the ceremony to do or report.
    #[must_use]
    pub(crate) fn poll_event(&mut self) -> Option<TalkEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingReply(_) | State::Lingering(_) => self.deadline,
            _ => None,
        }
    }

    /// How the talk ended, once it has and its frames and events are drained; handed out
    /// once.
    #[must_use]
    pub(crate) fn poll_end(&mut self) -> Option<Result<Talked, BridgeError>> {
        if !self.transmits.is_empty() || !self.events.is_empty() {
            return None;
        }
        match self.take() {
            State::Ended(end) => Some(end),
            other => {
                self.state = other;
                None
            }
        }
    }

    fn take(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Over)
    }

    fn end_channel(&mut self, error: BridgeError) {
        self.state = match self.take() {
            State::Ready(_) | State::AwaitingReply(_) => State::Ended(Err(error)),
            // The reply is in: the phone leaving is fine.
            State::Lingering(s) => {
                tracing::debug!("after shutdown: {error}");
                self.done(s.response)
            }
            other => other,
        };
    }

    fn done(&mut self, response: Vec<u8>) -> State {
        State::Ended(Ok(Talked {
            response,
            linked: self.linked.clone(),
        }))
    }

    fn on_reply_frame(&mut self, mut s: AwaitingReply, now: Instant, frame: &[u8]) -> State {
        let reply = if self.revision == Revision::Zero {
            match s.session.decrypt(frame) {
                Ok(p) => p.to_vec(),
                Err(e) => return State::Ended(Err(BridgeError::peer(DURING)(e))),
            }
        } else {
            match s.session.decrypt_message(frame) {
                Ok(Message::Ctap(r)) => r,
                Ok(Message::Update(u)) => {
                    if let Some(info) = u.linking {
                        self.offer_link(info);
                    }
                    return State::AwaitingReply(s);
                }
                Ok(other) => {
                    return State::Ended(Err(BridgeError::Peer {
                        during: DURING,
                        error: PeerMisbehaved::UnexpectedMessage {
                            expected: "a CTAP reply",
                            got: format!("{other:?}"),
                        }
                        .into(),
                    }))
                }
                Err(e) => return State::Ended(Err(BridgeError::peer(DURING)(e))),
            }
        };
        let (status, body) = match ctap::split_response(&reply) {
            Ok(r) => r,
            Err(e) => return State::Ended(Err(BridgeError::peer(DURING)(e))),
        };
        if self.revision == Revision::One {
            if let Ok(bytes) = s.session.encrypt_message(&Message::Shutdown) {
                self.transmits.push_back(Frame {
                    bytes,
                    kind: FrameKind::Shutdown,
                });
            }
        }
        if status != Status::Ok {
            return State::Ended(Err(BridgeError::Ctap {
                status,
                code: reply[0],
            }));
        }
        let response = body.to_vec();
        let wants_link = self.revision == Revision::One
            && matches!(
                self.linking,
                Linking::Qr {
                    can_store: true,
                    ..
                }
            )
            && self.linked.is_none();
        if wants_link {
            // A late linking update may follow the reply; an early close or a second
            // shutdown is fine (the reply is in).
            self.deadline = Some(now + self.timeouts.linger);
            State::Lingering(Lingering {
                session: s.session,
                response,
            })
        } else {
            self.done(response)
        }
    }

    fn on_late_frame(&mut self, mut s: Lingering, frame: &[u8]) -> State {
        match s.session.decrypt_message(frame) {
            Ok(Message::Update(u)) => {
                if let Some(info) = u.linking {
                    self.offer_link(info);
                }
                State::Lingering(s)
            }
            Ok(other) => {
                tracing::debug!(?other, "after shutdown: ignored");
                State::Lingering(s)
            }
            Err(e) => {
                tracing::debug!("after shutdown: {e}");
                self.done(s.response)
            }
        }
    }

    /// Verifies linking information and asks for it to be stored; never an unverified link.
    fn offer_link(&mut self, info: LinkingInfo) {
        let ignored = match &self.linking {
            Linking::Linked => {
                "linking information in a linked session cannot be verified".to_string()
            }
            Linking::Qr {
                identity,
                can_store,
            } => match info.verify(identity, &self.hash) {
                Err(e) => {
                    tracing::warn!("{e}");
                    e.to_string()
                }
                Ok(_) if !can_store => "no links file configured".to_string(),
                Ok(verified) => {
                    self.events
                        .push_back(TalkEvent::StoreLink(Box::new(verified)));
                    return;
                }
            },
        };
        self.events.push_back(TalkEvent::LinkIgnored(ignored));
    }
}

#[cfg(test)]
mod tests;
