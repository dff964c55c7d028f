//! What goes into and comes out of the session machine: its configuration and the link it may
//! offer, the transmits and events it queues (and [`Output`], the queues transitions write
//! to), the answer it expects, and the [`Outcome`] it ends with.

use std::collections::VecDeque;
use std::time::Duration;

use hybrid_protocol::ctap::{CtapError, GetAssertionRequest, MakeCredentialRequest, Status};
use hybrid_protocol::eid::ADVERT_LEN;
use hybrid_protocol::keys::{IdentityKey, LinkSecret};
use hybrid_protocol::tunnel::{ContactId, Domain};

use crate::authenticator::Done;
use crate::medium::AdvertFault;

/// What the one CTAP operation of a session did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A credential was created and stored.
    MadeCredential {
        /// Relying party ID.
        rp_id: String,
        /// The new credential ID.
        credential_id: Vec<u8>,
    },
    /// An assertion was signed.
    GotAssertion {
        /// Relying party ID.
        rp_id: String,
        /// The credential used.
        credential_id: Vec<u8>,
    },
    /// The request was answered with a CTAP error status the protocol expects (the user
    /// declined, no credential, credential excluded).
    Refused {
        /// The status sent.
        status: Status,
    },
    /// authenticatorSelection ended the session.
    Selected,
    /// The desktop shut down without a request.
    NoRequest,
}

/// The result of one served session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What the CTAP operation did.
    pub operation: Operation,
    /// getInfo requests answered along the way.
    pub get_info_served: usize,
    /// The link ID handed to the desktop, if linking info was sent.
    pub link_id: Option<[u8; 8]>,
}

/// What the machine needs besides the keys: the advert's tunnel domain, a deliberate advert
/// fault, and how long to wait for the desktop at each step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionConfig {
    /// The tunnel domain number put in the advert.
    pub(crate) domain: Domain,
    /// A deliberate advert fault (the session then normally times out).
    pub(crate) fault: Option<AdvertFault>,
    /// How long to wait for the desktop's handshake, each request and its shutdown.
    pub(crate) timeout: Duration,
}

/// The linking information a QR session offers the desktop, prepared by the phone: which
/// contact ID, a fresh link ID and its secret, the phone's identity and name. The machine adds
/// the handshake signature, which binds the phone's identity and the desktop's QR key to this
/// session.
pub(crate) struct LinkOffer {
    pub(crate) contact_id: ContactId,
    pub(crate) link_id: [u8; 8],
    pub(crate) link_secret: LinkSecret,
    pub(crate) identity: IdentityKey,
    pub(crate) name: String,
}

/// Something for the shell to do on the radio or the data channel, in order.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Transmit {
    /// Start (or replace) the BLE advert: this service data under the FIDO service UUID.
    Advertise([u8; ADVERT_LEN]),
    /// Stop advertising.
    StopAdvertising,
    /// Send one message on the data channel.
    Send(Frame),
}

/// One message for the data channel, and what it is (for the error if sending it fails).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) bytes: Vec<u8>,
    pub(crate) kind: FrameKind,
}

/// What a [`Frame`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// Noise message 2.
    Handshake,
    /// The post-handshake message (getInfo).
    PostHandshake,
    /// The update with linking information.
    Linking,
    /// A getInfo reply.
    GetInfo,
    /// The answer to the session's one command (its result or its refusal).
    Answer,
    /// The status for a request the phone rejects before failing the session.
    ErrorReply,
}

impl FrameKind {
    /// What the phone was doing when sending this failed.
    pub(crate) fn context(self) -> &'static str {
        match self {
            Self::Handshake => "sending Noise message 2",
            Self::PostHandshake => "sending the post-handshake message",
            Self::Linking => "sending linking info",
            Self::GetInfo | Self::Answer | Self::ErrorReply => "sending the CTAP response",
        }
    }
}

/// A request for the phone itself; the shell answers it with an input.
#[derive(Debug)]
#[must_use]
pub(crate) enum Event {
    /// Store the offered link (with this link ID) before its linking information is sent,
    /// then call [`PhoneSession::handle_link_stored`](super::PhoneSession::handle_link_stored).
    StoreLink { link_id: [u8; 8] },
    /// The desktop's one command: ask the user, run it, and call
    /// [`PhoneSession::handle_answer`](super::PhoneSession::handle_answer).
    Request(Box<Command>),
}

/// A command the phone answers after asking its user.
#[derive(Debug)]
pub(crate) enum Command {
    MakeCredential(MakeCredentialRequest),
    GetAssertion(GetAssertionRequest),
}

/// The phone's answer to a [`Command`]: the response CBOR and what it did, or the CTAP error.
pub(crate) type Answer = Result<(Vec<u8>, Done), CtapError>;

/// What transitions write to.
#[derive(Default)]
pub(crate) struct Output {
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<Event>,
}

impl Output {
    pub(super) fn transmit(&mut self, t: Transmit) {
        self.transmits.push_back(t);
    }

    pub(super) fn send(&mut self, bytes: Vec<u8>, kind: FrameKind) {
        self.transmit(Transmit::Send(Frame { bytes, kind }));
    }

    pub(super) fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }
}
