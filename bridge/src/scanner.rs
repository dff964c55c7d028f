//! Listening for the phone's BLE advert behind a seam (docs/STYLE.md#seams): the [`Scanner`] trait,
//! the simulated medium [`AdvertFileScanner`] shared with phone-sim, and (in [`crate::ble`]) the
//! real radio through BlueZ. Scanners only report what they hear; matching (trial decryption
//! under the ceremony's EID key, docs/PROTOCOL.md#advert) is the ceremony's job, so one scanner can
//! serve several ceremonies in turn.

use std::future::Future;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use hybrid_protocol::eid::{ADVERT_LEN, SERVICE_UUID_FIDO, SERVICE_UUID_GOOGLE};
use hybrid_protocol::medium::AdvertLine;

use crate::error::BridgeError;

/// A boxed future, so that [`Scanner`] can be used as `&mut dyn Scanner`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One advertisement heard under a hybrid service UUID (0xFFF9 or 0xFDE2), at least 20 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeardAdvert {
    /// The 16-bit service UUID.
    pub uuid16: u16,
    /// The service data (20 bytes, or more with a CTAP 2.3 suffix).
    pub data: Vec<u8>,
    /// Signal strength in dBm, when known.
    pub rssi: Option<i16>,
    /// The advertiser's address, when known (BLE), `None` on the simulated medium.
    pub address: Option<String>,
}

impl HeardAdvert {
    /// Whether this is a candidate hybrid advert: right UUID and at least 20 bytes.
    pub fn is_candidate(&self) -> bool {
        matches!(self.uuid16, SERVICE_UUID_FIDO | SERVICE_UUID_GOOGLE)
            && self.data.len() >= ADVERT_LEN
    }
}

/// A source of hybrid adverts.
pub trait Scanner: Send {
    /// Waits for the next candidate advert (hybrid UUID, ≥ 20 bytes). Cancel-safe: dropping
    /// the future loses nothing but the advert being read. Errors are fatal (no adapter,
    /// unreadable file).
    fn next_advert(&mut self) -> BoxFuture<'_, Result<HeardAdvert, BridgeError>>;
}

/// Follows an advert file (one [`AdvertLine`] per line, as phone-sim writes it) like
/// `tail -f`.
///
/// It starts at the **end of the file as it is when the scanner is created** (or at the start
/// of a file created later): adverts written before then belong to earlier ceremonies and
/// could never match a QR code shown afterwards. Create the scanner before showing the QR code
/// (the ceremony functions take it as an argument, so that is the natural order), and reuse one
/// scanner for consecutive ceremonies. A file that shrinks (truncated or replaced) is read
/// again from its start. Malformed lines, lines under other UUIDs and lines longer than
/// [`MAX_LINE`] are skipped with a debug log; memory stays bounded whatever the file holds. The
/// file is polled every 5 ms.
#[derive(Debug)]
pub struct AdvertFileScanner {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Inside a line longer than [`MAX_LINE`], dropped up to its newline.
    skipping: bool,
    pending: std::collections::VecDeque<HeardAdvert>,
    poll: Duration,
}

/// The longest line kept. An advert line is a UUID, at most a few dozen bytes of hex and an
/// RSSI (under 100 bytes); anything near this is not an advert.
pub const MAX_LINE: usize = 4096;

/// Bytes read from the advert file at once.
const READ_CHUNK: usize = 64 * 1024;

impl AdvertFileScanner {
    /// Follows `path` from its current end. A missing file is fine: it is waited for.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, BridgeError> {
        let path = path.into();
        let offset = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(medium_error(&path, e)),
        };
        Ok(Self {
            path,
            offset,
            partial: Vec::new(),
            skipping: false,
            pending: Default::default(),
            poll: Duration::from_millis(5),
        })
    }

    /// Follows `path` from its first line (for `hybrid-bridge scan --from-start`).
    pub fn from_start(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            partial: Vec::new(),
            skipping: false,
            pending: Default::default(),
            poll: Duration::from_millis(5),
        }
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was appended since the last call, [`READ_CHUNK`] bytes at a time, until it
    /// has caught up with the file or has adverts to hand out (so neither the line buffer nor
    /// the queue grows with the file). A line longer than [`MAX_LINE`] is dropped, with a
    /// debug log, up to its newline.
    fn read_new(&mut self) -> Result<(), BridgeError> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(medium_error(&self.path, e)),
        };
        let len = f.metadata().map_err(|e| medium_error(&self.path, e))?.len();
        if len < self.offset {
            tracing::debug!(path = %self.path.display(), "advert file shrank; reading it from the start");
            self.offset = 0;
            self.partial.clear();
            self.skipping = false;
        }
        if len == self.offset {
            return Ok(());
        }
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| medium_error(&self.path, e))?;
        let mut chunk = vec![0u8; READ_CHUNK];
        while self.offset < len && self.pending.is_empty() {
            let want = usize::try_from(len - self.offset).map_or(READ_CHUNK, |n| n.min(READ_CHUNK));
            let n = f
                .read(&mut chunk[..want])
                .map_err(|e| medium_error(&self.path, e))?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            self.take_lines(&chunk[..n]);
        }
        Ok(())
    }

    /// Splits `bytes` into lines, parsing each complete one; keeps at most [`MAX_LINE`] bytes
    /// of an unfinished line.
    fn take_lines(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                if !self.skipping {
                    if self.partial.len() + bytes.len() > MAX_LINE {
                        self.drop_long_line();
                    } else {
                        self.partial.extend_from_slice(bytes);
                    }
                }
                return;
            };
            let (line, rest) = (&bytes[..nl], &bytes[nl + 1..]);
            bytes = rest;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.partial.len() + line.len() > MAX_LINE {
                self.drop_long_line();
                self.skipping = false;
                continue;
            }
            let mut whole = std::mem::take(&mut self.partial);
            whole.extend_from_slice(line);
            self.parse_line(&whole);
            whole.clear();
            self.partial = whole;
        }
    }

    /// Forgets the line being read and skips to its end.
    fn drop_long_line(&mut self) {
        tracing::debug!(
            path = %self.path.display(),
            max = MAX_LINE,
            "advert file: skipping a line longer than any advert"
        );
        self.partial = Vec::new();
        self.skipping = true;
    }

    fn parse_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return;
        }
        match text.parse::<AdvertLine>() {
            Ok(l) => {
                let heard = HeardAdvert {
                    uuid16: l.uuid16,
                    data: l.data,
                    rssi: l.rssi,
                    address: None,
                };
                if heard.is_candidate() {
                    self.pending.push_back(heard);
                } else {
                    tracing::debug!(
                        uuid = format_args!("{:04x}", heard.uuid16),
                        len = heard.data.len(),
                        "advert file: not a hybrid advert, skipped"
                    );
                }
            }
            Err(e) => tracing::debug!("advert file: skipping line: {e}"),
        }
    }

    /// Bytes held for an unfinished line (tests).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.partial.capacity()
    }
}

impl Scanner for AdvertFileScanner {
    fn next_advert(&mut self) -> BoxFuture<'_, Result<HeardAdvert, BridgeError>> {
        Box::pin(async move {
            loop {
                if let Some(a) = self.pending.pop_front() {
                    return Ok(a);
                }
                self.read_new()?;
                if self.pending.is_empty() {
                    tokio::time::sleep(self.poll).await;
                }
            }
        })
    }
}

fn medium_error(path: &Path, e: std::io::Error) -> BridgeError {
    BridgeError::Bluetooth(format!(
        "cannot read the advert file {}: {e}; check --advert-file",
        path.display()
    ))
}

/// A scanner that replays a fixed list of adverts, then waits forever (tests).
#[derive(Debug, Default)]
pub struct ScriptedScanner {
    adverts: std::collections::VecDeque<HeardAdvert>,
}

impl ScriptedScanner {
    /// Replays `adverts` in order.
    pub fn new(adverts: impl IntoIterator<Item = HeardAdvert>) -> Self {
        Self {
            adverts: adverts.into_iter().collect(),
        }
    }
}

impl Scanner for ScriptedScanner {
    fn next_advert(&mut self) -> BoxFuture<'_, Result<HeardAdvert, BridgeError>> {
        Box::pin(async move {
            match self.adverts.pop_front() {
                Some(a) => Ok(a),
                None => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[tokio::test]
    async fn follows_the_file_from_its_end_and_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adverts");
        std::fs::write(&path, format!("fff9:{}\n", "11".repeat(20))).unwrap();
        let mut s = AdvertFileScanner::new(&path).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "garbage").unwrap();
        writeln!(f, "fff9:0102").unwrap(); // too short
        writeln!(f, "1234:{}", "33".repeat(20)).unwrap(); // other UUID
        write!(f, "fde2:{} -60\nfff9:{}", "22".repeat(20), "44".repeat(21)).unwrap();
        let a = tokio::time::timeout(Duration::from_secs(2), s.next_advert())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.uuid16, a.data, a.rssi),
            (0xfde2, vec![0x22; 20], Some(-60))
        );
        // The last line has no newline yet: not read until it is complete.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.next_advert())
                .await
                .is_err()
        );
        writeln!(f).unwrap();
        let b = tokio::time::timeout(Duration::from_secs(2), s.next_advert())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.data, vec![0x44; 21]);
    }

    #[tokio::test]
    async fn waits_for_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later");
        let mut s = AdvertFileScanner::new(&path).unwrap();
        std::fs::write(&path, format!("fff9:{}\n", "55".repeat(20))).unwrap();
        let a = tokio::time::timeout(Duration::from_secs(2), s.next_advert())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.data, vec![0x55; 20]);
    }

    /// A file that grows by a line with no end keeps the scanner's memory flat: the line is
    /// dropped, and the lines after it are read.
    #[tokio::test]
    async fn a_huge_line_without_newline_is_dropped_and_later_lines_still_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adverts");
        std::fs::write(&path, "").unwrap();
        let mut s = AdvertFileScanner::new(&path).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let block = vec![b'a'; 1 << 20];
        let mut most = 0;
        for _ in 0..32 {
            f.write_all(&block).unwrap();
            assert!(
                tokio::time::timeout(Duration::from_millis(1), s.next_advert())
                    .await
                    .is_err()
            );
            most = most.max(s.buffered());
        }
        assert!(
            most <= MAX_LINE,
            "the scanner held {most} bytes of a 32 MiB line"
        );
        // The end of the long line, a short malformed one, then a real advert.
        write!(f, "tail\nfff9:01\nfff9:{}\n", "66".repeat(20)).unwrap();
        let a = tokio::time::timeout(Duration::from_secs(2), s.next_advert())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.data, vec![0x66; 20]);
        assert!(s.buffered() <= MAX_LINE);
    }

    /// A complete line longer than [`MAX_LINE`] in one read is dropped as well, and the
    /// line after it is kept.
    #[tokio::test]
    async fn an_over_long_complete_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adverts");
        let mut s = AdvertFileScanner::new(&path).unwrap();
        let long = format!("fff9:{}", "77".repeat(MAX_LINE));
        std::fs::write(&path, format!("{long}\nfff9:{}\n", "88".repeat(20))).unwrap();
        let a = tokio::time::timeout(Duration::from_secs(2), s.next_advert())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.data, vec![0x88; 20]);
    }
}
