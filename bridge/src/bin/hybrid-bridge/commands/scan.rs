//! `hybrid-bridge scan`: the hybrid adverts heard, live, one table row each (service UUID,
//! RSSI, length, CTAP 2.3 suffix, address) and, given the QR code or its secret, whether each
//! decrypts under it and to what (docs/PROTOCOL.md#advert). With `--report`/`--events-out` the session is
//! also written as a report when the scan ends ([`crate::scan_report`]).

use std::path::PathBuf;
use std::time::Duration;

use bridge::BridgeError;
use clap::Args;
use cli_support::parse_duration;
use hybrid_protocol::eid;
use hybrid_protocol::keys::{EidKey, QrSecret};
use hybrid_protocol::qr::QrCode;

use crate::flags::open_scanner;
use crate::scan_report::{self, ReportArgs};

/// `hybrid-bridge scan`.
#[derive(Debug, Args)]
#[command(after_long_help = cli_support::DURATION_FORMS)]
pub(crate) struct ScanArgs {
    /// A FIDO:/ URL whose adverts to recognise.
    #[arg(long)]
    pub(crate) qr: Option<String>,
    /// A QR secret (32 hex digits) whose adverts to recognise.
    #[arg(long)]
    pub(crate) qr_secret: Option<String>,
    /// Listen on the simulated medium instead of Bluetooth.
    #[arg(long, env = "BRIDGE_ADVERT_FILE")]
    pub(crate) advert_file: Option<PathBuf>,
    /// Read the advert file from its first line rather than from its end.
    #[arg(long)]
    pub(crate) from_start: bool,
    /// Bluetooth adapter.
    #[arg(long)]
    pub(crate) adapter: Option<String>,
    /// Stop after this long, e.g. 30s or 2m [default: run until interrupted].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Stop after this many adverts.
    #[arg(long)]
    pub(crate) count: Option<usize>,
    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

impl ScanArgs {
    /// The key to try adverts under, from `--qr` or `--qr-secret` (not both).
    fn key(&self) -> Result<Option<(EidKey, QrSecret)>, BridgeError> {
        Ok(match (&self.qr, &self.qr_secret) {
            (Some(_), Some(_)) => {
                return Err(BridgeError::Usage(
                    "give --qr or --qr-secret, not both".into(),
                ))
            }
            (Some(url), None) => {
                let qr = QrCode::parse(url.trim())
                    .map_err(|e| BridgeError::Usage(format!("--qr is not a FIDO:/ URL: {e}")))?;
                Some((qr.secret.eid_key(), qr.secret))
            }
            (None, Some(h)) => {
                let s = hex::decode(h.trim())
                    .ok()
                    .and_then(|b| QrSecret::from_slice(&b).ok())
                    .ok_or_else(|| {
                        BridgeError::Usage("--qr-secret must be 32 hex digits".into())
                    })?;
                Some((s.eid_key(), s))
            }
            (None, None) => None,
        })
    }

    /// Scans until `--duration`, `--count` or Ctrl-C, printing a row per advert.
    pub(crate) async fn run(&self) -> Result<(), BridgeError> {
        let key = self.key()?;
        let mut recorder = scan_report::Recorder::new(&self.report, key.as_ref().map(|(k, _)| k))?;
        let mut scanner = open_scanner(
            self.advert_file.as_ref(),
            self.adapter.as_deref(),
            self.from_start,
        )
        .await?;
        let deadline = self.duration.map(|d| tokio::time::Instant::now() + d);
        let mut seen = 0usize;
        println!("UUID  RSSI   LEN  SUFFIX    ADDRESS            MATCH");
        loop {
            if self.count.is_some_and(|c| seen >= c) {
                break;
            }
            let next = scanner.next_advert();
            let heard = match deadline {
                Some(d) => match tokio::time::timeout_at(d, next).await {
                    Ok(h) => h?,
                    Err(_) => break,
                },
                None => tokio::select! {
                    h = next => h?,
                    _ = tokio::signal::ctrl_c() => break,
                },
            };
            seen += 1;
            recorder.record(&heard);
            println!("{}", row(&heard, key.as_ref()));
        }
        recorder.finish()
    }
}

/// One table row: UUID, RSSI, length, suffix, address and the verdict under `key`.
fn row(heard: &bridge::HeardAdvert, key: Option<&(EidKey, QrSecret)>) -> String {
    let suffix = if heard.data.len() > eid::ADVERT_LEN {
        format!("{}B", heard.data.len() - eid::ADVERT_LEN)
    } else {
        "-".into()
    };
    let verdict = match key {
        None => String::new(),
        Some((k, secret)) => match eid::decrypt(k, &heard.data) {
            Ok(m) => format!(
                "yes: domain {} ({}), routing {}, tunnel {}…{}",
                m.plaintext.domain.0,
                m.plaintext
                    .domain
                    .name()
                    .unwrap_or_else(|_| "unknown".into()),
                m.plaintext.routing_id.to_hex(),
                // A prefix names the tunnel; the whole ID is the relay address of a
                // live session and stays off screens and logs (as everywhere else).
                &secret.tunnel_id().to_hex()[..8],
                m.suffix
                    .and_then(|s| s.l2cap_psm)
                    .map(|p| format!(", L2CAP PSM {p}"))
                    .unwrap_or_default()
            ),
            Err(e) => format!("no: {e}"),
        },
    };
    format!(
        "{:04x}  {:>4}  {:>4}  {:<8}  {:<17}  {}",
        heard.uuid16,
        heard
            .rssi
            .map(|r| r.to_string())
            .unwrap_or_else(|| "-".into()),
        heard.data.len(),
        suffix,
        heard.address.as_deref().unwrap_or("-"),
        verdict
    )
}

#[cfg(test)]
mod tests {
    use hybrid_protocol::eid::EidPlaintext;
    use hybrid_protocol::tunnel::{Domain, RoutingId};

    use super::*;
    use crate::commands::Command;
    use crate::test_util::{command, usage};

    fn scan(args: &[&str]) -> ScanArgs {
        let args: Vec<&str> = ["scan"].iter().chain(args).copied().collect();
        match command(&args) {
            Command::Scan(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_key_comes_from_the_qr_code_or_its_secret_not_both() {
        let secret = QrSecret::from_bytes([0x42; 16]);
        let hex = hex::encode([0x42; 16]);
        let (_, s) = scan(&["--qr-secret", &hex]).key().unwrap().unwrap();
        assert_eq!(s.tunnel_id().to_hex(), secret.tunnel_id().to_hex());
        assert!(scan(&[]).key().unwrap().is_none());
        let e = usage(
            scan(&["--qr-secret", &hex, "--qr", "FIDO:/1"])
                .key()
                .unwrap_err(),
        );
        assert_eq!(e, "give --qr or --qr-secret, not both");
        let e = usage(scan(&["--qr-secret", "abcd"]).key().unwrap_err());
        assert_eq!(e, "--qr-secret must be 32 hex digits");
        let e = usage(scan(&["--qr", "https://example.com"]).key().unwrap_err());
        assert!(e.starts_with("--qr is not a FIDO:/ URL: "), "{e}");
    }

    #[test]
    fn a_row_says_whether_an_advert_decrypts_and_shows_only_a_tunnel_prefix() {
        let secret = QrSecret::from_bytes([0x42; 16]);
        let key = (secret.eid_key(), QrSecret::from_bytes([0x42; 16]));
        let pt = EidPlaintext::new(RoutingId([9, 8, 7]), Domain(0), &mut rand_core::OsRng).unwrap();
        let heard = bridge::HeardAdvert {
            uuid16: 0xfff9,
            data: eid::encrypt(&key.0, &pt).to_vec(),
            rssi: Some(-61),
            address: None,
        };
        let tunnel = secret.tunnel_id().to_hex();
        let row = row(&heard, Some(&key));
        assert!(
            row.starts_with("fff9   -61    20  -         -                  yes: domain 0 ("),
            "{row}"
        );
        assert!(row.contains("routing 090807"), "{row}");
        assert!(row.contains(&format!("tunnel {}…", &tunnel[..8])), "{row}");
        assert!(
            !row.contains(&tunnel),
            "the whole tunnel ID stays off screen: {row}"
        );

        let other = (
            QrSecret::from_bytes([7; 16]).eid_key(),
            QrSecret::from_bytes([7; 16]),
        );
        let theirs = super::row(&heard, Some(&other));
        assert!(theirs.contains("  no: "), "{theirs}");
        let untried = super::row(&heard, None);
        assert_eq!(
            untried.trim_end(),
            row[..row.find("yes").unwrap()].trim_end()
        );
    }
}
