//! `loadgen soak`: the relay serving `--ceremonies` ceremonies at a fixed concurrency, a mix
//! of QR ceremonies and linked ones (the desktop wakes a registered phone through
//! `/cable/contact`), a share abandoned mid-way ([`Mode::Abandon`]) and a share from phones
//! that never read ([`Mode::NeverRead`]), while the relay child process is sampled every
//! `--sample-every` (each sample the mean of reads every 100 ms over it): RSS, open
//! descriptors, threads and its `/metrics` gauges (tunnels open and paired, registration
//! sockets, the runtime's live tasks). The order: a priming burst, an idle window (the baseline), the soak (its first
//! `--warmup-percent` left out of the band), another idle window. The samples go to a CSV,
//! the plot to an SVG, and [`report::conclude`] fails the run naming each series that did
//! not come back to its idle baseline or (RSS, threads, registrations) strayed more than
//! `--tolerance` % from its median after warm-up. Connections are spread over `--sources` loopback source addresses so
//! that a million ceremonies do not run out of ephemeral ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use cli_support::parse_duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::client::{exchange, open_pair_via, Dial, LinkedPhone, Mode};
use crate::procfs::{load_average, open_files_limit};
use crate::report::{self, Phase, Row, Samples};
use crate::servers::{relay_beside_loadgen, start_relay, Target};

/// `loadgen soak`.
#[derive(clap::Args)]
#[command(after_help = cli_support::DURATION_FORMS)]
pub(crate) struct SoakArgs {
    /// Ceremonies in the soak (after priming).
    #[arg(long, default_value_t = 1_000_000)]
    ceremonies: u64,
    /// Ceremonies at once, each worker running its ceremonies back to back.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Share of ceremonies that are linked (wake-up through `/cable/contact`), %.
    #[arg(long, default_value_t = 30)]
    linked_percent: u64,
    /// Share abandoned mid-way (the desktop vanishes after the first handshake message), %.
    #[arg(long, default_value_t = 5)]
    abandon_percent: u64,
    /// Share whose phone never reads its socket, %.
    #[arg(long, default_value_t = 5)]
    never_read_percent: u64,
    /// How often to sample the relay.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    sample_every: Duration,
    /// The first share of the soak's ceremonies left out of the band, %.
    #[arg(long, default_value_t = 10)]
    warmup_percent: u64,
    /// Ceremonies before the idle baseline (the same mix).
    #[arg(long, default_value_t = 5000)]
    prime: u64,
    /// Each idle window, before and after the soak; its last sample is the idle value. At
    /// least jemalloc's 10 s decay plus two samples, so freed memory has been given back.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "20s")]
    idle: Duration,
    /// Loopback source addresses to spread connections over (127.3.0.1, 127.3.0.2, …).
    #[arg(long, default_value_t = 16)]
    sources: usize,
    /// How far, in %, a series may stray from its median after warm-up, and its idle value
    /// after the soak from the one before.
    #[arg(long, default_value_t = 10.0)]
    tolerance: f64,
    /// Write the samples here.
    #[arg(long, default_value = "soak-relay.csv")]
    csv: PathBuf,
    /// Write the plot here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// The relay binary to start [default: tunnel-server beside loadgen].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Extra flag for the relay (repeatable), e.g. --server-arg=--idle-timeout=5s.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// How long after a burst the relay's allocator (jemalloc, `dirty_decay_ms` 10 000) returns
/// the freed pages.
const JEMALLOC_DECAY: Duration = Duration::from_secs(10);

/// The series sampled, in CSV column order.
const SERIES: [&str; 7] = [
    "rss_kib",
    "fds",
    "threads",
    "tunnels_open",
    "tunnels_paired",
    "registrations",
    "tasks",
];

/// The series that count what the ceremonies in flight hold: they follow the rate, so only
/// their return to idle is required ([`report::judge`]).
const IN_FLIGHT: [&str; 4] = ["fds", "tunnels_open", "tunnels_paired", "tasks"];

/// The `/metrics` gauges sampled, in [`SERIES`] order after the `/proc` ones.
const GAUGES: [&str; 4] = [
    "tunnel_server_tunnels_open",
    "tunnel_server_tunnels_paired",
    "tunnel_server_registrations_connected",
    "tunnel_server_tasks",
];

/// The shares of the mix, %.
#[derive(Clone, Copy)]
struct Mix {
    linked: u64,
    abandon: u64,
    never_read: u64,
}

impl Mix {
    fn of(args: &SoakArgs) -> Self {
        Self {
            linked: args.linked_percent,
            abandon: args.abandon_percent,
            never_read: args.never_read_percent,
        }
    }

    /// Which kind of ceremony the `n`th is: linked or QR, and how the client behaves. Each
    /// share is taken from `n` times a number prime to 100, so it is met exactly over any
    /// hundred consecutive ceremonies without the kinds coming in blocks; the rest alternate
    /// between the sequential and the background client.
    fn kind(self, n: u64) -> (bool, Mode) {
        let m = n.wrapping_mul(61) % 100;
        let mode = if m < self.abandon {
            Mode::Abandon
        } else if m < self.abandon + self.never_read {
            Mode::NeverRead
        } else if n.is_multiple_of(2) {
            Mode::Sequential
        } else {
            Mode::Background
        };
        let linked = (n.wrapping_mul(3).wrapping_add(17) % 100) < self.linked;
        (linked, mode)
    }
}

/// Counts shared by the workers and the sampler.
#[derive(Default)]
struct Progress {
    /// Ceremonies handed out (the next one's number).
    next: AtomicU64,
    /// Ceremonies finished, and failed.
    done: AtomicU64,
    failed: AtomicU64,
}

/// Runs `count` ceremonies from `concurrency` workers, each with its own linked phone.
async fn load(
    dial: &Dial,
    phones: &mut [Option<LinkedPhone>],
    count: u64,
    args: &SoakArgs,
    progress: &Arc<Progress>,
) {
    let start = progress.next.load(Ordering::Relaxed);
    let end = start + count;
    let mut workers = tokio::task::JoinSet::new();
    for slot in phones.iter_mut() {
        let mut phone = slot.take();
        let (dial, progress) = (dial.clone(), progress.clone());
        let mix = Mix::of(args);
        workers.spawn(async move {
            loop {
                let n = progress.next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    break;
                }
                let (linked, mode) = mix.kind(n);
                let r = tokio::time::timeout(Duration::from_secs(10), async {
                    let t0 = Instant::now();
                    let (p, d) = match (&mut phone, linked) {
                        (Some(phone), true) => phone.open_pair(&dial).await?,
                        _ => open_pair_via(&dial).await?,
                    };
                    exchange(t0, p, d, mode).await
                })
                .await;
                if !matches!(r, Ok(Ok(_))) {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    if linked {
                        // Its registration socket may be mid-message: start afresh.
                        phone = LinkedPhone::register(&dial).await.ok();
                    }
                }
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            phone
        });
    }
    let mut back = Vec::new();
    while let Some(r) = workers.join_next().await {
        back.push(r.ok().flatten());
    }
    for (slot, phone) in phones.iter_mut().zip(back) {
        *slot = phone;
    }
}

/// One sample of the relay.
async fn sample(target: &Target, addr: SocketAddr) -> Vec<Option<f64>> {
    let pid = target.pid;
    let status = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok());
    let field = |name: &str| {
        status.as_deref().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
    };
    let fds = pid
        .and_then(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .map(|d| d.count() as f64);
    let mut values = vec![field("VmRSS:"), fds, field("Threads:")];
    let metrics = metrics(addr).await.unwrap_or_default();
    for g in GAUGES {
        values.push(gauge(&metrics, g));
    }
    values
}

/// The relay's `/metrics` page, over a plain HTTP/1.0 request.
async fn metrics(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body)).await??;
    Ok(body)
}

/// A gauge's value on a `/metrics` page.
fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs the soak.
pub(crate) async fn run(args: &SoakArgs) -> Result<()> {
    if args.abandon_percent + args.never_read_percent > 100 || args.linked_percent > 100 {
        bail!("the shares are percentages: --abandon-percent and --never-read-percent together, and --linked-percent, at most 100");
    }
    // jemalloc gives freed pages back in one step about 10 s after a burst ends (its decay,
    // run by its background thread); the idle value is the window's last sample, the mean
    // over `--sample-every`, so that sample must start after the step.
    let settled = JEMALLOC_DECAY + 2 * args.sample_every;
    if args.idle < settled {
        bail!(
            "--idle {} s is too short for --sample-every {} s: the relay's allocator gives memory back about {} s after a burst, and the idle value is the window's last sample, so the window needs at least {} s (10 s plus two samples)",
            args.idle.as_secs_f64(),
            args.sample_every.as_secs_f64(),
            JEMALLOC_DECAY.as_secs(),
            settled.as_secs_f64()
        );
    }
    if args.sources == 0 || args.sources > 254 {
        bail!("--sources is between 1 and 254 (127.3.0.1 to 127.3.0.254)");
    }
    if let Some(limit) = open_files_limit() {
        let need = (8 * args.concurrency + 256) as u64;
        if limit < need {
            bail!(
                "the open-files limit is {limit}; this run needs about {need} (ulimit -n {need})"
            );
        }
    }
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => relay_beside_loadgen()?,
    };
    // No per-address limits (every client is on loopback) and no mint limit (each worker's
    // phone registers once, again after a failure).
    let mut extra: Vec<String> = [
        "--max-connections-per-ip",
        "0",
        "--registrations-per-ip-per-minute",
        "0",
        "--registrations-per-minute",
        "0",
    ]
    .map(String::from)
    .to_vec();
    extra.extend(args.server_args.iter().cloned());
    let target = start_relay(&bin, &extra).await?;
    let addr = target
        .addr
        .context("the relay was started without an address")?;
    let sources: Arc<[IpAddr]> = (1..=args.sources)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 3, 0, i as u8)))
        .collect();
    let dial = Dial {
        server: addr,
        sources,
        next: Arc::new(AtomicUsize::new(0)),
    };
    println!(
        "loadgen soak: {} ceremonies at concurrency {} ({} % linked, {} % abandoned, {} % never read), \
         relay pid {}, {} cores, load average {} at start",
        args.ceremonies,
        args.concurrency,
        args.linked_percent,
        args.abandon_percent,
        args.never_read_percent,
        target.pid.map_or("n/a".into(), |p| p.to_string()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    let mut phones = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        phones.push(Some(LinkedPhone::register(&dial).await?));
    }

    let progress = Arc::new(Progress::default());
    let phase = Arc::new(std::sync::Mutex::new(Phase::Prime));
    let csv = std::fs::File::create(&args.csv)
        .with_context(|| format!("cannot create {}", args.csv.display()))?;
    let samples = Arc::new(std::sync::Mutex::new((Samples::new(&SERIES), csv)));
    {
        let g = samples.lock().unwrap_or_else(|e| e.into_inner());
        use std::io::Write as _;
        (&g.1).write_all(g.0.header().as_bytes())?;
    }
    let started = Instant::now();
    let warmup_end = args.prime + args.ceremonies * args.warmup_percent / 100;
    let sampler = {
        let (progress, phase, samples) = (progress.clone(), phase.clone(), samples.clone());
        let every = args.sample_every;
        let total = args.prime + args.ceremonies;
        let target_pid = target.pid;
        let target = Target::running("tunnel-server", &target.url, target_pid);
        tokio::spawn(async move {
            // Each sample is the mean of reads every 100 ms over the interval: the counts
            // that follow the ceremonies in flight swing with them from one instant to the
            // next, and the mean over seconds is what can show a drift.
            let reads = (every.as_millis() / 100).max(1) as usize;
            let mut tick = tokio::time::interval(every / reads as u32);
            let mut last = (Instant::now(), 0u64);
            loop {
                let mut sums = vec![(0.0, 0usize); SERIES.len()];
                for _ in 0..reads {
                    tick.tick().await;
                    for (sum, v) in sums.iter_mut().zip(sample(&target, addr).await) {
                        if let Some(v) = v {
                            *sum = (sum.0 + v, sum.1 + 1);
                        }
                    }
                }
                let values: Vec<Option<f64>> = sums
                    .iter()
                    .map(|&(s, n)| (n > 0).then(|| (s / n as f64 * 10.0).round() / 10.0))
                    .collect();
                let done = progress.done.load(Ordering::Relaxed);
                let mut p = *phase.lock().unwrap_or_else(|e| e.into_inner());
                if p == Phase::Load && done < warmup_end {
                    p = Phase::Warmup;
                }
                let row = Row {
                    t: started.elapsed().as_secs_f64(),
                    phase: p,
                    ceremonies: done,
                    values,
                };
                let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), done);
                if matches!(p, Phase::Warmup | Phase::Load) {
                    println!(
                        "{:>7.0} s  {done:>8}/{total} ceremonies  {rate:>6.0}/s  {} failed  rss {} KiB  fds {}  threads {}  tunnels {}",
                        row.t,
                        progress.failed.load(Ordering::Relaxed),
                        row.values[0].unwrap_or(f64::NAN),
                        row.values[1].unwrap_or(f64::NAN),
                        row.values[2].unwrap_or(f64::NAN),
                        row.values[3].unwrap_or(f64::NAN),
                    );
                }
                let mut g = samples.lock().unwrap_or_else(|e| e.into_inner());
                use std::io::Write as _;
                let _ = (&g.1).write_all(Samples::line(&row).as_bytes());
                g.0.rows.push(row);
            }
        })
    };
    let set_phase = |p: Phase| *phase.lock().unwrap_or_else(|e| e.into_inner()) = p;

    load(&dial, &mut phones, args.prime, args, &progress).await;
    set_phase(Phase::IdleBefore);
    tokio::time::sleep(args.idle).await;
    set_phase(Phase::Load);
    let load_started = Instant::now();
    load(&dial, &mut phones, args.ceremonies, args, &progress).await;
    let load_secs = load_started.elapsed().as_secs_f64();
    set_phase(Phase::IdleAfter);
    tokio::time::sleep(args.idle).await;
    // One more sample at the end of the window.
    tokio::time::sleep(args.sample_every.min(Duration::from_secs(1))).await;
    sampler.abort();
    drop(phones);

    let failed = progress.failed.load(Ordering::Relaxed);
    let samples = std::mem::take(&mut samples.lock().unwrap_or_else(|e| e.into_inner()).0);
    println!(
        "\n{} ceremonies in {load_secs:.0} s ({:.0}/s) after {} priming ones; {failed} failed or took over 10 s; \
         idle windows {} s; load average at end {}",
        args.ceremonies,
        args.ceremonies as f64 / load_secs,
        args.prime,
        args.idle.as_secs_f64(),
        load_average()
    );
    println!("samples: {}", args.csv.display());
    let title = format!(
        "relay soak: {} ceremonies at concurrency {}, {:.0}/s",
        args.ceremonies,
        args.concurrency,
        args.ceremonies as f64 / load_secs
    );
    let in_flight = IN_FLIGHT.map(String::from);
    report::conclude(
        &samples,
        &title,
        args.tolerance,
        &in_flight,
        args.svg.as_deref(),
    )?;
    // Abandoned ones are meant to end early, not to fail; a failure is a ceremony the relay
    // did not carry.
    let limit = (args.prime + args.ceremonies) / 1000;
    if failed > limit {
        bail!("{failed} ceremonies failed or took over 10 s (more than 0.1 %, {limit}); run with RUST_LOG=debug on the relay (--server-arg) to see why");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_meets_each_share_over_any_hundred_ceremonies() {
        let mix = Mix {
            linked: 30,
            abandon: 5,
            never_read: 5,
        };
        for start in [0u64, 1, 12_345, 999_900] {
            let (mut linked, mut abandon, mut never) = (0, 0, 0);
            for n in start..start + 100 {
                let (l, m) = mix.kind(n);
                linked += u64::from(l);
                abandon += u64::from(m == Mode::Abandon);
                never += u64::from(m == Mode::NeverRead);
            }
            assert_eq!((abandon, never), (5, 5), "from {start}");
            assert_eq!(linked, 30, "from {start}");
        }
    }

    #[test]
    fn a_gauge_is_read_by_its_exact_name() {
        let page = "# TYPE tunnel_server_tunnels_open gauge\ntunnel_server_tunnels_open 12\ntunnel_server_tunnels_open_x 3\ntunnel_server_tunnels_paired 5\n";
        assert_eq!(gauge(page, "tunnel_server_tunnels_open"), Some(12.0));
        assert_eq!(gauge(page, "tunnel_server_tunnels_paired"), Some(5.0));
        assert_eq!(gauge(page, "tunnel_server_contacts"), None);
    }
}
