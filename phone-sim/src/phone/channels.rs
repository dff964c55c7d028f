//! The data channels a session may run on (docs/PROTOCOL.md#ble-data-channel): until the
//! desktop's Noise message 1 arrives, the relay's tunnel and, when the phone offers the CTAP
//! 2.3 BLE channel, its L2CAP listener (real or simulated) both wait; whichever brings message
//! 1 carries the rest of the session and the others are closed. A way in that fails or ends
//! before message 1 is dropped while another is still open (a desktop using the BLE channel
//! never joins the tunnel, and the relay may give up on it), so only the last one's failure
//! reaches the session. Errors of the channel become [`PhoneError`]s with the context the
//! shell names.

use hybrid_channel::{ChannelError, ChannelKind, ChannelListener, DataChannel};

use crate::error::PhoneError;

/// The ways in of one session and, once message 1 arrived, the one it chose.
pub(super) struct Channels {
    /// The relay's tunnel, until message 1 arrives elsewhere.
    tunnel: Option<Box<dyn DataChannel>>,
    /// The BLE channel's listener, until message 1 arrives.
    listener: Option<Box<dyn ChannelListener>>,
    /// A desktop that connected on the BLE channel and has not yet sent message 1.
    connected: Option<Box<dyn DataChannel>>,
    /// The channel that brought message 1.
    chosen: Option<Box<dyn DataChannel>>,
}

/// What one way in produced while message 1 was awaited.
enum Arrival {
    Tunnel(Result<Option<Vec<u8>>, ChannelError>),
    Accepted(Result<Box<dyn DataChannel>, ChannelError>),
    Connected(Result<Option<Vec<u8>>, ChannelError>),
}

impl Channels {
    /// One channel, already chosen (a linked session joins the relay's tunnel only).
    pub(super) fn one(channel: Box<dyn DataChannel>) -> Self {
        Self {
            tunnel: None,
            listener: None,
            connected: None,
            chosen: Some(channel),
        }
    }

    /// The tunnel and the BLE listener, either of which may be missing (not both).
    pub(super) fn either(
        tunnel: Option<Box<dyn DataChannel>>,
        listener: Option<Box<dyn ChannelListener>>,
    ) -> Self {
        Self {
            tunnel,
            listener,
            connected: None,
            chosen: None,
        }
    }

    /// The channel that carries the session, once message 1 has arrived.
    pub(super) fn kind(&self) -> Option<ChannelKind> {
        self.chosen.as_ref().map(|c| c.kind())
    }

    /// Sends one message on the chosen channel.
    pub(super) async fn send(
        &mut self,
        bytes: Vec<u8>,
        context: &'static str,
    ) -> Result<(), PhoneError> {
        let Some(channel) = self.chosen.as_mut() else {
            return Err(PhoneError::Config(format!(
                "{context}: no channel chosen before the desktop's handshake"
            )));
        };
        channel
            .send(bytes)
            .await
            .map_err(|e| channel_error(context, e))
    }

    /// The next message: on the chosen channel, or (before message 1) on whichever way in
    /// brings one first. `Ok(None)` when the desktop ended the channel (the last way in).
    /// Cancel-safe: a desktop that connected stays connected.
    pub(super) async fn recv(
        &mut self,
        context: &'static str,
    ) -> Result<Option<Vec<u8>>, PhoneError> {
        if let Some(channel) = self.chosen.as_mut() {
            return channel.recv().await.map_err(|e| channel_error(context, e));
        }
        loop {
            let arrival = tokio::select! {
                r = recv_on(&mut self.tunnel) => Arrival::Tunnel(r),
                r = accept_on(&self.listener), if self.connected.is_none() => Arrival::Accepted(r),
                r = recv_on(&mut self.connected) => Arrival::Connected(r),
            };
            let others_open = |s: &Self| {
                usize::from(s.tunnel.is_some())
                    + usize::from(s.listener.is_some())
                    + usize::from(s.connected.is_some())
                    > 1
            };
            match arrival {
                Arrival::Accepted(Ok(channel)) => {
                    tracing::debug!("a desktop connected on the Bluetooth channel");
                    self.connected = Some(channel);
                }
                Arrival::Tunnel(Ok(Some(m))) => {
                    let tunnel = self.tunnel.take();
                    self.choose(tunnel).await;
                    return Ok(Some(m));
                }
                Arrival::Connected(Ok(Some(m))) => {
                    let connected = self.connected.take();
                    self.choose(connected).await;
                    return Ok(Some(m));
                }
                Arrival::Tunnel(r) if others_open(self) => {
                    tracing::debug!("the relay's tunnel ended before the desktop's handshake ({}); waiting on the Bluetooth channel", ended(&r));
                    self.tunnel = None;
                }
                Arrival::Accepted(Err(e)) if others_open(self) => {
                    tracing::debug!("the Bluetooth channel stops listening: {e}");
                    self.listener = None;
                }
                Arrival::Connected(r) if others_open(self) => {
                    tracing::debug!(
                        "a desktop on the Bluetooth channel left before its handshake ({})",
                        ended(&r)
                    );
                    self.connected = None;
                }
                Arrival::Tunnel(r) | Arrival::Connected(r) => {
                    return r.map_err(|e| channel_error(context, e));
                }
                Arrival::Accepted(Err(e)) => return Err(channel_error(context, e)),
            }
        }
    }

    /// Closes the chosen channel (or every way in, when none was chosen).
    pub(super) async fn close(&mut self) {
        for c in [&mut self.chosen, &mut self.tunnel, &mut self.connected]
            .into_iter()
            .flatten()
        {
            c.close().await;
        }
        self.listener = None;
    }

    /// `channel` brought message 1: it carries the session; the other ways in close.
    async fn choose(&mut self, channel: Option<Box<dyn DataChannel>>) {
        self.close().await;
        self.chosen = channel;
        if let Some(c) = &self.chosen {
            tracing::debug!(channel = %c.kind(), "the desktop's handshake arrived");
        }
    }
}

async fn recv_on(
    channel: &mut Option<Box<dyn DataChannel>>,
) -> Result<Option<Vec<u8>>, ChannelError> {
    match channel {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

async fn accept_on(
    listener: &Option<Box<dyn ChannelListener>>,
) -> Result<Box<dyn DataChannel>, ChannelError> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn ended(r: &Result<Option<Vec<u8>>, ChannelError>) -> String {
    match r {
        Ok(_) => "closed".into(),
        Err(e) => e.to_string(),
    }
}

/// A relay failure stays a relay error (with what the phone was doing); the BLE channel's are
/// Bluetooth errors.
fn channel_error(context: &'static str, e: ChannelError) -> PhoneError {
    match e {
        ChannelError::Relay(error) => PhoneError::Relay { context, error },
        e => PhoneError::Ble(format!("{context}: {e}")),
    }
}
