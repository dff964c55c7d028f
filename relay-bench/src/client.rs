//! The simulated clients: a hybrid ceremony's relay traffic, timed per phase, run back to back
//! by concurrent workers, and its rate and quantiles. A ceremony: the phone opens
//! `/cable/new/<random>`, the desktop `/cable/connect/<routing id from the 101>/<id>` (*open*);
//! 81 B each way (*handshake*, the Noise round trip); 320 B to the desktop right behind it
//! (*post-handshake*); 480 B to the phone and 800 B back (*CTAP*); the desktop closes, and the
//! ceremony ends when **both** sockets are fully closed (*close*) — read in the order the
//! [`Mode`] says.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;
use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::contact::{WakeUp, CONTACT_ID_HEADER};
use hybrid_protocol::tunnel::{
    RoutingId, TunnelId, TunnelPath, CLIENT_PAYLOAD_HEADER, ROUTING_ID_HEADER, SUBPROTOCOL,
};
use rand::RngCore as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client socket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a simulated client behaves: how it reads its two sockets during the close, or how it
/// misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Close the initiator and read it to its end, then read the authenticator to its end.
    Sequential,
    /// Read both sockets to their end at the same time.
    Background,
    /// Abandoned mid-way: once the first handshake message reached the phone, the desktop
    /// drops its connection without a close frame; the phone reads its socket to the end the
    /// relay gives it. Its phases after the handshake are zero.
    Abandon,
    /// A phone that never reads: it writes its handshake reply, post-handshake message and
    /// CTAP response without reading anything, and holds its socket unread for
    /// [`NEVER_READ_HOLD`] after the desktop has closed (handed to a task of its own, so the
    /// next ceremony does not wait for it).
    NeverRead,
}

/// How long a [`Mode::NeverRead`] phone holds its unread socket after the desktop closed:
/// longer than the relay waits for a close reply (1 s).
pub(crate) const NEVER_READ_HOLD: Duration = Duration::from_secs(2);

/// A random tunnel ID.
pub(crate) fn random_tunnel() -> TunnelId {
    let mut t = TunnelId([0; 16]);
    rand::thread_rng().fill_bytes(&mut t.0);
    t
}

/// The upgrade request for `url` with the `fido.cable` subprotocol and extra `headers`.
fn request(
    url: &str,
    headers: &[(&'static str, String)],
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    let mut req = url.into_client_request()?;
    let h = req.headers_mut();
    h.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_str(v)?);
    }
    Ok(req)
}

/// Opens `url` with the `fido.cable` subprotocol and extra request `headers`; returns the
/// socket and the 101's headers.
pub(crate) async fn open_with(
    url: &str,
    headers: &[(&'static str, String)],
) -> Result<(Ws, HeaderMap)> {
    let req = request(url, headers)?;
    let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        let _ = s.set_nodelay(true);
    }
    Ok((ws, resp.into_parts().0.headers))
}

/// Like [`open_with`] for a `ws://` URL on `server`, from the local address `source` (a
/// loopback address other than 127.0.0.1 has its own ephemeral ports, so a long run at a high
/// rate does not run out of them while closed connections sit in TIME_WAIT).
pub(crate) async fn open_from(
    server: SocketAddr,
    source: IpAddr,
    path: &str,
    headers: &[(&'static str, String)],
) -> Result<(Ws, HeaderMap)> {
    let req = request(&format!("ws://{server}{path}"), headers)?;
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("cannot bind a client socket to {source}"))?;
    let tcp = socket.connect(server).await?;
    let _ = tcp.set_nodelay(true);
    let (ws, resp) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp)).await?;
    Ok((ws, resp.into_parts().0.headers))
}

/// Where simulated clients connect: a relay's address, and the local source addresses to
/// spread connections over, taken in turn.
#[derive(Clone, Debug)]
pub(crate) struct Dial {
    pub(crate) server: SocketAddr,
    pub(crate) sources: Arc<[IpAddr]>,
    pub(crate) next: Arc<AtomicUsize>,
}

impl Dial {
    /// Opens `path` (e.g. `/cable/new/…`) with extra request `headers`, from the next source
    /// address.
    pub(crate) async fn open(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
    ) -> Result<(Ws, HeaderMap)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len();
        open_from(self.server, self.sources[i], path, headers).await
    }
}

/// Opens `url`; returns the socket and the routing ID the relay sent, if any.
pub(crate) async fn open(url: &str) -> Result<(Ws, Option<RoutingId>)> {
    let (ws, headers) = open_with(url, &[]).await?;
    let routing = headers
        .get(ROUTING_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| RoutingId::from_hex(v).ok());
    Ok((ws, routing))
}

/// Opens a tunnel's two sockets: `(phone, desktop)`.
pub(crate) async fn open_pair(base: &str) -> Result<(Ws, Ws)> {
    let t = random_tunnel();
    let (phone, routing) = open(&format!("{base}{}", TunnelPath::New(t).to_path())).await?;
    let routing = routing.context("no routing ID header")?;
    let (desktop, _) = open(&format!(
        "{base}{}",
        TunnelPath::Connect(routing, t).to_path()
    ))
    .await?;
    Ok((phone, desktop))
}

/// Opens a QR tunnel's two sockets through `dial`: `(phone, desktop)`.
pub(crate) async fn open_pair_via(dial: &Dial) -> Result<(Ws, Ws)> {
    let t = random_tunnel();
    let (phone, headers) = dial.open(&TunnelPath::New(t).to_path(), &[]).await?;
    let routing = headers
        .get(ROUTING_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| RoutingId::from_hex(v).ok())
        .context("no routing ID header")?;
    let (desktop, _) = dial
        .open(&TunnelPath::Connect(routing, t).to_path(), &[])
        .await?;
    Ok((phone, desktop))
}

/// A linked phone as the relay sees it: a contact ID and the registration socket its
/// wake-ups arrive on.
pub(crate) struct LinkedPhone {
    contact_id: String,
    registration: Ws,
}

impl LinkedPhone {
    /// Mints a contact ID (`/cable/register`) and keeps the registration socket open.
    pub(crate) async fn register(dial: &Dial) -> Result<Self> {
        let (registration, headers) = dial
            .open("/cable/register", &[])
            .await
            .context("minting a contact ID")?;
        let contact_id = headers
            .get(CONTACT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .context("the mint's 101 has no contact ID")?
            .to_string();
        Ok(Self {
            contact_id,
            registration,
        })
    }

    /// Opens a linked tunnel's two sockets: the desktop wakes the phone
    /// (`/cable/contact/<id>`), the phone reads the wake-up and joins (`/cable/connect`).
    /// Returns `(phone, desktop)`.
    pub(crate) async fn open_pair(&mut self, dial: &Dial) -> Result<(Ws, Ws)> {
        let (desktop, _) = dial
            .open(
                &format!("/cable/contact/{}", self.contact_id),
                &[(CLIENT_PAYLOAD_HEADER, "00".into())],
            )
            .await
            .context("waking the linked phone")?;
        let wake = next_binary(&mut self.registration)
            .await
            .context("reading the wake-up")?;
        let wake = WakeUp::from_json(&wake).context("parsing the wake-up")?;
        let (phone, _) = dial
            .open(
                &TunnelPath::Connect(wake.routing_id, wake.tunnel_id).to_path(),
                &[],
            )
            .await?;
        Ok((phone, desktop))
    }
}

/// The next binary message (pings and pongs skipped); anything else is an error.
pub(crate) async fn next_binary(ws: &mut Ws) -> Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => bail!("expected a binary message, got {other:?}"),
        }
    }
}

/// Reads a socket to its end: the close frame (answered by tungstenite), then the server
/// closing the TCP connection. A reset or a missing close reply also ends it.
pub(crate) async fn read_to_end(ws: &mut Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// The phases of one ceremony: open, handshake, post-handshake, CTAP, close.
pub(crate) type Phases = [Duration; 5];

/// One simulated hybrid ceremony; returns its phases.
pub(crate) async fn ceremony(base: &str, mode: Mode) -> Result<Phases> {
    let t0 = Instant::now();
    let (phone, desktop) = open_pair(base).await?;
    exchange(t0, phone, desktop, mode).await
}

/// A ceremony's traffic on an open tunnel, `t0` being when its opening began, as `mode` says;
/// returns its phases.
pub(crate) async fn exchange(
    t0: Instant,
    mut phone: Ws,
    mut desktop: Ws,
    mode: Mode,
) -> Result<Phases> {
    let t1 = Instant::now();
    if mode == Mode::NeverRead {
        return never_read(t0, t1, phone, desktop).await;
    }
    // Noise msg1, msg2 (and right behind it the post-handshake message).
    desktop.send(Message::Binary(vec![1; 81])).await?;
    next_binary(&mut phone).await?;
    if mode == Mode::Abandon {
        // The desktop vanishes: its TCP connection ends without a close frame.
        drop(desktop);
        read_to_end(&mut phone).await;
        let t2 = Instant::now();
        return Ok([
            t1 - t0,
            t2 - t1,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        ]);
    }
    phone.send(Message::Binary(vec![2; 81])).await?;
    phone.send(Message::Binary(vec![3; 320])).await?;
    next_binary(&mut desktop).await?;
    let t2 = Instant::now();
    next_binary(&mut desktop).await?;
    let t3 = Instant::now();
    // CTAP request and response.
    desktop.send(Message::Binary(vec![4; 480])).await?;
    next_binary(&mut phone).await?;
    phone.send(Message::Binary(vec![5; 800])).await?;
    next_binary(&mut desktop).await?;
    let t4 = Instant::now();
    // The initiator (the desktop) closes; the ceremony ends when both sockets are closed.
    desktop.close(None).await?;
    match mode {
        Mode::Background => {
            tokio::join!(read_to_end(&mut desktop), read_to_end(&mut phone));
        }
        _ => {
            read_to_end(&mut desktop).await;
            read_to_end(&mut phone).await;
        }
    }
    let t5 = Instant::now();
    Ok([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
}

/// [`Mode::NeverRead`]: the desktop reads and closes as usual; the phone only writes.
async fn never_read(t0: Instant, t1: Instant, mut phone: Ws, mut desktop: Ws) -> Result<Phases> {
    desktop.send(Message::Binary(vec![1; 81])).await?;
    phone.send(Message::Binary(vec![2; 81])).await?;
    phone.send(Message::Binary(vec![3; 320])).await?;
    next_binary(&mut desktop).await?;
    let t2 = Instant::now();
    next_binary(&mut desktop).await?;
    let t3 = Instant::now();
    desktop.send(Message::Binary(vec![4; 480])).await?;
    phone.send(Message::Binary(vec![5; 800])).await?;
    next_binary(&mut desktop).await?;
    let t4 = Instant::now();
    desktop.close(None).await?;
    read_to_end(&mut desktop).await;
    let t5 = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(NEVER_READ_HOLD).await;
        drop(phone);
    });
    Ok([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
}

/// Rate and latency of the ceremonies of one or more [`Run`]s.
pub(crate) struct CeremonyStats {
    /// Ceremonies per second.
    pub(crate) rate: f64,
    /// Median ceremony, ms.
    pub(crate) p50: f64,
    /// 99th percentile ceremony, ms.
    pub(crate) p99: f64,
    /// p50 of each phase, ms.
    pub(crate) phases: [f64; 5],
    /// Ceremonies that failed or took over 10 s.
    pub(crate) errors: usize,
}

/// One timed run of ceremonies at a concurrency.
pub(crate) struct Run {
    ceremonies: Vec<Phases>,
    errors: usize,
    elapsed: f64,
}

/// Runs ceremonies on `base` for `duration` with `concurrency` workers, each back to back.
pub(crate) async fn ceremonies(
    base: &str,
    concurrency: usize,
    duration: Duration,
    mode: Mode,
) -> Run {
    let until = Instant::now() + duration;
    let started = Instant::now();
    let results = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let base = base.to_string();
        let results = results.clone();
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = tokio::time::timeout(Duration::from_secs(10), ceremony(&base, mode)).await;
                let mut g = results.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(Ok(p)) => g.0.push(p),
                    _ => g.1 += 1,
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ceremonies, errors) =
        std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    Run {
        ceremonies,
        errors,
        elapsed,
    }
}

/// The `p` quantile of `v` in ms (sorts `v`): the sample at rank `round((n - 1) × p)`.
pub(crate) fn quantile(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

/// The rate, quantiles and phase medians over `runs`.
pub(crate) fn stats(runs: Vec<Run>) -> CeremonyStats {
    let elapsed: f64 = runs.iter().map(|r| r.elapsed).sum();
    let errors = runs.iter().map(|r| r.errors).sum();
    let all: Vec<Phases> = runs.into_iter().flat_map(|r| r.ceremonies).collect();
    let mut total: Vec<Duration> = all.iter().map(|p| p.iter().sum()).collect();
    let mut phases = [0.0; 5];
    for (i, out) in phases.iter_mut().enumerate() {
        let mut v: Vec<Duration> = all.iter().map(|p| p[i]).collect();
        *out = quantile(&mut v, 0.5);
    }
    CeremonyStats {
        rate: all.len() as f64 / elapsed,
        p50: quantile(&mut total, 0.5),
        p99: quantile(&mut total, 0.99),
        phases,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_sample_at_the_rounded_rank() {
        let mut v: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut v, 0.5), 101.0);
        assert_eq!(quantile(&mut v, 0.99), 198.0);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(quantile(&mut v, 1.0), 200.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn stats_count_ceremonies_per_second_and_per_phase() {
        let ms = Duration::from_millis;
        let run = |phases: Vec<Phases>, errors, elapsed| Run {
            ceremonies: phases,
            errors,
            elapsed,
        };
        let s = stats(vec![
            run(vec![[ms(1), ms(2), ms(3), ms(4), ms(5)]; 3], 1, 1.0),
            run(vec![[ms(2), ms(2), ms(2), ms(2), ms(2)]], 2, 1.0),
        ]);
        assert_eq!(s.rate, 2.0);
        assert_eq!(s.errors, 3);
        assert_eq!(s.phases, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!((s.p50, s.p99), (15.0, 15.0));
    }
}
