//! `loadgen flood`: a pending-tunnel flood against the relay's memory budget. Opens `--tunnels`
//! `/cable/new` tunnels that are never joined, spread over `--sources` loopback source addresses
//! (127.1.x.y; on Linux every 127/8 address is local), each sending `--bytes` of early
//! messages of `--message` bytes and then holding a partial frame of `--partial` bytes (what
//! tungstenite buffers before any limit sees a message). Flood sockets are raw TCP, so
//! loadgen holds no WebSocket state for them. Meanwhile QR ceremonies run from 127.0.0.1;
//! their rate and latency are printed beside a no-flood baseline from the same run, with the
//! relay's RSS before, at peak (sampled every 100 ms) and `--settle` seconds after the flood
//! closed, and the relay's own close and rejection counters.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use rand::RngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use cli_support::parse_duration;

use crate::client::{ceremonies, stats, Mode};
use crate::procfs::{load_average, mb, open_files_limit, rss_kib};
use crate::servers::{relay_beside_loadgen, start_relay};

/// `loadgen flood`.
#[derive(clap::Args)]
#[command(after_help = cli_support::DURATION_FORMS)]
pub(crate) struct FloodArgs {
    /// Pending tunnels to open.
    #[arg(long, default_value_t = 2000)]
    tunnels: usize,
    /// Source addresses to spread them over (127.1.0.1, 127.1.0.2, …).
    #[arg(long, default_value_t = 1)]
    sources: usize,
    /// Early bytes each tunnel sends in complete messages.
    #[arg(long, default_value_t = 4000)]
    bytes: usize,
    /// Size of each early message.
    #[arg(long, default_value_t = 1000)]
    message: usize,
    /// Bytes of a partial frame (announced as 16,000 bytes) sent after the messages; 0: none.
    #[arg(long, default_value_t = 15_999)]
    partial: usize,
    /// Ceremonies at once, before and during the flood.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long ceremonies run before, and again during, the flood.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    seconds: Duration,
    /// How long to wait after closing the flood before sampling RSS again.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "12s")]
    settle: Duration,
    /// The relay binary to start [default: tunnel-server beside loadgen].
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// Extra flag for the relay (repeatable), e.g. --server-arg=--max-queued-bytes=1048576.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// What happened to the flood's sockets.
#[derive(Default)]
struct Outcomes {
    upgraded: AtomicUsize,
    refused: AtomicUsize,
    closed_1013: AtomicUsize,
    closed_1008: AtomicUsize,
    closed_other: AtomicUsize,
    ended: AtomicUsize,
}

/// Runs the flood and prints its tables.
pub(crate) async fn run(args: &FloodArgs) -> Result<()> {
    if let Some(limit) = open_files_limit() {
        let need = (args.tunnels + 4 * args.concurrency + 64) as u64;
        if limit < need {
            bail!("the open-files limit is {limit}; this run needs {need} (ulimit -n {need})");
        }
    }
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => relay_beside_loadgen()?,
    };
    let target = start_relay(&bin, &args.server_args).await?;
    let pid = target.pid.context("no server pid")?;
    let url = target.url.clone();
    let addr = target.addr.context("no server address")?;
    println!(
        "loadgen flood: {} tunnels from {} source address(es), {} B in {} B messages + a {} B \
         partial frame each; relay {} {}; load average {}",
        args.tunnels,
        args.sources,
        args.bytes,
        args.message,
        args.partial,
        bin.display(),
        args.server_args.join(" "),
        load_average()
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let base = stats(vec![
        ceremonies(&url, args.concurrency, args.seconds, Mode::Background).await,
    ]);

    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let outcomes = Arc::new(Outcomes::default());
    let mut held = Vec::with_capacity(args.tunnels);
    for chunk in 0..args.tunnels.div_ceil(200) {
        let mut opens = Vec::new();
        for i in (chunk * 200)..((chunk + 1) * 200).min(args.tunnels) {
            let s = i % args.sources.max(1) + 1;
            let source = Ipv4Addr::new(127, 1, (s >> 8) as u8, (s & 0xff) as u8);
            let outcomes = outcomes.clone();
            let (bytes, message, partial) = (args.bytes, args.message, args.partial);
            opens.push(tokio::spawn(async move {
                match pending(addr, source, bytes, message, partial).await {
                    Some(tcp) => {
                        outcomes.upgraded.fetch_add(1, Ordering::Relaxed);
                        Some(tokio::spawn(watch(tcp, outcomes)))
                    }
                    None => {
                        outcomes.refused.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }));
        }
        for o in opens {
            if let Ok(Some(w)) = o.await {
                held.push(w);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded = rss_kib(pid);
    let during = stats(vec![
        ceremonies(&url, args.concurrency, args.seconds, Mode::Background).await,
    ]);
    let at_end = rss_kib(pid);
    let counters = metrics(addr).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let still_open = held.iter().filter(|w| !w.is_finished()).count();
    for w in held {
        w.abort();
    }
    tokio::time::sleep(args.settle).await;
    let after = rss_kib(pid);

    let o = &outcomes;
    let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    println!("\n| flood | upgraded | refused at connect | closed 1013 | closed 1008 | closed otherwise | still held at end |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} tunnels / {} sources | {} | {} | {} | {} | {} | {} |",
        args.tunnels,
        args.sources,
        load(&o.upgraded),
        load(&o.refused),
        load(&o.closed_1013),
        load(&o.closed_1008),
        load(&o.closed_other) + load(&o.ended),
        still_open
    );
    let peak = Some(peak.load(Ordering::Relaxed).max(flooded.unwrap_or(0)));
    let opt = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{:.1}", mb(v)));
    println!("\n| relay RSS MB: before | flood open | peak | end of ceremonies | +{} s after the flood closed |", args.settle.as_secs_f64());
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} |",
        opt(before),
        opt(flooded),
        opt(peak),
        opt(at_end),
        opt(after)
    );
    if let (Some(b), Some(p)) = (before, peak) {
        let held_n = still_open.max(1);
        println!(
            "\ngrowth {:.1} MB over {} held tunnels: {:.1} KiB each",
            mb(p.saturating_sub(b)),
            still_open,
            p.saturating_sub(b) as f64 / held_n as f64
        );
    }
    println!(
        "\n| ceremonies ({} at once, {} s) | done | cer/s | p50 ms | p99 ms | errors |",
        args.concurrency,
        args.seconds.as_secs_f64()
    );
    println!("|---|---|---|---|---|---|");
    for (name, s) in [("no flood", &base), ("during the flood", &during)] {
        println!(
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {} |",
            (s.rate * args.seconds.as_secs_f64()).round(),
            s.rate,
            s.p50,
            s.p99,
            s.errors
        );
    }
    println!("\nrelay counters: {}", counters.join(", "));
    println!("load average at end: {}", load_average());
    Ok(())
}

/// Opens a `/cable/new` tunnel from `source` and sends its early data; `None` if the relay
/// did not answer 101.
async fn pending(
    addr: SocketAddr,
    source: Ipv4Addr,
    bytes: usize,
    message: usize,
    partial: usize,
) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind((source, 0).into()).ok()?;
    let mut tcp = socket.connect(addr).await.ok()?;
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    let request = format!(
        "GET /cable/new/{} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: fido.cable\r\n\r\n",
        hex::encode(id)
    );
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return None;
    }
    let mut data = Vec::new();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(message.max(1));
        data.extend_from_slice(&frame_header(n));
        data.resize(data.len() + n, 0x5a);
        left -= n;
    }
    if partial > 0 {
        data.extend_from_slice(&frame_header(16_000.max(partial + 1)));
        data.resize(data.len() + partial, 0x5a);
    }
    // A refusal may close the socket while this is still being written.
    let _ = tcp.write_all(&data).await;
    Some(tcp)
}

/// A masked binary frame's header for `len` payload bytes, with an all-zero mask.
fn frame_header(len: usize) -> Vec<u8> {
    let mut h = vec![0x82];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xffff => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    h.extend_from_slice(&[0; 4]);
    h
}

/// Reads a flood socket until the relay closes it, and counts how.
async fn watch(mut tcp: TcpStream, outcomes: Arc<Outcomes>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => {
                outcomes.ended.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.len() >= 4 && got[0] == 0x88 {
            let counter = match u16::from_be_bytes([got[2], got[3]]) {
                1013 => &outcomes.closed_1013,
                1008 => &outcomes.closed_1008,
                _ => &outcomes.closed_other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

/// The relay's close and rejection counters that are not zero.
async fn metrics(addr: SocketAddr) -> Vec<String> {
    let text = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), text)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("tunnel_server_closes_total")
                || l.starts_with("tunnel_server_rejected_total")
        })
        .filter(|l| !l.ends_with(" 0"))
        .map(|l| l.replace("tunnel_server_", ""))
        .collect()
}
