//! Timing print (no assertion): QR-ceremony latency on a relay whose contact registry is full
//! of confirmed entries, without and then during a flood of mints that the full registry
//! refuses (503). A refused mint must stay cheap: it takes the state lock every ceremony also
//! takes, so a refusal that scanned the registry would show here as ceremony latency.
//!
//! `cargo run --release -p tunnel-server --example mint_flood -- [entries] [flooders]`
//! (defaults 20000 and 16). The relay runs in-process on 127.0.0.1.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::{TunnelId, TunnelPath, SUBPROTOCOL};
use rand::RngCore as _;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Opened = Result<(Ws, Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error>;

async fn open(url: &str, headers: &[(&'static str, String)]) -> Opened {
    let mut req = url.into_client_request()?;
    let h = req.headers_mut();
    h.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_str(v).expect("header value"));
    }
    tokio_tungstenite::connect_async(req).await
}

/// Mints a contact ID and confirms it by resuming, as a phone does.
async fn confirmed_phone(base: &str) {
    let (_ws, resp) = open(&format!("{base}/cable/register"), &[])
        .await
        .expect("mint");
    let h = |n: &str| resp.headers()[n].to_str().unwrap().to_string();
    let (id, secret) = (h("X-caBLE-Contact-ID"), h("X-caBLE-Registration-Secret"));
    let _ = open(
        &format!("{base}/cable/register/{id}"),
        &[("X-caBLE-Registration-Secret", secret)],
    )
    .await
    .expect("resume");
}

/// A QR ceremony's relay traffic: both sockets, two messages each way, close.
async fn ceremony(base: &str, routing: hybrid_protocol::tunnel::RoutingId) -> Duration {
    let t0 = Instant::now();
    let mut t = TunnelId([0; 16]);
    rand::thread_rng().fill_bytes(&mut t.0);
    let (mut phone, _) = open(&format!("{base}{}", TunnelPath::New(t).to_path()), &[])
        .await
        .expect("new");
    let (mut desktop, _) = open(
        &format!("{base}{}", TunnelPath::Connect(routing, t).to_path()),
        &[],
    )
    .await
    .expect("connect");
    desktop
        .send(Message::Binary(vec![1; 200]))
        .await
        .expect("send");
    while !matches!(phone.next().await, Some(Ok(Message::Binary(_)))) {}
    phone
        .send(Message::Binary(vec![2; 800]))
        .await
        .expect("send");
    while !matches!(desktop.next().await, Some(Ok(Message::Binary(_)))) {}
    desktop.close(None).await.expect("close");
    while let Some(Ok(_)) = phone.next().await {}
    t0.elapsed()
}

async fn latencies(base: &str, routing: hybrid_protocol::tunnel::RoutingId) -> (f64, f64) {
    let mut v = Vec::new();
    for _ in 0..200 {
        v.push(ceremony(base, routing).await);
    }
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[v.len() * 99 / 100]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let entries: usize = args.next().map_or(20_000, |a| a.parse().expect("entries"));
    let flooders: usize = args.next().map_or(16, |a| a.parse().expect("flooders"));
    let mut config = tunnel_server::Config::default();
    config.limits.max_contacts = entries;
    config.limits.registrations_per_ip_per_minute = 0;
    config.limits.max_connections_per_ip = 0;
    let server = tunnel_server::RunningServer::start(config)
        .await
        .expect("relay");
    let base = server.ws_url();
    let routing = server.routing_id();

    let t = Instant::now();
    let mut fill = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let base = base.clone();
        fill.spawn(async move {
            for _ in (worker..entries).step_by(32) {
                confirmed_phone(&base).await;
            }
        });
    }
    while fill.join_next().await.is_some() {}
    println!(
        "filled {entries} confirmed contact IDs in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let (p50, p99) = latencies(&base, routing).await;
    println!("ceremony latency, no flood:            p50 {p50:.2} ms  p99 {p99:.2} ms");

    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..flooders {
        let (base, refused) = (base.clone(), refused.clone());
        flood.spawn(async move {
            loop {
                if open(&format!("{base}/cable/register"), &[]).await.is_err() {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let before = refused.load(std::sync::atomic::Ordering::Relaxed);
    let (p50, p99) = latencies(&base, routing).await;
    let rate = (refused.load(std::sync::atomic::Ordering::Relaxed) - before) as f64
        / t.elapsed().as_secs_f64();
    println!(
        "ceremony latency, {flooders} mint flooders:   p50 {p50:.2} ms  p99 {p99:.2} ms  ({rate:.0} refused mints/s)"
    );
    flood.abort_all();
}
