//! BLE advertising behind a seam (STYLE §5): the [`Advertiser`] trait, the simulated medium
//! [`AdvertFile`], and the deliberate faults a phone can put in its adverts (HYBRID.md §4).
//!
//! The advert file is the medium shared by `phone-sim` and `bridge` across processes: one
//! [`AdvertLine`] per advertisement (`fff9:<40 hex> -58`), appended and flushed line by line,
//! which the desktop follows like `tail -f`. Proximity knobs: interval, RSSI, a fraction of
//! adverts dropped (deterministic for a seed) and a delay before the first advert.

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use hybrid_protocol::eid::{self, EidPlaintext, ADVERT_LEN};
use hybrid_protocol::keys::EidKey;
use hybrid_protocol::medium::AdvertLine;
use rand::{Rng as _, SeedableRng as _};
use rand_core::CryptoRngCore;

use crate::error::PhoneError;

/// A boxed future, so that [`Advertiser`] can be used as `&mut dyn Advertiser`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can broadcast BLE service data: the simulated medium, BlueZ, a test double.
pub trait Advertiser: Send {
    /// Starts (or replaces) the advertisement: service data `data` under the 16-bit service
    /// UUID `uuid16`, repeated until [`Advertiser::stop`].
    fn start<'a>(
        &'a mut self,
        uuid16: u16,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), PhoneError>>;
    /// Stops advertising. Stopping when not advertising is fine.
    fn stop(&mut self) -> BoxFuture<'_, Result<(), PhoneError>>;
}

/// Proximity knobs of the simulated medium.
#[derive(Clone, Debug, PartialEq)]
pub struct MediumKnobs {
    /// Time between advertisements (Android LOW_LATENCY is about 100 ms).
    pub interval: Duration,
    /// RSSI written after each line, in dBm; `None` writes no RSSI.
    pub rssi: Option<i16>,
    /// Fraction of advertisements silently not written, 0.0..=1.0.
    pub drop_fraction: f64,
    /// Seed of the drop decisions, so a run can be repeated exactly.
    pub seed: u64,
    /// Delay before the first advertisement is written.
    pub first_delay: Duration,
}

impl Default for MediumKnobs {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            rssi: Some(-58),
            drop_fraction: 0.0,
            seed: 0,
            first_delay: Duration::ZERO,
        }
    }
}

/// The simulated BLE medium: appends one [`AdvertLine`] per advertisement to a file.
#[derive(Debug)]
pub struct AdvertFile {
    path: PathBuf,
    knobs: MediumKnobs,
    task: Option<tokio::task::JoinHandle<()>>,
    rng: rand::rngs::StdRng,
}

impl AdvertFile {
    /// An advertiser writing to `path` (created if missing, appended to otherwise).
    pub fn new(path: impl Into<PathBuf>, knobs: MediumKnobs) -> Result<Self, PhoneError> {
        if !(0.0..=1.0).contains(&knobs.drop_fraction) {
            return Err(PhoneError::Config(format!(
                "drop fraction must be between 0 and 1, got {}",
                knobs.drop_fraction
            )));
        }
        if knobs.interval.is_zero() {
            return Err(PhoneError::Config("advert interval must be above 0".into()));
        }
        let rng = rand::rngs::StdRng::seed_from_u64(knobs.seed);
        Ok(Self {
            path: path.into(),
            knobs,
            task: None,
            rng,
        })
    }

    /// The advert file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn abort(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for AdvertFile {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Advertiser for AdvertFile {
    fn start<'a>(
        &'a mut self,
        uuid16: u16,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), PhoneError>> {
        Box::pin(async move {
            self.abort();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(PhoneError::file("cannot open the advert file", &self.path))?;
            let line = AdvertLine {
                uuid16,
                data: data.to_vec(),
                rssi: self.knobs.rssi,
            };
            let text = format!("{line}\n");
            let knobs = self.knobs.clone();
            // Each start continues the seeded sequence, so runs repeat exactly.
            let mut rng = rand::rngs::StdRng::seed_from_u64(self.rng.gen());
            let path = self.path.clone();
            tracing::debug!(file = %path.display(), "advertising");
            self.task = Some(tokio::spawn(async move {
                tokio::time::sleep(knobs.first_delay).await;
                let mut tick = tokio::time::interval(knobs.interval);
                loop {
                    tick.tick().await;
                    if knobs.drop_fraction > 0.0 && rng.gen::<f64>() < knobs.drop_fraction {
                        continue;
                    }
                    let written = file.write_all(text.as_bytes()).and_then(|()| file.flush());
                    if let Err(e) = written {
                        tracing::error!("cannot write the advert file {}: {e}", path.display());
                        return;
                    }
                }
            }));
            Ok(())
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), PhoneError>> {
        Box::pin(async move {
            self.abort();
            Ok(())
        })
    }
}

/// A deliberate fault in the phone's adverts, to test how desktops reject them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvertFault {
    /// Encrypted under a random key: the desktop's tag check fails.
    WrongKey,
    /// The right advert with one bit of the 4-byte tag flipped.
    CorruptTag,
    /// Reserved byte 0 of the plaintext set to 0x01 (correct key and tag).
    ReservedBit,
    /// Domain 7 (neither assigned nor hashed) in the plaintext (correct key and tag).
    UnknownDomain,
}

impl AdvertFault {
    /// The CLI spellings.
    pub const NAMES: [&'static str; 4] =
        ["wrong-key", "corrupt-tag", "reserved-bit", "unknown-domain"];

    /// Parses a CLI spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "wrong-key" => Some(Self::WrongKey),
            "corrupt-tag" => Some(Self::CorruptTag),
            "reserved-bit" => Some(Self::ReservedBit),
            "unknown-domain" => Some(Self::UnknownDomain),
            _ => None,
        }
    }
}

/// The 20-byte advert for `plaintext` under `key`, with `fault` applied if any.
pub fn build_advert(
    key: &EidKey,
    plaintext: &EidPlaintext,
    fault: Option<AdvertFault>,
    rng: &mut impl CryptoRngCore,
) -> Result<[u8; ADVERT_LEN], PhoneError> {
    Ok(match fault {
        None => eid::encrypt(key, plaintext),
        Some(AdvertFault::WrongKey) => {
            let wrong =
                EidKey::random(rng).map_err(PhoneError::protocol("making a wrong EID key"))?;
            eid::encrypt(&wrong, plaintext)
        }
        Some(AdvertFault::CorruptTag) => {
            let mut a = eid::encrypt(key, plaintext);
            a[ADVERT_LEN - 1] ^= 0x01;
            a
        }
        Some(AdvertFault::ReservedBit) => {
            let mut b = plaintext.to_bytes();
            b[0] = 0x01;
            eid::encrypt_raw(key, &b)
        }
        Some(AdvertFault::UnknownDomain) => {
            let mut b = plaintext.to_bytes();
            b[14..16].copy_from_slice(&7u16.to_le_bytes());
            eid::encrypt_raw(key, &b)
        }
    })
}

/// An advertiser that only records what it was asked to do (for tests of the phone flow
/// without a medium).
#[derive(Debug, Default)]
pub struct RecordingAdvertiser {
    /// Every started advert, in order.
    pub started: Vec<(u16, Vec<u8>)>,
    /// Number of stop calls.
    pub stops: usize,
}

impl Advertiser for RecordingAdvertiser {
    fn start<'a>(
        &'a mut self,
        uuid16: u16,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), PhoneError>> {
        Box::pin(async move {
            self.started.push((uuid16, data.to_vec()));
            Ok(())
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), PhoneError>> {
        Box::pin(async move {
            self.stops += 1;
            Ok(())
        })
    }
}
