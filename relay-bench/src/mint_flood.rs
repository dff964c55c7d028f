//! `loadgen mint-flood`: QR-ceremony latency on a relay whose contact registry is full of
//! confirmed entries, without and then during a flood of mints that the full registry refuses
//! (503). A refused mint must stay cheap: it takes the state lock every ceremony also takes,
//! so a refusal that scanned the registry would show here as ceremony latency. A timing print
//! (no assertion). The relay runs in-process on 127.0.0.1, its registry limit set to
//! `--entries` and its per-address limits off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures_util::SinkExt as _;
use hybrid_protocol::contact::{CONTACT_ID_HEADER, REGISTRATION_SECRET_HEADER};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{next_binary, open_pair, open_with, quantile, read_to_end};

/// `loadgen mint-flood`.
#[derive(clap::Args)]
pub(crate) struct MintFloodArgs {
    /// Confirmed contact IDs to fill the registry with (its limit).
    #[arg(long, default_value_t = 20_000)]
    entries: usize,
    /// Concurrent clients minting while the registry is full.
    #[arg(long, default_value_t = 16)]
    flooders: usize,
    /// Ceremonies timed one after another, without and again during the flood.
    #[arg(long, default_value_t = 200)]
    ceremonies: usize,
}

/// Fills the registry, times ceremonies, floods, times them again.
pub(crate) async fn run(args: &MintFloodArgs) -> Result<()> {
    let mut config = tunnel_server::Config::default();
    config.limits.max_contacts = args.entries;
    // The registry is what is measured, not the mint limits.
    config.limits.registrations_per_ip_per_minute = 0;
    config.limits.registrations_per_minute = 0;
    config.limits.max_connections_per_ip = 0;
    let server = tunnel_server::RunningServer::start(config)
        .await
        .context("starting the relay")?;
    let base = server.ws_url();

    let t = Instant::now();
    let mut fill = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let base = base.clone();
        let entries = args.entries;
        fill.spawn(async move {
            for _ in (worker..entries).step_by(32) {
                confirmed_phone(&base).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(filled) = fill.join_next().await {
        filled??;
    }
    println!(
        "filled {} confirmed contact IDs in {:.1} s",
        args.entries,
        t.elapsed().as_secs_f64()
    );

    let (p50, p99) = latencies(&base, args.ceremonies).await?;
    println!("ceremony latency, no flood:            p50 {p50:.2} ms  p99 {p99:.2} ms");

    let refused = Arc::new(AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..args.flooders {
        let (base, refused) = (base.clone(), refused.clone());
        flood.spawn(async move {
            loop {
                if open_with(&format!("{base}/cable/register"), &[])
                    .await
                    .is_err()
                {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let before = refused.load(Ordering::Relaxed);
    let (p50, p99) = latencies(&base, args.ceremonies).await?;
    let rate = (refused.load(Ordering::Relaxed) - before) as f64 / t.elapsed().as_secs_f64();
    println!(
        "ceremony latency, {} mint flooders:   p50 {p50:.2} ms  p99 {p99:.2} ms  ({rate:.0} refused mints/s)",
        args.flooders
    );
    flood.abort_all();
    Ok(())
}

/// Mints a contact ID and confirms it by resuming, as a phone does.
async fn confirmed_phone(base: &str) -> Result<()> {
    let (_ws, headers) = open_with(&format!("{base}/cable/register"), &[])
        .await
        .context("minting a contact ID")?;
    let header = |n: &str| -> Result<String> {
        Ok(headers
            .get(n)
            .with_context(|| format!("the mint's 101 has no {n}"))?
            .to_str()?
            .to_string())
    };
    let (id, secret) = (
        header(CONTACT_ID_HEADER)?,
        header(REGISTRATION_SECRET_HEADER)?,
    );
    // Resumed twice: confirmed, then in use, which a full registry never evicts (a contact ID
    // only confirmed would make room for the flood's mints instead of refusing them).
    for _ in 0..2 {
        open_with(
            &format!("{base}/cable/register/{id}"),
            &[(REGISTRATION_SECRET_HEADER, secret.clone())],
        )
        .await
        .context("resuming the contact ID")?;
    }
    Ok(())
}

/// A QR ceremony's relay traffic: both sockets, a message each way, the desktop closes, the
/// phone's socket read to its end.
async fn ceremony(base: &str) -> Result<Duration> {
    let t0 = Instant::now();
    let (mut phone, mut desktop) = open_pair(base).await?;
    desktop.send(Message::Binary(vec![1; 200])).await?;
    next_binary(&mut phone).await?;
    phone.send(Message::Binary(vec![2; 800])).await?;
    next_binary(&mut desktop).await?;
    desktop.close(None).await?;
    read_to_end(&mut phone).await;
    Ok(t0.elapsed())
}

/// p50 and p99 of `n` ceremonies one after another, ms.
async fn latencies(base: &str, n: usize) -> Result<(f64, f64)> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(ceremony(base).await?);
    }
    Ok((quantile(&mut v, 0.5), quantile(&mut v, 0.99)))
}
