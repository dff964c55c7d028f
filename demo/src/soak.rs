//! `hybrid-demo --soak N`: the bridge and the simulated phone serving N back-to-back
//! ceremonies in this one process, with its relay, while the process's RSS, open
//! descriptors, threads and live tokio tasks are sampled every `--soak-sample-every`. One
//! passkey is registered, then QR sign-ins and linked sign-ins alternate, each assertion
//! verified as the relying party would (signature, challenge, counter). The order: a
//! priming burst of `--soak-prime` ceremonies, an idle window (the baseline), the N
//! ceremonies (the first `--soak-warmup-percent` of them marked as warm-up), another idle
//! window. The samples go to `--soak-csv` in the soak CSV format `loadgen soak-report`
//! judges and plots (`t_s,phase,ceremonies,` then one column per series; phases `prime`,
//! `idle-before`, `warmup`, `load`, `idle-after`), so the relay's soak and this one are held
//! to the same rule.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::progress::Silent;
use bridge::BridgeError;
use phone_sim::PhoneConfig;

use crate::{
    as_json, authentication_options, demo_dir, demo_failed, knobs, random, registration_options,
    rp_expects, verify, DemoArgs, Stack,
};

/// `--soak` and its settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Instead of the story, run N back-to-back ceremonies (QR and linked sign-ins,
    /// alternating, each verified) in this one process, sampling its RSS, descriptors,
    /// threads and tokio tasks into --soak-csv (judge it with `loadgen soak-report`).
    #[arg(long, value_name = "N", help_heading = "Soak")]
    pub soak: Option<u64>,
    /// Where to write the samples.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "soak-bridge.csv",
        help_heading = "Soak"
    )]
    pub soak_csv: PathBuf,
    /// How often to sample this process.
    #[arg(long, value_name = "DURATION", value_parser = cli_support::parse_duration, default_value = "2s", help_heading = "Soak")]
    pub soak_sample_every: Duration,
    /// Each idle window, before and after the ceremonies; its last sample is the idle value.
    #[arg(long, value_name = "DURATION", value_parser = cli_support::parse_duration, default_value = "10s", help_heading = "Soak")]
    pub soak_idle: Duration,
    /// Ceremonies before the idle baseline.
    #[arg(long, value_name = "N", default_value_t = 50, help_heading = "Soak")]
    pub soak_prime: u64,
    /// The first share of the N ceremonies marked as warm-up, %.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 10,
        help_heading = "Soak"
    )]
    pub soak_warmup_percent: u64,
}

/// The series sampled, in CSV column order.
const SERIES: &str = "rss_kib,fds,threads,tasks";

/// Where a sample was taken, as the soak CSV labels it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prime,
    IdleBefore,
    Load,
    IdleAfter,
}

/// This process's RSS (KiB), open descriptors, threads and live tokio tasks, as CSV fields
/// (empty where a reading failed).
fn sample() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
            .unwrap_or_default()
    };
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().to_string())
        .unwrap_or_default();
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    format!("{},{fds},{},{tasks}", field("VmRSS:"), field("Threads:"))
}

/// Runs the soak.
pub async fn run(args: &DemoArgs, n: u64) -> Result<(), BridgeError> {
    let soak = &args.soak;
    let io = |e: std::io::Error| {
        BridgeError::Internal(format!("cannot write {}: {e}", soak.soak_csv.display()))
    };
    let dir = demo_dir(args);
    let mut stack = Stack::start(dir.clone(), PhoneConfig::default(), knobs(args)).await?;

    let challenge = random(32);
    let reg = stack
        .register(&registration_options("soak@demo", &challenge)?, &Silent)
        .await?;
    let mut credential =
        verify::registration(&as_json(&reg.bridge.json)?, &rp_expects(&challenge, None))
            .map_err(|e| demo_failed("registration", e))?;
    let link = reg.bridge.outcome.linked.clone().ok_or_else(|| {
        BridgeError::Internal("soak: the phone sent no linking information".into())
    })?;

    let mut csv = std::fs::File::create(&soak.soak_csv).map_err(io)?;
    writeln!(csv, "t_s,phase,ceremonies,{SERIES}").map_err(io)?;
    let csv = Arc::new(Mutex::new(csv));
    let done = Arc::new(AtomicU64::new(0));
    let phase = Arc::new(Mutex::new(Phase::Prime));
    let started = Instant::now();
    let warmup_end = soak.soak_prime + n * soak.soak_warmup_percent / 100;
    let sampler = {
        let (csv, done, phase) = (csv.clone(), done.clone(), phase.clone());
        let every = soak.soak_sample_every;
        let total = soak.soak_prime + n;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let d = done.load(Ordering::Relaxed);
                let label = match *phase.lock().unwrap_or_else(|e| e.into_inner()) {
                    Phase::Prime => "prime",
                    Phase::IdleBefore => "idle-before",
                    Phase::Load if d < warmup_end => "warmup",
                    Phase::Load => "load",
                    Phase::IdleAfter => "idle-after",
                };
                let line = format!(
                    "{:.3},{label},{d},{}",
                    started.elapsed().as_secs_f64(),
                    sample()
                );
                if label == "warmup" || label == "load" {
                    eprintln!("{line}  ({d}/{total} ceremonies; t_s,phase,ceremonies,{SERIES})");
                }
                let mut f = csv.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(f, "{line}");
            }
        })
    };
    let set_phase = |p: Phase| *phase.lock().unwrap_or_else(|e| e.into_inner()) = p;

    ceremonies(&mut stack, &mut credential, &link, &done, soak.soak_prime).await?;
    set_phase(Phase::IdleBefore);
    tokio::time::sleep(soak.soak_idle).await;
    set_phase(Phase::Load);
    let t = Instant::now();
    ceremonies(&mut stack, &mut credential, &link, &done, n).await?;
    let secs = t.elapsed().as_secs_f64();
    set_phase(Phase::IdleAfter);
    tokio::time::sleep(soak.soak_idle).await;
    tokio::time::sleep(soak.soak_sample_every.min(Duration::from_secs(1))).await;
    sampler.abort();
    stack.stop_relay().await;
    println!(
        "{n} ceremonies (QR and linked sign-ins, alternating, each verified) in {secs:.0} s ({:.1}/s) after {} priming ones, in one process",
        n as f64 / secs,
        soak.soak_prime
    );
    println!("samples: {}", soak.soak_csv.display());
    println!("files: {}", dir.display());
    Ok(())
}

/// `count` sign-ins, QR and linked alternating by `done`'s count, each verified.
async fn ceremonies(
    stack: &mut Stack,
    credential: &mut verify::StoredCredential,
    link: &str,
    done: &AtomicU64,
    count: u64,
) -> Result<(), BridgeError> {
    for _ in 0..count {
        let i = done.load(Ordering::Relaxed);
        let challenge = random(32);
        let options = authentication_options(&credential.id, &challenge)?;
        let (what, run) = if i.is_multiple_of(2) {
            ("QR sign-in", stack.sign_in(&options, &Silent).await)
        } else {
            (
                "linked sign-in",
                stack.sign_in_linked(link, &options, &Silent).await,
            )
        };
        let run = run.map_err(|e| {
            BridgeError::Internal(format!("soak: ceremony {i} ({what}) failed: {e}"))
        })?;
        verify::assertion(
            &as_json(&run.bridge.json)?,
            &rp_expects(&challenge, None),
            credential,
        )
        .map_err(|e| demo_failed(what, e))?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
