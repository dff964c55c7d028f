//! `loadgen`: measures a tunnel relay and, in the same run, **the floor** (a bare verbatim
//! relay on the same WebSocket stack, [`floor`]), printing every figure for both and each as a
//! ratio (tunnel-server/BENCHMARKS.md has the method and the current figures). Its modes:
//!
//! - no subcommand ([`bench`](mod@bench)): ceremonies/s and latency per phase at several concurrencies,
//!   RSS per idle and per paired tunnel and after every tunnel closed, relayed messages/s and
//!   the server's CPU per message;
//! - `flood` ([`flood`]): a pending-tunnel flood against the relay's memory budget, with
//!   ceremonies before and during it;
//! - `mint-flood` ([`mint_flood`]): ceremony latency with a full contact registry, without
//!   and during a flood of refused mints;
//! - `soak` ([`soak`]): a long mixed run of ceremonies (QR and linked, some abandoned, some
//!   from phones that never read) with the relay's RSS, descriptors, threads and tunnel
//!   gauges sampled throughout, judged for drift after warm-up and for coming back to idle;
//! - `soak-report` ([`report`]): the same judgement and plot for a soak CSV another program
//!   wrote (`hybrid-demo --soak`, the bridge and phone-sim in one process);
//! - `serve-baseline` ([`floor`]): the floor itself (loadgen starts it as a child process).
//!
//! The simulated clients (a hybrid ceremony's relay traffic, its phases, rates and
//! quantiles) are [`client`]; the servers under test as child processes are [`servers`], and
//! what `/proc` says about them [`procfs`].
//!
//! Adding a mode: a module with its clap `Args` struct and `async fn run(&Args) ->
//! anyhow::Result<()>`, a variant in [`Command`] and its arm in `main`. A new way for the
//! simulated client to behave (how it sends or reads) is a [`client::Mode`] variant, which
//! every mode that runs ceremonies then offers.

mod bench;
mod client;
mod flood;
mod floor;
mod mint_flood;
mod procfs;
mod report;
mod servers;
mod soak;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Measure a tunnel server against the bare-relay floor, in the same run",
    after_help = cli_support::DURATION_FORMS
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The default mode's settings.
    #[command(flatten)]
    bench: bench::BenchArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the baseline relay (used by loadgen itself).
    ServeBaseline(floor::FloorArgs),
    /// Flood the relay with pending tunnels while ceremonies run.
    Flood(flood::FloodArgs),
    /// Fill the relay's contact registry, then time ceremonies without and during a flood of
    /// mints it refuses.
    MintFlood(mint_flood::MintFloodArgs),
    /// Serve a long mixed run of ceremonies, sampling the relay's RSS, descriptors, threads
    /// and tunnels; fail if any drifted after warm-up or did not come back to idle.
    Soak(soak::SoakArgs),
    /// Judge and plot a soak CSV written by another program (hybrid-demo --soak).
    SoakReport(report::ReportArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Every core: the load generator should not be what limits the figures.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::ServeBaseline(args)) => rt.block_on(floor::serve(&args)),
        Some(Command::Flood(args)) => rt.block_on(flood::run(&args)),
        Some(Command::MintFlood(args)) => rt.block_on(mint_flood::run(&args)),
        Some(Command::Soak(args)) => rt.block_on(soak::run(&args)),
        Some(Command::SoakReport(args)) => report::run(&args),
        None => rt.block_on(bench::run(&cli.bench)),
    }
}
