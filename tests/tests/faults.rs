//! The fault matrix: QR and linked ceremonies with a bad network between the desktop and the
//! relay, or between the phone and the relay, made by the fault-injecting proxy of
//! `test_support::netfault`. Each cell injects one fault at one stage of one leg and asserts
//! the outcome the person should see (success, or the error that names what went wrong), that
//! it came within the timeout that applies, and that afterwards the relay holds no tunnel and
//! no registration socket (its gauges back to zero, within the relay's own limits).
//!
//! Stages are counted in WebSocket messages on the faulted connection, so they are exact:
//! `start` is before the upgrade request crosses; `handshake` is once Noise message 1 has
//! crossed (towards the relay on the desktop's leg, towards the phone on the phone's);
//! `ctap` once the CTAP request has; `close` once the desktop's shutdown message has, leaving
//! the close handshake and the end of the stream to the fault.
//!
//! The relay's process restarted is a fault too: with SIGTERM (it drains) and with SIGKILL,
//! at each stage of the desktop's connection, a new relay process then starting on the same
//! address and contact store. Those cells' relays are processes of this test binary
//! ([`relay_child`]), so the signals are real and the kernel closes a killed relay's sockets;
//! after the faulted ceremony, the next one of the same flow must succeed through the new
//! relay (a linked phone still reached: the stores intact).
//!
//! The cells run concurrently, each with its own relay, proxies, phone and bridge, in a
//! process of their own (the test runs itself again), whose open file descriptors and live
//! tokio tasks must come back to their level before the matrix. The table is printed; with
//! `FAULT_MATRIX_OUT=<file>` (relative to the repository root) it is also written there as
//! Markdown, which is how docs/FAULTS.md is made.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt as _;
use rand::SeedableRng as _;
use test_support::netfault::{
    Direction, FaultProxy, Faults, Rule, Signal, SlowReader, Step, Trigger,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// The bridge's timeouts in the matrix: short, so that the cells that wait for one end soon,
/// and long enough for a ceremony with 2 s of latency each way on one leg.
fn timeouts() -> bridge::Timeouts {
    bridge::Timeouts {
        advert: Duration::from_secs(10),
        connect: Duration::from_secs(6),
        ble_connect: Duration::from_secs(5),
        handshake: Duration::from_secs(6),
        user: Duration::from_secs(8),
        linger: Duration::from_millis(300),
    }
}

/// The relay's limits in the matrix: a tunnel nobody closes is gone within these. The idle
/// limit is longer than the bridge's wait for the phone (`user`, 8 s) by a margin, so that a
/// stalled tunnel ends with the bridge's own timeout, not a race with the relay's close.
fn relay_config() -> tunnel_server::Config {
    let mut c = tunnel_server::Config::default();
    c.limits.tunnel_lifetime = Duration::from_secs(30);
    c.limits.idle_timeout = Duration::from_secs(12);
    c.limits.upgrade_timeout = Duration::from_secs(3);
    c.limits.registration_ping_interval = Duration::from_secs(2);
    c
}

/// How long the bridge waits for the relay's answer to its close frame
/// (`tunnel_client::CLOSE_WAIT`).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How long the stack waits for the phone's task once the bridge has failed, before it hands
/// the bridge's error back (`hybrid_demo::Stack`): part of every failed cell's time.
const PHONE_WAIT: Duration = Duration::from_secs(2);

/// Slack over a stated timeout: scheduling on a loaded two-core machine.
const MARGIN: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Qr,
    Linked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leg {
    Desktop,
    Phone,
    /// The relay's process itself; the stage is counted on the desktop's connection.
    Relay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Start,
    Handshake,
    Ctap,
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Latency200ms,
    Latency2s,
    Loss5,
    /// Accepted, and nothing forwarded either way: the upgrade never completes.
    NeverCompletes,
    /// Nothing listens at the relay's address.
    Unreachable,
    SlowReader,
    Blackhole,
    Reset,
    Stall,
    /// The relay process gets SIGTERM (it drains) and a new one starts on its address.
    RestartTerm,
    /// The relay process gets SIGKILL and a new one starts on its address.
    RestartKill,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::Latency200ms => "latency 200 ms",
            Self::Latency2s => "latency 2 s",
            Self::Loss5 => "5 % of writes lost",
            Self::NeverCompletes => "upgrade never completes",
            Self::Unreachable => "relay unreachable",
            Self::SlowReader => "slow reader",
            Self::Blackhole => "blackhole",
            Self::Reset => "reset",
            Self::Stall => "stall",
            Self::RestartTerm => "restarted with SIGTERM (drain)",
            Self::RestartKill => "restarted with SIGKILL",
        }
    }
}

/// What a cell must end with.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Success,
    /// The bridge's timeout of this phase.
    Timeout(Phase),
    /// An error saying the relay connection failed or the tunnel closed.
    LostOrClosed,
    /// Loss corrupts the stream: success if nothing crossing mattered was lost, otherwise a
    /// clean error (never an internal error, never past the bound).
    SuccessOrCleanError,
    /// A draining relay's 503 is tried again after a short wait: success once the new relay
    /// listens, or the error of a try that found the relay gone between the two processes.
    RetriedThroughRestart,
}

impl Expect {
    fn describe(self) -> String {
        match self {
            Self::Success => "success".into(),
            Self::Timeout(p) => format!("timeout in {p:?}"),
            Self::LostOrClosed => "relay lost or tunnel closed".into(),
            Self::SuccessOrCleanError => "success or a clean error".into(),
            Self::RetriedThroughRestart => {
                "success (the 503 tried again) or relay lost while it restarts".into()
            }
        }
    }

    fn accepts(self, got: &Result<(), BridgeError>) -> bool {
        match (self, got) {
            (Self::Success, Ok(())) => true,
            (Self::Timeout(want), Err(BridgeError::Timeout { phase, .. })) => *phase == want,
            (Self::LostOrClosed, Err(BridgeError::Relay(_) | BridgeError::Closed { .. })) => true,
            (Self::SuccessOrCleanError, Ok(())) => true,
            (Self::SuccessOrCleanError, Err(e)) => !matches!(e, BridgeError::Internal(_)),
            (Self::RetriedThroughRestart, Ok(())) => true,
            (Self::RetriedThroughRestart, Err(BridgeError::Relay(e))) => !e.is_busy(),
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    flow: Flow,
    leg: Leg,
    fault: Fault,
    stage: Stage,
}

impl Cell {
    fn name(&self) -> String {
        format!(
            "{} / {} / {} @ {}",
            match self.flow {
                Flow::Qr => "QR",
                Flow::Linked => "linked",
            },
            match self.leg {
                Leg::Desktop => "desktop↔relay",
                Leg::Phone => "phone↔relay",
                Leg::Relay => "relay process",
            },
            self.fault.name(),
            format!("{:?}", self.stage).to_lowercase(),
        )
    }

    /// The request path of the faulted connection.
    fn path(&self) -> &'static str {
        match (self.flow, self.leg) {
            (Flow::Qr, Leg::Desktop | Leg::Relay) => "/cable/connect",
            (Flow::Qr, Leg::Phone) => "/cable/new",
            (Flow::Linked, Leg::Desktop | Leg::Relay) => "/cable/contact",
            (Flow::Linked, Leg::Phone) => "/cable/connect",
        }
    }

    fn trigger(&self) -> Trigger {
        // Towards the relay on the desktop's leg, towards the phone on the phone's: the
        // desktop's messages, in order, are Noise message 1, the request, the shutdown.
        let d = match self.leg {
            Leg::Desktop | Leg::Relay => Direction::Up,
            Leg::Phone => Direction::Down,
        };
        match self.stage {
            Stage::Start => Trigger::Start,
            Stage::Handshake => Trigger::Messages(d, 1),
            Stage::Ctap => Trigger::Messages(d, 2),
            Stage::Close => Trigger::Messages(d, 3),
        }
    }

    fn steps(&self) -> Vec<Step> {
        let both = |f: Faults| {
            vec![
                Step::Set(Direction::Up, f.clone()),
                Step::Set(Direction::Down, f),
            ]
        };
        let latency = |l: Duration| Faults {
            latency: l,
            jitter: l / 4,
            ..Faults::default()
        };
        // The direction that carries what the desktop waits for next on this leg.
        let towards_desktop = match self.leg {
            Leg::Desktop | Leg::Relay => Direction::Down,
            Leg::Phone => Direction::Up,
        };
        match self.fault {
            Fault::Latency200ms => both(latency(Duration::from_millis(200))),
            Fault::Latency2s => both(latency(Duration::from_secs(2))),
            Fault::Loss5 => both(Faults {
                loss: 0.05,
                ..Faults::default()
            }),
            Fault::NeverCompletes | Fault::Blackhole => both(Faults {
                blackhole: true,
                ..Faults::default()
            }),
            Fault::SlowReader => vec![Step::Set(
                Direction::Down,
                Faults {
                    slow_reader: Some(SlowReader {
                        chunk: 16,
                        pause: Duration::from_millis(10),
                    }),
                    ..Faults::default()
                },
            )],
            Fault::Stall => vec![Step::Set(
                towards_desktop,
                Faults {
                    stall: true,
                    ..Faults::default()
                },
            )],
            Fault::Reset => vec![Step::Reset],
            Fault::Unreachable => Vec::new(),
            // The desktop's connection waits at its stage while the relay restarts (the
            // test adds the rule that tells it when, and lifts the stall once the signal
            // has taken effect).
            Fault::RestartTerm | Fault::RestartKill => both(Faults {
                stall: true,
                ..Faults::default()
            }),
        }
    }

    /// The outcome a person should see.
    fn expect(&self) -> Expect {
        let waiting_for_phone = match self.flow {
            Flow::Qr => Phase::AwaitingAdvert,
            Flow::Linked => Phase::ContactingPhone,
        };
        let connecting = match self.flow {
            Flow::Qr => Phase::Connecting,
            Flow::Linked => Phase::ContactingPhone,
        };
        match (self.fault, self.stage, self.leg) {
            (Fault::Latency200ms | Fault::Latency2s | Fault::SlowReader, _, _) => Expect::Success,
            (Fault::Loss5, _, _) => Expect::SuccessOrCleanError,
            // Once the shutdown has crossed, the answer is in: nothing after it can undo it.
            (_, Stage::Close, _) => Expect::Success,
            // A draining relay refuses what would start something new, and a linked
            // ceremony's contact does (it wakes the phone): the bridge tries the 503 again
            // and reaches the new relay. Joining the QR phone's waiting tunnel is still
            // served, and a live tunnel finishes.
            (Fault::RestartTerm, Stage::Start, _) if self.flow == Flow::Linked => {
                Expect::RetriedThroughRestart
            }
            (Fault::RestartTerm, _, _) => Expect::Success,
            // The process is gone: the kernel closes its sockets under the tunnel.
            (Fault::RestartKill, _, _) => Expect::LostOrClosed,
            (Fault::Unreachable, _, Leg::Desktop | Leg::Relay)
            | (Fault::Reset, Stage::Start, Leg::Desktop | Leg::Relay) => Expect::LostOrClosed,
            (Fault::NeverCompletes, _, Leg::Desktop | Leg::Relay) => Expect::Timeout(connecting),
            // The phone advertises only once its tunnel is open.
            (Fault::Unreachable | Fault::NeverCompletes, _, Leg::Phone)
            | (Fault::Reset, Stage::Start, Leg::Phone) => Expect::Timeout(waiting_for_phone),
            (Fault::Reset, _, _) => Expect::LostOrClosed,
            (Fault::Blackhole | Fault::Stall, Stage::Handshake, _) => {
                Expect::Timeout(Phase::Handshaking)
            }
            (Fault::Blackhole | Fault::Stall, _, _) => Expect::Timeout(Phase::AwaitingUser),
        }
    }
}

fn cells() -> Vec<Cell> {
    let per_leg = [
        (Fault::Latency200ms, Stage::Start),
        (Fault::Latency2s, Stage::Start),
        (Fault::Loss5, Stage::Start),
        (Fault::SlowReader, Stage::Start),
        (Fault::NeverCompletes, Stage::Start),
        (Fault::Unreachable, Stage::Start),
        (Fault::Reset, Stage::Start),
        (Fault::Reset, Stage::Handshake),
        (Fault::Reset, Stage::Ctap),
        (Fault::Reset, Stage::Close),
        (Fault::Blackhole, Stage::Handshake),
        (Fault::Blackhole, Stage::Ctap),
        (Fault::Blackhole, Stage::Close),
        (Fault::Stall, Stage::Handshake),
        (Fault::Stall, Stage::Ctap),
    ];
    let mut out = Vec::new();
    for flow in [Flow::Qr, Flow::Linked] {
        for leg in [Leg::Desktop, Leg::Phone] {
            for (fault, stage) in per_leg {
                out.push(Cell {
                    flow,
                    leg,
                    fault,
                    stage,
                });
            }
        }
        for stage in [Stage::Start, Stage::Handshake, Stage::Ctap, Stage::Close] {
            for fault in [Fault::RestartTerm, Fault::RestartKill] {
                out.push(Cell {
                    flow,
                    leg: Leg::Relay,
                    fault,
                    stage,
                });
            }
        }
    }
    out
}

/// What one cell did.
struct Row {
    cell: Cell,
    got: String,
    answer: Answer,
    ok: bool,
    elapsed: Duration,
    bound: Duration,
    clean: Result<Duration, String>,
}

/// What the person's programs say: the bridge's exit code and the `DOMException` the
/// browser extension gets (with its `code`, for the overlay).
struct Answer {
    exit_code: i32,
    dom: Option<(bridge::native_host::dom::DomName, &'static str)>,
}

impl Answer {
    fn of(r: &Result<(), BridgeError>) -> Self {
        match r {
            Ok(()) => Self {
                exit_code: 0,
                dom: None,
            },
            Err(e) => {
                let dom = bridge::native_host::dom::DomError::from_bridge(e);
                Self {
                    exit_code: e.exit_code(),
                    dom: Some((dom.name, dom.code)),
                }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.dom {
            None => format!("{}, —", self.exit_code),
            Some((name, code)) => format!("{}, {name:?} ({code})", self.exit_code),
        }
    }
}

/// The error, as the table shows it: its kind and message.
fn got(r: &Result<(), BridgeError>) -> String {
    match r {
        Ok(()) => "success".into(),
        Err(BridgeError::Timeout { phase, after }) => {
            format!("timeout in {phase:?} after {}", bridge_secs(*after))
        }
        Err(e) => {
            let debug = format!("{e:?}");
            let kind: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
            let inner = match e {
                BridgeError::Relay(r) => {
                    let d = format!("{r:?}");
                    format!(
                        "({})",
                        d.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("")
                    )
                }
                _ => String::new(),
            };
            format!("{kind}{inner}: {e}")
        }
    }
}

fn bridge_secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The value of `name` in the relay's `/metrics`, read directly (not through a proxy).
async fn gauge(relay: SocketAddr, name: &str) -> Option<u64> {
    get(relay, "/metrics")
        .await?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits, within the relay's own limits, until it holds no tunnel and no registration socket;
/// returns how long that took, or what was left.
async fn relay_clean(relay: SocketAddr) -> Result<Duration, String> {
    const GAUGES: [&str; 3] = [
        "tunnel_server_tunnels_open",
        "tunnel_server_tunnels_paired",
        "tunnel_server_registrations_connected",
    ];
    let limits = relay_config().limits;
    let bound = limits.tunnel_lifetime + MARGIN;
    let started = Instant::now();
    loop {
        let mut left = Vec::new();
        for g in GAUGES {
            match gauge(relay, g).await {
                Some(0) => {}
                v => left.push(format!("{g} = {v:?}")),
            }
        }
        if left.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > bound {
            return Err(format!(
                "after {}: {}",
                bridge_secs(started.elapsed()),
                left.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most a ceremony may take: every phase's timeout, the close, and the margin.
fn ceremony_bound() -> Duration {
    let t = timeouts();
    t.advert + t.connect + t.handshake + t.user + t.linger + CLOSE_WAIT + MARGIN
}

fn phase_timeout(flow: Flow, phase: Phase) -> Duration {
    let t = timeouts();
    match phase {
        Phase::AwaitingAdvert => t.advert,
        // A linked ceremony's first phase holds the connection and the wait for the advert.
        Phase::ContactingPhone if flow == Flow::Linked => t.connect + t.advert,
        Phase::Connecting | Phase::ContactingPhone => t.connect,
        Phase::Handshaking => t.handshake,
        Phase::AwaitingUser => t.user,
        Phase::ShowingQr | Phase::Done => Duration::ZERO,
    }
}

/// The relay of a cell: in this process, or (a restart cell's) a process of its own, so that
/// SIGTERM and SIGKILL are real signals and the kernel closes a killed relay's sockets.
enum Relay {
    InProcess(tunnel_server::RunningServer),
    Process(RelayProcess),
}

/// Set in a process of this test binary that serves as the relay of a restart cell, to
/// `<address>|<contact store>`: the matrix test then only runs the relay until SIGTERM.
const RELAY_CHILD: &str = "FAULT_MATRIX_RELAY_CHILD";

/// What a relay process prints once it listens, before its address.
const RELAY_LISTENING: &str = "fault matrix relay listening on ";

/// This test's name in the `e2e` binary, to run it again as a relay or alone.
const TEST: &str =
    "faults::every_fault_at_every_stage_ends_as_expected_in_time_and_leaves_no_tunnel";

/// A relay process: this test binary again, in [`relay_child`].
struct RelayProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
    /// Reads what it prints until it exits (a relay whose output nobody reads would fail
    /// to print), and hands it back for a failure message.
    output: tokio::task::JoinHandle<String>,
}

impl RelayProcess {
    /// Starts a relay on `addr` (port 0: any) with `store` as its contact store, and waits
    /// until it listens.
    async fn start(addr: SocketAddr, store: &std::path::Path) -> Result<Self, String> {
        use tokio::io::AsyncBufReadExt as _;
        let exe = std::env::current_exe().map_err(|e| format!("no test binary: {e}"))?;
        let mut child = tokio::process::Command::new(exe)
            .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
            .env(RELAY_CHILD, format!("{addr}|{}", store.display()))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("the relay process does not start: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let output = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let mut tx = Some(tx);
            let mut all = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find(RELAY_LISTENING) {
                    let addr = line[at + RELAY_LISTENING.len()..].trim().to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let listening = tokio::time::timeout(Duration::from_secs(20), rx).await;
        let Ok(Ok(addr)) = listening else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let said = output.await.unwrap_or_default();
            return Err(format!(
                "the relay process did not listen on {addr} within 20 s:\n{said}"
            ));
        };
        let addr = addr
            .parse()
            .map_err(|e| format!("the relay printed a bad address {addr:?}: {e}"))?;
        Ok(Self {
            child,
            addr,
            output,
        })
    }

    /// Sends SIGTERM.
    fn terminate(&self) -> Result<(), String> {
        let pid = self.child.id().ok_or("the relay process has exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| format!("kill does not run: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("kill -TERM {pid} failed: {status}"))
    }

    /// Waits for it to exit, at most `within`.
    async fn wait(&mut self, within: Duration) -> Result<std::process::ExitStatus, String> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(format!("waiting for the relay process: {e}")),
            Err(_) => Err(format!(
                "the relay process had not exited after {}",
                bridge_secs(within)
            )),
        }
    }

    /// SIGTERM, then its exit: it must drain and exit 0.
    async fn stop(mut self) -> Result<(), String> {
        self.terminate()?;
        let status = self
            .wait(relay_config().limits.shutdown_grace + MARGIN)
            .await;
        let said = self.output.await.unwrap_or_default();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("the relay exited with {s} after SIGTERM:\n{said}")),
            Err(e) => Err(e),
        }
    }
}

/// The relay of a restart cell, run in a process of this test binary started by
/// [`RelayProcess::start`]: binds the address in `spec` (again after a restart: a killed
/// relay's port may be held briefly), prints it, and serves until SIGTERM, then drains.
async fn relay_child(spec: &str) {
    use tokio::signal::unix::{signal, SignalKind};
    let (addr, store) = spec.split_once('|').expect("<address>|<contact store>");
    let addr: SocketAddr = addr.parse().expect("a socket address");
    let mut config = relay_config();
    config.contact_store = Some(store.into());
    // Before it listens: a SIGTERM from then on drains rather than ends the process.
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("binding {addr}: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    };
    println!("\n{RELAY_LISTENING}{}", listener.local_addr().unwrap());
    tunnel_server::run(listener, config, async move {
        term.recv().await;
    })
    .await
    .expect("the relay serves, drains and stops");
}

/// The whole answer to `GET path` straight at the relay; `None` if it cannot be had in 5 s.
async fn get(relay: SocketAddr, path: &str) -> Option<String> {
    let mut tcp = tokio::net::TcpStream::connect(relay).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The HTTP status of `GET path` straight at the relay.
async fn http_status(relay: SocketAddr, path: &str) -> Option<u16> {
    get(relay, path)
        .await?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Restarts the relay once the desktop's connection has reached the cell's stage (the rule
/// fires `signal`, and the connection waits): signals the process, waits until that has
/// taken effect (draining, or gone), lets the connection go on, waits for the process to
/// end and starts a new one on the same address and contact store. Says what it saw.
async fn restart_relay(
    cell: &Cell,
    signal: &Signal,
    relay: &mut Relay,
    store: &std::path::Path,
    proxy: &FaultProxy,
) -> Result<String, String> {
    // The restart faults the one connection that reached the stage: a connection the
    // desktop opens again (a linked contact tried again after the drain's 503) has no rule.
    let lift = || {
        proxy.clear_rules();
        proxy.set(Direction::Up, Faults::default());
        proxy.set(Direction::Down, Faults::default());
    };
    let fired = tokio::time::timeout(ceremony_bound(), signal.fired()).await;
    let Relay::Process(old) = relay else {
        return Err("an in-process relay cannot be signalled".into());
    };
    if fired.is_err() {
        return Err("the ceremony never reached the stage".into());
    }
    let addr = old.addr;
    let began = Instant::now();
    let term = cell.fault == Fault::RestartTerm;
    if term {
        old.terminate()?;
        // Draining once /readyz says 503, or already drained and gone (nothing held it).
        let draining = async {
            while !matches!(old.child.try_wait(), Ok(Some(_)))
                && http_status(addr, "/readyz").await != Some(503)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), draining)
            .await
            .is_err()
        {
            lift();
            return Err("the relay was not draining 5 s after SIGTERM".into());
        }
    } else {
        let _ = old.child.start_kill();
        // Gone, and its sockets with it, before the connection goes on.
        old.wait(Duration::from_secs(5)).await?;
    }
    lift();
    let status = old
        .wait(relay_config().limits.shutdown_grace + MARGIN)
        .await?;
    let gone = began.elapsed();
    let expected = if term {
        status.success()
    } else {
        use std::os::unix::process::ExitStatusExt as _;
        status.signal() == Some(9)
    };
    if !expected {
        return Err(format!("the relay process ended with {status}"));
    }
    let new = RelayProcess::start(addr, store).await?;
    *relay = Relay::Process(new);
    Ok(format!(
        "relay {} after {}, listening again after {}",
        if term {
            "drained and exited 0"
        } else {
            "killed"
        },
        bridge_secs(gone),
        bridge_secs(began.elapsed())
    ))
}

/// After a restart: a new stack on the same files (the phone's store, the desktop's links)
/// runs the next ceremony of the flow straight to the new relay; a linked phone must still
/// be reached through it (its registration resumed from the relay's contact store).
async fn next_ceremony(
    dir: &std::path::Path,
    relay: SocketAddr,
    rp: &RelyingParty,
    linked: Option<&(String, webauthn_rs_core::proto::Credential)>,
) -> Result<(), String> {
    let mut stack = Stack::with_relay_url(
        dir.to_path_buf(),
        None,
        format!("ws://{relay}"),
        PhoneConfig {
            timeout: Duration::from_secs(15),
            ..PhoneConfig::default()
        },
        knobs(),
    )
    .map_err(|e| format!("the stores do not open again: {e}"))?;
    stack.config.timeouts = timeouts();
    match linked {
        None => {
            let (pending, options) = registration_options(rp, "after-restart");
            let run = stack
                .register(&options, &Silent)
                .await
                .map_err(|e| format!("the next registration failed: {e}"))?;
            rp.finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
                .map_err(|e| format!("webauthn-rs refused the next registration: {e:?}"))?;
        }
        Some((name, cred)) => {
            let (pending, options) = sign_in_options(rp, cred);
            let run = stack
                .sign_in_linked(name, &options, &Silent)
                .await
                .map_err(|e| format!("the next linked sign-in failed: {e}"))?;
            rp.finish_authentication(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
                .map_err(|e| format!("webauthn-rs refused the next sign-in: {e:?}"))?;
        }
    }
    Ok(())
}

async fn run_cell(cell: Cell, seed: u64) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let restart = matches!(cell.fault, Fault::RestartTerm | Fault::RestartKill);
    let store = dir.path().join("relay-contacts.json");
    let mut relay = if restart {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Relay::Process(RelayProcess::start(any, &store).await.unwrap())
    } else {
        Relay::InProcess(
            tunnel_server::RunningServer::start(relay_config())
                .await
                .unwrap(),
        )
    };
    let relay_addr = match &relay {
        Relay::InProcess(r) => r.addr(),
        Relay::Process(p) => p.addr,
    };
    let rng = |s| Box::new(rand::rngs::StdRng::seed_from_u64(s)) as Box<dyn rand::RngCore + Send>;
    let desktop = FaultProxy::start(relay_addr, rng(seed)).await.unwrap();
    let phone = FaultProxy::start(relay_addr, rng(seed ^ 0xff))
        .await
        .unwrap();
    let mut stack = Stack::with_relay_url(
        dir.path().to_path_buf(),
        None,
        desktop.ws_url(),
        PhoneConfig {
            timeout: Duration::from_secs(15),
            ..PhoneConfig::default()
        },
        knobs(),
    )
    .unwrap();
    stack.config.timeouts = timeouts();
    let phone_store = dir.path().join("phone.json");
    // The phone reads its relay's URL when it is opened: it is opened again on its store.
    let reopen = |stack: &mut Stack, url: String| {
        let config = PhoneConfig {
            tunnel: Some(url),
            ..stack.phone().unwrap().config().clone()
        };
        *stack.phone_mut().unwrap() = phone_sim::Phone::open(&phone_store, config).unwrap();
    };
    reopen(&mut stack, phone.ws_url());
    let rp = rp();

    // A linked ceremony needs the link of a registration first, made without faults.
    let linked = match cell.flow {
        Flow::Qr => None,
        Flow::Linked => {
            let (pending, options) = registration_options(&rp, "linked");
            let run = stack
                .register(&options, &Silent)
                .await
                .expect("the registration that makes the link");
            let cred = rp
                .finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
                .expect("webauthn-rs accepts the registration");
            let name = run.bridge.outcome.linked.expect("a link");
            Some((name, cred))
        }
    };

    let proxy = match cell.leg {
        Leg::Desktop | Leg::Relay => &desktop,
        Leg::Phone => &phone,
    };
    let signal = Signal::new();
    let mut steps = cell.steps();
    if restart {
        steps.push(Step::Notify(signal.clone()));
    }
    for step in steps {
        proxy.at(Rule {
            path_prefix: cell.path().into(),
            trigger: cell.trigger(),
            step,
        });
    }
    if cell.fault == Fault::RestartKill && cell.stage != Stage::Start {
        // From the stage on, the phone's answer stays on the phone's side: a relay killed a
        // moment after the desktop's message crossed has otherwise relayed the answer already.
        let phone_side = Cell {
            leg: Leg::Phone,
            ..cell
        };
        phone.at(Rule {
            path_prefix: phone_side.path().into(),
            trigger: phone_side.trigger(),
            step: Step::Set(
                Direction::Up,
                Faults {
                    stall: true,
                    ..Faults::default()
                },
            ),
        });
    }
    if cell.fault == Fault::Unreachable {
        let nowhere = format!("ws://{}", test_support::net::closed_port());
        match cell.leg {
            Leg::Desktop | Leg::Relay => {
                stack.config.tunnel = bridge::TunnelConfig::new(Some(nowhere), vec![], None)
            }
            Leg::Phone => reopen(&mut stack, nowhere),
        }
    }

    let phases = Mutex::new(Vec::<(Phase, Duration)>::new());
    let record = |e: &Event, at: Duration| {
        if let Event::Phase { phase } = e {
            phases.lock().unwrap().push((*phase, at));
        }
    };
    let ceremony = async {
        let started = Instant::now();
        let result: Result<(), BridgeError> = match &linked {
            None => {
                let (pending, options) = registration_options(&rp, "faulted");
                stack.register(&options, &record).await.map(|run| {
                    rp.finish_registration(
                        &pending,
                        &serde_json::to_string(&run.bridge.json).unwrap(),
                    )
                    .expect("webauthn-rs accepts what the bridge returned");
                })
            }
            Some((name, cred)) => {
                let (pending, options) = sign_in_options(&rp, cred);
                stack
                    .sign_in_linked(name, &options, &record)
                    .await
                    .map(|run| {
                        rp.finish_authentication(
                            &pending,
                            &serde_json::to_string(&run.bridge.json).unwrap(),
                        )
                        .expect("webauthn-rs accepts what the bridge returned");
                    })
            }
        };
        (result, started.elapsed())
    };
    let restarted = async {
        if restart {
            Some(restart_relay(&cell, &signal, &mut relay, &store, &desktop).await)
        } else {
            None
        }
    };
    let ((result, elapsed), restarted) = tokio::join!(ceremony, restarted);
    let expect = cell.expect();
    // The bound: the timeout of the phase that timed out, from when it began; otherwise the
    // whole ceremony's.
    let bound = match &result {
        Err(BridgeError::Timeout { phase, .. }) => {
            let began = phases
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(p, _)| p == phase)
                .map_or(Duration::ZERO, |(_, at)| *at);
            began + phase_timeout(cell.flow, *phase) + PHONE_WAIT + MARGIN
        }
        Err(_) => ceremony_bound() + PHONE_WAIT,
        Ok(()) => ceremony_bound(),
    };
    let mut ok = expect.accepts(&result) && elapsed <= bound;
    let mut got = got(&result);
    let answer = Answer::of(&result);
    // The stack (phone sockets included) goes before the relay is checked; the proxies
    // stay, so that a blackholed connection stays open and the relay must end it itself
    // (a restart cell has none, and closes them before its next ceremony).
    drop(stack);
    if let Some(restarted) = restarted {
        let next = match restarted {
            Ok(seen) => {
                got.push_str("; ");
                got.push_str(&seen);
                // The first stack's sockets leave the relay before the next ceremony, those
                // the proxies still hold included: a phone's registration that a proxy hands
                // on late would replace the next phone's and take its wake-up.
                drop(desktop);
                drop(phone);
                match relay_clean(relay_addr).await {
                    Ok(_) => next_ceremony(dir.path(), relay_addr, &rp, linked.as_ref()).await,
                    Err(left) => Err(format!(
                        "the first ceremony's sockets stayed on the relay: {left}"
                    )),
                }
            }
            Err(e) => Err(e),
        };
        match next {
            Ok(()) => got.push_str("; the next ceremony succeeded"),
            Err(e) => {
                ok = false;
                got.push_str("; ");
                got.push_str(&e);
            }
        }
    }
    let clean = relay_clean(relay_addr).await;
    let clean = match relay {
        Relay::InProcess(r) => {
            drop(r);
            clean
        }
        Relay::Process(p) => {
            let stopped = p.stop().await;
            clean.and_then(|d| stopped.map(|()| d))
        }
    };
    Row {
        cell,
        got,
        answer,
        ok,
        elapsed,
        bound,
        clean,
    }
}

/// The opening of docs/FAULTS.md, which this test writes with `FAULT_MATRIX_OUT`.
const DOC_HEAD: &str = "# Ceremonies under network faults

What a person sees when the network between the desktop and the relay, or between the phone
and the relay, goes bad at each stage of a QR ceremony (a registration) and of a linked one (a
sign-in that wakes the phone). Written by the fault matrix test,
`every_fault_at_every_stage_ends_as_expected_in_time_and_leaves_no_tunnel` in
`tests/tests/faults.rs` (a module of the `e2e` binary, so `scripts/test.sh` and `.ci/run` run
it):

```sh
FAULT_MATRIX_OUT=docs/FAULTS.md cargo test -p hybrid-tests --test e2e faults:: -- --nocapture
```

The faults come from the TCP proxy in `test-support/src/netfault.rs`, one in front of the relay
for each leg. Stages are counted in WebSocket messages on the faulted connection: `start` is
before the upgrade request crosses, `handshake` once Noise message 1 has crossed, `ctap` once
the CTAP request has, `close` once the desktop's shutdown message has. Latency is per write,
each way, with a quarter of it as jitter; the slow reader takes 16 bytes every 10 ms from the
relay; a stall holds what the desktop waits for next; a blackhole swallows bytes and the end of
the stream both ways without a reset; a reset sends an RST to both ends; \"upgrade never
completes\" is a blackhole from the start; \"relay unreachable\" is a port nobody listens on.
Losing 5 % of writes corrupts the TCP stream (the proxy drops whole writes; TCP would repair
real loss), so either outcome is right there as long as the error is a clean one in time.

The \"relay process\" rows restart the relay: its process (this test binary run again as the
relay, so the signals are real and the kernel closes a killed relay's sockets) gets SIGTERM,
and drains, or SIGKILL, when the desktop's connection reaches the stage (counted as on the
desktop's leg). That connection waits there, both ways, until the signal has taken effect
(`/readyz` answers 503, or the process is gone); with SIGKILL, the phone's connection also
keeps the phone's answer from that stage on, so the relay dies before relaying it. A new
relay process then starts on the same address with the same contact store. A draining relay
still lets a QR phone's waiting tunnel be joined and lets a live tunnel finish, and refuses a
linked ceremony's contact with 503, since that would start something new; the bridge tries
that contact again after a short wait (as for 1013), which reaches the new relay once it
listens, and fails as a lost relay if a try falls between the two processes. After the faulted
ceremony, the next one of the same flow runs through the new relay and must succeed (for a
linked phone: its registration resumed from the relay's contact store, its link from the
desktop's links file). A relay given SIGTERM must exit 0 within its shutdown grace (10 s).

The bridge's timeouts in the test: advert 10 s, connect 6 s, handshake 6 s, user 8 s, linger
0.3 s. The bound of a cell that timed out is when its phase began plus that phase's timeout;
of any other, the sum of every timeout and the close wait; each plus the 2 s the harness waits
for the phone after the bridge failed and a 3 s margin. The test asserts each outcome, the
bound, and that the relay's gauges (`tunnel_server_tunnels_open`, `_tunnels_paired`,
`_registrations_connected`) are back to zero within its tunnel lifetime (30 s here). The
column \"exit code, DOMException\" is what the outcome becomes for a person: `hybrid-bridge`'s
exit code (`BridgeError::exit_code`) and the `DOMException` name, with its `code`, that the
native host hands the browser extension (`bridge/src/native_host/dom.rs`).

The matrix runs in a process of its own (the test starts itself again), so that it can count
what it leaves: its open file descriptors (`/proc/self/fd`) and its runtime's live tokio tasks
(`RuntimeMetrics::num_alive_tasks`) must be back to their level before the first cell, which
is taken after one child process has run (tokio's SIGCHLD handling, made once per process, is
part of it); the line under the table gives both. Times are one run's on a two-core machine
with other work on it; the cells run concurrently.
";

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| cell | expected | got | exit code, DOMException | elapsed | bound | relay back to zero |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let clean = match &r.clean {
            Ok(d) => format!("yes, in {}", bridge_secs(*d)),
            Err(e) => format!("NO: {e}"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}{} | {} | {} | {} | {} |",
            r.cell.name(),
            r.cell.expect().describe(),
            if r.ok { "" } else { "UNEXPECTED: " },
            r.got.replace('|', "/"),
            r.answer.describe(),
            bridge_secs(r.elapsed),
            bridge_secs(r.bound),
            clean
        );
    }
    out
}

/// The close of docs/FAULTS.md, after the matrix: where the desktop and phone read which clock.
const DOC_TAIL: &str = r#"## Clocks

A desktop's or phone's clock an hour off, or jumping mid-ceremony, changes nothing that should
not change. Every timeout, deadline, retry, keepalive and rate limit counts on monotonic time
(`std::time::Instant` or `tokio::time::Instant`), passed as `now` into the pure machines: the
bridge's ceremony and CTAP exchange (`bridge/src/ceremony.rs`, `bridge/src/talk.rs`), the
virtual key's CTAPHID engine (`protocol/src/ctaphid/engine.rs`), the phone's session
(`phone-sim/src/session/machine.rs`), and the relay's tunnels, contact registry and mint limit
(`tunnel-server/src/relay.rs`, `tunnel-server/src/contact/`). The relay's contact store holds no
dates: a restored contact's expiry counts from the restart, on monotonic time, so no contact
reads as expired, or as not yet valid, after its host's clock moves.

Wall time is read only for dates shown to people and for one protocol field:

| Where | What it dates | Why wall time | Test of an offset or jumping clock |
| --- | --- | --- | --- |
| `bridge/src/ceremony.rs` (`unix_now`) | the QR code's `created_at` (key 3 of the hybrid QR code) | a protocol field in Unix seconds; no phone in this project checks it | `parsers::a_qr_dated_an_hour_off_or_at_the_epoch_reads_back_with_its_date` (hybrid-protocol, `it`) |
| `bridge/src/ceremony.rs` (`unix_now`) | a link's `linked_at` | shown by `bridge phones` and the extension ("linked on …"), in words | `links::tests::reports_dated_by_a_clock_that_jumps_keep_the_order_they_came_in` (hybrid-bridge) |
| `bridge/src/native_host/driver.rs` | when a site reported a credential unknown | shown beside the link; the list keeps arrival order and drops the oldest by position | `links::tests::reports_dated_by_a_clock_that_jumps_keep_the_order_they_came_in` (hybrid-bridge) |
| `bridge/src/bin/hybrid-bridge/commands/key/mod.rs` | when the virtual key started | shown by `hybrid-bridge key status` ("since …"), in words | none: a record only |
| `bridge/src/bin/hybrid-bridge/commands/doctor/` and `scan_report/render.rs` | when a report was made; the relay's `Date` header (`tunnel-client/src/probe.rs`) | shown in reports; the doctor compares the desktop's clock with each relay's, to say when it is off | `relays::tests::clock_skew_and_year` (hybrid-bridge binary) |
| `phone-sim/src/store.rs` (`now_unix`) | a passkey's and a link's `created_at` | shown by `phone-sim credentials` and `phone-sim links`, in words | `authenticator::tests::the_newest_credential_is_chosen_whatever_the_clock_said_when_it_was_made` (phone-sim): the newest passkey is the last one made, not the one with the latest date |
"#;

/// Set in the process of its own that the matrix runs in, so that the file descriptors it
/// counts are its own (other tests of the binary run in threads beside it otherwise).
const ALONE: &str = "FAULT_MATRIX_ALONE";

/// This process's open file descriptors.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Tasks alive in this test's runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// What was left after the matrix: descriptors and tasks against the level before it.
struct Leaks {
    fds: (usize, usize),
    tasks: (usize, usize),
    after: Duration,
}

impl Leaks {
    fn none(&self) -> bool {
        self.fds.1 <= self.fds.0 && self.tasks.1 <= self.tasks.0
    }

    fn describe(&self) -> String {
        format!(
            "open file descriptors {} before, {} after; tokio tasks alive {} before, {} after \
             (checked {} after the last cell)",
            self.fds.0,
            self.fds.1,
            self.tasks.0,
            self.tasks.1,
            bridge_secs(self.after)
        )
    }
}

/// Waits (a bounded while: tasks of dropped relays and proxies finish as their sockets close)
/// until the descriptors and tasks are back to `before`.
async fn leaks(fds: usize, tasks: usize) -> Leaks {
    let started = Instant::now();
    loop {
        let l = Leaks {
            fds: (fds, open_fds()),
            tasks: (tasks, alive_tasks()),
            after: started.elapsed(),
        };
        if l.none() || started.elapsed() > relay_config().limits.shutdown_grace + MARGIN {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_every_stage_ends_as_expected_in_time_and_leaves_no_tunnel() {
    if let Ok(spec) = std::env::var(RELAY_CHILD) {
        relay_child(&spec).await;
        return;
    }
    if std::env::var_os(ALONE).is_none() {
        // Again, alone in a process of its own; its output (the table) is printed here.
        let exe = std::env::current_exe().expect("the test binary");
        let out = tokio::process::Command::new(exe)
            .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
            .env(ALONE, "1")
            .output()
            .await
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}");
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the fault matrix in a process of its own failed:\n{stderr}"
        );
        return;
    }
    // One child process first: tokio's SIGCHLD handling (its pipe, made once per process)
    // is then part of the level the matrix must come back to.
    let warm = tokio::process::Command::new("true").status().await;
    assert!(warm.expect("true runs").success());
    let (fds, tasks) = (open_fds(), alive_tasks());
    let started = Instant::now();
    let cells = cells();
    let mut rows: Vec<Row> = futures_util::stream::iter(cells.iter().enumerate())
        .map(|(i, c)| run_cell(*c, 0x5eed_0000 + i as u64))
        .buffer_unordered(12)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let leaks = leaks(fds, tasks).await;
    let order = |r: &Row| cells.iter().position(|c| c.name() == r.cell.name());
    rows.sort_by_key(order);
    let text = table(&rows);
    let total = format!(
        "{} cells in {}, at most 12 at once. After them: {}",
        rows.len(),
        bridge_secs(elapsed),
        leaks.describe()
    );
    println!("{text}\n{total}");
    if let Ok(path) = std::env::var("FAULT_MATRIX_OUT") {
        // Relative to the repository root (tests run in their package's folder).
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        std::fs::write(&path, format!("{DOC_HEAD}\n{text}\n{total}.\n\n{DOC_TAIL}"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok || r.clean.is_err())
        .map(|r| r.cell.name())
        .collect();
    assert!(bad.is_empty(), "cells that failed: {bad:#?}\n{text}");
    assert!(leaks.none(), "left behind: {}", leaks.describe());
}
