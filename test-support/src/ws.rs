//! Both ends of a relay's WebSocket upgrade for tests that play one side by hand. The server
//! side, [`accept_fido_cable`], answers the upgrade with the `fido.cable` subprotocol and the
//! response headers the test chooses, on any stream (TCP, TLS); tests whose fake relay must see
//! the request or refuse it keep their own callback. The client side builds the request a
//! phone or a desktop sends ([`fido_cable_request`], for tests that bring their own socket or
//! TLS), opens it within a bound ([`open_fido_cable`]), reads the next binary message
//! ([`recv_binary`]) and reads the status of a refused upgrade ([`refused_status`]).

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The subprotocol every hybrid tunnel socket names.
const SUBPROTOCOL: &str = "fido.cable";

/// A client's WebSocket over TCP or TLS, as [`open_fido_cable`] returns it.
pub type ClientWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Completes the upgrade on `stream`, answering with `Sec-WebSocket-Protocol: fido.cable` and
/// each of `headers`. Panics on a header that is not valid HTTP, as test code does.
pub async fn accept_fido_cable<S>(
    stream: S,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let headers = header_pairs(&[("Sec-WebSocket-Protocol", SUBPROTOCOL)], headers);
    // The callback's error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let answer = move |_: &Request, mut resp: Response| {
        for (k, v) in headers {
            resp.headers_mut().insert(k, v);
        }
        Ok(resp)
    };
    tokio_tungstenite::accept_hdr_async(stream, answer).await
}

/// The upgrade request for `url` (`ws://` or `wss://`, path included) that names the
/// `fido.cable` subprotocol and carries each of `headers`. Panics on a URL or header that is
/// not valid, as test code does.
pub fn fido_cable_request(url: &str, headers: &[(&str, &str)]) -> client::Request {
    let mut req = url
        .into_client_request()
        .unwrap_or_else(|e| panic!("{url} is not a WebSocket URL: {e}"));
    for (k, v) in header_pairs(&[("Sec-WebSocket-Protocol", SUBPROTOCOL)], headers) {
        req.headers_mut().insert(k, v);
    }
    req
}

/// Opens [`fido_cable_request`]`(url, headers)`: the socket and the relay's answer, or the
/// error the handshake ended with (an HTTP refusal is `Error::Http`). Panics if the handshake
/// takes longer than `within`, so a silent server fails the test instead of hanging it.
pub async fn open_fido_cable(
    url: &str,
    headers: &[(&str, &str)],
    within: Duration,
) -> Result<(ClientWs, client::Response), Error> {
    let req = fido_cable_request(url, headers);
    match tokio::time::timeout(within, tokio_tungstenite::connect_async(req)).await {
        Ok(opened) => opened,
        Err(_) => panic!("{url}: no handshake within {within:?}"),
    }
}

/// The HTTP status of an upgrade the server refused. Panics if it upgraded (101) or failed
/// without an HTTP answer.
pub fn refused_status<T>(opened: Result<T, Error>) -> u16 {
    match opened {
        Err(Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP error status, got {e}"),
        Ok(_) => panic!("expected an HTTP error status, got 101"),
    }
}

/// The next binary message on `ws`, pings and pongs skipped. Panics on anything else (a text
/// frame, a close, an error, the end of the stream) and when nothing comes within `within`.
pub async fn recv_binary<S>(ws: &mut WebSocketStream<S>, within: Duration) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let m = tokio::time::timeout(within, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no message within {within:?}"));
        match m {
            Some(Ok(Message::Binary(b))) => return b,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

/// `first` then `more` as HTTP header names and values.
fn header_pairs(first: &[(&str, &str)], more: &[(&str, &str)]) -> Vec<(HeaderName, HeaderValue)> {
    first
        .iter()
        .chain(more)
        .map(|&(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes())
                    .unwrap_or_else(|e| panic!("{k:?} is not a header name: {e}")),
                HeaderValue::from_str(v)
                    .unwrap_or_else(|e| panic!("{v:?} is not a header value: {e}")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt as _;

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn the_request_names_the_subprotocol_and_carries_the_headers() {
        let req = fido_cable_request(
            "ws://127.0.0.1:9/cable/new/00",
            &[("X-caBLE-Client-Payload", "abc")],
        );
        assert_eq!(req.uri().path(), "/cable/new/00");
        assert_eq!(req.headers()["Sec-WebSocket-Protocol"], SUBPROTOCOL);
        assert_eq!(req.headers()["X-caBLE-Client-Payload"], "abc");
    }

    #[tokio::test]
    async fn both_ends_upgrade_and_a_binary_message_crosses_past_a_ping() {
        let addr = crate::net::serve_each(|tcp| async move {
            let Ok(mut ws) = accept_fido_cable(tcp, &[("X-caBLE-Routing-ID", "010203")]).await
            else {
                return;
            };
            let _ = ws.send(Message::Ping(vec![1])).await;
            let _ = ws.send(Message::Binary(vec![1, 2, 3])).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let (mut ws, resp) = open_fido_cable(&format!("ws://{addr}/x"), &[], WAIT)
            .await
            .expect("101");
        assert_eq!(resp.headers()["Sec-WebSocket-Protocol"], SUBPROTOCOL);
        assert_eq!(resp.headers()["X-caBLE-Routing-ID"], "010203");
        assert_eq!(recv_binary(&mut ws, WAIT).await, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_refused_upgrade_reads_as_its_status() {
        let addr = crate::net::serve_each(|mut tcp| async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
                .await;
        })
        .await;
        let opened = open_fido_cable(&format!("ws://{addr}/x"), &[], WAIT).await;
        assert_eq!(refused_status(opened), 429);
    }
}
