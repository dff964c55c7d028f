//! `hybrid-demo --proximity`: RSSI experiments, the way a person picks the bridge's
//! `--min-rssi`. It runs N registrations through the embedded stack while the simulated phone's
//! adverts follow an [`RssiProfile`] (fixed, ramp, random walk, dropouts), with the bridge
//! ignoring adverts weaker than `--min-rssi` ([`bridge::BridgeConfig::min_rssi`]) and giving up
//! after a short advert timeout. For each ceremony it reads back what the phone wrote to the
//! medium (adverts, their RSSI) and what the bridge saw (success, time to advert), and writes a
//! report: success rate and time-to-advert against RSSI as plots (HTML or SVG) and a CSV.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bridge::progress::{Phase, Silent};
use bridge::render::{escape_html, html_page};
use bridge::BridgeError;
use hybrid_protocol::medium::AdvertLine;
use phone_sim::medium::RssiProfile;
use phone_sim::{MediumKnobs, PhoneConfig};
use plotters::prelude::*;

use crate::{random, registration_options, DemoArgs, Stack};

/// `--proximity` and its settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ProximityArgs {
    /// Instead of the story, run RSSI experiments: N ceremonies against an RSSI profile,
    /// reporting success rate and time to advert against RSSI.
    #[arg(long, help_heading = "Proximity experiments")]
    pub proximity: bool,
    /// Number of ceremonies.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        help_heading = "Proximity experiments"
    )]
    pub ceremonies: usize,
    /// How the phone's RSSI moves, advert by advert: fixed:RSSI, ramp:FROM:TO:ADVERTS,
    /// walk:START:STEP:MIN:MAX or dropouts:RSSI:PERIOD:SILENT.
    #[arg(long, value_name = "PROFILE", value_parser = RssiProfile::parse, default_value = "walk:-70:8:-95:-45", allow_hyphen_values = true, help_heading = "Proximity experiments")]
    pub rssi_profile: RssiProfile,
    /// The bridge ignores adverts weaker than this (dBm).
    #[arg(long, value_name = "DBM", default_value_t = -75, allow_hyphen_values = true, help_heading = "Proximity experiments")]
    pub min_rssi: i16,
    /// How long the bridge waits for a strong enough advert per ceremony.
    #[arg(long, value_name = "DURATION", value_parser = cli_support::parse_duration, default_value = "1s", help_heading = "Proximity experiments")]
    pub advert_timeout: Duration,
    /// Where to write the report: FILE.html or FILE.svg [default: proximity.html in the
    /// demo's folder].
    #[arg(long, value_name = "FILE", help_heading = "Proximity experiments")]
    pub report: Option<PathBuf>,
    /// Also write one CSV row per ceremony here.
    #[arg(long, value_name = "FILE", help_heading = "Proximity experiments")]
    pub events_out: Option<PathBuf>,
}

/// One ceremony's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Ceremony {
    /// 0-based.
    pub index: usize,
    /// RSSI of each advert the phone wrote during the ceremony, in order.
    pub written: Vec<i16>,
    /// Whether the registration succeeded.
    pub success: bool,
    /// The bridge's wait for the advert (QR shown to advert matched), when it succeeded.
    pub time_to_advert: Option<Duration>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Ceremony {
    /// RSSI of the first advert the phone sent (the x of every plot), if it sent any.
    pub fn first_rssi(&self) -> Option<i16> {
        self.written.first().copied()
    }
}

/// A finished experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The profile played.
    pub profile: RssiProfile,
    /// The bridge's threshold.
    pub min_rssi: i16,
    /// The advert timeout.
    pub advert_timeout: Duration,
    /// The advert interval.
    pub interval: Duration,
    /// Every ceremony.
    pub ceremonies: Vec<Ceremony>,
}

/// The CSV columns.
pub const CSV_HEADER: &str = "ceremony,first_rssi,max_rssi,adverts_written,adverts_at_or_above_min,success,time_to_advert_ms,error";

/// Reads the advert lines appended to `path` after byte `from`; returns their RSSIs and the
/// new end.
fn written_since(path: &Path, from: u64) -> (Vec<i16>, u64) {
    let Ok(bytes) = std::fs::read(path) else {
        return (Vec::new(), from);
    };
    let start = (from as usize).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let rssi = text
        .lines()
        .filter_map(|l| l.parse::<AdvertLine>().ok())
        .filter_map(|l| l.rssi)
        .collect();
    (rssi, bytes.len() as u64)
}

/// Runs the experiment in `dir`.
pub async fn experiment(
    dir: PathBuf,
    p: &ProximityArgs,
    interval: Duration,
) -> Result<Experiment, BridgeError> {
    let phone = PhoneConfig {
        // The phone gives up soon after the bridge, so the next ceremony gets it back.
        timeout: p.advert_timeout + Duration::from_millis(500),
        ..PhoneConfig::default()
    };
    let knobs = MediumKnobs {
        interval,
        ..MediumKnobs::default()
    };
    let mut stack = Stack::start(dir, phone, knobs).await?;
    stack.config.links = None;
    stack.config.min_rssi = Some(p.min_rssi);
    stack.config.timeouts.advert = p.advert_timeout;
    stack
        .medium_mut()
        .ok_or_else(|| BridgeError::Internal("the demo phone has no medium".into()))?
        .set_rssi_profile(p.rssi_profile.clone());
    let adverts = stack.adverts().clone();
    let mut offset = std::fs::metadata(&adverts).map(|m| m.len()).unwrap_or(0);
    let mut ceremonies = Vec::new();
    for index in 0..p.ceremonies.max(1) {
        let options = registration_options(&format!("proximity{index}@demo"), &random(32))?;
        let r = stack.register(&options, &Silent).await;
        let (written, end) = written_since(&adverts, offset);
        offset = end;
        let (success, time_to_advert, error) = match r {
            Ok(run) => (
                true,
                Some(
                    run.bridge
                        .outcome
                        .stages
                        .iter()
                        .filter(|(ph, _)| *ph == Phase::AwaitingAdvert)
                        .map(|(_, d)| *d)
                        .sum(),
                ),
                None,
            ),
            Err(e) if stack.phone().is_none() => return Err(e),
            Err(e) => (false, None, Some(e.to_string())),
        };
        ceremonies.push(Ceremony {
            index,
            written,
            success,
            time_to_advert,
            error,
        });
    }
    stack.stop_relay().await;
    Ok(Experiment {
        profile: p.rssi_profile.clone(),
        min_rssi: p.min_rssi,
        advert_timeout: p.advert_timeout,
        interval,
        ceremonies,
    })
}

impl Experiment {
    /// One CSV row per ceremony.
    pub fn csv(&self) -> String {
        let mut out = format!("{CSV_HEADER}\n");
        for c in &self.ceremonies {
            let opt = |v: Option<i16>| v.map(|r| r.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                c.index,
                opt(c.first_rssi()),
                opt(c.written.iter().max().copied()),
                c.written.len(),
                c.written.iter().filter(|&&r| r >= self.min_rssi).count(),
                c.success,
                c.time_to_advert
                    .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                    .unwrap_or_default(),
                c.error
                    .as_deref()
                    .map(|e| format!("\"{}\"", e.replace('"', "\"\"")))
                    .unwrap_or_default()
            );
        }
        out
    }

    /// Success per 5 dB bin of first-advert RSSI: (bin low edge, ceremonies, successes,
    /// median time to advert in ms), strongest bin first.
    pub fn bins(&self) -> Vec<(i16, usize, usize, Option<f64>)> {
        let mut bins: std::collections::BTreeMap<i16, Vec<&Ceremony>> = Default::default();
        for c in &self.ceremonies {
            if let Some(r) = c.first_rssi() {
                bins.entry(r.div_euclid(5) * 5).or_default().push(c);
            }
        }
        bins.into_iter()
            .rev()
            .map(|(lo, cs)| {
                let mut t: Vec<f64> = cs
                    .iter()
                    .filter_map(|c| c.time_to_advert.map(|d| d.as_secs_f64() * 1e3))
                    .collect();
                t.sort_by(f64::total_cmp);
                (
                    lo,
                    cs.len(),
                    cs.iter().filter(|c| c.success).count(),
                    t.get(t.len() / 2).copied(),
                )
            })
            .collect()
    }

    /// The plots: time to advert per ceremony, and success rate per 5 dB bin, against RSSI.
    pub fn svg(&self) -> Result<String, BridgeError> {
        let err = |e: &dyn std::fmt::Display| {
            BridgeError::Internal(format!("cannot draw the proximity report: {e}"))
        };
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, (900, 640)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let (top, bottom) = root.split_vertically(330);
            let rssis: Vec<i16> = self
                .ceremonies
                .iter()
                .filter_map(Ceremony::first_rssi)
                .chain([self.min_rssi])
                .collect();
            let lo = f64::from(*rssis.iter().min().unwrap_or(&-100) - 5);
            let hi = f64::from(*rssis.iter().max().unwrap_or(&-30) + 5);
            let timeout_ms = self.advert_timeout.as_secs_f64() * 1e3;

            let mut chart = ChartBuilder::on(&top)
                .caption("time to advert against RSSI", ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(lo..hi, 0f64..timeout_ms * 1.1)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("RSSI of the phone's first advert (dBm)")
                .y_desc("time to advert (ms)")
                .draw()
                .map_err(|e| err(&e))?;
            let ok: Vec<(f64, f64)> = self
                .ceremonies
                .iter()
                .filter_map(|c| {
                    Some((
                        f64::from(c.first_rssi()?),
                        c.time_to_advert?.as_secs_f64() * 1e3,
                    ))
                })
                .collect();
            let failed: Vec<(f64, f64)> = self
                .ceremonies
                .iter()
                .filter(|c| !c.success)
                .filter_map(|c| Some((f64::from(c.first_rssi()?), timeout_ms)))
                .collect();
            chart
                .draw_series(ok.iter().map(|&p| Circle::new(p, 4, GREEN.filled())))
                .map_err(|e| err(&e))?
                .label("succeeded")
                .legend(|(x, y)| Circle::new((x + 8, y), 4, GREEN.filled()));
            chart
                .draw_series(
                    failed
                        .iter()
                        .map(|&p| Cross::new(p, 5, RED.stroke_width(2))),
                )
                .map_err(|e| err(&e))?
                .label("failed (advert timeout)")
                .legend(|(x, y)| Cross::new((x + 8, y), 5, RED.stroke_width(2)));
            let m = f64::from(self.min_rssi);
            chart
                .draw_series(LineSeries::new(
                    [(m, 0.0), (m, timeout_ms * 1.1)],
                    BLUE.stroke_width(1),
                ))
                .map_err(|e| err(&e))?
                .label(format!("min RSSI {} dBm", self.min_rssi))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;

            let mut chart = ChartBuilder::on(&bottom)
                .caption("success rate against RSSI (5 dB bins)", ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(lo..hi, 0f64..105f64)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("RSSI of the phone's first advert (dBm)")
                .y_desc("success rate (%)")
                .draw()
                .map_err(|e| err(&e))?;
            let mut rate: Vec<(f64, f64)> = self
                .bins()
                .iter()
                .map(|&(b, n, s, _)| (f64::from(b) + 2.5, 100.0 * s as f64 / n as f64))
                .collect();
            rate.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(rate.clone(), BLUE.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label("success rate")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
            chart
                .draw_series(rate.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
                .map_err(|e| err(&e))?;
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        Ok(buf)
    }

    /// The HTML report: settings, summary, plots, bins, ceremonies.
    pub fn html(&self) -> Result<String, BridgeError> {
        let n = self.ceremonies.len();
        let ok = self.ceremonies.iter().filter(|c| c.success).count();
        let mut b = String::new();
        let _ = writeln!(
            b,
            "<p>{n} registrations through the embedded stack; <b>{ok} of {n} succeeded ({:.0}%)</b>. RSSI profile <code>{}</code>, bridge <code>--min-rssi {}</code>, advert timeout {} ms, advert interval {} ms.</p>",
            100.0 * ok as f64 / n.max(1) as f64,
            escape_html(&self.profile.to_string()),
            self.min_rssi,
            self.advert_timeout.as_millis(),
            self.interval.as_millis()
        );
        b.push_str(&self.svg()?);
        b.push_str("\n<h2>By RSSI (first advert, 5 dB bins)</h2>\n<table><tr><th>RSSI dBm</th><th>ceremonies</th><th>succeeded</th><th>rate</th><th>median time to advert ms</th></tr>\n");
        for (lo, cn, s, t) in self.bins() {
            let _ = writeln!(
                b,
                "<tr><td>{lo}…{}</td><td>{cn}</td><td>{s}</td><td>{:.0}%</td><td>{}</td></tr>",
                lo + 4,
                100.0 * s as f64 / cn as f64,
                t.map(|t| format!("{t:.0}")).unwrap_or_else(|| "-".into())
            );
        }
        b.push_str("</table>\n<h2>Ceremonies</h2>\n<table><tr><th>#</th><th>first RSSI</th><th>max RSSI</th><th>adverts</th><th>≥ min</th><th class=\"l\">result</th><th>time to advert ms</th></tr>\n");
        for c in &self.ceremonies {
            let opt = |v: Option<i16>| v.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l {}\">{}</td><td>{}</td></tr>",
                c.index,
                opt(c.first_rssi()),
                opt(c.written.iter().max().copied()),
                c.written.len(),
                c.written.iter().filter(|&&r| r >= self.min_rssi).count(),
                if c.success { "ok" } else { "bad" },
                if c.success { "ok".into() } else { escape_html(c.error.as_deref().unwrap_or("failed")) },
                c.time_to_advert
                    .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
                    .unwrap_or_else(|| "-".into())
            );
        }
        b.push_str("</table>\n");
        Ok(html_page("hybrid-bridge proximity experiment", &b))
    }
}

/// `hybrid-demo --proximity`: runs the experiment, writes the report, prints a summary.
pub async fn run(args: &DemoArgs) -> Result<(), BridgeError> {
    let p = &args.proximity;
    let dir = crate::demo_dir(args);
    let report = p
        .report
        .clone()
        .unwrap_or_else(|| dir.join("proximity.html"));
    let svg = match report.extension().and_then(|e| e.to_str()) {
        Some("svg") => true,
        Some("html" | "htm") => false,
        _ => {
            return Err(BridgeError::Usage(format!(
                "--report {} must end in .html or .svg",
                report.display()
            )))
        }
    };
    let started = Instant::now();
    let interval = Duration::from_millis(args.advert_interval.max(1));
    let e = experiment(dir.clone(), p, interval).await?;
    let text = if svg { e.svg()? } else { e.html()? };
    std::fs::write(&report, text).map_err(|err| {
        BridgeError::Internal(format!("cannot write {}: {err}", report.display()))
    })?;
    if let Some(csv) = &p.events_out {
        std::fs::write(csv, e.csv()).map_err(|err| {
            BridgeError::Internal(format!("cannot write {}: {err}", csv.display()))
        })?;
    }
    let ok = e.ceremonies.iter().filter(|c| c.success).count();
    println!(
        "{ok} of {} ceremonies succeeded with --min-rssi {} and RSSI profile {} ({:.1} s)",
        e.ceremonies.len(),
        e.min_rssi,
        e.profile,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<12} {:>10} {:>10} {:>8} {:>22}",
        "RSSI dBm", "ceremonies", "succeeded", "rate", "median to advert ms"
    );
    for (lo, n, s, t) in e.bins() {
        println!(
            "{:<12} {n:>10} {s:>10} {:>7.0}% {:>22}",
            format!("{lo}…{}", lo + 4),
            100.0 * s as f64 / n as f64,
            t.map(|t| format!("{t:.0}")).unwrap_or_else(|| "-".into())
        );
    }
    println!("report: {}", report.display());
    if let Some(csv) = &p.events_out {
        println!("events: {}", csv.display());
    }
    Ok(())
}
