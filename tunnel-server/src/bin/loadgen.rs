//! Load generator for a tunnel server, measured in the same run against "the floor": a bare
//! verbatim relay on the same WebSocket stack (tokio-tungstenite 0.24 with its own handshake
//! and default configuration, i.e. 4 KiB read buffers; no limits, metrics or checks). It
//! prints every headline figure (tunnel-server/BENCHMARKS.md) for both, and each as a ratio:
//!
//! - ceremonies/s and p50/p99 of a simulated ceremony at several concurrencies, in two client
//!   modes (`background`: both sockets read at once; `sequential`: the initiator closes and is
//!   read to its end, then the authenticator), with the ceremony ending only when **both**
//!   sockets are fully closed, and a per-phase breakdown (open, handshake, post-handshake,
//!   CTAP, close);
//! - RSS per idle `/new` tunnel, per paired tunnel, and RSS after every tunnel closed against
//!   the RSS before any opened;
//! - relayed messages/s for 1 KiB ping-pong over a number of tunnels, and the server's CPU time
//!   per relayed message (user + system, from `/proc/<pid>/stat`).
//!
//! By default it starts both servers as child processes on loopback (`tunnel-server` from the
//! same target directory, and `loadgen serve-baseline`), so RSS and CPU are read from their
//! `/proc/<pid>`. `--url` measures any running server instead (`--pid` for RSS and CPU; give
//! it a high `--messages-per-side` for the throughput test). Many tunnels need many
//! descriptors: raise `ulimit -n` first (both processes inherit it).
//!
//! `loadgen flood` measures the relay under a pending-tunnel flood instead (`flood.rs`).

#[path = "loadgen/flood.rs"]
mod flood;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::{RoutingId, TunnelId, TunnelPath, ROUTING_ID_HEADER, SUBPROTOCOL};
use rand::RngCore as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Parser)]
#[command(about = "Measure a tunnel server against the bare-relay floor, in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Measure this server (ws://host:port) instead of starting tunnel-server.
    #[arg(long)]
    url: Option<String>,
    /// PID of the server at --url, for RSS and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// Concurrencies for the ceremony benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    concurrency: Vec<usize>,
    /// Client modes for the ceremony benchmark.
    #[arg(long, value_delimiter = ',', default_value = "sequential,background")]
    mode: Vec<Mode>,
    /// Seconds per concurrency level, mode and server, split over --rounds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Alternating rounds per measurement (the two servers take turns).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Idle `/new`-only tunnels for the RSS measurement.
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// Idle paired tunnels for the RSS measurement (two sockets each), opened on top.
    #[arg(long, default_value_t = 1000)]
    paired: usize,
    /// Tunnels doing 1 KiB ping-pong in the throughput test.
    #[arg(long, default_value_t = 32)]
    pumps: usize,
    /// Seconds to wait after closing every tunnel before sampling RSS again (allocators that
    /// return memory do so over time: jemalloc's decay is 10 s).
    #[arg(long, default_value_t = 12.0)]
    settle: f64,
    /// Seconds per throughput round and server.
    #[arg(long, default_value_t = 2.0)]
    pump_seconds: f64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the baseline relay (used by loadgen itself).
    ServeBaseline {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Flood the relay with pending tunnels while ceremonies run.
    Flood(flood::FloodArgs),
}

/// How a simulated client reads its two sockets during the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Close the initiator and read it to its end, then read the authenticator to its end.
    Sequential,
    /// Read both sockets to their end at the same time.
    Background,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Linux reports CPU times in clock ticks of 1/100 s (USER_HZ) on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Cmd::ServeBaseline { listen }) => rt.block_on(baseline::serve(listen)),
        Some(Cmd::Flood(args)) => rt.block_on(flood::run(&args)),
        None => rt.block_on(bench(&cli)),
    }
}
/// A server under test: its URL, and its PID if RSS and CPU can be read.
struct Target {
    name: &'static str,
    url: String,
    pid: Option<u32>,
    _child: Option<ChildGuard>,
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

async fn spawn(
    name: &'static str,
    program: &std::path::Path,
    args: &[String],
    port: u16,
) -> Result<Target> {
    let child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let pid = child.id();
    let guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("{name} did not listen on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Target {
        name,
        url: format!("ws://127.0.0.1:{port}"),
        pid: Some(pid),
        _child: Some(guard),
    })
}

/// Starts (or names) the server under test.
async fn server_target(cli: &Cli, dir: &std::path::Path) -> Result<Target> {
    if let Some(url) = &cli.url {
        return Ok(Target {
            name: "server",
            url: url.trim_end_matches('/').to_string(),
            pid: cli.pid,
            _child: None,
        });
    }
    let port = free_port().await?;
    // No per-IP limit (every client is 127.0.0.1) and no practical message limit (the
    // throughput test pumps thousands of messages through each tunnel); otherwise defaults.
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--routing-id",
        "0A0B0C",
        "--max-connections-per-ip",
        "0",
        "--messages-per-side",
        "4000000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bin = dir.join("tunnel-server");
    if !bin.exists() {
        bail!(
            "{} not found; build it first: cargo build --release -p tunnel-server",
            bin.display()
        );
    }
    spawn("tunnel-server", &bin, &args, port).await
}

async fn floor_target(exe: &std::path::Path) -> Result<Target> {
    let port = free_port().await?;
    let args = [
        "serve-baseline".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    spawn("floor", exe, &args, port).await
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Every headline figure, for one server.
#[derive(Default, Clone, Copy)]
struct Figures {
    close_ms: f64,
    cer_32: f64,
    handshake_ms: f64,
    idle_kib: Option<f64>,
    paired_kib: Option<f64>,
    rss_before_mb: Option<f64>,
    rss_peak_mb: Option<f64>,
    rss_after_mb: Option<f64>,
    msgs: f64,
    cpu_us: Option<f64>,
}

async fn bench(cli: &Cli) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no executable directory")?;
    let need = (cli.idle + 2 * cli.paired + 2 * cli.pumps + 64) as u64;
    if let Some(limit) = open_files_limit() {
        if limit < need {
            bail!(
                "the open-files limit is {limit} but this run holds about {need} sockets; \
                 raise it (ulimit -n {need}) or open fewer tunnels (--idle, --paired)"
            );
        }
    }
    println!(
        "loadgen: {} cores, load average {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut figures = [Figures::default(); 2];

    // RSS first, on fresh processes; each measured alone (one's tunnels closed before the
    // other's open), so loadgen's own descriptors stay under the limit.
    println!("\n## RSS\n");
    println!("| server | idle `/new` tunnels | KiB/idle tunnel | paired tunnels | KiB/paired tunnel | RSS before MB | peak MB | after closing all MB (+{} s) | after ÷ before | errors |", cli.settle);
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (i, fresh) in [true, false].into_iter().enumerate() {
        let target = if fresh {
            server_target(cli, dir).await?
        } else {
            floor_target(&exe).await?
        };
        let r = rss(&target, cli.idle, cli.paired, cli.settle).await;
        let f = &mut figures[i];
        f.idle_kib = r.idle_kib;
        f.paired_kib = r.paired_kib;
        f.rss_before_mb = r.before.map(mb);
        f.rss_peak_mb = r.peak.map(mb);
        f.rss_after_mb = r.after.map(mb);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            target.name,
            cli.idle,
            opt(r.idle_kib, 1),
            cli.paired,
            opt(r.paired_kib, 1),
            opt(f.rss_before_mb, 1),
            opt(f.rss_peak_mb, 1),
            opt(f.rss_after_mb, 1),
            match (r.after, r.before) {
                (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
                _ => "n/a".into(),
            },
            r.errors
        );
    }

    let server = server_target(cli, dir).await?;
    let floor = floor_target(&exe).await?;
    println!(
        "\n{} at {}, {} at {}",
        server.name, server.url, floor.name, floor.url
    );

    println!("\n## Ceremonies (open /new and /connect, Noise handshake, post-handshake message, CTAP request and response, initiator closes; ends when both sockets are closed)\n");
    println!("| mode | concurrency | server cer/s | floor cer/s | ratio | server p50 ms | floor p50 ms | server p99 ms | floor p99 ms | errors s/f |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut phase_rows = Vec::new();
    for &mode in &cli.mode {
        for &c in &cli.concurrency {
            // Alternate the two servers over several short rounds (S F, F S, ...), so
            // background load on a shared machine hits both alike.
            let (mut s_runs, mut f_runs) = (Vec::new(), Vec::new());
            for round in 0..cli.rounds {
                let per = cli.seconds / cli.rounds as f64;
                if round % 2 == 0 {
                    s_runs.push(ceremonies(&server.url, c, per, mode).await);
                    f_runs.push(ceremonies(&floor.url, c, per, mode).await);
                } else {
                    f_runs.push(ceremonies(&floor.url, c, per, mode).await);
                    s_runs.push(ceremonies(&server.url, c, per, mode).await);
                }
            }
            let (s, f) = (stats(s_runs), stats(f_runs));
            println!(
                "| {mode:?} | {c} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {}/{} |",
                s.rate,
                f.rate,
                s.rate / f.rate,
                s.p50,
                f.p50,
                s.p99,
                f.p99,
                s.errors,
                f.errors
            );
            if mode == Mode::Sequential && c == 32 {
                figures[0].cer_32 = s.rate;
                figures[1].cer_32 = f.rate;
            }
            if mode == Mode::Sequential && (c == 1 || figures[0].close_ms == 0.0) {
                figures[0].close_ms = s.phases[4];
                figures[1].close_ms = f.phases[4];
                figures[0].handshake_ms = s.phases[1];
                figures[1].handshake_ms = f.phases[1];
            }
            phase_rows.push((mode, c, s.phases, f.phases));
        }
    }
    println!("\nPer phase, p50 ms, server / floor:\n");
    println!("| mode | concurrency | open | handshake | post-handshake | CTAP | close |");
    println!("|---|---|---|---|---|---|---|");
    for (mode, c, s, f) in phase_rows {
        let cells: Vec<String> = (0..5)
            .map(|i| format!("{:.3} / {:.3}", s[i], f[i]))
            .collect();
        println!("| {mode:?} | {c} | {} |", cells.join(" | "));
    }

    println!(
        "\n## Relayed messages (1 KiB ping-pong, {} tunnels, {} s per round, median of {})\n",
        cli.pumps, cli.pump_seconds, cli.rounds
    );
    let (mut s_runs, mut f_runs) = (Vec::new(), Vec::new());
    for round in 0..cli.rounds {
        if round % 2 == 0 {
            s_runs.push(throughput(&server, cli.pumps, cli.pump_seconds).await?);
            f_runs.push(throughput(&floor, cli.pumps, cli.pump_seconds).await?);
        } else {
            f_runs.push(throughput(&floor, cli.pumps, cli.pump_seconds).await?);
            s_runs.push(throughput(&server, cli.pumps, cli.pump_seconds).await?);
        }
    }
    let (s, f) = (pumped(s_runs), pumped(f_runs));
    println!(
        "| server msg/s | floor msg/s | ratio | server CPU µs/msg | floor CPU µs/msg | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.0} | {:.0} | {:.2} | {} | {} | {} |",
        s.0,
        f.0,
        s.0 / f.0,
        opt(s.1, 2),
        opt(f.1, 2),
        ratio(s.1, f.1)
    );
    figures[0].msgs = s.0;
    figures[1].msgs = f.0;
    figures[0].cpu_us = s.1;
    figures[1].cpu_us = f.1;

    let [o, b] = figures;
    println!("\n## Headline figures, this run\n");
    println!("| figure | ours | floor | ours ÷ floor |");
    println!("|---|---|---|---|");
    let row = |name: &str, x: Option<f64>, y: Option<f64>, digits: usize| {
        println!(
            "| {name} | {} | {} | {} |",
            opt(x, digits),
            opt(y, digits),
            ratio(x, y)
        );
    };
    row(
        "ceremony, close phase p50 ms (sequential client)",
        Some(o.close_ms),
        Some(b.close_ms),
        3,
    );
    row(
        "ceremonies/s, 32 concurrent (sequential client)",
        Some(o.cer_32),
        Some(b.cer_32),
        0,
    );
    row(
        "handshake round trip p50 ms",
        Some(o.handshake_ms),
        Some(b.handshake_ms),
        3,
    );
    row(
        &format!("RSS per idle (`/new` only) tunnel KiB, {}", cli.idle),
        o.idle_kib,
        b.idle_kib,
        1,
    );
    row(
        &format!("RSS per paired tunnel KiB, {}", cli.paired),
        o.paired_kib,
        b.paired_kib,
        1,
    );
    row(
        "RSS before any tunnel MB",
        o.rss_before_mb,
        b.rss_before_mb,
        1,
    );
    row("RSS at peak MB", o.rss_peak_mb, b.rss_peak_mb, 1);
    row("RSS after all closed MB", o.rss_after_mb, b.rss_after_mb, 1);
    row(
        &format!("relayed msgs/s, {} tunnels, 1 KiB ping-pong", cli.pumps),
        Some(o.msgs),
        Some(b.msgs),
        0,
    );
    row("server CPU per relayed message µs", o.cpu_us, b.cpu_us, 2);
    println!("\nload average at end: {}", load_average());
    Ok(())
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn ratio(x: Option<f64>, y: Option<f64>) -> String {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
        _ => "n/a".into(),
    }
}

fn random_tunnel() -> TunnelId {
    let mut t = TunnelId([0; 16]);
    rand::thread_rng().fill_bytes(&mut t.0);
    t
}

async fn open(url: &str) -> Result<(Ws, Option<RoutingId>)> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
    let routing = resp
        .headers()
        .get(ROUTING_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| RoutingId::from_hex(v).ok());
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        let _ = s.set_nodelay(true);
    }
    Ok((ws, routing))
}

/// Opens a tunnel's two sockets: `(phone, desktop)`.
async fn open_pair(base: &str) -> Result<(Ws, Ws)> {
    let t = random_tunnel();
    let (phone, routing) = open(&format!("{base}{}", TunnelPath::New(t).to_path())).await?;
    let routing = routing.context("no routing ID header")?;
    let (desktop, _) = open(&format!(
        "{base}{}",
        TunnelPath::Connect(routing, t).to_path()
    ))
    .await?;
    Ok((phone, desktop))
}

async fn next_binary(ws: &mut Ws) -> Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => bail!("expected a binary message, got {other:?}"),
        }
    }
}

/// Reads a socket to its end: the close frame (answered by tungstenite), then the server
/// closing the TCP connection. A reset or a missing close reply also ends it.
async fn read_to_end(ws: &mut Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// The phases of one ceremony: open, handshake, post-handshake, CTAP, close.
type Phases = [Duration; 5];

/// One simulated hybrid ceremony; returns its phases.
async fn ceremony(base: &str, mode: Mode) -> Result<Phases> {
    let t0 = Instant::now();
    let (mut phone, mut desktop) = open_pair(base).await?;
    let t1 = Instant::now();
    // Noise msg1, msg2 (and right behind it the post-handshake message).
    desktop.send(Message::Binary(vec![1; 81])).await?;
    next_binary(&mut phone).await?;
    phone.send(Message::Binary(vec![2; 81])).await?;
    phone.send(Message::Binary(vec![3; 320])).await?;
    next_binary(&mut desktop).await?;
    let t2 = Instant::now();
    next_binary(&mut desktop).await?;
    let t3 = Instant::now();
    // CTAP request and response.
    desktop.send(Message::Binary(vec![4; 480])).await?;
    next_binary(&mut phone).await?;
    phone.send(Message::Binary(vec![5; 800])).await?;
    next_binary(&mut desktop).await?;
    let t4 = Instant::now();
    // The initiator (the desktop) closes; the ceremony ends when both sockets are closed.
    desktop.close(None).await?;
    match mode {
        Mode::Sequential => {
            read_to_end(&mut desktop).await;
            read_to_end(&mut phone).await;
        }
        Mode::Background => {
            tokio::join!(read_to_end(&mut desktop), read_to_end(&mut phone));
        }
    }
    let t5 = Instant::now();
    Ok([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
}

struct CeremonyStats {
    rate: f64,
    p50: f64,
    p99: f64,
    /// p50 of each phase, ms.
    phases: [f64; 5],
    errors: usize,
}

/// One timed run of ceremonies at a concurrency.
struct Run {
    ceremonies: Vec<Phases>,
    errors: usize,
    elapsed: f64,
}

async fn ceremonies(base: &str, concurrency: usize, seconds: f64, mode: Mode) -> Run {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let results = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let base = base.to_string();
        let results = results.clone();
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = tokio::time::timeout(Duration::from_secs(10), ceremony(&base, mode)).await;
                let mut g = results.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(Ok(p)) => g.0.push(p),
                    _ => g.1 += 1,
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ceremonies, errors) =
        std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    Run {
        ceremonies,
        errors,
        elapsed,
    }
}

/// The `p` quantile of `v` in ms (sorts `v`).
fn quantile(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn stats(runs: Vec<Run>) -> CeremonyStats {
    let elapsed: f64 = runs.iter().map(|r| r.elapsed).sum();
    let errors = runs.iter().map(|r| r.errors).sum();
    let all: Vec<Phases> = runs.into_iter().flat_map(|r| r.ceremonies).collect();
    let mut total: Vec<Duration> = all.iter().map(|p| p.iter().sum()).collect();
    let mut phases = [0.0; 5];
    for (i, out) in phases.iter_mut().enumerate() {
        let mut v: Vec<Duration> = all.iter().map(|p| p[i]).collect();
        *out = quantile(&mut v, 0.5);
    }
    CeremonyStats {
        rate: all.len() as f64 / elapsed,
        p50: quantile(&mut total, 0.5),
        p99: quantile(&mut total, 0.99),
        phases,
        errors,
    }
}

/// User + system CPU ticks of a process.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Messages/s relayed by `pumps` tunnels doing 1 KiB ping-pong (the desktop sends, the phone
/// echoes, one message in flight per tunnel) for `seconds`, and the server's CPU µs per
/// relayed message.
async fn throughput(target: &Target, pumps: usize, seconds: f64) -> Result<(f64, Option<f64>)> {
    let mut pairs = Vec::new();
    for _ in 0..pumps {
        pairs.push(open_pair(&target.url).await?);
    }
    let relayed = Arc::new(AtomicU64::new(0));
    let cpu_before = target.pid.and_then(cpu_ticks);
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for (mut phone, mut desktop) in pairs {
        let relayed = relayed.clone();
        tasks.push(tokio::spawn(async move {
            let payload = vec![7u8; 1024];
            while Instant::now() < until {
                desktop.send(Message::Binary(payload.clone())).await?;
                let m = next_binary(&mut phone).await?;
                phone.send(Message::Binary(m)).await?;
                next_binary(&mut desktop).await?;
                relayed.fetch_add(2, Ordering::Relaxed);
            }
            anyhow::Ok((phone, desktop))
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = target.pid.and_then(cpu_ticks);
    let n = relayed.load(Ordering::Relaxed) as f64;
    drop(done);
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if n > 0.0 => Some((a - b) as f64 / TICKS_PER_SECOND / n * 1e6),
        _ => None,
    };
    // Let the closes finish before the next round.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok((n / elapsed, cpu))
}

/// The median rate and median CPU per message over rounds.
fn pumped(runs: Vec<(f64, Option<f64>)>) -> (f64, Option<f64>) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let rate = median(runs.iter().map(|r| r.0).collect()).unwrap_or(f64::NAN);
    let cpu = median(runs.iter().filter_map(|r| r.1).collect());
    (rate, cpu)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What [`rss`] measured; RSS values in KiB.
struct RssRun {
    idle_kib: Option<f64>,
    paired_kib: Option<f64>,
    before: Option<u64>,
    peak: Option<u64>,
    after: Option<u64>,
    errors: usize,
}

/// Opens `idle` waiting `/new` tunnels, then `paired` paired tunnels on top (one message
/// relayed each, so both sockets have been used), then closes them all; RSS is sampled before,
/// after each step, and `settle` seconds after the closes.
async fn rss(target: &Target, idle: usize, paired: usize, settle: f64) -> RssRun {
    let sample = || target.pid.and_then(rss_kib);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sample();
    let (held_idle, e1) = open_many(&target.url, idle, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mid = sample();
    let (held_paired, e2) = open_many(&target.url, paired, true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = sample();
    let per = |a: Option<u64>, b: Option<u64>, n: usize| match (a, b) {
        (Some(a), Some(b)) if n > 0 => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    let idle_kib = per(mid, before, held_idle.len());
    let paired_kib = per(peak, mid, held_paired.len());
    // Close every tunnel the way a client does (a close frame), then give the server time to
    // finish the handshakes and time out the unanswered ones.
    let mut closes = Vec::new();
    for (mut a, b) in held_idle.into_iter().chain(held_paired) {
        // Bounded: the floor never reads a waiting `/new` socket, so it never answers.
        closes.push(tokio::spawn(tokio::time::timeout(
            Duration::from_secs(3),
            async move {
                let _ = a.close(None).await;
                read_to_end(&mut a).await;
                if let Some(mut b) = b {
                    read_to_end(&mut b).await;
                }
            },
        )));
    }
    for c in closes {
        let _ = c.await;
    }
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    RssRun {
        idle_kib,
        paired_kib,
        before,
        peak,
        after: sample(),
        errors: e1 + e2,
    }
}

type Held = Vec<(Ws, Option<Ws>)>;

/// Opens `n` tunnels (waiting `/new` only, or paired with one message relayed), 200 at a time.
async fn open_many(base: &str, n: usize, paired: bool) -> (Held, usize) {
    let mut held = Vec::with_capacity(n);
    let mut errors = 0;
    for chunk in 0..n.div_ceil(200) {
        let mut opens = Vec::new();
        for _ in (chunk * 200)..((chunk + 1) * 200).min(n) {
            let base = base.to_string();
            opens.push(tokio::spawn(async move {
                if !paired {
                    let t = random_tunnel();
                    let (phone, _) =
                        open(&format!("{base}{}", TunnelPath::New(t).to_path())).await?;
                    return anyhow::Ok((phone, None));
                }
                let (mut phone, mut desktop) = open_pair(&base).await?;
                desktop.send(Message::Binary(vec![1; 81])).await?;
                next_binary(&mut phone).await?;
                Ok((desktop, Some(phone)))
            }));
        }
        for o in opens {
            match o.await {
                Ok(Ok(pair)) => held.push(pair),
                _ => errors += 1,
            }
        }
    }
    (held, errors)
}

/// The baseline: the least a relay can do with tokio-tungstenite. Pairs `/cable/new/<t>` with
/// `/cable/connect/<r>/<t>` and copies messages both ways; no limits, metrics or checks.
mod baseline {
    use super::*;

    type ServerWs = WebSocketStream<TcpStream>;
    type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<ServerWs>>>>;

    pub(super) async fn serve(listen: SocketAddr) -> Result<()> {
        let listener = TcpListener::bind(listen).await?;
        let waiting: Waiting = Arc::default();
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let waiting = waiting.clone();
            tokio::spawn(async move {
                let _ = handle(tcp, waiting).await;
            });
        }
    }

    // The callback's error type is tungstenite's `ErrorResponse`, which is large; the baseline
    // never returns it.
    #[allow(clippy::result_large_err)]
    async fn handle(tcp: TcpStream, waiting: Waiting) -> Result<()> {
        // Register a waiting /new before the 101 goes out, so a /connect that follows the
        // 101 always finds it.
        let mut path = String::new();
        let mut waiting_rx = None;
        let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
            path = req.uri().path().to_string();
            if let ["", "cable", "new", t] = path.split('/').collect::<Vec<_>>().as_slice() {
                let (tx, rx) = oneshot::channel();
                waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(t.to_ascii_uppercase(), tx);
                waiting_rx = Some(rx);
            }
            let h = resp.headers_mut();
            h.insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(SUBPROTOCOL),
            );
            h.insert(ROUTING_ID_HEADER, HeaderValue::from_static("000000"));
            Ok(resp)
        })
        .await?;
        if let Some(rx) = waiting_rx {
            let peer = rx.await?;
            relay(ws, peer).await;
            return Ok(());
        }
        if let ["", "cable", "connect", _, t] = path.split('/').collect::<Vec<_>>().as_slice() {
            let tx = waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&t.to_ascii_uppercase());
            if let Some(tx) = tx {
                let _ = tx.send(ws);
            }
        }
        Ok(())
    }

    async fn relay(mut a: ServerWs, mut b: ServerWs) {
        loop {
            tokio::select! {
                m = a.next() => match m {
                    Some(Ok(m)) if m.is_binary() => { if b.send(m).await.is_err() { break; } }
                    Some(Ok(m)) if m.is_close() => { let _ = b.close(None).await; break; }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                m = b.next() => match m {
                    Some(Ok(m)) if m.is_binary() => { if a.send(m).await.is_err() { break; } }
                    Some(Ok(m)) if m.is_close() => { let _ = a.close(None).await; break; }
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
    }
}
