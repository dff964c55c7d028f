//! The CTAP 2.3 BLE data channel (docs/PROTOCOL.md#ble-data-channel): how messages are delimited on an LE L2CAP
//! connection-oriented channel, which is a byte stream to both ends (the kernel may split or
//! join SDUs). Each message — Noise message 1 or 2, then every encrypted frame — is sent as a
//! 4-byte big-endian length followed by that many bytes, in one write.
//!
//! Two delimitings exist in the wild: libwebauthn 0.5–0.10 ends each message with CRLF, and
//! its later split-out client (`pxp` 0.1) uses this length prefix, citing the CTAP 2.3 draft.
//! We use the length prefix: ciphertext is binary and may contain `0D 0A` anywhere, so only a
//! length delimits it reliably. The channel itself runs at the kernel's default security level
//! (no pairing, no link encryption): the Noise handshake with the QR secret's PSK authenticates
//! and encrypts everything on it, as it does through a relay.

use core::ops::RangeInclusive;

use crate::error::{Error, Malformed, Misuse};

/// Bytes of the length that precedes every message.
pub const LENGTH_PREFIX: usize = 4;

/// Largest message accepted on the channel: the largest encrypted frame (docs/PROTOCOL.md#transport-framing), with
/// room for padding and the tag.
pub const MAX_MESSAGE: usize = crate::session::MAX_MESSAGE + 64;

/// LE PSMs a phone allocates dynamically for its channel (Bluetooth Core, Vol 3 Part A §4.22).
pub const DYNAMIC_PSMS: RangeInclusive<u16> = 0x0080..=0x00ff;

/// `BE32(len) ‖ message`: one message as it goes on the channel.
pub fn frame(message: &[u8]) -> Result<Vec<u8>, Error> {
    if message.len() > MAX_MESSAGE {
        return Err(Misuse::MessageTooLarge(message.len()).into());
    }
    let mut out = Vec::with_capacity(LENGTH_PREFIX + message.len());
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
}

/// Reassembles messages from the bytes a channel delivers, in whatever pieces they arrive.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// An empty reassembly buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the channel.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` until one is buffered. A length over
    /// [`MAX_MESSAGE`] is an error at once (the channel must then be closed: nothing after it
    /// can be trusted to be aligned).
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let Some(prefix) = self.buf.first_chunk::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > MAX_MESSAGE {
            return Err(Malformed::Frame(format!(
                "BLE channel message of {len} bytes announced; the most is {MAX_MESSAGE}"
            ))
            .into());
        }
        if self.buf.len() < LENGTH_PREFIX + len {
            return Ok(None);
        }
        let message = self.buf[LENGTH_PREFIX..LENGTH_PREFIX + len].to_vec();
        self.buf.drain(..LENGTH_PREFIX + len);
        Ok(Some(message))
    }

    /// Bytes of an incomplete message held back (a close now cuts a message short).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_any_split_and_join() {
        let messages: Vec<Vec<u8>> =
            vec![vec![], vec![0x0d, 0x0a], (0..=255).collect(), vec![7; 81]];
        let wire: Vec<u8> = messages.iter().flat_map(|m| frame(m).unwrap()).collect();
        assert_eq!(wire[..8], [0, 0, 0, 0, 0, 0, 0, 2]);
        for chunk in [1, 2, 3, 5, 64, wire.len()] {
            let mut d = Deframer::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                d.push(piece);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, messages, "chunks of {chunk}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn a_cut_message_waits_and_an_oversized_one_is_refused() {
        let mut d = Deframer::new();
        d.push(&frame(&[1, 2, 3]).unwrap()[..5]);
        assert_eq!(d.next_message().unwrap(), None);
        assert_eq!(d.buffered(), 5);
        let mut d = Deframer::new();
        d.push(&((MAX_MESSAGE + 1) as u32).to_be_bytes());
        assert!(matches!(
            d.next_message(),
            Err(Error::Malformed(Malformed::Frame(_)))
        ));
        let mut d = Deframer::new();
        d.push(&u32::MAX.to_be_bytes());
        assert!(d.next_message().is_err());
        assert!(frame(&vec![0; MAX_MESSAGE + 1]).is_err());
    }
}
