//! The connection under every relay WebSocket ([`Ws`](crate::state::Ws)), held in a slot the
//! relay can take it back out of. A paired socket that has gone quiet then drops its
//! WebSocket state (tungstenite's read chunk, read buffer and write buffer) and waits as the
//! bare connection, and builds a fresh WebSocket when it speaks again (`relay::Side`). The
//! slot also counts the bytes read through it, which tells the relay whether the WebSocket
//! still holds bytes it has not turned into messages (then it must not be dropped).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An upgraded connection (plain TCP or TLS underneath).
pub(crate) type Io = TokioIo<Upgraded>;

/// A connection lent to a WebSocket. Once taken, reads see the end of the stream and writes
/// fail, so a WebSocket that outlives its connection cannot reach the socket.
pub(crate) struct Lent {
    io: Option<Io>,
    read: u64,
}

impl Lent {
    pub(crate) fn new(io: Io) -> Self {
        Self {
            io: Some(io),
            read: 0,
        }
    }

    /// Bytes read through this slot so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Takes the connection back.
    pub(crate) fn take(&mut self) -> Option<Io> {
        self.io.take()
    }

    fn io(&mut self) -> io::Result<&mut Io> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for Lent {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let before = buf.filled().len();
        let polled = Pin::new(io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.read += (buf.filled().len() - before) as u64;
        }
        polled
    }
}

impl AsyncWrite for Lent {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
