//! Crash consistency of the contact store (`--contact-store`): the real `tunnel-server` binary
//! is killed with SIGKILL at seeded random moments while phones register, resume and revoke
//! concurrently, and restarted on the same store each time. After every restart the store
//! loads without a warning, every registration the relay confirmed (a resume answered 101)
//! resumes, and no revocation it confirmed (the registration socket closed with "contact
//! revoked") has come back.
//!
//! The seed is `STORE_CRASH_SEED` (default fixed), the number of kills `STORE_CRASH_KILLS`.

use std::collections::HashSet;
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::contact::REVOKE_MESSAGE;
use hybrid_protocol::tunnel::ContactId;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::support::*;

const DEFAULT_SEED: u64 = 0x5eed_c0de;
const DEFAULT_KILLS: usize = 40;
/// Phones working at once.
const WORKERS: usize = 4;
/// Confirmed, unrevoked contacts the workers keep at most (bounds the checks per restart).
const MAX_LIVE: usize = 96;
/// Probes in flight at once after a restart.
const PROBES_AT_ONCE: usize = 16;

/// What the relay confirmed about a contact ID, as far as the test knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    /// A resume was answered 101: it must resume after any restart, until revoked.
    Live,
    /// A revocation was sent and not (yet) confirmed: either outcome is right.
    Revoking,
    /// A revocation was confirmed: it must never resume again.
    Revoked,
}

struct Phone {
    id: ContactId,
    secret: String,
    known: Known,
    /// A worker is using it; cleared after each kill.
    busy: bool,
}

#[derive(Default)]
struct Model {
    phones: Vec<Phone>,
    /// Revocations confirmed since the last restart (checked at the next one).
    newly_revoked: Vec<usize>,
    /// What the relay answered wrongly while it was up.
    failures: Vec<String>,
    registered: usize,
    revoked: usize,
    resumed: usize,
}

type Shared = Arc<Mutex<Model>>;

fn lock(m: &Shared) -> std::sync::MutexGuard<'_, Model> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The relay process and its log lines.
struct Relay {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Relay {
    fn spawn(store: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tunnel-server"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--routing-id", "0a0b0c"])
            .arg("--contact-store")
            .arg(store)
            .args(["--registrations-per-ip-per-minute", "0"])
            .args(["--registrations-per-minute", "0"])
            .args(["--max-connections-per-ip", "0", "--max-connections", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the tunnel-server binary runs");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for "tunnel server listening" and returns the WebSocket base URL and the number
    /// of contacts restored; panics on a warning or error about the contact store before it.
    async fn ready(&mut self) -> (String, u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut log = String::new();
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("the relay did not listen within {WAIT:?}:\n{log}"))
                .unwrap_or_else(|| panic!("the relay exited before listening:\n{log}"));
            log.push_str(&line);
            log.push('\n');
            let warning =
                line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"");
            assert!(
                !(warning && line.contains("contact")),
                "the relay warned while loading its contact store:\n{log}"
            );
            if line.contains("tunnel server listening") {
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
                let fields = v.get("fields").unwrap_or(&v);
                let addr = fields["addr"].as_str().expect("addr field");
                let restored = fields["contacts_restored"].as_u64().expect("count");
                return (format!("ws://{addr}"), restored);
            }
        }
    }

    fn kill(mut self) {
        // SIGKILL: no drain, no flush, nothing the relay can do.
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }
}

/// How a resume was answered.
enum Resumed {
    Yes(Box<Ws>),
    /// An HTTP status other than 101.
    Status(u16),
    /// The connection failed (the relay was killed).
    Lost,
}

async fn resume(url: &str, id: &ContactId, secret: &str) -> Resumed {
    let full = format!("{url}{}", resume_path(id));
    // `open_url` bounds the handshake by `WAIT`.
    match open_url(&full, &[(SECRET_HEADER, secret)]).await {
        Ok((ws, _)) => Resumed::Yes(Box::new(ws)),
        Err(WsError::Http(resp)) => Resumed::Status(resp.status().as_u16()),
        Err(_) => Resumed::Lost,
    }
}

/// Mints a contact ID: its socket, ID and secret, or `None` if the relay went away.
async fn mint(url: &str) -> Option<(Ws, ContactId, String)> {
    let full = format!("{url}/cable/register");
    let (ws, resp) = open_url(&full, &[]).await.ok()?;
    let id = resp.headers().get("X-caBLE-Contact-ID")?.to_str().ok()?;
    let secret = resp.headers().get(SECRET_HEADER)?.to_str().ok()?;
    Some((ws, ContactId::from_base64url(id).ok()?, secret.to_string()))
}

/// Sends the revoke message and reads until the close frame: whether the relay confirmed
/// the revocation.
async fn revoke(ws: &mut Ws) -> bool {
    if ws
        .send(Message::Binary(REVOKE_MESSAGE.to_vec()))
        .await
        .is_err()
    {
        return false;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return f.reason == "contact revoked",
            Ok(Some(Ok(Message::Close(None))) | None | Some(Err(_))) | Err(_) => return false,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Picks a live phone no worker is using and marks it busy.
fn take_live(model: &Shared, rng: &mut StdRng) -> Option<usize> {
    let mut m = lock(model);
    let free: Vec<usize> = (0..m.phones.len())
        .filter(|&i| m.phones[i].known == Known::Live && !m.phones[i].busy)
        .collect();
    let i = *free.get(rng.gen_range(0..free.len().max(1)))?;
    m.phones[i].busy = true;
    Some(i)
}

fn live_count(model: &Shared) -> usize {
    lock(model)
        .phones
        .iter()
        .filter(|p| p.known == Known::Live)
        .count()
}

/// One phone after another: register (mint, then resume to confirm), resume, revoke, and
/// revoke on the minting socket while resuming; records what the relay confirmed. Runs until
/// aborted.
async fn worker(url: String, model: Shared, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let live = live_count(&model);
        let roll = rng.gen_range(0..100);
        if live < MAX_LIVE && roll < 45 {
            register(&url, &model).await;
        } else if roll < 60 {
            resume_live(&url, &model, &mut rng).await;
        } else if roll < 85 {
            revoke_live(&url, &model, &mut rng).await;
        } else {
            revoke_while_resuming(&url, &model).await;
        }
    }
}

async fn register(url: &str, model: &Shared) {
    let Some((ws, id, secret)) = mint(url).await else {
        return;
    };
    drop(ws);
    match resume(url, &id, &secret).await {
        Resumed::Yes(ws) => {
            drop(ws);
            let mut m = lock(model);
            m.registered += 1;
            m.phones.push(Phone {
                id,
                secret,
                known: Known::Live,
                busy: false,
            });
        }
        Resumed::Status(s) => lock(model)
            .failures
            .push(format!("a fresh mint's first resume answered {s}")),
        Resumed::Lost => {}
    }
}

async fn resume_live(url: &str, model: &Shared, rng: &mut StdRng) {
    let Some(i) = take_live(model, rng) else {
        return;
    };
    let (id, secret) = {
        let m = lock(model);
        (m.phones[i].id.clone(), m.phones[i].secret.clone())
    };
    let answer = resume(url, &id, &secret).await;
    let mut m = lock(model);
    match answer {
        Resumed::Yes(_) => m.resumed += 1,
        Resumed::Status(s) => m
            .failures
            .push(format!("a confirmed contact answered {s} to a resume")),
        Resumed::Lost => {}
    }
    m.phones[i].busy = false;
}

async fn revoke_live(url: &str, model: &Shared, rng: &mut StdRng) {
    let Some(i) = take_live(model, rng) else {
        return;
    };
    let (id, secret) = {
        let m = lock(model);
        (m.phones[i].id.clone(), m.phones[i].secret.clone())
    };
    let mut ws = match resume(url, &id, &secret).await {
        Resumed::Yes(ws) => *ws,
        Resumed::Status(s) => {
            let mut m = lock(model);
            m.failures
                .push(format!("a confirmed contact answered {s} to a resume"));
            m.phones[i].busy = false;
            return;
        }
        Resumed::Lost => return,
    };
    lock(model).phones[i].known = Known::Revoking;
    if revoke(&mut ws).await {
        confirm_revoked(model, i);
    }
}

/// Mints, then at once resumes (the first resume confirms the contact ID) and revokes on the
/// minting socket, so the confirmation and the revocation race inside the relay.
async fn revoke_while_resuming(url: &str, model: &Shared) {
    let Some((mut ws, id, secret)) = mint(url).await else {
        return;
    };
    let i = {
        let mut m = lock(model);
        m.phones.push(Phone {
            id: id.clone(),
            secret: secret.clone(),
            known: Known::Revoking,
            busy: true,
        });
        m.phones.len() - 1
    };
    let (revoked, _) = tokio::join!(revoke(&mut ws), resume(url, &id, &secret));
    if revoked {
        confirm_revoked(model, i);
    }
}

fn confirm_revoked(model: &Shared, i: usize) {
    let mut m = lock(model);
    m.phones[i].known = Known::Revoked;
    m.phones[i].busy = false;
    m.revoked += 1;
    m.newly_revoked.push(i);
}

/// After a restart: every live phone resumes, every revocation confirmed since the last check
/// (`all_revoked`: ever) stays gone, and each unconfirmed revocation is settled by what the
/// relay answers now. Returns the number of contacts checked.
async fn check(url: &str, model: &Shared, all_revoked: bool) -> usize {
    let mut to_check: Vec<usize> = {
        let mut m = lock(model);
        let newly: HashSet<usize> = m.newly_revoked.drain(..).collect();
        (0..m.phones.len())
            .filter(|&i| match m.phones[i].known {
                Known::Live | Known::Revoking => true,
                Known::Revoked => all_revoked || newly.contains(&i),
            })
            .collect()
    };
    let checked = to_check.len();
    while !to_check.is_empty() {
        let batch: Vec<usize> = to_check
            .drain(..PROBES_AT_ONCE.min(to_check.len()))
            .collect();
        let probes = batch.into_iter().map(|i| {
            let (id, secret, known) = {
                let m = lock(model);
                let p = &m.phones[i];
                (p.id.clone(), p.secret.clone(), p.known)
            };
            let url = url.to_string();
            tokio::spawn(async move {
                let answer = match resume(&url, &id, &secret).await {
                    Resumed::Yes(_) => 101,
                    Resumed::Status(s) => s,
                    Resumed::Lost => 0,
                };
                (i, id, known, answer)
            })
        });
        for probe in futures_util::future::join_all(probes).await {
            let (i, id, known, answer) = probe.expect("probe task");
            match (known, answer) {
                (Known::Live, 101) | (Known::Revoked, 410) => {}
                (Known::Revoking, 101) => lock(model).phones[i].known = Known::Live,
                (Known::Revoking, 410) => lock(model).phones[i].known = Known::Revoked,
                (Known::Live, s) => panic!(
                    "a confirmed contact ID {} was lost: resume answered {s} after a restart",
                    id.to_base64url()
                ),
                (Known::Revoked, s) => panic!(
                    "a revoked contact ID {} came back: resume answered {s} after a restart",
                    id.to_base64url()
                ),
                (Known::Revoking, s) => panic!(
                    "contact ID {} (revocation unconfirmed) answered {s} after a restart",
                    id.to_base64url()
                ),
            }
        }
    }
    checked
}

/// SIGKILL at seeded random moments (during startup and compaction, and during traffic), then
/// a restart on the same store: it loads cleanly, keeps every confirmed registration and
/// brings back no confirmed revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_store_survives_sigkill_at_random_moments() {
    let seed: u64 = env_or("STORE_CRASH_SEED", DEFAULT_SEED);
    let kills: usize = env_or("STORE_CRASH_KILLS", DEFAULT_KILLS);
    println!("store crash: seed {seed} (STORE_CRASH_SEED), {kills} kills (STORE_CRASH_KILLS)");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("contacts");
    let model: Shared = Arc::default();
    let (mut checked, mut startup_kills) = (0, 0);
    let mut relay = Relay::spawn(&store);
    for kill in 0..=kills {
        // One start in five dies before it listens: while it loads and compacts the store.
        if kill < kills && rng.gen_ratio(1, 5) {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..15))).await;
            relay.kill();
            startup_kills += 1;
            relay = Relay::spawn(&store);
            continue;
        }
        let (url, restored) = relay.ready().await;
        let all_revoked = kill == 0 || kill == kills;
        checked += check(&url, &model, all_revoked).await;
        let live = live_count(&model);
        assert!(
            restored >= live as u64,
            "{restored} contacts restored, {live} confirmed"
        );
        if kill == kills {
            break;
        }
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| tokio::spawn(worker(url.clone(), model.clone(), rng.gen())))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..400))).await;
        relay.kill();
        for w in &workers {
            w.abort();
        }
        for w in workers {
            let _ = w.await;
        }
        let mut m = lock(&model);
        let failures = std::mem::take(&mut m.failures);
        assert!(failures.is_empty(), "while the relay was up: {failures:?}");
        for p in &mut m.phones {
            p.busy = false;
        }
        drop(m);
        relay = Relay::spawn(&store);
    }
    relay.kill();
    let m = lock(&model);
    println!(
        "store crash: {kills} kills ({startup_kills} during startup), {} registrations, {} \
         resumes and {} revocations confirmed, {checked} contacts checked after restarts, \
         {} s",
        m.registered,
        m.resumed,
        m.revoked,
        started.elapsed().as_secs_f32()
    );
    assert!(
        m.registered > 0 && m.revoked > 0,
        "the workload confirmed nothing"
    );
}
