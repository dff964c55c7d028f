//! [`PhoneSession`]: the machine's inputs (`handle_*`) and outputs (`poll_*`) around its
//! current state, the deadline, and the inbox of channel input that arrives while the machine
//! waits for the phone. The drain order is in the parent module's doc.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hybrid_protocol::eid::{EidPlaintext, ADVERT_LEN};
use hybrid_protocol::keys::{IdentityKey, LinkSecret};
use hybrid_protocol::qr::QrCode;
use hybrid_protocol::tunnel::RoutingId;
use rand_core::CryptoRngCore;

use crate::error::PhoneError;
use crate::medium::build_advert;
use crate::session::io::{
    Answer, Event, FrameKind, LinkOffer, Outcome, Output, SessionConfig, Transmit,
};
use crate::session::states::{AwaitingHandshake, Responding, State};

/// One phone session as a state machine (see the module doc for the states and the drain
/// order).
pub(crate) struct PhoneSession {
    state: State,
    timeout: Duration,
    deadline: Option<Instant>,
    out: Output,
    /// Channel input that arrived while the machine waits for the phone.
    inbox: VecDeque<Input>,
}

/// Channel input kept in the inbox.
enum Input {
    Message(Vec<u8>),
    Closed,
    Lost(PhoneError),
}

impl PhoneSession {
    /// A QR-initiated session (docs/PROTOCOL.md#flow-qr) on a tunnel of the relay instance
    /// `routing_id`: the advert is queued, and the desktop's KNpsk0 message 1 is awaited.
    /// With `link`, linking information is offered once the handshake is done.
    pub(crate) fn qr(
        qr: &QrCode,
        routing_id: RoutingId,
        link: Option<LinkOffer>,
        config: SessionConfig,
        now: Instant,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, PhoneError> {
        let plaintext = EidPlaintext::new(routing_id, config.domain, rng)
            .map_err(PhoneError::protocol("building the EID"))?;
        let advert = build_advert(&qr.secret.eid_key(), &plaintext, config.fault, rng)?;
        let state = AwaitingHandshake::new(
            plaintext.psk(qr.secret.expose()),
            Responding::Qr {
                desktop: qr.identity_key,
            },
            link,
        );
        Ok(Self::start(state, advert, config, now))
    }

    /// A linked session (docs/PROTOCOL.md#flow-linked) the relay woke the phone for: the
    /// advert is derived from the link secret and the desktop's client nonce, and the
    /// desktop's NKpsk0 message 1 (to the phone's `identity`) is awaited.
    pub(crate) fn linked(
        identity: IdentityKey,
        secret: &LinkSecret,
        client_nonce: &[u8; 16],
        routing_id: RoutingId,
        config: SessionConfig,
        now: Instant,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, PhoneError> {
        let plaintext = EidPlaintext::new(routing_id, config.domain, rng)
            .map_err(PhoneError::protocol("building the EID"))?;
        let advert = build_advert(&secret.eid_key(client_nonce), &plaintext, config.fault, rng)?;
        let state = AwaitingHandshake::new(
            plaintext.psk(secret.expose()),
            Responding::Linked { identity },
            None,
        );
        Ok(Self::start(state, advert, config, now))
    }

    fn start(
        state: AwaitingHandshake,
        advert: [u8; ADVERT_LEN],
        config: SessionConfig,
        now: Instant,
    ) -> Self {
        let mut out = Output::default();
        out.transmit(Transmit::Advertise(advert));
        Self {
            state: State::AwaitingHandshake(state),
            timeout: config.timeout,
            deadline: Some(now + config.timeout),
            out,
            inbox: VecDeque::new(),
        }
    }

    /// A message from the desktop arrived on the data channel.
    pub(crate) fn handle_message(
        &mut self,
        now: Instant,
        bytes: &[u8],
        rng: &mut impl CryptoRngCore,
    ) {
        if self.state.waits_for_phone() {
            self.inbox.push_back(Input::Message(bytes.to_vec()));
            return;
        }
        self.transition(now, |state, out| match state {
            State::AwaitingHandshake(s) => s.on_message(bytes, out, rng),
            other => other.on_frame(bytes, out),
        });
    }

    /// The desktop ended the data channel: a close, or the stream ended.
    pub(crate) fn handle_channel_closed(&mut self, now: Instant) {
        if self.state.waits_for_phone() {
            self.inbox.push_back(Input::Closed);
            return;
        }
        self.transition(now, State::on_closed);
    }

    /// The data channel failed or was closed by the relay (`error` names it, with
    /// [`waiting_for`](Self::waiting_for) as its context).
    pub(crate) fn handle_channel_lost(&mut self, now: Instant, error: PhoneError) {
        if self.state.waits_for_phone() {
            self.inbox.push_back(Input::Lost(error));
            return;
        }
        self.transition(now, |state, out| state.on_lost(error, out));
    }

    /// Sending a [`Frame`](crate::session::Frame) of `kind` failed (`error` names it, with `kind`'s context). What is
    /// left to transmit is dropped: the channel is gone.
    pub(crate) fn handle_send_failed(&mut self, kind: FrameKind, error: PhoneError) {
        self.out.transmits.clear();
        self.out.events.clear();
        self.inbox.clear();
        self.deadline = None;
        let state = std::mem::replace(&mut self.state, State::Over);
        self.state = state.on_send_failed(kind, error);
    }

    /// The time passed [`poll_timeout`](Self::poll_timeout) (an earlier call does nothing).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        let after = self.timeout;
        self.transition(now, |state, out| state.on_timeout(out, after));
    }

    /// The phone stored the link of [`Event::StoreLink`]: its linking information goes out.
    pub(crate) fn handle_link_stored(&mut self, now: Instant) {
        self.transition(now, State::on_link_stored);
        self.drain_inbox(now);
    }

    /// The phone's answer to [`Event::Request`].
    pub(crate) fn handle_answer(&mut self, now: Instant, answer: Answer) {
        self.transition(now, |state, out| state.on_answer(answer, out));
        self.drain_inbox(now);
    }

    /// The next thing to do on the radio or the data channel.
    #[must_use]
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next request for the phone (after the transmits).
    #[must_use]
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due; `None` while the machine waits
    /// for the phone or has ended.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// How the session ended, once it has (and the transmits and events are drained); handed
    /// out once.
    #[must_use]
    pub(crate) fn poll_end(&mut self) -> Option<Result<Outcome, PhoneError>> {
        if !self.out.transmits.is_empty() || !self.out.events.is_empty() {
            return None;
        }
        match std::mem::replace(&mut self.state, State::Over) {
            State::Ended(end) => Some(end),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// What the machine is waiting for, the context of an error reading the data channel.
    pub(crate) fn waiting_for(&self) -> &'static str {
        self.state.waiting_for()
    }

    fn transition(&mut self, now: Instant, f: impl FnOnce(State, &mut Output) -> State) {
        let state = std::mem::replace(&mut self.state, State::Over);
        self.state = f(state, &mut self.out);
        self.deadline = self.state.waits_for_desktop().then(|| now + self.timeout);
    }

    fn drain_inbox(&mut self, now: Instant) {
        while !self.state.waits_for_phone() {
            let Some(input) = self.inbox.pop_front() else {
                return;
            };
            match input {
                // Not message 1: nothing waits for the phone before the handshake.
                Input::Message(bytes) => {
                    self.transition(now, |state, out| state.on_frame(&bytes, out))
                }
                Input::Closed => self.transition(now, State::on_closed),
                Input::Lost(e) => self.transition(now, |state, out| state.on_lost(e, out)),
            }
        }
    }
}
