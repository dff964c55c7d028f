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
//! The cells run concurrently, each with its own relay, proxies, phone and bridge. The table
//! is printed; with `FAULT_MATRIX_OUT=<file>` it is also written there as Markdown, which is
//! how docs/FAULTS.md is made.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt as _;
use rand::SeedableRng as _;
use test_support::netfault::{Direction, FaultProxy, Faults, Rule, SlowReader, Step, Trigger};
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
}

impl Expect {
    fn describe(self) -> String {
        match self {
            Self::Success => "success".into(),
            Self::Timeout(p) => format!("timeout in {p:?}"),
            Self::LostOrClosed => "relay lost or tunnel closed".into(),
            Self::SuccessOrCleanError => "success or a clean error".into(),
        }
    }

    fn accepts(self, got: &Result<(), BridgeError>) -> bool {
        match (self, got) {
            (Self::Success, Ok(())) => true,
            (Self::Timeout(want), Err(BridgeError::Timeout { phase, .. })) => *phase == want,
            (Self::LostOrClosed, Err(BridgeError::Relay(_) | BridgeError::Closed { .. })) => true,
            (Self::SuccessOrCleanError, Ok(())) => true,
            (Self::SuccessOrCleanError, Err(e)) => !matches!(e, BridgeError::Internal(_)),
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
            },
            self.fault.name(),
            format!("{:?}", self.stage).to_lowercase(),
        )
    }

    /// The request path of the faulted connection.
    fn path(&self) -> &'static str {
        match (self.flow, self.leg) {
            (Flow::Qr, Leg::Desktop) => "/cable/connect",
            (Flow::Qr, Leg::Phone) => "/cable/new",
            (Flow::Linked, Leg::Desktop) => "/cable/contact",
            (Flow::Linked, Leg::Phone) => "/cable/connect",
        }
    }

    fn trigger(&self) -> Trigger {
        // Towards the relay on the desktop's leg, towards the phone on the phone's: the
        // desktop's messages, in order, are Noise message 1, the request, the shutdown.
        let d = match self.leg {
            Leg::Desktop => Direction::Up,
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
            Leg::Desktop => Direction::Down,
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
            (Fault::Unreachable, _, Leg::Desktop) | (Fault::Reset, Stage::Start, Leg::Desktop) => {
                Expect::LostOrClosed
            }
            (Fault::NeverCompletes, _, Leg::Desktop) => Expect::Timeout(connecting),
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
    }
    out
}

/// What one cell did.
struct Row {
    cell: Cell,
    got: String,
    ok: bool,
    elapsed: Duration,
    bound: Duration,
    clean: Result<Duration, String>,
}

/// A port nobody listens on.
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
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
    let mut tcp = tokio::net::TcpStream::connect(relay).await.ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out)
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

async fn run_cell(cell: Cell, seed: u64) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let relay = tunnel_server::RunningServer::start(relay_config())
        .await
        .unwrap();
    let relay_addr = relay.addr();
    let rng = |s| Box::new(rand::rngs::StdRng::seed_from_u64(s)) as Box<dyn rand::RngCore + Send>;
    let desktop = FaultProxy::start(relay_addr, rng(seed)).await.unwrap();
    let phone = FaultProxy::start(relay_addr, rng(seed ^ 0xff))
        .await
        .unwrap();
    let mut stack = Stack::with_relay_url(
        dir.path().to_path_buf(),
        Some(relay),
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
        Leg::Desktop => &desktop,
        Leg::Phone => &phone,
    };
    for step in cell.steps() {
        proxy.at(Rule {
            path_prefix: cell.path().into(),
            trigger: cell.trigger(),
            step,
        });
    }
    if cell.fault == Fault::Unreachable {
        let nowhere = format!("ws://{}", closed_port().await);
        match cell.leg {
            Leg::Desktop => {
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
    let started = Instant::now();
    let result: Result<(), BridgeError> = match &linked {
        None => {
            let (pending, options) = registration_options(&rp, "faulted");
            stack.register(&options, &record).await.map(|run| {
                rp.finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
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
    let elapsed = started.elapsed();
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
    let ok = expect.accepts(&result) && elapsed <= bound;
    let got = got(&result);
    // The stack (phone sockets included) goes before the relay is checked; the proxies
    // stay, so that a blackholed connection stays open and the relay must end it itself.
    let relay = stack.relay.take().expect("the relay");
    drop(stack);
    let clean = relay_clean(relay_addr).await;
    drop(relay);
    Row {
        cell,
        got,
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

The bridge's timeouts in the test: advert 10 s, connect 6 s, handshake 6 s, user 8 s, linger
0.3 s. The bound of a cell that timed out is when its phase began plus that phase's timeout;
of any other, the sum of every timeout and the close wait; each plus the 2 s the harness waits
for the phone after the bridge failed and a 3 s margin. The test asserts each outcome, the
bound, and that the relay's gauges (`tunnel_server_tunnels_open`, `_tunnels_paired`,
`_registrations_connected`) are back to zero within its tunnel lifetime (30 s here). Times are
one run's on a two-core machine with other work on it; the cells run concurrently.
";

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| cell | expected | got | elapsed | bound | relay back to zero |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let clean = match &r.clean {
            Ok(d) => format!("yes, in {}", bridge_secs(*d)),
            Err(e) => format!("NO: {e}"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}{} | {} | {} | {} |",
            r.cell.name(),
            r.cell.expect().describe(),
            if r.ok { "" } else { "UNEXPECTED: " },
            r.got.replace('|', "/"),
            bridge_secs(r.elapsed),
            bridge_secs(r.bound),
            clean
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_every_stage_ends_as_expected_in_time_and_leaves_no_tunnel() {
    let started = Instant::now();
    let cells = cells();
    let mut rows: Vec<Row> = futures_util::stream::iter(cells.iter().enumerate())
        .map(|(i, c)| run_cell(*c, 0x5eed_0000 + i as u64))
        .buffer_unordered(12)
        .collect()
        .await;
    let order = |r: &Row| cells.iter().position(|c| c.name() == r.cell.name());
    rows.sort_by_key(order);
    let text = table(&rows);
    let total = format!(
        "{} cells in {}, at most 12 at once",
        rows.len(),
        bridge_secs(started.elapsed())
    );
    println!("{text}\n{total}");
    if let Ok(path) = std::env::var("FAULT_MATRIX_OUT") {
        std::fs::write(path, format!("{DOC_HEAD}\n{text}\n{total}.\n")).unwrap();
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok || r.clean.is_err())
        .map(|r| r.cell.name())
        .collect();
    assert!(bad.is_empty(), "cells that failed: {bad:#?}\n{text}");
}
