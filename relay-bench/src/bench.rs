//! loadgen's default mode: the relay against the floor, every headline figure for both and
//! each as a ratio. RSS first, on fresh processes (idle `/new` tunnels, paired tunnels on top,
//! then every tunnel closed and `--settle` waited); then ceremonies at each concurrency and
//! client mode, the two servers taking turns in alternating rounds (S F, F S, …) so background
//! load on a shared machine hits both alike; then relayed messages/s in 1 KiB ping-pong with
//! the server's CPU time per message. By default both servers are child processes on loopback
//! ([`crate::servers`]); `--url` measures any running server instead (`--pid` for RSS and CPU;
//! give it a high `--messages-per-side` for the throughput test), and `--baseline-url` takes a
//! running server as the baseline in place of the floor (a relay behind a proxy at `--url`
//! against the same relay directly: what the proxy costs). Many tunnels need many
//! descriptors: raise `ulimit -n` first (both servers inherit it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cli_support::parse_duration;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::TunnelPath;
use tokio::sync::{oneshot, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{
    ceremonies, next_binary, open, open_pair, random_tunnel, read_to_end, stats, Mode, Ws,
};
use crate::procfs::{cpu_ticks, load_average, mb, open_files_limit, rss_kib, TICKS_PER_SECOND};
use crate::servers::{relay_beside_loadgen, start_floor, start_relay, Target};

/// The default mode's flags.
#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Measure this server (ws://host:port) instead of starting tunnel-server.
    #[arg(long)]
    url: Option<String>,
    /// PID of the server at --url, for RSS and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// Compare with this running server (ws://host:port) instead of the bare-relay floor:
    /// e.g. the relay itself, with --url pointing at a proxy in front of it. The columns
    /// headed "floor" are then this baseline.
    #[arg(long, value_name = "URL")]
    baseline_url: Option<String>,
    /// PID of the server at --baseline-url, for RSS and CPU.
    #[arg(long, requires = "baseline_url")]
    baseline_pid: Option<u32>,
    /// Concurrencies for the ceremony benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    concurrency: Vec<usize>,
    /// Client modes for the ceremony benchmark.
    #[arg(long, value_delimiter = ',', default_value = "sequential,background")]
    mode: Vec<Mode>,
    /// Time per concurrency level, mode and server, split over --rounds.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "3s")]
    seconds: Duration,
    /// Alternating rounds per measurement (the two servers take turns).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Idle `/new`-only tunnels for the RSS measurement.
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// Idle paired tunnels for the RSS measurement (two sockets each), opened on top.
    #[arg(long, default_value_t = 1000)]
    paired: usize,
    /// How long the paired tunnels stay open and silent before RSS is sampled again, for the
    /// memory of a quiet paired tunnel (the relay drops a socket's buffers after 1 s without a
    /// message; jemalloc gives the pages back over its 10 s decay).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15s")]
    quiet_wait: Duration,
    /// Tunnels doing 1 KiB ping-pong in the throughput test.
    #[arg(long, default_value_t = 32)]
    pumps: usize,
    /// How long to wait after closing every tunnel before sampling RSS again (allocators that
    /// return memory do so over time: jemalloc's decay is 10 s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "12s")]
    settle: Duration,
    /// Time per throughput round and server.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pump_seconds: Duration,
    /// Messages in flight per tunnel and direction in the pipelined throughput test (0 skips
    /// it): each side sends while fewer than this many of its messages are unread by the other.
    #[arg(long, default_value_t = 255)]
    pipeline: usize,
    /// Time per pipelined throughput round and server.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pipeline_seconds: Duration,
}

/// Starts (or names) the server under test. No per-IP limit (every client is 127.0.0.1) and
/// no practical message limit (the throughput test pumps thousands of messages through each
/// tunnel); otherwise the relay's defaults.
async fn server_target(args: &BenchArgs) -> Result<Target> {
    if let Some(url) = &args.url {
        return Ok(Target::running("server", url, args.pid));
    }
    let extra = [
        "--max-connections-per-ip",
        "0",
        "--messages-per-side",
        "4000000000",
    ]
    .map(String::from);
    start_relay(&relay_beside_loadgen()?, &extra).await
}

/// Starts the floor, or names the running baseline that replaces it.
async fn floor_target(args: &BenchArgs) -> Result<Target> {
    match &args.baseline_url {
        Some(url) => Ok(Target::running("baseline", url, args.baseline_pid)),
        None => start_floor().await,
    }
}

/// Every headline figure, for one server.
#[derive(Default, Clone, Copy)]
struct Figures {
    close_ms: f64,
    cer_32: f64,
    handshake_ms: f64,
    idle_kib: Option<f64>,
    paired_kib: Option<f64>,
    quiet_kib: Option<f64>,
    rss_before_mb: Option<f64>,
    rss_peak_mb: Option<f64>,
    rss_after_mb: Option<f64>,
    msgs: f64,
    cpu_us: Option<f64>,
    piped_msgs: Option<f64>,
    piped_cpu_us: Option<f64>,
}

/// Runs the default mode.
pub(crate) async fn run(cli: &BenchArgs) -> Result<()> {
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
    println!("| server | idle `/new` tunnels | KiB/idle tunnel | paired tunnels | KiB/paired tunnel | KiB/paired tunnel, quiet {} s | RSS before MB | peak MB | after closing all MB (+{} s) | after ÷ before | errors |", cli.quiet_wait.as_secs_f64(), cli.settle.as_secs_f64());
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, fresh) in [true, false].into_iter().enumerate() {
        let target = if fresh {
            server_target(cli).await?
        } else {
            floor_target(cli).await?
        };
        let r = rss(&target, cli, cli.settle).await;
        let f = &mut figures[i];
        f.idle_kib = r.idle_kib;
        f.paired_kib = r.paired_kib;
        f.quiet_kib = r.quiet_kib;
        f.rss_before_mb = r.before.map(mb);
        f.rss_peak_mb = r.peak.map(mb);
        f.rss_after_mb = r.after.map(mb);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            target.name,
            cli.idle,
            opt(r.idle_kib, 1),
            cli.paired,
            opt(r.paired_kib, 1),
            opt(r.quiet_kib, 1),
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

    let server = server_target(cli).await?;
    let floor = floor_target(cli).await?;
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
                let per = cli.seconds / cli.rounds as u32;
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
        cli.pumps,
        cli.pump_seconds.as_secs_f64(),
        cli.rounds
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

    if cli.pipeline > 0 {
        println!(
            "\n## Relayed messages, pipelined (1 KiB, {} tunnels, up to {} in flight per tunnel and direction, both directions, {} s per round, median of {})\n",
            cli.pumps,
            cli.pipeline,
            cli.pipeline_seconds.as_secs_f64(),
            cli.rounds
        );
        let (mut s_runs, mut f_runs) = (Vec::new(), Vec::new());
        for round in 0..cli.rounds {
            let (p, d) = (cli.pipeline, cli.pipeline_seconds);
            if round % 2 == 0 {
                s_runs.push(pipelined(&server, cli.pumps, p, d).await?);
                f_runs.push(pipelined(&floor, cli.pumps, p, d).await?);
            } else {
                f_runs.push(pipelined(&floor, cli.pumps, p, d).await?);
                s_runs.push(pipelined(&server, cli.pumps, p, d).await?);
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
        figures[0].piped_msgs = Some(s.0);
        figures[1].piped_msgs = Some(f.0);
        figures[0].piped_cpu_us = s.1;
        figures[1].piped_cpu_us = f.1;
    }

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
        &format!(
            "RSS per paired tunnel KiB, {}, quiet {} s",
            cli.paired,
            cli.quiet_wait.as_secs_f64()
        ),
        o.quiet_kib,
        b.quiet_kib,
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
    if cli.pipeline > 0 {
        row(
            &format!(
                "relayed msgs/s, {} tunnels, 1 KiB, {} in flight each way",
                cli.pumps, cli.pipeline
            ),
            o.piped_msgs,
            b.piped_msgs,
            0,
        );
        row(
            "server CPU per relayed message µs, pipelined",
            o.piped_cpu_us,
            b.piped_cpu_us,
            2,
        );
    }
    println!("\nload average at end: {}", load_average());
    Ok(())
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

/// Messages/s relayed by `pumps` tunnels doing 1 KiB ping-pong (the desktop sends, the phone
/// echoes, one message in flight per tunnel) for `seconds`, and the server's CPU µs per
/// relayed message.
async fn throughput(
    target: &Target,
    pumps: usize,
    duration: Duration,
) -> Result<(f64, Option<f64>)> {
    let mut pairs = Vec::new();
    for _ in 0..pumps {
        pairs.push(open_pair(&target.url).await?);
    }
    let relayed = Arc::new(AtomicU64::new(0));
    let cpu_before = target.pid.and_then(cpu_ticks);
    let start = Instant::now();
    let until = start + duration;
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

/// Messages/s relayed by `pumps` tunnels with up to `depth` 1 KiB messages in flight per
/// tunnel and direction (both sides send and read at once), and the server's CPU µs per
/// relayed message. Senders stop after `duration`; the round ends when every sent message
/// has been read, and the rate counts every message over the whole round.
async fn pipelined(
    target: &Target,
    pumps: usize,
    depth: usize,
    duration: Duration,
) -> Result<(f64, Option<f64>)> {
    let mut pairs = Vec::new();
    for _ in 0..pumps {
        pairs.push(open_pair(&target.url).await?);
    }
    let cpu_before = target.pid.and_then(cpu_ticks);
    let start = Instant::now();
    let until = start + duration;
    let mut tasks: Vec<tokio::task::JoinHandle<Result<(u64, Half)>>> = Vec::new();
    for (phone, desktop) in pairs {
        let (phone_tx, phone_rx) = phone.split();
        let (desktop_tx, desktop_rx) = desktop.split();
        for (tx, rx) in [(desktop_tx, phone_rx), (phone_tx, desktop_rx)] {
            let window = Arc::new(Semaphore::new(depth));
            let (sent_tx, sent_rx) = oneshot::channel();
            tasks.push(tokio::spawn(pipe_send(tx, window.clone(), until, sent_tx)));
            tasks.push(tokio::spawn(pipe_read(rx, window, sent_rx)));
        }
    }
    // Every socket stays open until every direction is done: a socket closed with unread
    // data resets, which would cut off what its peer still has in flight.
    let mut relayed = 0u64;
    let mut halves = Vec::new();
    for t in tasks {
        let (n, half) = t.await??;
        relayed += n;
        halves.push(half);
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(halves);
    let cpu_after = target.pid.and_then(cpu_ticks);
    let n = relayed as f64;
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if n > 0.0 => Some((a - b) as f64 / TICKS_PER_SECOND / n * 1e6),
        _ => None,
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok((n / elapsed, cpu))
}

/// One direction's sender: a 1 KiB message whenever the window has room, until `until`;
/// then tells the reader how many it sent. The reader counts them (this returns 0).
async fn pipe_send(
    mut tx: SplitSink<Ws, Message>,
    window: Arc<Semaphore>,
    until: Instant,
    sent_tx: oneshot::Sender<u64>,
) -> Result<(u64, Half)> {
    let payload = vec![7u8; 1024];
    let mut sent = 0u64;
    while Instant::now() < until {
        window.acquire().await?.forget();
        tx.send(Message::Binary(payload.clone())).await?;
        sent += 1;
    }
    let _ = sent_tx.send(sent);
    Ok((0, Half::Sink(tx)))
}

/// One direction's reader: reads every message its sender sent, opening the window by one
/// for each. Returns how many it read.
async fn pipe_read(
    mut rx: SplitStream<Ws>,
    window: Arc<Semaphore>,
    mut sent_rx: oneshot::Receiver<u64>,
) -> Result<(u64, Half)> {
    let mut read = 0u64;
    let mut total = None;
    while total != Some(read) {
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Binary(_))) => {
                    read += 1;
                    window.add_permits(1);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => bail!("expected a binary message, got {other:?}"),
            },
            n = &mut sent_rx, if total.is_none() => total = Some(n?),
        }
    }
    Ok((read, Half::Stream(rx)))
}

/// Half of a pipelined socket, kept until the round ends.
#[allow(dead_code)] // held only to be dropped
enum Half {
    Sink(SplitSink<Ws, Message>),
    Stream(SplitStream<Ws>),
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

/// What [`rss`] measured; RSS values in KiB.
struct RssRun {
    idle_kib: Option<f64>,
    paired_kib: Option<f64>,
    quiet_kib: Option<f64>,
    before: Option<u64>,
    peak: Option<u64>,
    after: Option<u64>,
    errors: usize,
}

/// Opens `--idle` waiting `/new` tunnels, then `--paired` paired tunnels on top (one message
/// relayed each, so both sockets have been used), then closes them all; RSS is sampled before,
/// after each step, again after `--quiet-wait` with every tunnel open and silent, and `settle`
/// seconds after the closes.
async fn rss(target: &Target, cli: &BenchArgs, settle: Duration) -> RssRun {
    let (idle, paired) = (cli.idle, cli.paired);
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
    tokio::time::sleep(cli.quiet_wait).await;
    let quiet_kib = per(sample(), mid, held_paired.len());
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
    tokio::time::sleep(settle).await;
    RssRun {
        idle_kib,
        paired_kib,
        quiet_kib,
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
