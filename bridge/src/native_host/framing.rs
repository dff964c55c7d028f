//! Native messaging framing (the WebExtensions `runtime.connectNative` transport, as Chromium
//! and Firefox implement it): each message is a 32-bit length in the machine's native byte
//! order followed by that many bytes of UTF-8 JSON, on the host's stdin (from the browser)
//! and stdout (to the browser). The browsers refuse host messages of 1 MiB or more, so
//! [`FrameWriter`] never sends one: it sends a small error in its place. Incoming lengths
//! are checked before any allocation, so a hostile or corrupt length costs nothing.

use std::io::{Read, Write};

use serde_json::Value;

/// The largest message the host sends: browsers drop the port on anything bigger
/// (Chromium: "messages from the host are limited to 1 MB").
pub const MAX_REPLY: usize = 1024 * 1024 - 1;

/// The largest message the host accepts. WebAuthn options are a few KiB; the browsers would
/// allow 64 MiB, but nothing we handle comes close to 1 MiB.
pub const MAX_REQUEST: usize = 1024 * 1024;

/// Why the incoming byte stream cannot be read further. After any of these the stream's
/// framing is lost, so the host reports it and exits.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// End of input inside the 4-byte length.
    #[error("the input ended inside a message length ({got} of 4 bytes); the browser closed the pipe mid-message")]
    TruncatedLength {
        /// Bytes of the length that arrived.
        got: usize,
    },
    /// The length is over [`MAX_REQUEST`]; nothing was allocated or read past it.
    #[error("a message of {len} bytes is over the {max}-byte limit; is something other than the browser writing to the host?")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// End of input inside a message body.
    #[error("the input ended inside a message ({got} of {len} bytes); the browser closed the pipe mid-message")]
    TruncatedBody {
        /// Bytes that arrived.
        got: usize,
        /// The announced length.
        len: usize,
    },
    /// Reading stdin failed.
    #[error("cannot read from the browser: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one message body. `Ok(None)` is a clean end of input (between messages).
pub fn read_frame(input: &mut impl Read, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::TruncatedLength { got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_ne_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    let mut body = Vec::with_capacity(len);
    input.take(len as u64).read_to_end(&mut body)?;
    if body.len() < len {
        return Err(FrameError::TruncatedBody {
            got: body.len(),
            len,
        });
    }
    Ok(Some(body))
}

/// Encodes one message: native-endian length, then the bytes.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_ne_bytes());
    out.extend_from_slice(body);
    out
}

/// Writes JSON messages to the browser, each under [`MAX_REPLY`].
#[derive(Debug)]
pub struct FrameWriter<W: Write> {
    out: W,
    max: usize,
}

impl<W: Write> FrameWriter<W> {
    /// A writer with the browsers' limit.
    pub fn new(out: W) -> Self {
        Self::with_limit(out, MAX_REPLY)
    }

    /// A writer with another limit (tests).
    pub fn with_limit(out: W, max: usize) -> Self {
        Self { out, max }
    }

    /// Sends `message`. One that would be over the limit is replaced by a `too_large` error
    /// naming the same request `id`, so the browser keeps the port open and the extension
    /// learns what happened. An error here means the browser is gone.
    pub fn send(&mut self, message: &Value) -> std::io::Result<()> {
        let mut body = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        if body.len() > self.max {
            tracing::warn!(
                bytes = body.len(),
                max = self.max,
                "reply too large for native messaging; sending an error instead"
            );
            let id = message.get("id").filter(|v| v.is_string()).cloned();
            let replacement = serde_json::json!({
                "type": "error",
                "id": id.unwrap_or(Value::Null),
                "name": "UnknownError",
                "code": "too_large",
                "message": format!(
                    "the reply ({} bytes) is over the browser's {}-byte limit for native messages",
                    body.len(), self.max
                ),
            });
            body = serde_json::to_vec(&replacement).map_err(std::io::Error::other)?;
        }
        self.out.write_all(&encode_frame(&body))?;
        self.out.flush()
    }

    /// The inner writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let mut w = FrameWriter::new(Vec::new());
        w.send(&serde_json::json!({"type": "phones", "phones": []}))
            .unwrap();
        let bytes = w.into_inner();
        let mut r = &bytes[..];
        let body = read_frame(&mut r, MAX_REQUEST).unwrap().unwrap();
        assert_eq!(body, br#"{"phones":[],"type":"phones"}"#);
        assert!(read_frame(&mut r, MAX_REQUEST).unwrap().is_none());
        assert!(matches!(
            read_frame(&mut &[1u8, 0][..], MAX_REQUEST),
            Err(FrameError::TruncatedLength { got: 2 })
        ));
        assert!(matches!(
            read_frame(&mut &u32::MAX.to_ne_bytes()[..], MAX_REQUEST),
            Err(FrameError::TooLarge { .. })
        ));
        let mut short = encode_frame(b"{\"a\":1}");
        short.truncate(8);
        assert!(matches!(
            read_frame(&mut &short[..], MAX_REQUEST),
            Err(FrameError::TruncatedBody { got: 4, len: 7 })
        ));
    }
}
