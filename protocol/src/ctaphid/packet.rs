//! CTAPHID packets (CTAP 2.2 §11.2.4): the 64-byte HID reports a message is cut into. An
//! initialization packet carries the channel, the command (bit 7 set) and the message length;
//! continuation packets carry the channel and a sequence number 0–127. Every 64-byte report
//! parses as one or the other, so parsing cannot fail; what a packet means is the engine's
//! business.

/// Bytes in a HID report, in both directions (the report descriptor's count).
pub const REPORT_LEN: usize = 64;
/// Payload bytes in an initialization packet (64 − CID − CMD − BCNT).
pub const INIT_DATA_LEN: usize = REPORT_LEN - 7;
/// Payload bytes in a continuation packet (64 − CID − SEQ).
pub const CONT_DATA_LEN: usize = REPORT_LEN - 5;
/// Sequence numbers run 0..=0x7f.
pub const MAX_SEQ: u8 = 0x7f;
/// The largest message: one initialization and 128 continuation packets, 7609 bytes.
pub const MAX_MESSAGE_LEN: usize = INIT_DATA_LEN + (MAX_SEQ as usize + 1) * CONT_DATA_LEN;

/// One HID report, as the host sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// The first packet of a message.
    Init {
        /// Channel.
        cid: u32,
        /// Command byte with bit 7 cleared.
        cmd: u8,
        /// Length of the whole message.
        len: usize,
        /// The 57 payload bytes (only the first `len` count).
        data: &'a [u8],
    },
    /// A later packet of a message.
    Cont {
        /// Channel.
        cid: u32,
        /// Sequence number, 0..=0x7f.
        seq: u8,
        /// The 59 payload bytes.
        data: &'a [u8],
    },
}

impl<'a> Packet<'a> {
    /// Reads a report.
    pub fn parse(report: &'a [u8; REPORT_LEN]) -> Self {
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        if report[4] & 0x80 != 0 {
            Self::Init {
                cid,
                cmd: report[4] & 0x7f,
                len: usize::from(u16::from_be_bytes([report[5], report[6]])),
                data: &report[7..],
            }
        } else {
            Self::Cont {
                cid,
                seq: report[4],
                data: &report[5..],
            }
        }
    }

    /// The channel the packet names.
    pub fn cid(&self) -> u32 {
        match *self {
            Self::Init { cid, .. } | Self::Cont { cid, .. } => cid,
        }
    }
}

/// Cuts a message into reports: `cmd` without bit 7, `payload` at most [`MAX_MESSAGE_LEN`]
/// bytes (longer payloads are cut short at that length: callers check first). Unused bytes
/// are zero.
pub fn fragment(cid: u32, cmd: u8, payload: &[u8]) -> Vec<[u8; REPORT_LEN]> {
    let payload = &payload[..payload.len().min(MAX_MESSAGE_LEN)];
    let mut reports = Vec::with_capacity(
        1 + payload
            .len()
            .saturating_sub(INIT_DATA_LEN)
            .div_ceil(CONT_DATA_LEN),
    );
    let mut first = [0u8; REPORT_LEN];
    first[..4].copy_from_slice(&cid.to_be_bytes());
    first[4] = 0x80 | cmd;
    first[5..7].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    let (head, mut rest) = payload.split_at(payload.len().min(INIT_DATA_LEN));
    first[7..7 + head.len()].copy_from_slice(head);
    reports.push(first);
    let mut seq = 0u8;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(CONT_DATA_LEN));
        let mut r = [0u8; REPORT_LEN];
        r[..4].copy_from_slice(&cid.to_be_bytes());
        r[4] = seq;
        r[5..5 + chunk.len()].copy_from_slice(chunk);
        reports.push(r);
        seq += 1;
        rest = tail;
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_message_is_7609_bytes_in_129_reports() {
        assert_eq!(MAX_MESSAGE_LEN, 7609);
        let payload: Vec<u8> = (0..MAX_MESSAGE_LEN).map(|i| i as u8).collect();
        let reports = fragment(0x0102_0304, 0x10, &payload);
        assert_eq!(reports.len(), 129);
        let mut back = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            match Packet::parse(r) {
                Packet::Init {
                    cid,
                    cmd,
                    len,
                    data,
                } => {
                    assert_eq!((i, cid, cmd, len), (0, 0x0102_0304, 0x10, 7609));
                    back.extend_from_slice(data);
                }
                Packet::Cont { cid, seq, data } => {
                    assert_eq!((cid, usize::from(seq)), (0x0102_0304, i - 1));
                    back.extend_from_slice(data);
                }
            }
        }
        assert_eq!(&back[..MAX_MESSAGE_LEN], &payload[..]);
    }

    #[test]
    fn an_empty_message_is_one_report() {
        let reports = fragment(7, 0x08, &[]);
        assert_eq!(reports.len(), 1);
        assert_eq!(&reports[0][..7], &[0, 0, 0, 7, 0x88, 0, 0]);
    }
}
