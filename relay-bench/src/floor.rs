//! The floor: the least a relay can do with tokio-tungstenite (0.24, its own handshake and
//! default configuration, so 4 KiB read buffers). It pairs `/cable/new/<t>` with
//! `/cable/connect/<r>/<t>` through a `HashMap` of waiting sockets and copies messages both
//! ways in a `select!` loop; no limits, metrics, TLS, logging or checks. `loadgen` measures the
//! relay against it in the same run (`loadgen serve-baseline`, started as a child process).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::{ROUTING_ID_HEADER, SUBPROTOCOL};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

/// `loadgen serve-baseline`.
#[derive(clap::Args)]
pub(crate) struct FloorArgs {
    #[arg(long)]
    listen: SocketAddr,
}

type ServerWs = WebSocketStream<TcpStream>;
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<ServerWs>>>>;

/// Serves on `--listen` until killed.
pub(crate) async fn serve(args: &FloorArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let waiting: Waiting = Arc::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let _ = handle(tcp, waiting).await;
        });
    }
}

// The callback's error type is tungstenite's `ErrorResponse`, which is large; the baseline
// never returns it.
#[allow(clippy::result_large_err)]
async fn handle(tcp: TcpStream, waiting: Waiting) -> Result<()> {
    // Register a waiting /new before the 101 goes out, so a /connect that follows the
    // 101 always finds it.
    let mut path = String::new();
    let mut waiting_rx = None;
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
        path = req.uri().path().to_string();
        if let ["", "cable", "new", t] = path.split('/').collect::<Vec<_>>().as_slice() {
            let (tx, rx) = oneshot::channel();
            waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(t.to_ascii_uppercase(), tx);
            waiting_rx = Some(rx);
        }
        let h = resp.headers_mut();
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        h.insert(ROUTING_ID_HEADER, HeaderValue::from_static("000000"));
        Ok(resp)
    })
    .await?;
    if let Some(rx) = waiting_rx {
        let peer = rx.await?;
        relay(ws, peer).await;
        return Ok(());
    }
    if let ["", "cable", "connect", _, t] = path.split('/').collect::<Vec<_>>().as_slice() {
        let tx = waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&t.to_ascii_uppercase());
        if let Some(tx) = tx {
            let _ = tx.send(ws);
        }
    }
    Ok(())
}

async fn relay(mut a: ServerWs, mut b: ServerWs) {
    loop {
        tokio::select! {
            m = a.next() => match m {
                Some(Ok(m)) if m.is_binary() => { if b.send(m).await.is_err() { break; } }
                Some(Ok(m)) if m.is_close() => { let _ = b.close(None).await; break; }
                Some(Ok(_)) => {}
                _ => break,
            },
            m = b.next() => match m {
                Some(Ok(m)) if m.is_binary() => { if a.send(m).await.is_err() { break; } }
                Some(Ok(m)) if m.is_close() => { let _ = a.close(None).await; break; }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}
