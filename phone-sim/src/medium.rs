//! BLE advertising behind a seam (docs/STYLE.md#seams): the [`Advertiser`] trait, the simulated
//! medium [`AdvertFile`], and the deliberate faults a phone can put in its adverts
//! (docs/PROTOCOL.md#advert).
//!
//! The advert file is the medium shared by `phone-sim` and `bridge` across processes: one
//! [`AdvertLine`] per advertisement (`fff9:<40 hex> -58`), appended and flushed line by line,
//! which the desktop follows like `tail -f`. Proximity knobs: interval, RSSI, a fraction of
//! adverts dropped (deterministic for a seed) and a delay before the first advert; and an
//! [`RssiProfile`] (fixed, ramp, random walk, dropouts) that varies the RSSI advert by advert
//! for proximity experiments (`hybrid-demo --proximity`).

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hybrid_channel::ChannelListener;
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

    /// Listens for a desktop on the CTAP 2.3 BLE data channel of this medium's radio (a PSM
    /// to announce in the advert's suffix); adverts started afterwards are connectable. Media
    /// without such a channel refuse.
    fn listen_ble(&mut self) -> BoxFuture<'_, Result<Box<dyn ChannelListener>, PhoneError>> {
        Box::pin(async {
            Err(PhoneError::Ble(
                "this medium has no Bluetooth channel to offer".into(),
            ))
        })
    }
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

/// How the RSSI of the simulated phone's adverts changes, advert by advert (the count runs on
/// across ceremonies until the profile is set again). Deterministic for the medium's seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RssiProfile {
    /// Always this RSSI.
    Fixed(i16),
    /// From `from` to `to` linearly over `adverts` adverts, then `to` (walking away or closer).
    Ramp {
        /// First RSSI.
        from: i16,
        /// Last RSSI.
        to: i16,
        /// Adverts the ramp takes.
        adverts: u32,
    },
    /// Starts at `start`, then moves by a random amount in `-step..=step` per advert, kept
    /// within `min..=max` (a person moving around).
    RandomWalk {
        /// First RSSI.
        start: i16,
        /// Largest change per advert.
        step: i16,
        /// Lowest RSSI.
        min: i16,
        /// Highest RSSI.
        max: i16,
    },
    /// At `rssi`, but of every `period` adverts the last `silent` are not sent (a body or a
    /// wall in the way, a busy radio).
    Dropouts {
        /// The RSSI when heard.
        rssi: i16,
        /// Cycle length in adverts.
        period: u32,
        /// Adverts lost per cycle.
        silent: u32,
    },
}

/// The CLI spelling, which [`RssiProfile::parse`] reads back: `ramp:-40:-95:200`.
impl std::fmt::Display for RssiProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(rssi) => write!(f, "fixed:{rssi}"),
            Self::Ramp { from, to, adverts } => write!(f, "ramp:{from}:{to}:{adverts}"),
            Self::RandomWalk {
                start,
                step,
                min,
                max,
            } => write!(f, "walk:{start}:{step}:{min}:{max}"),
            Self::Dropouts {
                rssi,
                period,
                silent,
            } => write!(f, "dropouts:{rssi}:{period}:{silent}"),
        }
    }
}

impl RssiProfile {
    /// The CLI spellings, e.g. for `--help`.
    pub const SYNTAX: &'static str =
        "fixed:RSSI | ramp:FROM:TO:ADVERTS | walk:START:STEP:MIN:MAX | dropouts:RSSI:PERIOD:SILENT";

    /// Parses `fixed:-60`, `ramp:-40:-95:200`, `walk:-70:3:-95:-40`, `dropouts:-60:20:5`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("{s:?} is not an RSSI profile ({})", Self::SYNTAX);
        let n = |i: usize| -> Result<i64, String> {
            parts.get(i).and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let rssi = |i: usize| -> Result<i16, String> {
            let v = n(i)?;
            if (-127..=20).contains(&v) {
                Ok(v as i16)
            } else {
                Err(format!("RSSI {v} in {s:?} is outside -127..=20 dBm"))
            }
        };
        let count = |i: usize| -> Result<u32, String> {
            u32::try_from(n(i)?)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| format!("{s:?}: counts must be positive"))
        };
        let p = match (parts[0], parts.len()) {
            ("fixed", 2) => Self::Fixed(rssi(1)?),
            ("ramp", 4) => Self::Ramp {
                from: rssi(1)?,
                to: rssi(2)?,
                adverts: count(3)?,
            },
            ("walk", 5) => Self::RandomWalk {
                start: rssi(1)?,
                step: i16::try_from(n(2)?).map_err(|_| bad())?,
                min: rssi(3)?,
                max: rssi(4)?,
            },
            ("dropouts", 4) => Self::Dropouts {
                rssi: rssi(1)?,
                period: count(2)?,
                silent: u32::try_from(n(3)?).map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        match p {
            Self::RandomWalk { min, max, step, .. } if min > max || step < 0 => {
                Err(format!("{s:?}: a walk needs MIN <= MAX and STEP >= 0"))
            }
            Self::Dropouts { period, silent, .. } if silent > period => {
                Err(format!("{s:?}: SILENT must be at most PERIOD"))
            }
            p => Ok(p),
        }
    }
}

/// A profile being played: the advert count and the walk's position.
#[derive(Debug)]
struct RssiSource {
    profile: RssiProfile,
    n: u64,
    walk: i16,
    rng: rand::rngs::StdRng,
}

impl RssiSource {
    fn new(profile: RssiProfile, seed: u64) -> Self {
        let walk = match profile {
            RssiProfile::RandomWalk {
                start, min, max, ..
            } => start.clamp(min, max),
            _ => 0,
        };
        Self {
            profile,
            n: 0,
            walk,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// The next advert's RSSI, or `None` when this advert is lost.
    fn next(&mut self) -> Option<i16> {
        let n = self.n;
        self.n += 1;
        match self.profile {
            RssiProfile::Fixed(r) => Some(r),
            RssiProfile::Ramp { from, to, adverts } => {
                let f = (n as f64 / f64::from(adverts.saturating_sub(1).max(1))).min(1.0);
                Some((f64::from(from) + (f64::from(to) - f64::from(from)) * f).round() as i16)
            }
            RssiProfile::RandomWalk { step, min, max, .. } => {
                if n > 0 {
                    let d = self.rng.gen_range(-step..=step);
                    self.walk = self.walk.saturating_add(d).clamp(min, max);
                }
                Some(self.walk)
            }
            RssiProfile::Dropouts {
                rssi,
                period,
                silent,
            } => (n % u64::from(period) < u64::from(period - silent)).then_some(rssi),
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
    profile: Option<Arc<Mutex<RssiSource>>>,
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
            profile: None,
        })
    }

    /// Varies the RSSI advert by advert (replacing [`MediumKnobs::rssi`]) from the next
    /// advert on, starting the profile afresh.
    pub fn set_rssi_profile(&mut self, profile: RssiProfile) {
        let source = RssiSource::new(profile, self.knobs.seed ^ 0x5253_5349);
        match &self.profile {
            // A running advert task shares the source: it picks the new profile up.
            Some(shared) => *shared.lock().unwrap_or_else(|e| e.into_inner()) = source,
            None => self.profile = Some(Arc::new(Mutex::new(source))),
        }
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
            let profile = self.profile.clone();
            let (uuid16, data) = (uuid16, data.to_vec());
            tracing::debug!(file = %path.display(), "advertising");
            self.task = Some(tokio::spawn(async move {
                tokio::time::sleep(knobs.first_delay).await;
                let mut tick = tokio::time::interval(knobs.interval);
                loop {
                    tick.tick().await;
                    if knobs.drop_fraction > 0.0 && rng.gen::<f64>() < knobs.drop_fraction {
                        continue;
                    }
                    let line = match &profile {
                        None => text.clone(),
                        Some(p) => {
                            let rssi = p.lock().unwrap_or_else(|e| e.into_inner()).next();
                            let Some(rssi) = rssi else { continue };
                            let line = AdvertLine {
                                uuid16,
                                data: data.clone(),
                                rssi: Some(rssi),
                            };
                            format!("{line}\n")
                        }
                    };
                    let written = file.write_all(line.as_bytes()).and_then(|()| file.flush());
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

    /// The simulated L2CAP channel: a Unix socket beside the advert file
    /// (`hybrid_channel::sim`).
    fn listen_ble(&mut self) -> BoxFuture<'_, Result<Box<dyn ChannelListener>, PhoneError>> {
        Box::pin(async move {
            let l = hybrid_channel::sim::SimListener::bind(&self.path)
                .await
                .map_err(|e| PhoneError::Ble(e.to_string()))?;
            Ok(Box::new(l) as Box<dyn ChannelListener>)
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

#[cfg(test)]
mod rssi_tests {
    use super::*;

    fn take(p: RssiProfile, n: usize) -> Vec<Option<i16>> {
        let mut s = RssiSource::new(p, 7);
        (0..n).map(|_| s.next()).collect()
    }

    #[test]
    fn profiles_print_as_they_are_spelled_on_the_command_line() {
        for spelled in [
            "fixed:-60",
            "ramp:-40:-95:200",
            "walk:-70:3:-95:-40",
            "dropouts:-60:20:5",
        ] {
            let p = RssiProfile::parse(spelled).unwrap();
            assert_eq!(p.to_string(), spelled);
            assert_eq!(RssiProfile::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn profiles_play_as_documented() {
        assert_eq!(take(RssiProfile::Fixed(-60), 3), [Some(-60); 3]);
        assert_eq!(
            take(RssiProfile::parse("ramp:-40:-80:5").unwrap(), 7),
            [-40, -50, -60, -70, -80, -80, -80].map(Some)
        );
        assert_eq!(
            take(RssiProfile::parse("dropouts:-60:4:1").unwrap(), 8),
            [
                Some(-60),
                Some(-60),
                Some(-60),
                None,
                Some(-60),
                Some(-60),
                Some(-60),
                None
            ]
        );
        let walk = take(RssiProfile::parse("walk:-70:3:-75:-65").unwrap(), 200);
        assert_eq!(walk[0], Some(-70));
        assert!(walk
            .windows(2)
            .all(|w| (w[0].unwrap() - w[1].unwrap()).abs() <= 3));
        assert!(walk.iter().all(|r| (-75..=-65).contains(&r.unwrap())));
        assert!(walk.iter().any(|r| *r != Some(-70)), "it moves");
        assert_eq!(
            walk,
            take(RssiProfile::parse("walk:-70:3:-75:-65").unwrap(), 200),
            "seeded"
        );
        for bad in [
            "",
            "fixed",
            "fixed:x",
            "fixed:-200",
            "ramp:-40:-80:0",
            "walk:-70:3:-60:-80",
            "dropouts:-60:4:5",
            "loud:1",
        ] {
            assert!(RssiProfile::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_medium_writes_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adverts");
        let knobs = MediumKnobs {
            interval: Duration::from_millis(2),
            ..MediumKnobs::default()
        };
        let mut m = AdvertFile::new(&path, knobs).unwrap();
        m.set_rssi_profile(RssiProfile::parse("dropouts:-61:3:1").unwrap());
        m.start(0xfff9, &[0x11; 20]).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let n = std::fs::read_to_string(&path)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if n >= 10 || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        m.stop().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<AdvertLine> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert!(lines.len() >= 10, "{text}");
        assert!(lines
            .iter()
            .all(|l| l.rssi == Some(-61) && l.data == [0x11; 20]));
    }
}
