//! A recording WebSocket proxy: sits between a client (phone or desktop) and the relay,
//! forwards every request path and the headers the protocol uses, relays binary messages and
//! close frames both ways and keeps a copy of each binary message. Tests use it to prove that the relay sees only ciphertext.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::{
    CLIENT_PAYLOAD_HEADER, ROUTING_ID_HEADER, SIGNAL_CONNECTION_HEADER, SUBPROTOCOL,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// One relayed message: the request path of the socket it crossed, and its bytes.
pub type Captured = (String, Vec<u8>);

/// Everything that crossed the proxy, in order.
#[derive(Default, Clone)]
pub struct Capture {
    /// `(request path, message bytes)` for every binary message, both directions.
    pub messages: Arc<Mutex<Vec<Captured>>>,
    /// Every request path and header value seen.
    pub headers: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// All captured bytes (messages and header text) concatenated.
    pub fn all_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, m) in self.messages.lock().expect("capture lock").iter() {
            out.extend_from_slice(m);
        }
        for h in self.headers.lock().expect("capture lock").iter() {
            out.extend_from_slice(h.as_bytes());
        }
        out
    }

    /// Number of binary messages relayed.
    pub fn message_count(&self) -> usize {
        self.messages.lock().expect("capture lock").len()
    }
}

/// Cut a socket after it has carried `after` binary messages (both directions counted): the
/// proxy drops the client side without a close frame, and ends the relay side as `relay_side`
/// says.
#[derive(Clone, Copy, Debug)]
pub struct Cut {
    /// Only sockets whose request path starts with this.
    pub path_prefix: &'static str,
    /// Messages to let through first.
    pub after: usize,
    /// How many matching sockets to cut; later ones pass untouched (`usize::MAX`: all).
    pub sockets: usize,
    /// How the relay sees the client leave.
    pub relay_side: CutEnd,
}

/// How a cut socket ends towards the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutEnd {
    /// A normal WebSocket close: the relay closes the peer normally too.
    Close,
    /// The TCP stream just ends: the relay tells the peer it went away (1001).
    Drop,
}

/// Starts the proxy on 127.0.0.1 in front of `upstream` (`ws://127.0.0.1:PORT`); returns its
/// base URL and the capture.
pub async fn start(upstream: String) -> anyhow::Result<(String, Capture)> {
    start_cutting(upstream, None).await
}

/// Like [`start`], cutting matching sockets as `cut` says.
pub async fn start_cutting(
    upstream: String,
    cut: Option<Cut>,
) -> anyhow::Result<(String, Capture)> {
    let capture = Capture::default();
    let cap = capture.clone();
    let cut_so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let addr = test_support::net::serve_each(move |tcp| {
        let proxied = proxy_one(tcp, upstream.clone(), cap.clone(), cut, cut_so_far.clone());
        async move {
            let _ = proxied.await;
        }
    })
    .await;
    Ok((format!("ws://{addr}"), capture))
}

async fn proxy_one(
    tcp: tokio::net::TcpStream,
    upstream: String,
    cap: Capture,
    cut: Option<Cut>,
    cut_so_far: Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    // Peek at the request head (bounded) to learn the path and headers, connect upstream with
    // them, then complete the client's upgrade echoing what the relay answered.
    let mut buf = vec![0u8; 8192];
    let head = loop {
        let n = tcp.peek(&mut buf).await?;
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            break String::from_utf8_lossy(&buf[..end]).to_string();
        }
        anyhow::ensure!(n < buf.len(), "request head too large");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    };
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    cap.headers.lock().expect("lock").push(path.clone());
    let mut request = format!("{upstream}{path}").into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if [
            CLIENT_PAYLOAD_HEADER,
            SIGNAL_CONNECTION_HEADER,
            "X-caBLE-Registration-Secret",
        ]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(k))
        {
            cap.headers.lock().expect("lock").push(format!("{k}: {v}"));
            request.headers_mut().insert(
                k.parse::<tokio_tungstenite::tungstenite::http::HeaderName>()?,
                v.parse()?,
            );
        }
    }
    let (server, response) = tokio_tungstenite::connect_async(request).await?;
    let echoed: Vec<(String, String)> = [
        ROUTING_ID_HEADER,
        SIGNAL_CONNECTION_HEADER,
        "X-caBLE-Contact-ID",
        "X-caBLE-Registration-Secret",
    ]
    .iter()
    .filter_map(|h| {
        let v = response.headers().get(*h)?.to_str().ok()?;
        Some((h.to_string(), v.to_string()))
    })
    .collect();
    for (k, v) in &echoed {
        cap.headers.lock().expect("lock").push(format!("{k}: {v}"));
    }
    let echoed: Vec<(&str, &str)> = echoed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let client = test_support::ws::accept_fido_cable(tcp, &echoed).await?;
    let cut = cut
        .filter(|c| path.starts_with(c.path_prefix))
        .filter(|c| cut_so_far.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < c.sockets);
    let limit = cut.map(|c| c.after);
    let (mut c_tx, mut c_rx) = client.split();
    let (mut s_tx, mut s_rx) = server.split();
    let mut relayed = 0usize;
    loop {
        if limit.is_some_and(|l| relayed >= l) {
            // Cut: nothing at all towards the client; towards the relay a normal close, or
            // nothing (dropping both halves ends the TCP stream).
            if cut.is_some_and(|c| c.relay_side == CutEnd::Close) {
                let _ = s_tx.send(Message::Close(None)).await;
            }
            return Ok(());
        }
        tokio::select! {
            m = c_rx.next() => {
                let Some(Ok(m)) = m else { break };
                if let Message::Binary(b) = &m {
                    cap.messages.lock().expect("lock").push((path.clone(), b.to_vec()));
                    relayed += 1;
                }
                // Close frames cross as they are, code and reason included.
                let close = m.is_close();
                if s_tx.send(m).await.is_err() || close {
                    break;
                }
            }
            m = s_rx.next() => {
                let Some(Ok(m)) = m else { break };
                if let Message::Binary(b) = &m {
                    cap.messages.lock().expect("lock").push((path.clone(), b.to_vec()));
                    relayed += 1;
                }
                let close = m.is_close();
                if c_tx.send(m).await.is_err() || close {
                    break;
                }
            }
        }
    }
    let _ = s_tx.close().await;
    let _ = c_tx.close().await;
    Ok(())
}
