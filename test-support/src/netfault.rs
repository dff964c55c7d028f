//! A fault-injecting TCP proxy for tests: it sits on loopback between a client (the bridge, a
//! phone) and a server (the relay) and copies bytes both ways, each direction under faults the
//! test sets and changes while the connection runs. The faults are what a bad network does to
//! a TCP stream seen from its ends: added latency (fixed plus jitter, order kept), whole writes
//! dropped with a probability drawn from a seeded RNG the test passes in (this corrupts the
//! stream, as loss inside one would if TCP did not repair it), a blackhole (bytes and the end
//! of the stream vanish, nothing is reset, the connection stays open), a reset (`SO_LINGER` 0
//! then close: both ends get an RST), a stalled direction (nothing is read from its source, so
//! its sender fills its buffers) and a slow reader (small reads with pauses between them).
//!
//! Faults change in two ways: at once for every connection ([`FaultProxy::set`],
//! [`FaultProxy::reset_all`]), or at a stage of one connection ([`FaultProxy::at`]): when its
//! request line is read, after a number of bytes, or after a number of WebSocket data messages
//! in a direction. Counting messages reads the stream's framing (the HTTP head, then frame
//! headers) and nothing else, so a stage such as "the Noise handshake's first message has
//! crossed" is exact however the bytes were chunked. A rule can be limited to connections
//! whose request path starts with a prefix (`/cable/new`, `/cable/connect`). A rule can also
//! wake the test ([`Step::Notify`]): with a stall in both directions set at the same stage,
//! the connection waits there while the test does something to the server (restarts it). The
//! proxy reads
//! a connection's first line (up to 4 KiB) before it forwards anything, so it serves protocols
//! whose client speaks first in lines, as HTTP does.
//!
//! A test that wants "the relay is there but its handshake never completes" blackholes both
//! directions from [`Trigger::Start`]; "unreachable" needs no proxy, only a port nobody
//! listens on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Which way bytes travel through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (requests, the bridge's messages to the relay).
    Up,
    /// Server to client.
    Down,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Self::Up => 0,
            Self::Down => 1,
        }
    }
}

/// What happens to the bytes of one direction. The default forwards them untouched.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Added to every write's delivery.
    pub latency: Duration,
    /// A further delay drawn uniformly from `0..jitter` per write; writes keep their order.
    pub jitter: Duration,
    /// Probability that one write (what one read from the source returned) is dropped.
    pub loss: f64,
    /// Bytes and the end of the stream are read and thrown away; nothing is reset.
    pub blackhole: bool,
    /// Nothing is read from the source until this is cleared.
    pub stall: bool,
    /// Read in small chunks with a pause after each.
    pub slow_reader: Option<SlowReader>,
}

/// A reader that takes `chunk` bytes at a time and pauses `pause` after each read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowReader {
    /// Largest read.
    pub chunk: usize,
    /// Pause after each read.
    pub pause: Duration,
}

/// When a rule of [`FaultProxy::at`] fires on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Once the request line has been read, before anything is forwarded.
    Start,
    /// Once this many bytes have been forwarded in the direction.
    Bytes(Direction, u64),
    /// Once this many WebSocket data messages (text, binary; not control frames) have
    /// crossed in the direction, after the HTTP upgrade.
    Messages(Direction, u64),
}

/// What a rule does when it fires.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Sets one direction's faults on that connection.
    Set(Direction, Faults),
    /// Resets that connection (an RST to both ends).
    Reset,
    /// Wakes the test waiting on the [`Signal`], e.g. to restart the server at this stage
    /// (with a stall set in both directions by the same rule, the connection waits for it).
    Notify(Signal),
}

/// What a [`Step::Notify`] wakes: the test waits on [`Signal::fired`]. Clones share one
/// signal; a notification sent before anyone waits is kept for the first wait.
#[derive(Clone, Debug, Default)]
pub struct Signal(Arc<tokio::sync::Notify>);

impl Signal {
    /// A signal nobody has fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns once a rule has fired the signal.
    pub async fn fired(&self) {
        self.0.notified().await;
    }
}

impl PartialEq for Signal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A rule: on connections whose request path starts with `path_prefix` (all, if empty), at
/// `trigger`, do `step`. Each rule fires once per connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Request path prefix, e.g. `/cable/connect`; empty for every connection.
    pub path_prefix: String,
    /// When it fires.
    pub trigger: Trigger,
    /// What it does.
    pub step: Step,
}

/// The proxy; dropping it stops accepting and closes its live connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: SocketAddr,
    rng: Mutex<Box<dyn RngCore + Send>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    defaults: [Faults; 2],
    rules: Vec<Rule>,
    live: Vec<watch::Sender<Conn>>,
    accepted: usize,
}

/// One connection's faults, as its two pumps see them.
#[derive(Clone, Default)]
struct Conn {
    dirs: [Faults; 2],
    reset: bool,
    /// The proxy was dropped: the connection ends (closed, not reset).
    closed: bool,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection to `upstream`; `rng` decides
    /// losses and jitter.
    pub async fn start(
        upstream: SocketAddr,
        rng: Box<dyn RngCore + Send>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rng: Mutex::new(rng),
            state: Mutex::new(State::default()),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tx, rx) = {
                    let mut st = s.lock();
                    st.accepted += 1;
                    st.live.retain(|c| !c.is_closed());
                    let (tx, rx) = watch::channel(Conn {
                        dirs: st.defaults.clone(),
                        reset: false,
                        closed: false,
                    });
                    st.live.push(tx.clone());
                    (tx, rx)
                };
                let rules = s.lock().rules.clone();
                tokio::spawn(connection(tcp, s.clone(), tx, rx, rules));
            }
        });
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port>`: a relay URL that goes through the proxy.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.lock().accepted
    }

    /// Sets `dir`'s faults on every live connection and on every later one.
    pub fn set(&self, dir: Direction, faults: Faults) {
        let mut st = self.shared.lock();
        st.defaults[dir.index()] = faults.clone();
        for c in &st.live {
            c.send_modify(|c| c.dirs[dir.index()] = faults.clone());
        }
    }

    /// Resets every live connection.
    pub fn reset_all(&self) {
        for c in &self.shared.lock().live {
            c.send_modify(|c| c.reset = true);
        }
    }

    /// Adds a rule for connections accepted from now on.
    pub fn at(&self, rule: Rule) {
        self.shared.lock().rules.push(rule);
    }

    /// Drops every rule: connections accepted from now on have none (live ones keep theirs).
    pub fn clear_rules(&self) {
        self.shared.lock().rules.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Its connections end with it: a stalled direction would never read the end of its
        // stream, and its task and sockets would stay.
        for c in &self.shared.lock().live {
            c.send_modify(|c| c.closed = true);
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A number in `0..1` from the test's RNG.
    fn draw(&self) -> f64 {
        let r = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_u64();
        (r >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One write on its way, or the end of the stream.
enum Item {
    Bytes(Instant, Vec<u8>),
    End(Instant),
}

async fn connection(
    mut client: TcpStream,
    shared: Arc<Shared>,
    tx: watch::Sender<Conn>,
    mut rx: watch::Receiver<Conn>,
    rules: Vec<Rule>,
) {
    let Ok(mut server) = TcpStream::connect(shared.upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let rules = Mutex::new(Rules {
        pending: rules,
        path: None,
        counters: [Counter::default(), Counter::default()],
    });
    {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let (up_tx, up_rx) = mpsc::unbounded_channel();
        let (down_tx, down_rx) = mpsc::unbounded_channel();
        let all = async {
            tokio::join!(
                pump(Direction::Up, cr, up_tx, &shared, &tx, &rules),
                deliver(up_rx, sw),
                pump(Direction::Down, sr, down_tx, &shared, &tx, &rules),
                deliver(down_rx, cw),
            )
        };
        tokio::select! {
            _ = all => return,
            _ = rx.wait_for(|c| c.reset || c.closed) => {}
        }
    }
    if rx.borrow().reset {
        let _ = (client.set_zero_linger(), server.set_zero_linger());
    }
}

/// Reads one direction's source and queues what should cross, under that direction's faults.
async fn pump(
    dir: Direction,
    mut from: tokio::net::tcp::ReadHalf<'_>,
    out: mpsc::UnboundedSender<Item>,
    shared: &Shared,
    tx: &watch::Sender<Conn>,
    rules: &Mutex<Rules>,
) {
    let mut rx = tx.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_due = Instant::now();
    let mut started = dir == Direction::Down;
    let mut head = Vec::new();
    // What was read and not yet forwarded because a stall was set meanwhile (the request
    // head once its `Trigger::Start` rules have fired, the rest of a read after a rule that
    // stalls, a read that completed as a stall was set): it crosses once the stall lifts.
    let mut held = Vec::new();
    loop {
        let faults = rx.borrow_and_update().dirs[dir.index()].clone();
        if faults.stall {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        if !held.is_empty() {
            let bytes = std::mem::take(&mut held);
            held = forward(dir, &bytes, &out, shared, tx, rules, &mut last_due);
            continue;
        }
        let max = faults.slow_reader.map_or(buf.len(), |s| s.chunk.max(1));
        let n = tokio::select! {
            r = from.read(&mut buf[..max]) => r.unwrap_or(0),
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        if n == 0 {
            let faults = tx.borrow().dirs[dir.index()].clone();
            if !faults.blackhole {
                let _ = out.send(Item::End(due(&faults, &mut last_due, shared)));
            }
            return;
        }
        let chunk = &buf[..n];
        if !started {
            // The request line names the connection; rules wait for it.
            head.extend_from_slice(chunk);
            let line_end = head.windows(2).position(|w| w == b"\r\n");
            if line_end.is_none() && head.len() < 4096 {
                continue;
            }
            started = true;
            let line = String::from_utf8_lossy(&head[..line_end.unwrap_or(head.len())]);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            apply(lock(rules).start(path), tx);
            held = std::mem::take(&mut head);
            continue;
        }
        if tx.borrow().dirs[dir.index()].stall {
            held = chunk.to_vec();
            continue;
        }
        held = forward(dir, chunk, &out, shared, tx, rules, &mut last_due);
        if let Some(s) = faults.slow_reader {
            tokio::time::sleep(s.pause).await;
        }
    }
}

/// Queues `bytes`, split where a rule fires so that each part crosses under the faults of its
/// own stage; returns what a rule's stall of this direction holds back.
fn forward(
    dir: Direction,
    mut bytes: &[u8],
    out: &mpsc::UnboundedSender<Item>,
    shared: &Shared,
    tx: &watch::Sender<Conn>,
    rules: &Mutex<Rules>,
    last_due: &mut Instant,
) -> Vec<u8> {
    while !bytes.is_empty() {
        let (used, fired) = lock(rules).advance(dir, bytes);
        let (part, rest) = bytes.split_at(used);
        bytes = rest;
        let faults = tx.borrow().dirs[dir.index()].clone();
        let lost = faults.loss > 0.0 && shared.draw() < faults.loss;
        if !faults.blackhole && !lost && !part.is_empty() {
            let _ = out.send(Item::Bytes(due(&faults, last_due, shared), part.to_vec()));
        }
        apply(fired, tx);
        if !bytes.is_empty() && tx.borrow().dirs[dir.index()].stall {
            // A rule stalled this direction here: the rest waits until the stall lifts.
            return bytes.to_vec();
        }
    }
    Vec::new()
}

/// When a write queued now is delivered: never before the one queued before it.
fn due(faults: &Faults, last: &mut Instant, shared: &Shared) -> Instant {
    let jitter = if faults.jitter.is_zero() {
        Duration::ZERO
    } else {
        faults.jitter.mul_f64(shared.draw())
    };
    let at = (Instant::now() + faults.latency + jitter).max(*last);
    *last = at;
    at
}

/// Writes queued items to the other end when they are due.
async fn deliver(mut items: mpsc::UnboundedReceiver<Item>, mut to: tokio::net::tcp::WriteHalf<'_>) {
    while let Some(item) = items.recv().await {
        match item {
            Item::Bytes(at, bytes) => {
                tokio::time::sleep_until(at).await;
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Item::End(at) => {
                tokio::time::sleep_until(at).await;
                let _ = to.shutdown().await;
                return;
            }
        }
    }
}

fn apply(steps: Vec<Step>, tx: &watch::Sender<Conn>) {
    for step in steps {
        match step {
            Step::Set(dir, f) => tx.send_modify(|c| c.dirs[dir.index()] = f),
            Step::Reset => tx.send_modify(|c| c.reset = true),
            Step::Notify(signal) => signal.0.notify_one(),
        }
    }
}

fn lock(rules: &Mutex<Rules>) -> std::sync::MutexGuard<'_, Rules> {
    rules.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection's rules that have not fired, and what has crossed each way.
struct Rules {
    pending: Vec<Rule>,
    path: Option<String>,
    counters: [Counter; 2],
}

impl Rules {
    /// The request path is known: drops rules for other paths, fires the `Start` ones.
    fn start(&mut self, path: String) -> Vec<Step> {
        self.pending.retain(|r| path.starts_with(&r.path_prefix));
        self.path = Some(path);
        self.fire(|t| t == Trigger::Start)
    }

    /// Counts `bytes` in `dir` up to the first byte after which a rule fires; returns how many
    /// were counted and the steps of the rules that fired.
    fn advance(&mut self, dir: Direction, bytes: &[u8]) -> (usize, Vec<Step>) {
        if self.path.is_none() {
            return (bytes.len(), Vec::new());
        }
        for (i, b) in bytes.iter().enumerate() {
            let c = &mut self.counters[dir.index()];
            c.push(*b);
            let (seen, messages) = (c.bytes, c.messages);
            let steps = self.fire(|t| match t {
                Trigger::Start => false,
                Trigger::Bytes(d, n) => d == dir && seen >= n,
                Trigger::Messages(d, n) => d == dir && messages >= n,
            });
            if !steps.is_empty() {
                return (i + 1, steps);
            }
        }
        (bytes.len(), Vec::new())
    }

    fn fire(&mut self, due: impl Fn(Trigger) -> bool) -> Vec<Step> {
        let mut steps = Vec::new();
        self.pending.retain(|r| {
            let now = due(r.trigger);
            if now {
                steps.push(r.step.clone());
            }
            !now
        });
        steps
    }
}

/// Bytes and WebSocket data messages seen in one direction: the HTTP head, then frames.
#[derive(Default)]
struct Counter {
    bytes: u64,
    messages: u64,
    head_tail: u32,
    in_frames: bool,
    frame: Frame,
}

/// Where the frame parser is: reading the header (bytes so far) or skipping the payload.
#[derive(Default)]
struct Frame {
    header: Vec<u8>,
    payload_left: u64,
    completes_message: bool,
}

impl Counter {
    fn push(&mut self, b: u8) {
        self.bytes += 1;
        if !self.in_frames {
            self.head_tail = (self.head_tail << 8) | u32::from(b);
            self.in_frames = self.head_tail == u32::from_be_bytes(*b"\r\n\r\n");
            return;
        }
        let f = &mut self.frame;
        if f.payload_left > 0 {
            f.payload_left -= 1;
            if f.payload_left == 0 && f.completes_message {
                self.messages += 1;
            }
            return;
        }
        f.header.push(b);
        let h = &f.header;
        if h.len() < 2 {
            return;
        }
        let (len7, masked) = (h[1] & 0x7f, h[1] & 0x80 != 0);
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = 2 + ext + if masked { 4 } else { 0 };
        if h.len() < need {
            return;
        }
        let len = match ext {
            0 => u64::from(len7),
            _ => h[2..2 + ext]
                .iter()
                .fold(0u64, |a, x| (a << 8) | u64::from(*x)),
        };
        // A final frame of a data message (continuation, text, binary) ends a message.
        let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
        f.completes_message = fin && opcode < 8;
        f.header.clear();
        f.payload_left = len;
        if len == 0 && f.completes_message {
            self.messages += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    const WAIT: Duration = Duration::from_secs(5);

    fn rng() -> Box<dyn RngCore + Send> {
        Box::new(rand::rngs::StdRng::seed_from_u64(7))
    }

    /// An echo server; returns its address and a channel that reports each connection's end
    /// (what it read, and whether it ended with EOF rather than an error).
    async fn echo() -> (SocketAddr, mpsc::UnboundedReceiver<(Vec<u8>, bool)>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    let clean = loop {
                        match s.read(&mut buf).await {
                            Ok(0) => break true,
                            Ok(n) => {
                                seen.extend_from_slice(&buf[..n]);
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break false;
                                }
                            }
                            Err(_) => break false,
                        }
                    };
                    let _ = tx.send((seen, clean));
                });
            }
        });
        (addr, rx)
    }

    async fn proxied() -> (
        FaultProxy,
        TcpStream,
        mpsc::UnboundedReceiver<(Vec<u8>, bool)>,
    ) {
        let (addr, ends) = echo().await;
        let proxy = FaultProxy::start(addr, rng()).await.unwrap();
        let client = TcpStream::connect(proxy.addr()).await.unwrap();
        (proxy, client, ends)
    }

    async fn read_exact(c: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(WAIT, c.read_exact(&mut buf))
            .await
            .expect("bytes within the bound")
            .unwrap();
        buf
    }

    /// Nothing arrives within `d`: neither bytes nor the end of the stream.
    async fn silent(c: &mut TcpStream, d: Duration) {
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(d, c.read(&mut buf)).await;
        assert!(r.is_err(), "something arrived: {r:?}");
    }

    #[tokio::test]
    async fn forwards_both_ways_and_passes_the_end_of_the_stream() {
        let (proxy, mut c, mut ends) = proxied().await;
        c.write_all(b"GET / HTTP/1.1\r\n\r\nhello").await.unwrap();
        assert_eq!(read_exact(&mut c, 23).await, b"GET / HTTP/1.1\r\n\r\nhello");
        c.shutdown().await.unwrap();
        let (seen, clean) = tokio::time::timeout(WAIT, ends.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((seen.len(), clean), (23, true));
        assert_eq!(proxy.accepted(), 1);
    }

    #[tokio::test]
    async fn latency_delays_each_write_by_at_least_its_amount() {
        let (proxy, mut c, _ends) = proxied().await;
        let latency = Duration::from_millis(150);
        proxy.set(
            Direction::Up,
            Faults {
                latency,
                jitter: Duration::from_millis(50),
                ..Faults::default()
            },
        );
        let started = std::time::Instant::now();
        c.write_all(b"x\r\n").await.unwrap();
        read_exact(&mut c, 3).await;
        assert!(started.elapsed() >= latency, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn certain_loss_drops_every_write_and_no_loss_none() {
        let (proxy, mut c, _ends) = proxied().await;
        c.write_all(b"first\r\n").await.unwrap();
        read_exact(&mut c, 7).await;
        proxy.set(
            Direction::Up,
            Faults {
                loss: 1.0,
                ..Faults::default()
            },
        );
        c.write_all(b"lost").await.unwrap();
        silent(&mut c, Duration::from_millis(300)).await;
        proxy.set(Direction::Up, Faults::default());
        c.write_all(b"kept").await.unwrap();
        assert_eq!(read_exact(&mut c, 4).await, b"kept");
    }

    #[tokio::test]
    async fn a_blackhole_swallows_bytes_and_the_end_without_a_reset() {
        let (proxy, mut c, mut ends) = proxied().await;
        c.write_all(b"hello\r\n").await.unwrap();
        read_exact(&mut c, 7).await;
        let hole = Faults {
            blackhole: true,
            ..Faults::default()
        };
        proxy.set(Direction::Up, hole.clone());
        proxy.set(Direction::Down, hole);
        c.write_all(b"gone").await.unwrap();
        silent(&mut c, Duration::from_millis(300)).await;
        c.shutdown().await.unwrap();
        // The server never hears that the client left.
        let end = tokio::time::timeout(Duration::from_millis(300), ends.recv()).await;
        assert!(end.is_err(), "the server saw the end: {end:?}");
    }

    #[tokio::test]
    async fn a_reset_reaches_both_ends_as_a_reset() {
        let (proxy, mut c, mut ends) = proxied().await;
        c.write_all(b"hello\r\n").await.unwrap();
        read_exact(&mut c, 7).await;
        proxy.reset_all();
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(WAIT, c.read(&mut buf)).await.unwrap();
        assert_eq!(
            r.map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::ConnectionReset),
            "the client sees an RST, not an end"
        );
        let (_, clean) = tokio::time::timeout(WAIT, ends.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(!clean, "the server sees an RST, not an end");
    }

    #[tokio::test]
    async fn a_stalled_direction_delivers_nothing_until_released() {
        let (proxy, mut c, _ends) = proxied().await;
        c.write_all(b"a\r\n").await.unwrap();
        read_exact(&mut c, 3).await;
        let stall = Faults {
            stall: true,
            ..Faults::default()
        };
        proxy.set(Direction::Down, stall);
        c.write_all(b"held").await.unwrap();
        silent(&mut c, Duration::from_millis(300)).await;
        proxy.set(Direction::Down, Faults::default());
        assert_eq!(read_exact(&mut c, 4).await, b"held");
    }

    #[tokio::test]
    async fn a_slow_reader_delivers_everything_in_small_pieces() {
        let (proxy, mut c, _ends) = proxied().await;
        let pause = Duration::from_millis(20);
        proxy.set(
            Direction::Down,
            Faults {
                slow_reader: Some(SlowReader { chunk: 8, pause }),
                ..Faults::default()
            },
        );
        let mut data = b"x\r\n".to_vec();
        data.extend(0..61u8);
        let started = std::time::Instant::now();
        c.write_all(&data).await.unwrap();
        assert_eq!(read_exact(&mut c, 64).await, data);
        // Eight reads, with a pause after each of the first seven at least.
        assert!(started.elapsed() >= pause * 7, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_byte_trigger_lets_exactly_that_many_bytes_through() {
        let (addr, _ends) = echo().await;
        let proxy = FaultProxy::start(addr, rng()).await.unwrap();
        proxy.at(Rule {
            path_prefix: "/only".into(),
            trigger: Trigger::Bytes(Direction::Up, 20),
            step: Step::Set(
                Direction::Up,
                Faults {
                    blackhole: true,
                    ..Faults::default()
                },
            ),
        });
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"GET /only HTTP/1.1\r\nabcdefgh")
            .await
            .unwrap();
        assert_eq!(read_exact(&mut c, 20).await, b"GET /only HTTP/1.1\r\n");
        silent(&mut c, Duration::from_millis(300)).await;
        // Another path is not touched.
        let mut other = TcpStream::connect(proxy.addr()).await.unwrap();
        other
            .write_all(b"GET /else HTTP/1.1\r\nabcdefgh")
            .await
            .unwrap();
        read_exact(&mut other, 28).await;
    }

    #[tokio::test]
    async fn a_message_trigger_counts_websocket_messages_however_they_are_chunked() {
        let (addr, _ends) = echo().await;
        let proxy = FaultProxy::start(addr, rng()).await.unwrap();
        proxy.at(Rule {
            path_prefix: String::new(),
            trigger: Trigger::Messages(Direction::Up, 2),
            step: Step::Reset,
        });
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let head = b"GET /cable/new/x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".to_vec();
        // A masked binary frame of 3 bytes, a ping (not a message), a masked frame of 200
        // bytes (16-bit length), then bytes the reset must stop.
        let mut frames = vec![0x82, 0x83, 1, 2, 3, 4, 9, 9, 9, 0x89, 0x80, 0, 0, 0, 0];
        frames.extend([0x82, 0xfe, 0, 200, 1, 2, 3, 4]);
        frames.extend([7u8; 200]);
        let through = head.len() + frames.len();
        frames.extend(b"after");
        let all = [head, frames].concat();
        // One byte at a time: the count does not depend on how reads split the stream.
        for b in &all {
            c.write_all(&[*b]).await.unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let end = tokio::time::timeout(WAIT, async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(e.kind()),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
        assert!(got.len() <= through, "{} > {through}", got.len());
        assert!(!got.ends_with(b"after"));
    }

    #[tokio::test]
    async fn a_stall_at_the_start_holds_the_request_until_lifted_and_the_signal_fires() {
        let (addr, _ends) = echo().await;
        let proxy = FaultProxy::start(addr, rng()).await.unwrap();
        let signal = Signal::new();
        let stall = Faults {
            stall: true,
            ..Faults::default()
        };
        for step in [
            Step::Set(Direction::Up, stall.clone()),
            Step::Set(Direction::Down, stall),
            Step::Notify(signal.clone()),
        ] {
            proxy.at(Rule {
                path_prefix: "/cable/connect".into(),
                trigger: Trigger::Start,
                step,
            });
        }
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let request = b"GET /cable/connect/x HTTP/1.1\r\n\r\n";
        c.write_all(request).await.unwrap();
        tokio::time::timeout(WAIT, signal.fired())
            .await
            .expect("the rule fires the signal once the request line is read");
        // Held: the echo server has not seen it, so nothing comes back.
        silent(&mut c, Duration::from_millis(200)).await;
        proxy.set(Direction::Up, Faults::default());
        proxy.set(Direction::Down, Faults::default());
        assert_eq!(read_exact(&mut c, request.len()).await, request);
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_a_stalled_connection() {
        let (proxy, mut c, _ends) = proxied().await;
        proxy.set(
            Direction::Down,
            Faults {
                stall: true,
                ..Faults::default()
            },
        );
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        silent(&mut c, Duration::from_millis(100)).await;
        drop(proxy);
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(WAIT, c.read(&mut buf))
            .await
            .expect("the end of the stream within the bound")
            .unwrap();
        assert_eq!(n, 0);
    }
}
