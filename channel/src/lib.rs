//! The data channel of one hybrid session (docs/PROTOCOL.md#flow-qr, #ble-data-channel): after the advert, the two ends
//! exchange Noise messages and then encrypted frames over *a* channel, and nothing above this
//! crate knows which one. [`DataChannel`] is that seam; it is implemented by the relay's
//! WebSocket tunnel ([`tunnel_client::Tunnel`]), by a direct LE L2CAP connection-oriented
//! channel ([`l2cap`], CTAP 2.3, behind the `l2cap` feature), and by a simulated L2CAP over
//! Unix sockets beside the simulated medium's advert file ([`sim`]). The byte-stream channels
//! share one framing ([`StreamChannel`], `hybrid_protocol::l2cap`).

use std::future::Future;
use std::pin::Pin;

use thiserror::Error;
use tunnel_client::{RelayError, Tunnel};

#[cfg(feature = "l2cap")]
pub mod l2cap;
pub mod sim;
mod stream;

pub use stream::StreamChannel;

/// A boxed future, so that [`DataChannel`] can be used as `Box<dyn DataChannel>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which transport carries a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// The WebSocket tunnel through a relay (CTAP 2.2 hybrid).
    Relay,
    /// A direct BLE L2CAP channel to the phone (CTAP 2.3), no relay and no internet.
    Ble,
}

impl ChannelKind {
    /// The name used in progress output, JSON events and settings: `relay` or `ble`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::Ble => "ble",
        }
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a channel failed.
#[derive(Debug, Error)]
pub enum ChannelError {
    /// The relay tunnel failed (its own error says how).
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The BLE channel (real or simulated) could not be opened, or broke.
    #[error("Bluetooth channel {doing}: {error}")]
    Ble {
        /// What was being done, e.g. "connecting to PSM 0x0080".
        doing: String,
        /// The socket error.
        error: std::io::Error,
    },
    /// The peer broke the channel's framing (an oversized or cut-off message).
    #[error("Bluetooth channel: {0}")]
    Framing(hybrid_protocol::Error),
}

impl ChannelError {
    pub(crate) fn ble(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let doing = doing.into();
        move |error| Self::Ble { doing, error }
    }
}

/// Messages in, messages out, close: what the session code needs from a transport. Each
/// `send` carries one protocol message (a Noise message or one encrypted frame) and each
/// `recv` returns one, whatever the transport does underneath.
pub trait DataChannel: Send {
    /// Which transport this is.
    fn kind(&self) -> ChannelKind;
    /// Sends one message.
    fn send(&mut self, message: Vec<u8>) -> BoxFuture<'_, Result<(), ChannelError>>;
    /// The next message; `Ok(None)` when the peer ended the channel cleanly. Cancel-safe:
    /// dropping the future loses nothing.
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, ChannelError>>;
    /// Ends the channel, politely where the transport has a way to; errors are ignored.
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

impl DataChannel for Tunnel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Relay
    }

    fn send(&mut self, message: Vec<u8>) -> BoxFuture<'_, Result<(), ChannelError>> {
        Box::pin(async move { Ok(Self::send(self, message).await?) })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, ChannelError>> {
        Box::pin(async move { Ok(Self::recv(self).await?) })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(Self::close(self))
    }
}

/// The phone's side of the BLE channel: something listening on a PSM.
pub trait ChannelListener: Send + Sync {
    /// The PSM to announce in the advert's suffix.
    fn psm(&self) -> u16;
    /// The next desktop that connects.
    fn accept(&self) -> BoxFuture<'_, Result<Box<dyn DataChannel>, ChannelError>>;
}

impl ChannelListener for sim::SimListener {
    fn psm(&self) -> u16 {
        Self::psm(self)
    }

    fn accept(&self) -> BoxFuture<'_, Result<Box<dyn DataChannel>, ChannelError>> {
        Box::pin(async move { Ok(Box::new(Self::accept(self).await?) as Box<dyn DataChannel>) })
    }
}

#[cfg(feature = "l2cap")]
impl ChannelListener for l2cap::Listener {
    fn psm(&self) -> u16 {
        Self::psm(self)
    }

    fn accept(&self) -> BoxFuture<'_, Result<Box<dyn DataChannel>, ChannelError>> {
        Box::pin(async move {
            let (channel, peer) = Self::accept(self).await?;
            tracing::debug!(%peer, "a desktop connected on the BLE channel");
            Ok(Box::new(channel) as Box<dyn DataChannel>)
        })
    }
}
