//! Doctor's network checks: each relay through [`tunnel_client::TunnelConfig::probe`] (DNS,
//! TCP, TLS 1.3, the `fido.cable` upgrade on `/cable/new`, each step timed and bounded), for
//! Google's and Apple's tunnel domains (docs/PROTOCOL.md#tunnel-domains) and any configured relay;
//! the linked-phones file and the relay of each linked phone; and the system clock, against the
//! calendar and against the `Date` header of every relay that answered.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bridge::LinkStore;
use hybrid_protocol::tunnel::{TunnelId, TunnelPath, ASSIGNED_DOMAINS};
use tunnel_client::{ProbeReport, Route, StepOutcome, TunnelConfig};

use super::{Check, DoctorArgs, Section, Status};

/// Clock skew beyond which the clock check fails.
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(120);

/// One relay to check.
struct Target {
    label: String,
    config: TunnelConfig,
    domain: String,
}

fn route() -> Route {
    use rand::RngCore as _;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    Route::Tunnel(TunnelPath::New(TunnelId(id)))
}

async fn probe(t: &Target, step_timeout: Duration) -> Result<ProbeReport, String> {
    t.config
        .probe(&t.domain, &route(), step_timeout)
        .await
        .map_err(|e| e.to_string())
}

fn probe_checks(section: Section, label: &str, r: &Result<ProbeReport, String>) -> Vec<Check> {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::new(section, label, Status::Fail, e.clone())
                .next("fix the relay address or --extra-ca file")]
        }
    };
    r.steps
        .iter()
        .map(|s| {
            let name = format!("{label} {}", s.step.name());
            match &s.outcome {
                StepOutcome::Passed(d) => {
                    Check::new(section, name, Status::Pass, d.clone()).timed(s.elapsed)
                }
                StepOutcome::Failed(d) => {
                    // The detail says what to do after a semicolon; split it out for `next`.
                    let (what, next) = d.split_once("; ").unwrap_or((d.as_str(), ""));
                    let c = Check::new(section, name, Status::Fail, what).timed(s.elapsed);
                    if next.is_empty() {
                        c
                    } else {
                        c.next(next)
                    }
                }
                StepOutcome::Skipped(d) => Check::new(section, name, Status::Skip, d.clone()),
            }
        })
        .collect()
}

/// Relay and links checks; also returns the `Date` headers seen, for the clock check.
pub(crate) async fn checks(
    args: &DoctorArgs,
    links_file: Option<PathBuf>,
    wanted: &dyn Fn(Section) -> bool,
) -> (Vec<Check>, Vec<(String, SystemTime)>) {
    let config = |over: Option<String>| {
        TunnelConfig::new(
            over,
            args.connection.connect_to.clone(),
            args.connection.extra_ca.clone(),
        )
    };
    let mut out = Vec::new();
    let mut dates = Vec::new();
    let relays_wanted = wanted(Section::Relays) || wanted(Section::Clock);

    let mut targets = Vec::new();
    if relays_wanted && !args.no_public_relays {
        for (who, domain) in ["Google", "Apple"].iter().zip(ASSIGNED_DOMAINS) {
            targets.push(Target {
                label: format!("{domain} ({who})"),
                config: config(None),
                domain: domain.to_string(),
            });
        }
    }
    if relays_wanted {
        for url in args.connection.tunnel_override.iter().chain(&args.relay) {
            targets.push(Target {
                label: url.trim_end_matches('/').to_string(),
                config: config(Some(url.clone())),
                domain: ASSIGNED_DOMAINS[0].to_string(),
            });
        }
    }
    let results =
        futures_util::future::join_all(targets.iter().map(|t| probe(t, args.step_timeout))).await;
    for (t, r) in targets.iter().zip(&results) {
        if let Ok(p) = r {
            if let Some(d) = p.server_date {
                dates.push((t.label.clone(), d));
            }
        }
        if wanted(Section::Relays) {
            out.extend(probe_checks(Section::Relays, &t.label, r));
        }
    }

    if wanted(Section::Links) {
        let store = match links_file {
            Some(p) => Ok(LinkStore::new(p)),
            None => LinkStore::default_path().map(LinkStore::new),
        };
        let store = match store {
            Ok(s) => s,
            Err(e) => {
                out.push(
                    Check::new(Section::Links, "links file", Status::Fail, e.to_string())
                        .next("pass --links-file FILE"),
                );
                return (out, dates);
            }
        };
        let path = store.path().display().to_string();
        match store.list() {
            Err(e) => out.push(
                Check::new(Section::Links, "links file", Status::Fail, e.to_string()).next(
                    "fix or remove the file (`hybrid-bridge phones list` reads the same file); linked phones must then be linked again with a QR code",
                ),
            ),
            Ok(links) if links.is_empty() => out.push(Check::new(
                Section::Links,
                "links file",
                Status::Info,
                format!("no linked phones in {path}"),
            )),
            Ok(links) => {
                out.push(Check::new(
                    Section::Links,
                    "links file",
                    Status::Pass,
                    format!("{} linked phone(s) in {path}", links.len()),
                ));
                let link_targets: Vec<Target> = links
                    .iter()
                    .map(|l| Target {
                        label: format!("{:?}", l.name),
                        config: config(args.connection.tunnel_override.clone()),
                        domain: l.tunnel_domain.clone(),
                    })
                    .collect();
                let results = futures_util::future::join_all(
                    link_targets.iter().map(|t| probe(t, args.step_timeout)),
                )
                .await;
                for ((t, l), r) in link_targets.iter().zip(&links).zip(&results) {
                    let c = match r {
                        Ok(p) if p.passed() => Check::new(
                            Section::Links,
                            t.label.clone(),
                            Status::Pass,
                            format!("relay {} reachable ({})", l.tunnel_domain, p.url),
                        )
                        .timed(p.steps.iter().map(|s| s.elapsed).sum()),
                        Ok(p) => {
                            let why = p
                                .steps
                                .iter()
                                .find_map(|s| match &s.outcome {
                                    StepOutcome::Failed(d) => {
                                        Some(format!("{}: {d}", s.step.name()))
                                    }
                                    _ => None,
                                })
                                .unwrap_or_default();
                            Check::new(
                                Section::Links,
                                t.label.clone(),
                                Status::Fail,
                                format!("relay {} unreachable: {why}", l.tunnel_domain),
                            )
                            .next("sign-in with this phone will fail until its relay is reachable; check the network, or use a QR code")
                        }
                        Err(e) => {
                            Check::new(Section::Links, t.label.clone(), Status::Fail, e.clone())
                        }
                    };
                    out.push(c);
                }
            }
        }
    }
    (out, dates)
}

/// The clock checks: a plausible year, and agreement with each relay's `Date` header.
pub(crate) fn clock(now: SystemTime, dates: &[(String, SystemTime)]) -> Vec<Check> {
    let mut out = Vec::new();
    let stamp = cli_support::rfc3339(now);
    let year: u32 = stamp.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
    out.push(if year >= 2024 {
        Check::new(Section::Clock, "system time", Status::Pass, stamp)
    } else {
        Check::new(
            Section::Clock,
            "system time",
            Status::Fail,
            format!("{stamp} is before 2024"),
        )
        .next("phones reject QR codes with a wrong timestamp: set the clock (`sudo timedatectl set-ntp true`)")
    });
    for (label, date) in dates {
        let (skew, ahead) = match now.duration_since(*date) {
            Ok(d) => (d, true),
            Err(e) => (e.duration(), false),
        };
        let text = format!(
            "{} s {} {label}'s clock",
            skew.as_secs(),
            if ahead { "ahead of" } else { "behind" }
        );
        out.push(if skew <= MAX_SKEW {
            Check::new(Section::Clock, format!("vs {label}"), Status::Pass, text)
        } else {
            Check::new(Section::Clock, format!("vs {label}"), Status::Fail, text)
                .next("phones reject QR codes whose timestamp is off: sync the clock (`sudo timedatectl set-ntp true`)")
        });
    }
    if dates.is_empty() {
        out.push(Check::new(
            Section::Clock,
            "vs relays",
            Status::Info,
            "no relay answered with a Date header to compare with",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_and_year() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
        let c = clock(now, &[("r".into(), now - Duration::from_secs(30))]);
        assert!(c.iter().all(|c| c.status == Status::Pass), "{c:?}");
        let c = clock(now, &[("r".into(), now + Duration::from_secs(600))]);
        assert_eq!(c[1].status, Status::Fail);
        assert!(c[1].detail.contains("600 s behind r"), "{}", c[1].detail);
        for (relay, said) in [
            (now + Duration::from_secs(3600), "3600 s behind r"),
            (now - Duration::from_secs(3600), "3600 s ahead of r"),
        ] {
            let c = clock(now, &[("r".into(), relay)]);
            assert_eq!(c[1].status, Status::Fail, "{c:?}");
            assert!(c[1].detail.contains(said), "{}", c[1].detail);
        }
        let c = clock(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400), &[]);
        assert_eq!(c[0].status, Status::Fail);
        assert!(c[0].detail.starts_with("1970-01-02"), "{}", c[0].detail);
    }
}
