//! Load generator for a tunnel server: ceremonies/s and p50/p99 latency of a simulated
//! ceremony at several concurrencies, RSS per idle tunnel (authenticator-only and paired),
//! and relayed messages/s. In the same run it measures a trivial verbatim relay built from the
//! same WebSocket stack (tokio-tungstenite's own handshake, default config, no limits, no
//! metrics) and prints every number as a ratio to it.
//!
//! By default it starts both servers as child processes on loopback (`tunnel-server` from the
//! same target directory, and `loadgen serve-baseline`), so RSS is read from their
//! `/proc/<pid>/status`. `--url` measures any running server instead (`--pid` for its RSS).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
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
#[command(about = "Measure a tunnel server against a trivial baseline relay")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Measure this server (ws://host:port) instead of starting tunnel-server.
    #[arg(long)]
    url: Option<String>,
    /// PID of the server at --url, for RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Concurrencies for the ceremony benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,32,256")]
    concurrency: Vec<usize>,
    /// Seconds per concurrency level and server, split over --rounds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Alternating rounds per measurement (the two servers take turns).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Idle authenticator-only tunnels for the RSS measurement.
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// Idle paired tunnels for the RSS measurement (two sockets each).
    #[arg(long, default_value_t = 1000)]
    paired: usize,
    /// Tunnels pumping messages in the throughput test.
    #[arg(long, default_value_t = 64)]
    pumps: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the baseline relay (used by loadgen itself).
    ServeBaseline {
        #[arg(long)]
        listen: SocketAddr,
    },
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Cmd::ServeBaseline { listen }) => rt.block_on(baseline::serve(listen)),
        None => rt.block_on(bench(&cli)),
    }
}

/// A server under test: its URL, and its PID if RSS can be read.
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

async fn bench(cli: &Cli) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no executable directory")?;
    let server = match &cli.url {
        Some(url) => Target {
            name: "server",
            url: url.trim_end_matches('/').to_string(),
            pid: cli.pid,
            _child: None,
        },
        None => {
            let port = free_port().await?;
            let args: Vec<String> = [
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--routing-id",
                "0A0B0C",
                "--max-connections-per-ip",
                "0",
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
            spawn("tunnel-server", &bin, &args, port).await?
        }
    };
    let port = free_port().await?;
    let baseline = spawn(
        "baseline",
        &exe,
        &[
            "serve-baseline".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        port,
    )
    .await?;
    println!(
        "loadgen: {} cores, {} at {}, {} at {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        server.name,
        server.url,
        baseline.name,
        baseline.url
    );

    println!("\n## RSS per idle tunnel\n");
    println!("| kind | tunnels | server KiB/tunnel | baseline KiB/tunnel | ratio | errors s/b |");
    println!("|---|---|---|---|---|---|");
    // Per server process: paired tunnels are opened on top of the authenticator-only ones
    // (still held), so memory freed by one phase is not reused by the next. The servers are
    // separate processes, so one's tunnels are closed before the other's are opened (this
    // keeps loadgen's own descriptors under `ulimit -n`).
    let mut rows = Vec::new();
    for target in [&server, &baseline] {
        let (idle, held_idle) = idle_rss(target, cli.idle, false).await;
        let (paired, held_paired) = idle_rss(target, cli.paired, true).await;
        rows.push((idle, paired));
        drop((held_idle, held_paired));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    for (i, (kind, n)) in [("authenticator-only", cli.idle), ("paired", cli.paired)]
        .into_iter()
        .enumerate()
    {
        let pick = |r: &(Rss, Rss)| if i == 0 { r.0 } else { r.1 };
        let (s, b) = (pick(&rows[0]), pick(&rows[1]));
        let ratio = match (s.0, b.0) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
            _ => "n/a".into(),
        };
        println!(
            "| {kind} | {n} | {} | {} | {ratio} | {}/{} |",
            fmt(s.0),
            fmt(b.0),
            s.1,
            b.1
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("\n## Ceremonies (open /new, connect, 3 messages each way, close)\n");
    println!("| concurrency | server cer/s | baseline cer/s | ratio | server p50 ms | baseline p50 ms | p50 ratio | server p99 ms | baseline p99 ms | errors s/b |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &c in &cli.concurrency {
        // Alternate the two servers over several short rounds (S B, B S, S B, ...), so
        // background load on a shared machine hits both alike.
        let (mut s_runs, mut b_runs) = (Vec::new(), Vec::new());
        for round in 0..cli.rounds {
            let per = cli.seconds / cli.rounds as f64;
            if round % 2 == 0 {
                s_runs.push(ceremonies(&server.url, c, per).await);
                b_runs.push(ceremonies(&baseline.url, c, per).await);
            } else {
                b_runs.push(ceremonies(&baseline.url, c, per).await);
                s_runs.push(ceremonies(&server.url, c, per).await);
            }
        }
        let (s, b) = (stats(s_runs), stats(b_runs));
        println!(
            "| {c} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {}/{} |",
            s.rate,
            b.rate,
            s.rate / b.rate,
            s.p50,
            b.p50,
            s.p50 / b.p50,
            s.p99,
            b.p99,
            s.errors,
            b.errors
        );
    }

    println!(
        "\n## Relayed messages (1 KiB, {} tunnels, 30 each way)\n",
        cli.pumps
    );
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for _ in 0..cli.rounds {
        s.push(throughput(&server.url, cli.pumps).await?);
        b.push(throughput(&baseline.url, cli.pumps).await?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s, b) = (median(s), median(b));
    println!(
        "| server msg/s | baseline msg/s | ratio |\n|---|---|---|\n| {s:.0} | {b:.0} | {:.2} |",
        s / b
    );

    Ok(())
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

async fn next_binary(ws: &mut Ws) -> Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => bail!("expected a binary message, got {other:?}"),
        }
    }
}

/// One simulated hybrid ceremony; returns its duration.
async fn ceremony(base: &str) -> Result<Duration> {
    let start = Instant::now();
    let t = random_tunnel();
    let (mut phone, routing) = open(&format!("{base}{}", TunnelPath::New(t).to_path())).await?;
    let routing = routing.context("no routing ID header")?;
    let (mut desktop, _) = open(&format!(
        "{base}{}",
        TunnelPath::Connect(routing, t).to_path()
    ))
    .await?;
    // Noise msg1, msg2 + post-handshake, CTAP request, CTAP response.
    desktop.send(Message::Binary(vec![1; 81])).await?;
    next_binary(&mut phone).await?;
    phone.send(Message::Binary(vec![2; 81])).await?;
    phone.send(Message::Binary(vec![3; 320])).await?;
    next_binary(&mut desktop).await?;
    next_binary(&mut desktop).await?;
    desktop.send(Message::Binary(vec![4; 480])).await?;
    next_binary(&mut phone).await?;
    phone.send(Message::Binary(vec![5; 800])).await?;
    next_binary(&mut desktop).await?;
    desktop.close(None).await?;
    // The phone sees the close propagated.
    loop {
        match phone.next().await {
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("phone: {e}"),
        }
    }
    Ok(start.elapsed())
}

struct CeremonyStats {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

/// One timed run of ceremonies at a concurrency.
struct Run {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: f64,
}

async fn ceremonies(base: &str, concurrency: usize, seconds: f64) -> Run {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let results = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let base = base.to_string();
        let results = results.clone();
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = tokio::time::timeout(Duration::from_secs(10), ceremony(&base)).await;
                let mut g = results.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(Ok(d)) => g.0.push(d),
                    _ => g.1 += 1,
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (latencies, errors) =
        std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    Run {
        latencies,
        errors,
        elapsed,
    }
}

fn stats(runs: Vec<Run>) -> CeremonyStats {
    let elapsed: f64 = runs.iter().map(|r| r.elapsed).sum();
    let errors = runs.iter().map(|r| r.errors).sum();
    let mut lat: Vec<Duration> = runs.into_iter().flat_map(|r| r.latencies).collect();
    lat.sort();
    let pct = |p: f64| {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i].as_secs_f64() * 1000.0
    };
    CeremonyStats {
        rate: lat.len() as f64 / elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
        errors,
    }
}

/// Messages/s relayed by `pumps` tunnels, each sending 30 1 KiB messages each way.
async fn throughput(base: &str, pumps: usize) -> Result<f64> {
    let mut pairs = Vec::new();
    for _ in 0..pumps {
        let t = random_tunnel();
        let (phone, routing) = open(&format!("{base}{}", TunnelPath::New(t).to_path())).await?;
        let routing = routing.context("no routing ID header")?;
        let (desktop, _) = open(&format!(
            "{base}{}",
            TunnelPath::Connect(routing, t).to_path()
        ))
        .await?;
        pairs.push((phone, desktop));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut phone, mut desktop) in pairs {
        tasks.push(tokio::spawn(async move {
            let send = async {
                for _ in 0..30 {
                    desktop.send(Message::Binary(vec![7; 1024])).await?;
                }
                for _ in 0..30 {
                    next_binary(&mut desktop).await?;
                }
                anyhow::Ok(())
            };
            let echo = async {
                for _ in 0..30 {
                    let m = next_binary(&mut phone).await?;
                    phone.send(Message::Binary(m)).await?;
                }
                anyhow::Ok(())
            };
            let (a, b) = tokio::join!(send, echo);
            a.and(b)
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((pumps * 60) as f64 / start.elapsed().as_secs_f64())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

type Held = Vec<(Ws, Option<Ws>)>;
/// KiB per tunnel (if RSS is readable) and failed opens.
type Rss = (Option<f64>, usize);

/// RSS growth per idle tunnel (KiB) and the number of failed opens, and the open tunnels.
async fn idle_rss(target: &Target, n: usize, paired: bool) -> (Rss, Held) {
    // Let the previous phase's sockets go, then sample.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = target.pid.and_then(rss_kib);
    let mut held = Vec::with_capacity(n * 2);
    let mut errors = 0;
    for chunk in 0..n.div_ceil(200) {
        let mut opens = Vec::new();
        for _ in (chunk * 200)..((chunk + 1) * 200).min(n) {
            let base = target.url.clone();
            opens.push(tokio::spawn(async move {
                let t = random_tunnel();
                let (phone, routing) =
                    open(&format!("{base}{}", TunnelPath::New(t).to_path())).await?;
                if !paired {
                    return anyhow::Ok((phone, None));
                }
                let routing = routing.context("no routing ID header")?;
                let (mut desktop, _) = open(&format!(
                    "{base}{}",
                    TunnelPath::Connect(routing, t).to_path()
                ))
                .await?;
                let mut phone = phone;
                desktop.send(Message::Binary(vec![1; 81])).await?;
                next_binary(&mut phone).await?;
                Ok((phone, Some(desktop)))
            }));
        }
        for o in opens {
            match o.await {
                Ok(Ok(pair)) => held.push(pair),
                _ => errors += 1,
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = target.pid.and_then(rss_kib);
    let per = match (before, after) {
        (Some(b), Some(a)) if !held.is_empty() => {
            Some(a.saturating_sub(b) as f64 / held.len() as f64)
        }
        _ => None,
    };
    ((per, errors), held)
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
