//! What went wrong talking to a relay, sorted by whose doing it was ([`RelayError`]: our
//! caller's settings, the network, the relay refusing or misbehaving, the relay or the network
//! ending a tunnel), and what the relay's close codes ([`close_meaning`]) and HTTP statuses
//! ([`status_meaning`]) mean for the person waiting. A refusing relay's own words are kept,
//! escaped and cut short ([`relay_said`]), and so is its `Retry-After` ([`retry_after`]); a URL
//! in a message shows only a prefix of each ID ([`shown`]).

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite;

/// `url` for messages and logs: each ID in a `/cable/…` path (tunnel ID, contact ID) cut to
/// its first 8 characters, as the IDs' `Debug` forms do. The full tunnel ID lets anyone race
/// the desktop for the tunnel, the full contact ID lets anyone take the phone's wake-ups; the
/// error's `url` field keeps the whole URL.
pub fn shown(url: &str) -> String {
    let Some(at) = url.find("/cable/") else {
        return url.to_string();
    };
    let (base, path) = url.split_at(at);
    let mut out = base.to_string();
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        // "", "cable", the route's name, then its IDs (a 6-hex-digit routing ID stays whole).
        if i > 2 && seg.chars().count() > 8 {
            out.extend(seg.chars().take(8));
            out.push('…');
        } else {
            out.push_str(seg);
        }
    }
    out
}

/// What went wrong talking to a relay, and whose doing it was.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A relay URL or request header we were given is unusable (our caller's input).
    #[error("bad relay address {:?}: {reason}", shown(.url))]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The extra CA file cannot be used.
    #[error("the extra CA file {}: {reason}", .path.display())]
    ExtraCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The local TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// DNS, TCP or TLS to the relay failed.
    #[error("cannot reach the tunnel relay at {}: {reason}", shown(.url))]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The relay answered the WebSocket upgrade with an HTTP error status.
    #[error("the tunnel relay refused {} with HTTP {status}: {}{}", shown(.url), status_meaning(*.status), .said.as_ref().map(|s| format!("; it said: {s}")).unwrap_or_default())]
    Refused {
        /// The URL tried.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The relay's own explanation (its response body, control characters escaped and
        /// cut short), when it gave more than the status's standard phrase.
        said: Option<String>,
        /// How long the relay asked to be left alone (`Retry-After` in seconds), when it said.
        retry_after: Option<Duration>,
    },
    /// The server did not select the `fido.cable` subprotocol.
    #[error("{} did not select the fido.cable subprotocol; is it a caBLE tunnel relay?", shown(.url))]
    NotARelay {
        /// The URL tried.
        url: String,
    },
    /// The relay broke the WebSocket or hybrid rules (text frame, oversized message, a
    /// missing or bad response header).
    #[error("the tunnel relay at {} misbehaved: {reason}", shown(.url))]
    Protocol {
        /// The URL.
        url: String,
        /// What it did.
        reason: String,
    },
    /// The relay closed the tunnel on its own, with a WebSocket close code.
    #[error("the relay closed the tunnel: {} ({code}){}", close_meaning(*.code), if .reason.is_empty() { String::new() } else { format!(", saying {:?}", .reason) })]
    ClosedByRelay {
        /// The close code (RFC 6455 §7.4).
        code: u16,
        /// The close reason the relay sent.
        reason: String,
    },
    /// The connection was lost without a WebSocket close.
    #[error("the connection to the tunnel relay was lost: {reason}")]
    Dropped {
        /// What happened.
        reason: String,
    },
}

impl RelayError {
    /// Whether the caller's own settings are at fault (a usage error, not the relay's).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Self::BadUrl { .. } | Self::ExtraCa { .. } | Self::Tls(_)
        )
    }

    /// Whether the relay asked to be tried again later: it closed the tunnel with 1013, as a
    /// relay does when what it holds for peers not yet connected is full, or answered the
    /// upgrade with 503, as a relay does when its tables are full or it is shutting down. A
    /// caller that has sent nothing the other side acts on yet may start afresh after a wait
    /// (`crate::Backoff`), at least [`RelayError::retry_after`] when the relay said.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::ClosedByRelay { code: 1013, .. } | Self::Refused { status: 503, .. }
        )
    }

    /// How long a refusing relay asked to be left alone (its `Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status of a refused upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Longest explanation kept from a refusing relay's response body, in characters.
const MAX_SAID: usize = 300;

/// The relay's explanation of a refusal: its body's text, trimmed, control characters escaped
/// and cut to [`MAX_SAID`]; `None` when it is empty or only the status's standard phrase.
pub(crate) fn relay_said(
    status: tungstenite::http::StatusCode,
    body: Option<&[u8]>,
) -> Option<String> {
    let text = String::from_utf8_lossy(body?);
    let text = text.trim();
    let standard = status.canonical_reason().unwrap_or("");
    if text.is_empty() || text.eq_ignore_ascii_case(standard) {
        return None;
    }
    let mut said = hybrid_protocol::text::escape_controls(text).replace('\n', " ");
    if said.chars().count() > MAX_SAID {
        said = said.chars().take(MAX_SAID).collect::<String>() + "…";
    }
    Some(said)
}

/// A refusal's `Retry-After` (RFC 9110 §10.2.3) as a wait: delay-seconds only. An HTTP-date
/// would need the clock and a relay's clock may be off, so it is not used (the caller's own
/// backoff applies); neither is a value that is not a plain number.
pub(crate) fn retry_after(headers: &tungstenite::http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(tungstenite::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits beyond what u64 holds are an hour as surely as any: the caller caps the wait.
    Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)))
}

/// What a WebSocket close code from a relay means (RFC 6455 §7.4.1, RFC 9110 for 1013).
pub fn close_meaning(code: u16) -> &'static str {
    match code {
        1001 => "going away",
        1002 => "WebSocket protocol error",
        1003 => "unsupported data (tunnels carry binary messages only)",
        1006 => "connection lost",
        1007 => "invalid message data",
        1008 => "policy violation (too many messages, idle for too long, or the tunnel's lifetime is over)",
        1009 => "message too big",
        1011 => "the relay hit an internal error",
        1012 => "the relay is restarting",
        1013 => "the relay is overloaded; try again later",
        _ => "closed",
    }
}

/// What an HTTP status from a tunnel relay means for the person waiting.
pub fn status_meaning(status: u16) -> &'static str {
    match status {
        400 => "the relay rejected the request as malformed (is it a caBLE tunnel server?)",
        401 | 403 => "the relay does not allow this client; check the relay address and its access settings",
        404 => "the relay does not know this tunnel; the other side's session may have ended, start again with a new QR code",
        405 => "the relay does not accept this request method; is this a caBLE tunnel server?",
        408 => "the relay timed out waiting; try again",
        409 => "the tunnel is already in use; start again with a new QR code",
        410 => "the contact ID is no longer valid; link the phone again with a QR code",
        426 => "the relay requires a WebSocket upgrade it did not get; check the relay address",
        429 => "the relay is rate-limiting this client; wait a minute and try again",
        503 => "the relay is full or shutting down; try again later",
        500..=599 => "the relay has a server-side problem; try again later",
        _ => "unexpected answer from the relay",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cut_ids_in_urls_to_a_prefix() {
        let tunnel = "B2392008F851D909E1DD0984019DA00B";
        let contact = "p6enp6enp6enp6enp6enp6enp6enp6en";
        for (url, want) in [
            (
                format!("wss://r.example/cable/new/{tunnel}"),
                "wss://r.example/cable/new/B2392008…",
            ),
            (
                format!("ws://127.0.0.1:9/cable/connect/010203/{tunnel}"),
                "ws://127.0.0.1:9/cable/connect/010203/B2392008…",
            ),
            (
                format!("wss://r.example/cable/contact/{contact}"),
                "wss://r.example/cable/contact/p6enp6en…",
            ),
            (
                format!("wss://r.example/cable/register/{contact}"),
                "wss://r.example/cable/register/p6enp6en…",
            ),
            (
                "wss://r.example/cable/register".to_string(),
                "wss://r.example/cable/register",
            ),
            ("ws://127.0.0.1:8080".to_string(), "ws://127.0.0.1:8080"),
        ] {
            assert_eq!(shown(&url), want);
            let e = RelayError::Refused {
                url: url.clone(),
                status: 410,
                said: None,
                retry_after: None,
            }
            .to_string();
            assert!(!e.contains(tunnel) && !e.contains(contact), "{e}");
            let e = RelayError::Unreachable {
                url,
                reason: "refused".into(),
            }
            .to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_refusal_carries_what_the_relay_said_escaped_and_short() {
        let forbidden = tungstenite::http::StatusCode::FORBIDDEN;
        assert_eq!(relay_said(forbidden, None), None);
        assert_eq!(relay_said(forbidden, Some(b"Forbidden")), None);
        assert_eq!(relay_said(forbidden, Some(b" \n")), None);
        let said = relay_said(forbidden, Some(b"only the phone may resume\n\x1b]0;x\x07")).unwrap();
        assert_eq!(said, "only the phone may resume \\u{1b}]0;x\\u{7}");
        let long = relay_said(forbidden, Some("é".repeat(1000).as_bytes())).unwrap();
        assert_eq!(long.chars().count(), MAX_SAID + 1);
        let e = RelayError::Refused {
            url: "ws://127.0.0.1:9/cable/register".into(),
            status: 403,
            said: Some("phones do not send Origin".into()),
            retry_after: None,
        }
        .to_string();
        assert!(e.ends_with("; it said: phones do not send Origin"), "{e}");
    }

    #[test]
    fn a_1013_close_or_a_503_refusal_asks_to_be_tried_again() {
        let closed = |code| RelayError::ClosedByRelay {
            code,
            reason: String::new(),
        };
        assert!(closed(1013).is_busy());
        for code in [1001, 1008, 1011, 1012] {
            assert!(!closed(code).is_busy(), "{code}");
        }
        let refused = |status, retry_after| RelayError::Refused {
            url: "ws://127.0.0.1:9/cable/contact/x".into(),
            status,
            said: None,
            retry_after,
        };
        assert!(refused(503, None).is_busy());
        let asked = Some(Duration::from_secs(2));
        assert_eq!(refused(503, asked).retry_after(), asked);
        for status in [404, 410, 429, 500, 502] {
            assert!(!refused(status, None).is_busy(), "{status}");
        }
        assert_eq!(closed(1013).retry_after(), None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_only() {
        let headers = |value: &str| {
            let mut h = tungstenite::http::HeaderMap::new();
            h.insert("Retry-After", value.parse().unwrap());
            h
        };
        assert_eq!(retry_after(&tungstenite::http::HeaderMap::new()), None);
        assert_eq!(retry_after(&headers("5")), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&headers(" 0 ")), Some(Duration::ZERO));
        assert_eq!(
            retry_after(&headers("99999999999999999999999")),
            Some(Duration::from_secs(u64::MAX))
        );
        for ignored in ["Wed, 21 Oct 2026 07:28:00 GMT", "-1", "1.5", "soon", ""] {
            assert_eq!(retry_after(&headers(ignored)), None, "{ignored:?}");
        }
    }

    #[test]
    fn close_messages_say_what_the_relay_said() {
        let e = RelayError::ClosedByRelay {
            code: 1009,
            reason: "message too big".into(),
        };
        assert_eq!(
            e.to_string(),
            "the relay closed the tunnel: message too big (1009), saying \"message too big\""
        );
    }
}
