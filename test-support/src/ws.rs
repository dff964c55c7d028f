//! The server side of a relay's WebSocket upgrade for tests that play a relay (or a desktop
//! behind one) by hand: [`accept_fido_cable`] answers the upgrade with the `fido.cable`
//! subprotocol and the response headers the test chooses, on any stream (TCP, TLS). Tests
//! whose fake relay must see the request or refuse it keep their own callback.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::WebSocketStream;

/// Completes the upgrade on `stream`, answering with `Sec-WebSocket-Protocol: fido.cable` and
/// each of `headers`. Panics on a header that is not valid HTTP, as test code does.
pub async fn accept_fido_cable<S>(
    stream: S,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<S>, tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let headers: Vec<(HeaderName, HeaderValue)> =
        std::iter::once(("Sec-WebSocket-Protocol", "fido.cable"))
            .chain(headers.iter().copied())
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                    HeaderValue::from_str(v).expect("a header value"),
                )
            })
            .collect();
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
