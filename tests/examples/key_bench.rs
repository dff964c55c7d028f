//! Measures the phone as a security key (BENCHMARKS.md, "The security key"), with a platform
//! speaking CTAPHID to the key's event loop on an in-process HID device, the relay on
//! loopback and phone-sim answering every QR code at once:
//!
//! 1. the time from the platform's request to the QR code being shown, beside the CLI path
//!    (`qr_transaction` called directly, as `hybrid-bridge register` does);
//! 2. whole registrations through the key beside the same registrations through the CLI path:
//!    the overhead CTAPHID (reassembly, routing, keepalives, fragmenting the reply) adds;
//! 3. keepalive cadence while a QR code waits, on an idle machine and with every core busy.
//!
//!     cargo run --release -p hybrid-tests --example key_bench -- [--repeat N]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge::ceremony::{qr_transaction, CtapRequest};
use bridge::key::UiUpdate;
use bridge::progress::Event;
use bridge::AdvertFileScanner;
use hybrid_protocol::ctap::{self, Command, MakeCredentialRequest, Options, RelyingParty, User};
use hybrid_tests::key::{KeyRig, PhoneMode};
use phone_sim::PhoneConfig;

fn request(i: usize) -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: [i as u8; 32],
        rp: RelyingParty {
            id: "bench.hybrid-bridge.test".into(),
            name: Some("Bench".into()),
        },
        user: User {
            id: (i as u32).to_be_bytes().to_vec(),
            name: Some("alice".into()),
            display_name: Some("Alice".into()),
        },
        algorithms: vec![ctap::ES256],
        exclude_list: Vec::new(),
        extensions: Default::default(),
        options: Options::default(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
    println!(
        "| {name} | {p50:.2} | {p99:.2} | {:.2} | {} |",
        ms.last().copied().unwrap_or(f64::NAN),
        ms.len()
    );
    (p50, p99)
}

async fn through_key(rig: &mut KeyRig, cid: u32, i: usize) -> (f64, f64) {
    let payload = ctap::encode_request(Command::MakeCredential, &request(i).to_cbor());
    let _ = rig.drain_updates();
    let start = Instant::now();
    rig.host.send(cid, 0x10, &payload);
    rig.wait_for(Duration::from_secs(30), |u| {
        matches!(u, UiUpdate::QrCode { .. })
    })
    .await;
    let qr = start.elapsed();
    let reply = loop {
        let m = rig
            .host
            .recv(Duration::from_secs(30))
            .await
            .expect("an answer");
        if m.cmd != 0x3b {
            break m;
        }
    };
    assert_eq!(reply.data[0], 0, "registration {i} through the key");
    (ms(qr), ms(start.elapsed()))
}

async fn through_cli(rig: &KeyRig, i: usize) -> (f64, f64) {
    let req = CtapRequest {
        command: Command::MakeCredential,
        body: request(i).to_cbor(),
    };
    let bridge::key::AdvertSource::File(adverts) = &rig.config.adverts else {
        unreachable!("the rig uses the advert file")
    };
    let qr_at = Mutex::new(None);
    let start = Instant::now();
    let mut scanner = AdvertFileScanner::new(adverts).expect("scanner");
    let progress = |e: &Event, _: Duration| {
        if let Event::QrCode { url } = e {
            *qr_at.lock().unwrap() = Some(start.elapsed());
            rig.scan(url.clone());
        }
    };
    qr_transaction(&req, &rig.config.bridge, &mut scanner, &progress)
        .await
        .expect("registration through the CLI path");
    let total = start.elapsed();
    let qr = qr_at.lock().unwrap().expect("a QR code");
    (ms(qr), ms(total))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn keepalive_intervals(rig: &mut KeyRig, cid: u32) -> Vec<f64> {
    rig.set_phone_mode(PhoneMode::Ignore);
    let payload = ctap::encode_request(Command::MakeCredential, &request(999).to_cbor());
    let t = rig.host.cbor(cid, &payload, Duration::from_secs(30)).await;
    rig.set_phone_mode(PhoneMode::Scan);
    assert_eq!(t.reply.data, vec![0x2f], "the wait ends in a timeout");
    t.keepalives
        .windows(2)
        .map(|w| ms(w[1].0 - w[0].0))
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeat = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(30usize);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |c| {
        c.bridge.links = None;
        c.bridge.timeouts.advert = Duration::from_secs(3);
    })
    .await;
    let cid = rig.host.init().await;
    // Warm up both paths (first scanner, first relay connection).
    through_key(&mut rig, cid, 0).await;
    through_cli(&rig, 0).await;
    let (mut key_qr, mut key_total, mut cli_qr, mut cli_total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 1..=repeat {
        // Alternate, so drift in the machine's load hits both paths alike.
        let (q, t) = through_key(&mut rig, cid, i).await;
        key_qr.push(q);
        key_total.push(t);
        let (q, t) = through_cli(&rig, i).await;
        cli_qr.push(q);
        cli_total.push(t);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{repeat} registrations each way; {cores} cores, load {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("\n| measure (ms) | p50 | p99 | max | n |\n|---|---|---|---|---|");
    summary("request → QR shown, through the key", key_qr);
    summary("call → QR shown, CLI path (baseline)", cli_qr);
    let (k50, k99) = summary(
        "registration through the key (platform's request → answer)",
        key_total,
    );
    let (c50, c99) = summary("registration, CLI path (baseline)", cli_total);
    println!(
        "\nCTAPHID overhead per registration: {:+.2} ms at p50, {:+.2} ms at p99",
        k50 - c50,
        k99 - c99
    );

    println!("\n| keepalive interval (ms), a QR code waiting 3 s | p50 | p99 | max | n |\n|---|---|---|---|---|");
    summary("idle machine", keepalive_intervals(&mut rig, cid).await);
    // Every core busy: as many spinning threads as cores.
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    summary(
        &format!("{cores} spinning threads"),
        keepalive_intervals(&mut rig, cid).await,
    );
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        let _ = b.join();
    }
    rig.stop().await.expect("the key stops cleanly");
}
