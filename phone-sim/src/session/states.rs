//! The session's states, one type each, in the order a session passes through them; each
//! transition consumes its state and returns the next [`State`]. What a state holds is what is
//! valid then: the PSK only until the handshake, the transport [`Session`] after it, the
//! operation only once the answer is out.

use std::time::Duration;

use hybrid_protocol::ctap::Status;
use hybrid_protocol::handshake::Responder;
use hybrid_protocol::keys::{IdentityKey, Psk, PublicKey};
use hybrid_protocol::linking::{self, LinkingInfo};
use hybrid_protocol::session::{Message, PostHandshake, Session, Update};
use rand_core::CryptoRngCore;

use crate::authenticator::{self, Done, Request};
use crate::error::PhoneError;
use crate::session::io::{
    Answer, Command, Event, FrameKind, LinkOffer, Operation, Outcome, Output, Transmit,
};
use crate::store::b64url;

/// Where a session is.
pub(super) enum State {
    AwaitingHandshake(AwaitingHandshake),
    AwaitingLinkStored(AwaitingLinkStored),
    AwaitingRequest(AwaitingRequest),
    AwaitingAnswer(AwaitingAnswer),
    AwaitingShutdown(AwaitingShutdown),
    /// Over; the result is not yet handed out.
    Ended(Result<Outcome, PhoneError>),
    /// Over, and the result handed out (also the placeholder during a transition).
    Over,
}

/// Advertising, until the desktop's Noise message 1 arrives on the data channel.
pub(super) struct AwaitingHandshake {
    psk: Psk,
    responding: Responding,
    link: Option<LinkOffer>,
}

/// The handshake the phone answers, and what it needs for it.
pub(super) enum Responding {
    /// KNpsk0: the desktop's identity key came in the QR code.
    Qr { desktop: PublicKey },
    /// NKpsk0: the desktop knows the phone's identity key from the link.
    Linked { identity: IdentityKey },
}

/// Handshake done; the phone is storing the link it offers before sending its linking
/// information (so the desktop never holds a link the phone lacks).
pub(super) struct AwaitingLinkStored {
    live: Live,
    offer: LinkOffer,
    desktop: PublicKey,
}

/// Waiting for the desktop's command; getInfo is answered any number of times.
pub(super) struct AwaitingRequest {
    live: Live,
}

/// The phone is asking its user and running the command.
pub(super) struct AwaitingAnswer {
    live: Live,
}

/// The answer is out; waiting for the desktop to leave. Only getInfo is still served.
pub(super) struct AwaitingShutdown {
    live: Live,
    operation: Operation,
}

/// What every state after the handshake holds.
struct Live {
    session: Session,
    get_info_served: usize,
    link_id: Option<[u8; 8]>,
}

/// What a decrypted message asks for.
enum Read {
    Nothing,
    Shutdown,
    Request(Box<Request>),
}

impl State {
    fn failed(error: PhoneError) -> Self {
        Self::Ended(Err(error))
    }

    /// Whether the machine waits for the phone (its link store or its user).
    pub(super) fn waits_for_phone(&self) -> bool {
        matches!(self, Self::AwaitingLinkStored(_) | Self::AwaitingAnswer(_))
    }

    /// Whether the machine waits for the desktop (so a timeout runs).
    pub(super) fn waits_for_desktop(&self) -> bool {
        matches!(
            self,
            Self::AwaitingHandshake(_) | Self::AwaitingRequest(_) | Self::AwaitingShutdown(_)
        )
    }

    pub(super) fn waiting_for(&self) -> &'static str {
        match self {
            Self::AwaitingHandshake(_) => "waiting for the desktop's handshake",
            Self::AwaitingShutdown(_) => "waiting for the desktop's shutdown",
            _ => "waiting for the desktop's request",
        }
    }

    /// Whether the answer has been handed over, so the desktop leaving is a success.
    fn answered(&self) -> bool {
        match self {
            Self::AwaitingShutdown(_) => true,
            Self::Ended(Ok(o)) => matches!(
                o.operation,
                Operation::MadeCredential { .. }
                    | Operation::GotAssertion { .. }
                    | Operation::Refused { .. }
            ),
            _ => false,
        }
    }

    /// A message after the handshake.
    pub(super) fn on_frame(self, bytes: &[u8], out: &mut Output) -> Self {
        match self {
            Self::AwaitingRequest(s) => s.on_message(bytes, out),
            Self::AwaitingShutdown(s) => s.on_message(bytes, out),
            // Message 1 goes to AwaitingHandshake::on_message, with the RNG it needs; the
            // machine keeps messages in its inbox while it waits for the phone; an ended
            // session reads nothing.
            other => other,
        }
    }

    pub(super) fn on_closed(self, out: &mut Output) -> Self {
        let before_request = || {
            Self::failed(PhoneError::PeerMisbehaved(
                "the desktop ended the tunnel before any request".into(),
            ))
        };
        match self {
            Self::AwaitingHandshake(_) => {
                out.transmit(Transmit::StopAdvertising);
                Self::failed(PhoneError::PeerMisbehaved(
                    "the desktop ended the tunnel before its handshake message".into(),
                ))
            }
            Self::AwaitingLinkStored(_) | Self::AwaitingRequest(_) => before_request(),
            Self::AwaitingAnswer(_) => Self::failed(PhoneError::PeerMisbehaved(
                "the desktop ended the tunnel before the phone answered".into(),
            )),
            Self::AwaitingShutdown(s) => {
                tracing::debug!("the desktop closed the tunnel after the answer");
                s.done()
            }
            ended @ (Self::Ended(_) | Self::Over) => ended,
        }
    }

    pub(super) fn on_lost(self, error: PhoneError, out: &mut Output) -> Self {
        match self {
            Self::AwaitingHandshake(_) => {
                out.transmit(Transmit::StopAdvertising);
                Self::failed(error)
            }
            Self::AwaitingLinkStored(_) | Self::AwaitingRequest(_) | Self::AwaitingAnswer(_) => {
                Self::failed(error)
            }
            Self::AwaitingShutdown(s) => {
                tracing::debug!("the desktop left after the answer: {error}");
                s.done()
            }
            ended @ (Self::Ended(_) | Self::Over) => ended,
        }
    }

    pub(super) fn on_send_failed(self, kind: FrameKind, error: PhoneError) -> Self {
        match (self, kind) {
            // The answer did not reach the desktop: whatever came after, it failed.
            (_, FrameKind::Answer) => Self::failed(error),
            (
                Self::Ended(Err(PhoneError::BadRequest {
                    status, message, ..
                })),
                FrameKind::ErrorReply,
            ) => Self::failed(PhoneError::BadRequest {
                status,
                message,
                replied: false,
            }),
            (state, _) if state.answered() => match state {
                Self::AwaitingShutdown(s) => {
                    tracing::debug!("the desktop left after the answer: {error}");
                    s.done()
                }
                ended => ended,
            },
            (ended @ (Self::Ended(Err(_)) | Self::Over), _) => ended,
            (_, _) => Self::failed(error),
        }
    }

    pub(super) fn on_timeout(self, out: &mut Output, after: Duration) -> Self {
        match self {
            Self::AwaitingHandshake(_) => {
                out.transmit(Transmit::StopAdvertising);
                Self::failed(PhoneError::Timeout {
                    context: "advertising and waiting for the desktop's handshake",
                    after,
                })
            }
            Self::AwaitingRequest(_) => Self::failed(PhoneError::Timeout {
                context: "waiting for the desktop's request",
                after,
            }),
            // The request was answered; a desktop that never shuts down is its problem.
            Self::AwaitingShutdown(s) => s.done(),
            other => other,
        }
    }

    pub(super) fn on_link_stored(self, out: &mut Output) -> Self {
        match self {
            Self::AwaitingLinkStored(s) => s.on_stored(out),
            other => {
                tracing::debug!("a link was reported stored while none was offered; ignored");
                other
            }
        }
    }

    pub(super) fn on_answer(self, answer: Answer, out: &mut Output) -> Self {
        match self {
            Self::AwaitingAnswer(s) => s.on_answer(answer, out),
            other => {
                tracing::debug!("an answer arrived while no command was waiting; ignored");
                other
            }
        }
    }
}

impl AwaitingHandshake {
    pub(super) fn new(psk: Psk, responding: Responding, link: Option<LinkOffer>) -> Self {
        Self {
            psk,
            responding,
            link,
        }
    }

    /// Noise message 1: advertising stops, message 2 and the post-handshake message (getInfo)
    /// go out; an offered link is stored next, else the desktop's request is awaited.
    pub(super) fn on_message(
        self,
        msg1: &[u8],
        out: &mut Output,
        rng: &mut impl CryptoRngCore,
    ) -> State {
        out.transmit(Transmit::StopAdvertising);
        tracing::debug!(
            len = msg1.len(),
            "Noise message 1 arrived; advertising stopped"
        );
        let responded = match &self.responding {
            Responding::Qr { desktop } => Responder::respond_qr(desktop, &self.psk, msg1, rng)
                .map_err(PhoneError::protocol("answering the QR handshake")),
            Responding::Linked { identity } => {
                Responder::respond_linked(identity, &self.psk, msg1, rng)
                    .map_err(PhoneError::protocol("answering the linked handshake"))
            }
        };
        let (mut session, msg2) = match responded {
            Ok(r) => r,
            Err(e) => return State::failed(e),
        };
        out.send(msg2.to_vec(), FrameKind::Handshake);
        let ph = PostHandshake::ctap(authenticator::get_info().to_cbor());
        match session.encrypt(&ph.encode()) {
            Ok(frame) => out.send(frame, FrameKind::PostHandshake),
            Err(e) => {
                return State::failed(PhoneError::Protocol {
                    context: "encrypting the post-handshake message",
                    error: e,
                })
            }
        }
        let live = Live {
            session,
            get_info_served: 0,
            link_id: None,
        };
        match (self.link, self.responding) {
            (Some(offer), Responding::Qr { desktop }) => {
                out.event(Event::StoreLink {
                    link_id: offer.link_id,
                });
                State::AwaitingLinkStored(AwaitingLinkStored {
                    live,
                    offer,
                    desktop,
                })
            }
            // A linked session sends no linking information (the desktop could not verify it).
            _ => State::AwaitingRequest(AwaitingRequest { live }),
        }
    }
}

impl AwaitingLinkStored {
    /// The link is stored: the update with linking information goes out.
    fn on_stored(mut self, out: &mut Output) -> State {
        let offer = self.offer;
        let info = LinkingInfo {
            contact_id: offer.contact_id.0.clone(),
            link_id: offer.link_id,
            link_secret: offer.link_secret,
            authenticator_public_key: offer.identity.public_key(),
            name: offer.name,
            handshake_signature: linking::handshake_signature(
                &offer.identity,
                &self.desktop,
                self.live.session.handshake_hash(),
            ),
            play_services_tag: None,
        };
        let update = Message::Update(Update {
            linking: Some(info),
        });
        match self.live.session.encrypt_message(&update) {
            Ok(frame) => out.send(frame, FrameKind::Linking),
            Err(e) => {
                return State::failed(PhoneError::Protocol {
                    context: "encrypting the linking update",
                    error: e,
                })
            }
        }
        tracing::info!(link = %hex::encode(offer.link_id), "sent linking info");
        self.live.link_id = Some(offer.link_id);
        State::AwaitingRequest(AwaitingRequest { live: self.live })
    }
}

impl AwaitingRequest {
    fn on_message(mut self, bytes: &[u8], out: &mut Output) -> State {
        let request = match self.live.read(bytes, out) {
            Ok(Read::Nothing) => return State::AwaitingRequest(self),
            Ok(Read::Shutdown) => return self.live.end(Operation::NoRequest),
            Ok(Read::Request(r)) => r,
            Err(e) => return State::failed(e),
        };
        let command = match *request {
            Request::GetInfo => {
                return match self.live.reply_get_info(out) {
                    Ok(()) => State::AwaitingRequest(self),
                    Err(e) => State::failed(e),
                }
            }
            Request::Selection => return self.live.end(Operation::Selected),
            Request::MakeCredential(r) => Command::MakeCredential(r),
            Request::GetAssertion(r) => Command::GetAssertion(r),
        };
        out.event(Event::Request(Box::new(command)));
        State::AwaitingAnswer(AwaitingAnswer { live: self.live })
    }
}

impl AwaitingAnswer {
    /// The reply goes out: the response, or a refusal the protocol expects (the session then
    /// still succeeds), or another error status (the session fails, as the request was bad).
    fn on_answer(mut self, answer: Answer, out: &mut Output) -> State {
        let (status, body, result) = match answer {
            Ok((body, done)) => (Status::Ok, body, Ok(operation(done))),
            Err(e) => match e.status {
                Status::OperationDenied | Status::NoCredentials | Status::CredentialExcluded => {
                    tracing::info!("answered {:?}: {}", e.status, e.message);
                    let refused = Operation::Refused { status: e.status };
                    (e.status, Vec::new(), Ok(refused))
                }
                status => {
                    let bad = PhoneError::BadRequest {
                        status,
                        message: e.message,
                        replied: true,
                    };
                    (status, Vec::new(), Err(bad))
                }
            },
        };
        if let Err(e) = self.live.reply(status, &body, FrameKind::Answer, out) {
            return State::failed(e);
        }
        match result {
            Ok(operation) => State::AwaitingShutdown(AwaitingShutdown {
                live: self.live,
                operation,
            }),
            Err(e) => State::failed(e),
        }
    }
}

/// What a completed command did, logged.
fn operation(done: Done) -> Operation {
    match done {
        Done::Created {
            rp_id,
            credential_id,
        } => {
            tracing::info!(rp = %rp_id, credential = %b64url(&credential_id), "created a passkey");
            Operation::MadeCredential {
                rp_id,
                credential_id,
            }
        }
        Done::Asserted {
            rp_id,
            credential_id,
        } => {
            tracing::info!(rp = %rp_id, credential = %b64url(&credential_id), "signed an assertion");
            Operation::GotAssertion {
                rp_id,
                credential_id,
            }
        }
    }
}

impl AwaitingShutdown {
    fn on_message(mut self, bytes: &[u8], out: &mut Output) -> State {
        match self.live.read(bytes, out) {
            Ok(Read::Nothing) => State::AwaitingShutdown(self),
            Ok(Read::Shutdown) => self.done(),
            Ok(Read::Request(r)) if matches!(*r, Request::GetInfo) => {
                match self.live.reply_get_info(out) {
                    Ok(()) => State::AwaitingShutdown(self),
                    Err(e) => State::failed(e),
                }
            }
            Ok(Read::Request(_)) => State::failed(self.live.refuse(
                Status::NotAllowed,
                "a second command in one session; phones serve exactly one".into(),
                out,
            )),
            Err(e) => State::failed(e),
        }
    }

    /// The desktop left (in any way) or went quiet after the answer: a success.
    fn done(self) -> State {
        self.live.end(self.operation)
    }
}

impl Live {
    /// Decrypts and sorts a message. Updates are ignored; a message the phone cannot serve
    /// fails the session, with a CTAP status sent first where the protocol has one.
    fn read(&mut self, bytes: &[u8], out: &mut Output) -> Result<Read, PhoneError> {
        let message = self
            .session
            .decrypt_message(bytes)
            .map_err(PhoneError::protocol("reading a message from the desktop"))?;
        match message {
            Message::Shutdown => Ok(Read::Shutdown),
            Message::Update(_) => {
                tracing::debug!("ignoring an update message from the desktop");
                Ok(Read::Nothing)
            }
            Message::Json(_) => Err(PhoneError::PeerMisbehaved(
                "a JSON message arrived, but this phone did not offer the \"dc\" feature".into(),
            )),
            Message::Ctap(bytes) => match authenticator::parse_request(&bytes) {
                Ok(Some(r)) => Ok(Read::Request(Box::new(r))),
                Ok(None) => Err(PhoneError::PeerMisbehaved(format!(
                    "unsupported CTAP command {:#04x}; phones end the session without a reply",
                    bytes.first().copied().unwrap_or_default()
                ))),
                Err(e) => Err(self.refuse(e.status, e.message, out)),
            },
        }
    }

    fn reply_get_info(&mut self, out: &mut Output) -> Result<(), PhoneError> {
        self.get_info_served += 1;
        let info = authenticator::get_info().to_cbor();
        self.reply(Status::Ok, &info, FrameKind::GetInfo, out)
    }

    /// Queues the status for a rejected request; the error says whether it could be sent.
    fn refuse(&mut self, status: Status, message: String, out: &mut Output) -> PhoneError {
        let replied = self.reply(status, &[], FrameKind::ErrorReply, out).is_ok();
        PhoneError::BadRequest {
            status,
            message,
            replied,
        }
    }

    fn reply(
        &mut self,
        status: Status,
        body: &[u8],
        kind: FrameKind,
        out: &mut Output,
    ) -> Result<(), PhoneError> {
        let mut payload = vec![status as u8];
        payload.extend_from_slice(body);
        let frame = self
            .session
            .encrypt_message(&Message::Ctap(payload))
            .map_err(PhoneError::protocol("encrypting the CTAP response"))?;
        out.send(frame, kind);
        Ok(())
    }

    fn end(self, operation: Operation) -> State {
        State::Ended(Ok(Outcome {
            operation,
            get_info_served: self.get_info_served,
            link_id: self.link_id,
        }))
    }
}
