//! The WebSocket side (docs/PROTOCOL.md#tunnel-relay, #contact): one task per tunnel owns both
//! sockets. The first socket (`/cable/new`, or the client's `/cable/contact`) waits for its joiner,
//! queueing what it sends (bounded per tunnel by `max_queued_messages` and `max_prejoin_bytes`, and
//! over all tunnels by the `max_queued_bytes` budget: [`Held`]); `/cable/connect` hands its socket
//! over; then binary messages are
//! relayed verbatim both ways, never parsed, under the message-count, size, idle and lifetime
//! limits, and a close on one side closes the other with a meaningful code. The socket helpers
//! here (upgrade, classify, close) also serve the contact channel's registration socket
//! (`contact::socket`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::TunnelId;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::info;

use crate::lent::{Io, Lent};
use crate::metrics::CloseReason;
use crate::state::{reached, ConnGuard, Joiner, Phase, Shared, Ws};

/// How long a close handshake may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a tunnel ends: the reason (metrics, logs) and the close code for each side.
#[derive(Clone, Copy, Debug)]
pub(crate) struct End {
    pub(crate) reason: CloseReason,
    pub(crate) code: CloseCode,
    pub(crate) text: &'static str,
}

impl End {
    pub(crate) const fn new(reason: CloseReason, code: CloseCode, text: &'static str) -> Self {
        Self { reason, code, text }
    }
    const NORMAL: Self = Self::new(CloseReason::Normal, CloseCode::Normal, "peer closed");
    pub(crate) const PEER_GONE: Self =
        Self::new(CloseReason::PeerGone, CloseCode::Away, "peer went away");
    const LIFETIME: Self = Self::new(
        CloseReason::Lifetime,
        CloseCode::Policy,
        "tunnel lifetime exceeded",
    );
    const IDLE: Self = Self::new(CloseReason::Idle, CloseCode::Policy, "tunnel idle too long");
    const TOO_MANY: Self = Self::new(
        CloseReason::TooManyMessages,
        CloseCode::Policy,
        "too many messages",
    );
    const TOO_BIG: Self = Self::new(CloseReason::TooBig, CloseCode::Size, "message too big");
    const PREJOIN: Self = Self::new(
        CloseReason::TooManyMessages,
        CloseCode::Policy,
        "too much data before the peer arrived",
    );
    const BUSY: Self = Self::new(
        CloseReason::Busy,
        CloseCode::Again,
        "relay busy; try again later",
    );
    const TEXT: Self = Self::new(
        CloseReason::ProtocolViolation,
        CloseCode::Unsupported,
        "text frames are not allowed",
    );
    const PROTOCOL: Self = Self::new(
        CloseReason::ProtocolViolation,
        CloseCode::Protocol,
        "websocket protocol error",
    );
    pub(crate) const SHUTDOWN: Self = Self::new(
        CloseReason::Shutdown,
        CloseCode::Away,
        "server shutting down",
    );
}

/// One message read from a socket, classified.
pub(crate) enum Incoming {
    Data(Vec<u8>),
    /// Ping or pong (tungstenite answers pings itself).
    Control,
    /// A close frame (with its code) or the end of the stream.
    Closed(Option<CloseCode>),
    Violation(End),
}

pub(crate) fn classify(item: Option<Result<Message, WsError>>) -> Incoming {
    match item {
        Some(Ok(Message::Binary(b))) => Incoming::Data(b),
        Some(Ok(Message::Text(_))) => Incoming::Violation(End::TEXT),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Control,
        Some(Ok(Message::Close(frame))) => {
            Incoming::Closed(Some(frame.map_or(CloseCode::Normal, |f| f.code)))
        }
        Some(Err(WsError::Capacity(_))) => Incoming::Violation(End::TOO_BIG),
        Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
            Incoming::Closed(None)
        }
        Some(Err(WsError::Protocol(_) | WsError::Utf8)) => Incoming::Violation(End::PROTOCOL),
        Some(Err(_)) | None => Incoming::Closed(None),
    }
}

/// The end for the peer of a side that closed with `code`: application codes (3000–4999)
/// pass through, anything else becomes a normal close.
pub(crate) fn peer_end(code: Option<CloseCode>) -> (End, CloseCode) {
    match code {
        None => (End::PEER_GONE, CloseCode::Away),
        Some(c) => {
            let n = u16::from(c);
            let forwarded = if (3000..5000).contains(&n) {
                c
            } else {
                CloseCode::Normal
            };
            (End::NORMAL, forwarded)
        }
    }
}

/// How many bytes of frames a socket's writer collects before it writes them out, when the
/// relay feeds it a batch (messages that arrived together) and flushes once at the end: one
/// write system call per batch instead of one per message. A single `send` writes at once
/// whatever this is. Kept at or under `max_message_size`, so the collected bytes plus the next
/// frame stay under `max_write_buffer_size`.
const WRITE_BATCH: usize = 8 * 1024;

pub(crate) fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig {
        max_message_size: Some(max_message),
        max_frame_size: Some(max_message),
        // A small batch, not tungstenite's 128 KiB write buffer per socket.
        write_buffer_size: WRITE_BATCH.min(max_message),
        max_write_buffer_size: max_message.saturating_mul(2).saturating_add(4096),
        ..WebSocketConfig::default()
    }
}

pub(crate) async fn upgrade(on: OnUpgrade, max_message: usize) -> Option<Ws> {
    let upgraded = on.await.ok()?;
    Some(
        WebSocketStream::from_raw_socket(
            Lent::new(TokioIo::new(upgraded)),
            Role::Server,
            Some(ws_config(max_message)),
        )
        .await,
    )
}

/// Completes a close the peer started: flushes tungstenite's close reply, then closes this
/// side's TCP connection at once (RFC 6455 §5.5.1, §7.1.1: the server closes first), whatever
/// the tunnel's other side is doing.
///
/// The closing futures are boxed: they run once per socket, and inline they would make every
/// idle tunnel's task larger.
pub(crate) async fn closed_by_peer(ws: &mut Ws) {
    Box::pin(async {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            // A server's read returns the end of the stream once the reply is flushed.
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        shut(ws).await;
    })
    .await;
}

/// Sends a close frame, waits (bounded) for the peer's reply, then closes this side's TCP
/// connection, without waiting for anything on the tunnel's other side.
pub(crate) async fn close(ws: &mut Ws, code: CloseCode, text: &'static str) {
    Box::pin(async {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let frame = CloseFrame {
                code,
                reason: text.into(),
            };
            if ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
        shut(ws).await;
    })
    .await;
}

/// Shuts down the socket's sending side (a FIN, after TLS' close_notify), so the peer reads
/// the end of the stream now rather than when the tunnel's task drops the socket.
async fn shut(ws: &mut Ws) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.get_mut().shutdown()).await;
}

/// Removes the tunnel's table slot when its task ends, however it ends.
struct SlotGuard {
    shared: Arc<Shared>,
    id: TunnelId,
    gen: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.shared.state().table.handle_closed(self.id, self.gen);
    }
}

/// A short, non-secret tag for logs: the first 4 hex digits of the tunnel ID.
fn tag(id: &TunnelId) -> String {
    hex::encode_upper(&id.0[..2])
}

/// What a first socket that sends before its peer arrives costs beyond its queue, charged to
/// the queued-bytes budget: this fixed part (tungstenite's 4 KiB read chunk and its WebSocket
/// state), plus twice `max_message_size` for the read buffer, which may hold a partial frame
/// of that size and grows by doubling ([`waiting_socket_cost`]). Measured with `loadgen
/// flood` (BENCHMARKS.md).
const WAITING_SOCKET: usize = 8 * 1024;

/// The budget charge for a first socket that has spoken before its peer arrived.
fn waiting_socket_cost(max_message_size: usize) -> usize {
    WAITING_SOCKET.saturating_add(max_message_size.saturating_mul(2))
}

/// What a waiting first socket holds of the queued-bytes budget (`limits.max_queued_bytes`):
/// its read buffers once it has spoken, plus every message it queued. Given back when the
/// queue has been delivered or the tunnel ends, however it ends.
struct Held {
    shared: Arc<Shared>,
    bytes: usize,
}

impl Held {
    /// Charges `n` more bytes; false (nothing charged) if the budget is full.
    fn add(&mut self, n: usize) -> bool {
        let ok = self.shared.charge_queued(n);
        if ok {
            self.bytes += n;
        }
        ok
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shared.release_queued(self.bytes);
    }
}

/// What ended a `/new` socket's bare wait.
enum Woke {
    /// The joiner arrived (or, `None`, its connection failed). Boxed: the WebSocket would
    /// make every waiting tunnel's task larger.
    Joiner(Option<Box<Joiner>>),
    /// The socket sent this many bytes (0: it went away).
    Read(usize),
    /// The lifetime ran out or the server is closing.
    End(End),
}

/// Bytes read from a waiting socket before its WebSocket state is built.
const HEAD: usize = 64;

/// The first socket of a tunnel: waits for the joiner, then relays.
///
/// A waiting socket usually sends nothing (the desktop speaks first), so it waits as a bare
/// socket: no WebSocket state and no read buffer, which is most of what an idle tunnel would
/// otherwise cost. Its WebSocket state is built when the joiner arrives, or when it sends
/// something (early messages are then read, queued and relayed in order).
pub(crate) async fn first(
    guard: Arc<ConnGuard>,
    on: OnUpgrade,
    id: TunnelId,
    gen: u64,
    mut joiner: oneshot::Receiver<Joiner>,
    signal: bool,
) {
    let shared = guard.shared().clone();
    let _slot = SlotGuard {
        shared: shared.clone(),
        id,
        gen,
    };
    let started = Instant::now();
    let deadline = started + shared.config.limits.tunnel_lifetime;
    let Ok(upgraded) = on.await else {
        return;
    };
    let mut io = TokioIo::new(upgraded);
    let mut phase = shared.phase.clone();
    let mut head = [0u8; HEAD];
    let woke = tokio::select! {
        j = &mut joiner => Woke::Joiner(j.ok().map(Box::new)),
        r = io.read(&mut head) => Woke::Read(r.unwrap_or(0)),
        () = sleep_until(deadline) => Woke::End(End::LIFETIME),
        () = reached(&mut phase, Phase::Closing) => Woke::End(End::SHUTDOWN),
    };
    let part = match woke {
        Woke::Read(0) => {
            // Gone without a close frame: nothing to answer.
            finish(&shared, id, started, End::PEER_GONE, false, (0, 0));
            return;
        }
        Woke::Read(n) => head[..n].to_vec(),
        Woke::Joiner(_) | Woke::End(_) => Vec::new(),
    };
    let config = Some(ws_config(shared.config.limits.max_message_size));
    let ws = WebSocketStream::from_partially_read(Lent::new(io), part, Role::Server, config).await;
    // Boxed: a waiting tunnel's task then does not carry the WebSocket's state.
    Box::pin(awake(
        shared, id, started, deadline, ws, woke, joiner, signal, phase,
    ))
    .await;
}

/// The rest of a tunnel once its first socket has a WebSocket: waits (if `woke` says the
/// socket spoke first), then relays.
#[allow(clippy::too_many_arguments)]
async fn awake(
    shared: Arc<Shared>,
    id: TunnelId,
    started: Instant,
    deadline: Instant,
    mut ws: Ws,
    woke: Woke,
    mut joiner: oneshot::Receiver<Joiner>,
    signal: bool,
    mut phase: tokio::sync::watch::Receiver<Phase>,
) {
    let limits = &shared.config.limits;
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    let mut queued_bytes = 0usize;
    let mut held = Held {
        shared: shared.clone(),
        bytes: 0,
    };
    let mut sent: u32 = 0;
    // The WebSocket's bytes so far: those read before it was built, and the frames of the
    // messages it has delivered ([`Side`]).
    let (given, mut consumed) = match woke {
        Woke::Read(n) => (n as u64, 0u64),
        _ => (0, 0),
    };
    let outcome = match woke {
        Woke::Joiner(Some(j)) => Ok(*j),
        Woke::Joiner(None) => Err(End::PEER_GONE),
        Woke::End(end) => Err(end),
        Woke::Read(_) if !held.add(waiting_socket_cost(limits.max_message_size)) => Err(End::BUSY),
        Woke::Read(_) => loop {
            tokio::select! {
                j = &mut joiner => match j {
                    Ok(j) => break Ok(j),
                    Err(_) => break Err(End::PEER_GONE),
                },
                m = ws.next() => match classify(counted(m, &mut consumed)) {
                    Incoming::Data(b) => {
                        sent += 1;
                        if sent > limits.messages_per_side
                            || queue.len() >= limits.max_queued_messages as usize
                        {
                            break Err(End::TOO_MANY);
                        }
                        queued_bytes += b.len();
                        if queued_bytes > limits.max_prejoin_bytes {
                            break Err(End::PREJOIN);
                        }
                        if !held.add(b.len()) {
                            break Err(End::BUSY);
                        }
                        queue.push_back(b);
                    }
                    Incoming::Control => {}
                    Incoming::Closed(code) => {
                        closed_by_peer(&mut ws).await;
                        finish(&shared, id, started, peer_end(code).0, false, (sent, 0));
                        return;
                    }
                    Incoming::Violation(end) => break Err(end),
                },
                () = sleep_until(deadline) => break Err(End::LIFETIME),
                () = reached(&mut phase, Phase::Closing) => break Err(End::SHUTDOWN),
            }
        },
    };
    let joiner = match outcome {
        Ok(j) => {
            shared.metrics.time_to_pair.observe(started.elapsed());
            j
        }
        Err(end) => {
            // Give the budget back before the (bounded) close handshake.
            drop(held);
            drop(queue);
            close(&mut ws, end.code, end.text).await;
            finish(&shared, id, started, end, false, (sent, 0));
            return;
        }
    };
    let mut pair = Pair {
        shared: shared.clone(),
        a: Side::Live {
            ws: Box::new(ws),
            given,
            consumed,
        },
        b: Side::Live {
            ws: Box::new(joiner.ws),
            given: 0,
            consumed: 0,
        },
        sent: [sent, 0],
        deadline,
    };
    // Boxed: a waiting tunnel's task then does not carry the relay loop's state.
    let end = Box::pin(pair.relay(queue, held, signal, &mut phase)).await;
    let sent = pair.sent;
    finish(&shared, id, started, end, true, (sent[0], sent[1]));
}

/// The second socket (`/cable/connect`): hands itself to the waiting task.
pub(crate) async fn join(guard: Arc<ConnGuard>, on: OnUpgrade, joiner: oneshot::Sender<Joiner>) {
    let max = guard.shared().config.limits.max_message_size;
    let Some(ws) = upgrade(on, max).await else {
        // Dropping `joiner` tells the waiting side its peer is gone.
        return;
    };
    if let Err(mut j) = joiner.send(Joiner { ws, _guard: guard }) {
        close(&mut j.ws, CloseCode::Away, "peer went away").await;
    }
}

fn finish(
    shared: &Shared,
    id: TunnelId,
    started: Instant,
    end: End,
    paired: bool,
    sent: (u32, u32),
) {
    shared.metrics.closed(end.reason);
    shared.metrics.tunnel_lifetime.observe(started.elapsed());
    if paired && end.reason == CloseReason::Normal && sent.0 > 0 && sent.1 > 0 {
        shared.metrics.ceremony();
    }
    info!(
        tunnel = %tag(&id),
        outcome = end.reason.label(),
        paired,
        first_sent = sent.0,
        joiner_sent = sent.1,
        ms = started.elapsed().as_millis() as u64,
        "tunnel closed"
    );
}

/// One write to a socket of a pair.
enum Write {
    /// A message, written out at once.
    Send(Vec<u8>),
    /// A message, collected into the current batch.
    Feed(Vec<u8>),
    /// The end of a batch.
    Flush,
}

/// How long a paired tunnel goes without a message before its sockets drop their WebSocket
/// state ([`Side::quiet`]). A hybrid tunnel speaks in bursts (the handshake, a request, its
/// answer, with a person's touch in between), so most of a paired tunnel's life is quiet;
/// building the state again costs a few microseconds per burst.
const QUIET: Duration = Duration::from_secs(1);

/// The size of the frame that carried a message a server read: the header (2 bytes, the
/// extended length, the 4-byte mask every client frame carries) and the payload. Messages
/// that came in several frames have larger headers than this: their socket then looks as if
/// it held unread bytes, so it keeps its WebSocket state (the safe side).
fn frame_len(m: &Option<Result<Message, WsError>>) -> u64 {
    let n = match m {
        Some(Ok(Message::Binary(b) | Message::Ping(b) | Message::Pong(b))) => b.len(),
        Some(Ok(Message::Text(t))) => t.len(),
        _ => return 0,
    };
    let extended = match n {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    (2 + extended + 4 + n) as u64
}

/// Adds the frame of `m` to `consumed`, and passes `m` on.
fn counted(
    m: Option<Result<Message, WsError>>,
    consumed: &mut u64,
) -> Option<Result<Message, WsError>> {
    *consumed += frame_len(&m);
    m
}

/// One socket of a paired tunnel.
enum Side {
    /// A WebSocket, with the bytes it was given before it read anything itself and the bytes
    /// of the frames it has delivered: when those add up to everything read from the
    /// connection, it holds no partial frame.
    /// Boxed, so a quiet side keeps none of the WebSocket's size.
    Live {
        ws: Box<Ws>,
        given: u64,
        consumed: u64,
    },
    /// A quiet socket: the bare connection, without WebSocket state or buffers.
    Bare(Io),
    /// Only while switching between the two.
    Gone,
}

impl Side {
    /// The next message, building the WebSocket again first if the socket was quiet and has
    /// spoken. Cancel safe: a quiet socket's read takes bytes only when it completes, and the
    /// WebSocket is built in the same poll.
    async fn next(&mut self, max_message: usize) -> Option<Result<Message, WsError>> {
        if let Self::Bare(io) = self {
            let mut head = [0u8; HEAD];
            let n = match io.read(&mut head).await {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => return Some(Err(WsError::Io(e))),
            };
            self.wake(head[..n].to_vec(), max_message).await;
        }
        match self {
            Self::Live { ws, consumed, .. } => counted(ws.next().await, consumed),
            Self::Bare(_) | Self::Gone => None,
        }
    }

    /// The WebSocket, built again if the socket was quiet.
    async fn live(&mut self, max_message: usize) -> Option<&mut Ws> {
        if let Self::Bare(_) = self {
            self.wake(Vec::new(), max_message).await;
        }
        match self {
            Self::Live { ws, .. } => Some(&mut **ws),
            Self::Bare(_) | Self::Gone => None,
        }
    }

    async fn wake(&mut self, part: Vec<u8>, max_message: usize) {
        let Self::Bare(io) = std::mem::replace(self, Self::Gone) else {
            return;
        };
        let given = part.len() as u64;
        let config = Some(ws_config(max_message));
        let ws =
            WebSocketStream::from_partially_read(Lent::new(io), part, Role::Server, config).await;
        *self = Self::Live {
            ws: Box::new(ws),
            given,
            consumed: 0,
        };
    }

    /// Drops the WebSocket state of a quiet socket, keeping the bare connection, when that
    /// loses nothing: no partial frame read, nothing left to write (a pong, a batch).
    fn quiet(&mut self) {
        let Self::Live {
            ws,
            given,
            consumed,
        } = self
        else {
            return;
        };
        if ws.get_ref().bytes_read() + *given != *consumed {
            return;
        }
        if !matches!(ws.flush().now_or_never(), Some(Ok(()))) {
            return;
        }
        if let Some(io) = ws.get_mut().take() {
            *self = Self::Bare(io);
        }
    }
}

/// Completes a close the peer of `side` started ([`closed_by_peer`]).
async fn side_closed_by_peer(side: &mut Side) {
    if let Side::Live { ws, .. } = side {
        closed_by_peer(ws).await;
    }
}

/// Closes `side` ([`close`]), building its WebSocket again if it was quiet.
async fn close_side(side: &mut Side, max_message: usize, code: CloseCode, text: &'static str) {
    if let Some(ws) = side.live(max_message).await {
        close(ws, code, text).await;
    }
}

/// A paired tunnel: `a` is the first socket, `b` the joiner.
struct Pair {
    shared: Arc<Shared>,
    a: Side,
    b: Side,
    sent: [u32; 2],
    deadline: Instant,
}

impl Pair {
    async fn relay(
        &mut self,
        queue: VecDeque<Vec<u8>>,
        held: Held,
        signal: bool,
        phase: &mut tokio::sync::watch::Receiver<Phase>,
    ) -> End {
        let limits = self.shared.config.limits.clone();
        if signal {
            if let Err(end) = self.forward(true, vec![0]).await {
                return end;
            }
        }
        for m in queue {
            let n = m.len();
            if let Err(end) = self.forward(false, m).await {
                return end;
            }
            self.shared.metrics.relayed(n);
        }
        drop(held);
        // Timers are set up once: the idle timer is re-armed only when it fires early, so a
        // relayed message costs no timer-wheel work.
        let mut last_message = Instant::now();
        let max = limits.max_message_size;
        let lifetime = sleep_until(self.deadline);
        let idle = sleep_until(last_message + limits.idle_timeout);
        // Set up once like `idle`; parked at the deadline once both sockets are quiet, and
        // set again by the next message.
        let quiet = sleep_until(last_message + QUIET);
        let mut quiet_parked = false;
        tokio::pin!(lifetime, idle, quiet);
        let closing = reached(phase, Phase::Closing);
        tokio::pin!(closing);
        // A message read while collecting a batch that is not data: handled next, after the
        // batch has been written.
        let mut carried: Option<(bool, Incoming)> = None;
        loop {
            let (from_a, item) = if let Some(c) = carried.take() {
                c
            } else {
                tokio::select! {
                m = self.a.next(max) => (true, classify(m)),
                m = self.b.next(max) => (false, classify(m)),
                () = &mut lifetime => return self.close_both(End::LIFETIME).await,
                () = &mut idle => {
                    let due = last_message + limits.idle_timeout;
                    if due <= Instant::now() {
                        return self.close_both(End::IDLE).await;
                    }
                    idle.as_mut().reset(due);
                    continue;
                }
                () = &mut quiet, if !quiet_parked => {
                    let due = last_message + QUIET;
                    if due <= Instant::now() {
                        self.a.quiet();
                        self.b.quiet();
                        quiet_parked = true;
                    } else {
                        quiet.as_mut().reset(due);
                    }
                    continue;
                }
                () = &mut closing => return self.close_both(End::SHUTDOWN).await,
                }
            };
            let side = usize::from(!from_a);
            match item {
                Incoming::Data(mut m) => {
                    // Every message the socket has already delivered goes into one write to
                    // the other side: fed one by one (each counted against the limit), then
                    // flushed once, and counted in the metrics once.
                    let (mut messages, mut bytes) = (0u64, 0usize);
                    let fed = loop {
                        self.sent[side] += 1;
                        if self.sent[side] > limits.messages_per_side {
                            break Err(None);
                        }
                        let n = m.len();
                        if let Err(end) = self.feed(!from_a, m).await {
                            break Err(Some(end));
                        }
                        messages += 1;
                        bytes += n;
                        let from = if from_a { &mut self.a } else { &mut self.b };
                        match from.next(max).now_or_never() {
                            None => break Ok(()),
                            Some(next) => match classify(next) {
                                Incoming::Data(next) => m = next,
                                other => {
                                    carried = Some((from_a, other));
                                    break Ok(());
                                }
                            },
                        }
                    };
                    last_message = Instant::now();
                    if quiet_parked {
                        quiet.as_mut().reset(last_message + QUIET);
                        quiet_parked = false;
                    }
                    let written = match fed {
                        Ok(()) => self.flush(!from_a).await,
                        Err(None) => {
                            // Deliver what was fed before the limit, then close.
                            let _ = self.flush(!from_a).await;
                            self.shared.metrics.relayed_batch(messages, bytes);
                            return self.close_both(End::TOO_MANY).await;
                        }
                        Err(Some(end)) => Err(end),
                    };
                    self.shared.metrics.relayed_batch(messages, bytes);
                    if let Err(end) = written {
                        return end;
                    }
                }
                Incoming::Control => {}
                Incoming::Closed(code) => {
                    let (end, code) = peer_end(code);
                    return if from_a {
                        tokio::join!(
                            side_closed_by_peer(&mut self.a),
                            close_side(&mut self.b, max, code, end.text)
                        );
                        end
                    } else {
                        tokio::join!(
                            side_closed_by_peer(&mut self.b),
                            close_side(&mut self.a, max, code, end.text)
                        );
                        end
                    };
                }
                Incoming::Violation(end) => return self.close_both(end).await,
            }
        }
    }

    /// Sends `m` to `a` (if `to_a`) or `b`. A peer that stops reading cannot hold the tunnel
    /// past its lifetime or the idle timeout: the send gives up then and both sides close.
    /// On failure the tunnel has been closed and the error says how it ended.
    async fn forward(&mut self, to_a: bool, m: Vec<u8>) -> Result<(), End> {
        self.write(to_a, Write::Send(m)).await
    }

    /// Hands `m` to `a` (if `to_a`) or `b` without flushing: the writer sends it once it
    /// holds [`WRITE_BATCH`] bytes, or at the [`Pair::flush`] that ends the batch. Fails
    /// like [`Pair::forward`].
    async fn feed(&mut self, to_a: bool, m: Vec<u8>) -> Result<(), End> {
        self.write(to_a, Write::Feed(m)).await
    }

    /// Writes out what [`Pair::feed`] handed to `a` (if `to_a`) or `b`. Fails like
    /// [`Pair::forward`].
    async fn flush(&mut self, to_a: bool) -> Result<(), End> {
        self.write(to_a, Write::Flush).await
    }

    async fn write(&mut self, to_a: bool, w: Write) -> Result<(), End> {
        let limits = &self.shared.config.limits;
        let stall = self.deadline.min(Instant::now() + limits.idle_timeout);
        let side = if to_a { &mut self.a } else { &mut self.b };
        let Some(to) = side.live(limits.max_message_size).await else {
            return Err(if to_a {
                self.close_b(End::PEER_GONE, CloseCode::Away).await
            } else {
                self.close_a(End::PEER_GONE, CloseCode::Away).await
            });
        };
        let done = match w {
            Write::Send(m) => tokio::time::timeout_at(stall, to.send(Message::Binary(m))).await,
            Write::Feed(m) => tokio::time::timeout_at(stall, to.feed(Message::Binary(m))).await,
            Write::Flush => tokio::time::timeout_at(stall, to.flush()).await,
        };
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(if to_a {
                self.close_b(End::PEER_GONE, CloseCode::Away).await
            } else {
                self.close_a(End::PEER_GONE, CloseCode::Away).await
            }),
            Err(_) => {
                let end = if Instant::now() >= self.deadline {
                    End::LIFETIME
                } else {
                    End::IDLE
                };
                Err(self.close_both(end).await)
            }
        }
    }

    async fn close_a(&mut self, end: End, code: CloseCode) -> End {
        let max = self.shared.config.limits.max_message_size;
        close_side(&mut self.a, max, code, end.text).await;
        end
    }

    async fn close_b(&mut self, end: End, code: CloseCode) -> End {
        let max = self.shared.config.limits.max_message_size;
        close_side(&mut self.b, max, code, end.text).await;
        end
    }

    async fn close_both(&mut self, end: End) -> End {
        let max = self.shared.config.limits.max_message_size;
        tokio::join!(
            close_side(&mut self.a, max, end.code, end.text),
            close_side(&mut self.b, max, end.code, end.text)
        );
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_pass_application_codes_only() {
        assert_eq!(
            peer_end(Some(CloseCode::from(4000))).1,
            CloseCode::from(4000)
        );
        assert_eq!(peer_end(Some(CloseCode::Away)).1, CloseCode::Normal);
        assert_eq!(peer_end(None).1, CloseCode::Away);
    }
}
