//! The scan report (`hybrid-bridge scan --report FILE --events-out FILE`): every advert a scan
//! session heard, as raw events (CSV or JSON) and as a self-contained HTML or SVG report —
//! adverts per device over time, RSSI over time, reception rate and gaps, which adverts
//! decrypted under the given QR code with their tunnel domain and routing ID
//! (docs/PROTOCOL.md#advert, #tunnel-domains), and the adverts that break the spec (length,
//! reserved bits, unknown domain). The [`Recorder`] only classifies and keeps events; [`render`]
//! draws them.

mod render;

use std::path::{Path, PathBuf};
use std::time::Instant;

use bridge::{BridgeError, HeardAdvert};
use clap::Args;
use hybrid_protocol::eid::{self, AdvertSuffix, ADVERT_LEN};
use hybrid_protocol::error::PeerMisbehaved;
use hybrid_protocol::keys::EidKey;
use serde::Serialize;

/// `scan`'s report flags.
#[derive(Debug, Default, Args)]
pub(crate) struct ReportArgs {
    /// Write a report of the session when the scan ends: FILE.html (tables and plots) or
    /// FILE.svg (the plots).
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Write the raw events when the scan ends: FILE.csv or FILE.json.
    #[arg(long, value_name = "FILE")]
    pub(crate) events_out: Option<PathBuf>,
}

/// What an advert turned out to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub(crate) enum Verdict {
    /// No QR code was given, so it was not tried.
    Untried,
    /// Its tag did not match the QR code's key: someone else's advert.
    NotOurs,
    /// Decrypted under the QR code's key, with a valid plaintext.
    Decrypted {
        /// The tunnel domain number.
        domain: u16,
        /// Its host name.
        domain_name: String,
        /// The routing ID, hex.
        routing_id: String,
    },
    /// The tag matched but the plaintext breaks the spec (reserved bits, unknown domain).
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl Verdict {
    /// A short name for tables and CSV: `untried`, `not_ours`, `decrypted`, `invalid`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Untried => "untried",
            Self::NotOurs => "not_ours",
            Self::Decrypted { .. } => "decrypted",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// One advert heard.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ScanEvent {
    /// Milliseconds since the scan started.
    pub(crate) t_ms: f64,
    /// The advertiser: its address on BLE; on the simulated medium, which has no addresses,
    /// `medium` and the service UUID.
    pub(crate) device: String,
    /// The 16-bit service UUID.
    pub(crate) uuid16: u16,
    /// Service data length.
    pub(crate) len: usize,
    /// RSSI in dBm, when known.
    pub(crate) rssi: Option<i16>,
    /// What it was.
    pub(crate) verdict: Verdict,
    /// Ways it breaks the spec (empty for a good advert).
    pub(crate) flags: Vec<String>,
    /// The service data, hex (public: it is what the radio carried).
    pub(crate) data: String,
}

/// Classifies one advert under an optional EID key.
pub(crate) fn classify(heard: &HeardAdvert, key: Option<&EidKey>) -> (Verdict, Vec<String>) {
    let mut flags = Vec::new();
    let len = heard.data.len();
    if len < ADVERT_LEN {
        flags.push(format!("length {len}: shorter than {ADVERT_LEN} bytes"));
    } else if len > ADVERT_LEN && AdvertSuffix::parse(&heard.data[ADVERT_LEN..]).is_none() {
        flags.push(format!(
            "length {len}: {} bytes after byte {ADVERT_LEN} that are not a CTAP 2.3 suffix map",
            len - ADVERT_LEN
        ));
    }
    let verdict = match key {
        None => Verdict::Untried,
        Some(k) => match eid::decrypt(k, &heard.data) {
            Ok(m) => {
                let domain = m.plaintext.domain;
                Verdict::Decrypted {
                    domain: domain.0,
                    domain_name: domain.name().unwrap_or_else(|_| "unknown".into()),
                    routing_id: m.plaintext.routing_id.to_hex(),
                }
            }
            Err(hybrid_protocol::Error::PeerMisbehaved(PeerMisbehaved::AdvertNotOurs)) => {
                Verdict::NotOurs
            }
            Err(hybrid_protocol::Error::PeerMisbehaved(
                e @ (PeerMisbehaved::AdvertReservedBits(_) | PeerMisbehaved::UnknownDomain(_)),
            )) => {
                let reason = match e {
                    PeerMisbehaved::AdvertReservedBits(b) => {
                        format!("reserved bits set (byte 0 is {b:#04x})")
                    }
                    PeerMisbehaved::UnknownDomain(d) => format!("unknown tunnel domain {d}"),
                    _ => e.to_string(),
                };
                flags.push(reason.clone());
                Verdict::Invalid { reason }
            }
            Err(e) => {
                flags.push(e.to_string());
                Verdict::Invalid {
                    reason: e.to_string(),
                }
            }
        },
    };
    (verdict, flags)
}

/// Collects a scan session's events and writes them out at the end.
#[derive(Debug)]
pub(crate) struct Recorder {
    args_report: Option<PathBuf>,
    args_events: Option<PathBuf>,
    key: Option<EidKey>,
    start: Instant,
    events: Vec<ScanEvent>,
}

/// The output format of a file, from its extension.
fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

impl Recorder {
    /// A recorder for these flags (checked now, so a typo fails before the scan), trying
    /// adverts under `key` when given.
    pub(crate) fn new(args: &ReportArgs, key: Option<&EidKey>) -> Result<Self, BridgeError> {
        if let Some(p) = &args.report {
            if !matches!(extension(p).as_str(), "html" | "htm" | "svg") {
                return Err(BridgeError::Usage(format!(
                    "--report {} must end in .html or .svg",
                    p.display()
                )));
            }
        }
        if let Some(p) = &args.events_out {
            if !matches!(extension(p).as_str(), "csv" | "json") {
                return Err(BridgeError::Usage(format!(
                    "--events-out {} must end in .csv or .json",
                    p.display()
                )));
            }
        }
        Ok(Self {
            args_report: args.report.clone(),
            args_events: args.events_out.clone(),
            key: key.cloned(),
            start: Instant::now(),
            events: Vec::new(),
        })
    }

    /// Whether anything will be written (otherwise recording is skipped).
    pub(crate) fn enabled(&self) -> bool {
        self.args_report.is_some() || self.args_events.is_some()
    }

    /// Records one advert, timed now.
    pub(crate) fn record(&mut self, heard: &HeardAdvert) {
        if !self.enabled() {
            return;
        }
        let (verdict, flags) = classify(heard, self.key.as_ref());
        self.events.push(ScanEvent {
            t_ms: self.start.elapsed().as_secs_f64() * 1e3,
            device: heard
                .address
                .clone()
                .unwrap_or_else(|| format!("medium {:04x}", heard.uuid16)),
            uuid16: heard.uuid16,
            len: heard.data.len(),
            rssi: heard.rssi,
            verdict,
            flags,
            data: hex::encode(&heard.data),
        });
    }

    /// Writes the report and events files; says where on stderr.
    pub(crate) fn finish(self) -> Result<(), BridgeError> {
        let duration_ms = self.start.elapsed().as_secs_f64() * 1e3;
        if let Some(p) = &self.args_events {
            let text = match extension(p).as_str() {
                "json" => serde_json::to_string_pretty(&self.events)
                    .map_err(|e| BridgeError::Internal(e.to_string()))?,
                _ => render::csv(&self.events),
            };
            std::fs::write(p, text).map_err(|e| BridgeError::file("writing", p, e))?;
            eprintln!("wrote {} events to {}", self.events.len(), p.display());
        }
        if let Some(p) = &self.args_report {
            let text = match extension(p).as_str() {
                "svg" => render::svg(&self.events, duration_ms)?,
                _ => render::html(&self.events, duration_ms)?,
            };
            std::fs::write(p, text).map_err(|e| BridgeError::file("writing", p, e))?;
            eprintln!("wrote the scan report to {}", p.display());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_protocol::eid::EidPlaintext;
    use hybrid_protocol::keys::QrSecret;
    use hybrid_protocol::tunnel::{Domain, RoutingId};

    fn heard(data: Vec<u8>) -> HeardAdvert {
        HeardAdvert {
            uuid16: 0xfff9,
            data,
            rssi: Some(-60),
            address: None,
            random_address: None,
        }
    }

    #[test]
    fn classifies_ours_theirs_and_spec_breaks() {
        let key = QrSecret::from_bytes([3; 16]).eid_key();
        let pt = EidPlaintext::new(RoutingId([9, 8, 7]), Domain(1), &mut rand_core::OsRng).unwrap();
        let good = eid::encrypt(&key, &pt).to_vec();
        let (v, f) = classify(&heard(good.clone()), Some(&key));
        assert_eq!(
            v,
            Verdict::Decrypted {
                domain: 1,
                domain_name: "cable.auth.com".into(),
                routing_id: "090807".into()
            }
        );
        assert!(f.is_empty());
        assert_eq!(classify(&heard(good.clone()), None).0, Verdict::Untried);
        let other = QrSecret::from_bytes([4; 16]).eid_key();
        assert_eq!(
            classify(&heard(good.clone()), Some(&other)).0,
            Verdict::NotOurs
        );
        let mut b = pt.to_bytes();
        b[0] = 0x80;
        let (v, f) = classify(&heard(eid::encrypt_raw(&key, &b).to_vec()), Some(&key));
        assert_eq!(v.name(), "invalid");
        assert!(f[0].contains("reserved bits"), "{f:?}");
        let mut b = pt.to_bytes();
        b[14] = 7;
        let (_, f) = classify(&heard(eid::encrypt_raw(&key, &b).to_vec()), Some(&key));
        assert_eq!(f, ["unknown tunnel domain 7"]);
        let mut long = good;
        long.push(0xff);
        let (v, f) = classify(&heard(long), Some(&key));
        assert_eq!(v.name(), "decrypted", "a bad suffix does not stop a match");
        assert!(f[0].starts_with("length 21"), "{f:?}");
    }
}
