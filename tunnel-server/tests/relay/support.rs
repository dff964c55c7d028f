//! Shared helpers: start a relay in-process, open WebSocket clients, send raw HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::{RoutingId, TunnelId, TunnelPath};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Response;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tunnel_server::{Config, RunningServer};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// What a client handshake returns.
pub(crate) type Opened = Result<(Ws, Response<Option<Vec<u8>>>), WsError>;

/// A bound on every wait, so a bug fails the test instead of hanging it.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) const ROUTING: RoutingId = RoutingId([0x0a, 0x0b, 0x0c]);

pub(crate) fn config() -> Config {
    Config {
        routing_id: ROUTING,
        ..Config::default()
    }
}

pub(crate) async fn start(config: Config) -> RunningServer {
    RunningServer::start(config).await.expect("server starts")
}

pub(crate) fn tunnel(n: u8) -> TunnelId {
    TunnelId([n; 16])
}

pub(crate) fn new_path(t: TunnelId) -> String {
    TunnelPath::New(t).to_path()
}

pub(crate) fn connect_path(t: TunnelId) -> String {
    TunnelPath::Connect(ROUTING, t).to_path()
}

/// Opens a WebSocket with the `fido.cable` subprotocol and extra headers.
pub(crate) async fn open(server: &RunningServer, path: &str, headers: &[(&str, &str)]) -> Opened {
    open_url(&format!("{}{path}", server.ws_url()), headers).await
}

pub(crate) async fn open_url(url: &str, headers: &[(&str, &str)]) -> Opened {
    test_support::ws::open_fido_cable(url, headers, WAIT).await
}

pub(crate) async fn ok(server: &RunningServer, path: &str) -> Ws {
    open(server, path, &[]).await.expect("101").0
}

/// The HTTP status of a failed handshake.
pub(crate) fn status(result: Opened) -> u16 {
    test_support::ws::refused_status(result)
}

pub(crate) async fn send(ws: &mut Ws, data: &[u8]) {
    ws.send(Message::Binary(data.to_vec())).await.expect("send");
}

/// The next binary message (pings skipped).
pub(crate) async fn recv(ws: &mut Ws) -> Vec<u8> {
    test_support::ws::recv_binary(ws, WAIT).await
}

/// Reads until the close frame; returns its code.
pub(crate) async fn closed(ws: &mut Ws) -> CloseCode {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close within the bound");
        match m {
            Some(Ok(Message::Close(Some(f)))) => return f.code,
            Some(Ok(Message::Close(None))) => return CloseCode::Status,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Sends raw bytes and returns everything the server answers until it closes or a bound.
pub(crate) async fn raw(server: &RunningServer, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(server.addr())
        .await
        .expect("tcp connect");
    tcp.write_all(request).await.expect("write");
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

/// A well-formed upgrade request for `path` (method and extra header lines given).
pub(crate) fn upgrade_request(method: &str, path: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

pub(crate) fn status_line(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// GET a plain HTTP path; returns the whole response.
pub(crate) async fn get(server: &RunningServer, path: &str) -> String {
    request_at(server.addr(), "GET", path).await
}

/// Sends `method path` (no body) to `addr` and returns the whole response.
pub(crate) async fn request_at(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    // A dropped connection (a limit) reads as an empty response.
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("response within the bound");
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a metric line (`name{labels}`) in `/metrics`.
pub(crate) async fn metric(server: &RunningServer, line: &str) -> u64 {
    try_metric(server, line)
        .await
        .unwrap_or_else(|| panic!("metric {line} missing"))
}

/// `None` if `/metrics` did not answer (e.g. the connection was over a limit).
pub(crate) async fn try_metric(server: &RunningServer, line: &str) -> Option<u64> {
    let text = get(server, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
}

/// Waits (bounded) until `metric` reaches `want`: for state the test cannot observe directly.
pub(crate) async fn await_metric(server: &RunningServer, line: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = try_metric(server, line).await;
        if v == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line} stayed {v:?}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The phone's registration secret header (the relay's README "Contact channel").
pub(crate) const SECRET_HEADER: &str = "X-caBLE-Registration-Secret";

/// Mints a contact ID; returns the registration socket, the ID and the secret (base64url).
pub(crate) async fn register_with_secret(
    server: &RunningServer,
) -> (Ws, hybrid_protocol::tunnel::ContactId, String) {
    let (ws, resp) = open(server, "/cable/register", &[]).await.unwrap();
    assert_eq!(resp.headers()["Sec-WebSocket-Protocol"], "fido.cable");
    let id = resp.headers()["X-caBLE-Contact-ID"].to_str().unwrap();
    let secret = resp
        .headers()
        .get(SECRET_HEADER)
        .expect("a minting /cable/register returns the registration secret")
        .to_str()
        .unwrap()
        .to_string();
    (
        ws,
        hybrid_protocol::tunnel::ContactId::from_base64url(id).unwrap(),
        secret,
    )
}

pub(crate) fn resume_path(id: &hybrid_protocol::tunnel::ContactId) -> String {
    format!("/cable/register/{}", id.to_base64url())
}

/// Runs `test` (its full name in this binary) again, alone, in a new process of this binary
/// with `marker` set in its environment, started through `wrapper` (a command the binary and
/// its arguments are appended to; empty: none), and asserts that it passed; `context` says why
/// it runs alone and what that needs, for the failure message. For tests that must own their
/// process.
pub(crate) fn run_alone(test: &str, marker: &str, wrapper: &[&str], context: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args).arg(&exe);
            cmd
        }
        None => std::process::Command::new(&exe),
    };
    let out = cmd
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(marker, "1")
        .output()
        .unwrap_or_else(|e| panic!("{test}: the test binary does not run again ({context}): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} in a process of its own ({context}) failed:\n{stdout}\n{stderr}"
    );
}
