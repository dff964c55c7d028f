//! A [`DataChannel`] over any reliable byte stream (an L2CAP CoC socket, a Unix socket): each
//! message goes out as `BE32(len) ‖ message` in one write and is reassembled on the other side
//! whatever pieces the stream delivers (`hybrid_protocol::l2cap`).

use hybrid_protocol::l2cap::{self, Deframer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{BoxFuture, ChannelError, ChannelKind, DataChannel};

/// Length-prefixed messages over a byte stream.
#[derive(Debug)]
pub struct StreamChannel<S> {
    stream: S,
    deframer: Deframer,
    kind: ChannelKind,
    closed: bool,
}

impl<S> StreamChannel<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S, kind: ChannelKind) -> Self {
        Self {
            stream,
            deframer: Deframer::new(),
            kind,
            closed: false,
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> DataChannel for StreamChannel<S> {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn send(&mut self, message: Vec<u8>) -> BoxFuture<'_, Result<(), ChannelError>> {
        Box::pin(async move {
            let framed = l2cap::frame(&message).map_err(ChannelError::Framing)?;
            self.stream
                .write_all(&framed)
                .await
                .map_err(ChannelError::ble("sending"))?;
            self.stream
                .flush()
                .await
                .map_err(ChannelError::ble("sending"))
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, ChannelError>> {
        Box::pin(async move {
            loop {
                if let Some(m) = self
                    .deframer
                    .next_message()
                    .map_err(ChannelError::Framing)?
                {
                    return Ok(Some(m));
                }
                if self.closed {
                    return Ok(None);
                }
                let mut chunk = [0u8; 2048];
                let n = match self.stream.read(&mut chunk).await {
                    Ok(n) => n,
                    // A peer that tears the link down after its last message shows up as a
                    // reset rather than an orderly end: the same as an end here.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset
                                | std::io::ErrorKind::ConnectionAborted
                                | std::io::ErrorKind::BrokenPipe
                                | std::io::ErrorKind::UnexpectedEof
                        ) =>
                    {
                        0
                    }
                    Err(e) => return Err(ChannelError::ble("receiving")(e)),
                };
                if n == 0 {
                    if self.deframer.buffered() > 0 {
                        return Err(ChannelError::Ble {
                            doing: "receiving".into(),
                            error: std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!(
                                    "the peer closed the channel {} bytes into a message",
                                    self.deframer.buffered()
                                ),
                            ),
                        });
                    }
                    self.closed = true;
                    return Ok(None);
                }
                self.deframer.push(&chunk[..n]);
            }
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.stream.shutdown().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_cross_a_byte_stream_whole() {
        let (a, b) = tokio::io::duplex(7);
        let mut a = StreamChannel::new(a, ChannelKind::Ble);
        let mut b = StreamChannel::new(b, ChannelKind::Ble);
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            a.send(vec![0x0d, 0x0a]).await.unwrap();
            a.send(sent).await.unwrap();
            a.close().await;
        });
        assert_eq!(b.recv().await.unwrap(), Some(vec![0x0d, 0x0a]));
        assert_eq!(b.recv().await.unwrap(), Some(big));
        assert_eq!(b.recv().await.unwrap(), None);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_message_cut_by_a_close_is_an_error() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut b = StreamChannel::new(b, ChannelKind::Ble);
        a.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        drop(a);
        let e = b.recv().await.unwrap_err();
        assert!(e.to_string().contains("6 bytes into a message"), "{e}");
    }
}
