//! Drawing a scan session: CSV of the raw events, an SVG with two plots (RSSI over time, and
//! adverts per second, one series per device) drawn with `plotters`' SVG backend, and a
//! self-contained HTML page with the plots inline and tables: per-device reception (rate,
//! intervals, gaps, RSSI), the tunnels decoded from adverts that decrypted, and the adverts
//! that break the spec. The page itself is the library's [`html_page`], which other reports
//! share.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bridge::render::{escape_html, html_page};
use bridge::BridgeError;
use plotters::prelude::*;

use super::{ScanEvent, Verdict};

/// The CSV columns.
pub(crate) const CSV_HEADER: &str =
    "t_ms,device,uuid16,len,rssi,verdict,domain,routing_id,flags,data";

/// The events as CSV, one row per advert.
pub(crate) fn csv(events: &[ScanEvent]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for e in events {
        let (domain, routing) = match &e.verdict {
            Verdict::Decrypted {
                domain_name,
                routing_id,
                ..
            } => (domain_name.clone(), routing_id.clone()),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            out,
            "{:.1},{},{:04x},{},{},{},{},{},{},{}",
            e.t_ms,
            csv_field(&e.device),
            e.uuid16,
            e.len,
            e.rssi.map(|r| r.to_string()).unwrap_or_default(),
            e.verdict.name(),
            csv_field(&domain),
            routing,
            csv_field(&e.flags.join("; ")),
            e.data
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Per-device reception numbers.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeviceStats {
    /// Adverts heard.
    pub(crate) count: usize,
    /// First and last, ms.
    pub(crate) first_ms: f64,
    /// Last, ms.
    pub(crate) last_ms: f64,
    /// Median time between adverts, ms.
    pub(crate) median_interval_ms: f64,
    /// Longest time between adverts, ms.
    pub(crate) max_gap_ms: f64,
    /// Gaps longer than three median intervals (and 300 ms): (start ms, length ms).
    pub(crate) gaps: Vec<(f64, f64)>,
    /// RSSI min, mean, max.
    pub(crate) rssi: Option<(i16, f64, i16)>,
    /// Decrypted, not ours, invalid, untried.
    pub(crate) verdicts: BTreeMap<&'static str, usize>,
}

/// Reception numbers per device, in order of first appearance.
pub(crate) fn device_stats(events: &[ScanEvent]) -> Vec<(String, DeviceStats)> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<&ScanEvent>> = BTreeMap::new();
    for e in events {
        if !by.contains_key(&e.device) {
            order.push(e.device.clone());
        }
        by.entry(e.device.clone()).or_default().push(e);
    }
    order
        .into_iter()
        .map(|d| {
            let evs = &by[&d];
            let mut intervals: Vec<f64> = evs.windows(2).map(|w| w[1].t_ms - w[0].t_ms).collect();
            let mut sorted = intervals.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
            let threshold = (3.0 * median).max(300.0);
            let gaps = evs
                .windows(2)
                .filter(|w| w[1].t_ms - w[0].t_ms > threshold)
                .map(|w| (w[0].t_ms, w[1].t_ms - w[0].t_ms))
                .collect();
            let rssis: Vec<i16> = evs.iter().filter_map(|e| e.rssi).collect();
            let rssi = (!rssis.is_empty()).then(|| {
                (
                    *rssis.iter().min().expect("non-empty"),
                    rssis.iter().map(|&r| f64::from(r)).sum::<f64>() / rssis.len() as f64,
                    *rssis.iter().max().expect("non-empty"),
                )
            });
            let mut verdicts = BTreeMap::new();
            for e in evs {
                *verdicts.entry(e.verdict.name()).or_insert(0) += 1;
            }
            intervals.clear();
            (
                d,
                DeviceStats {
                    count: evs.len(),
                    first_ms: evs[0].t_ms,
                    last_ms: evs[evs.len() - 1].t_ms,
                    median_interval_ms: median,
                    max_gap_ms: sorted.last().copied().unwrap_or(0.0),
                    gaps,
                    rssi,
                    verdicts,
                },
            )
        })
        .collect()
}

fn plot_error(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Internal(format!("cannot draw the report: {e}"))
}

/// The two plots as one SVG document: RSSI over time and adverts per second, per device.
pub(crate) fn svg(events: &[ScanEvent], duration_ms: f64) -> Result<String, BridgeError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (top, bottom) = root.split_vertically(340);
        let secs = (duration_ms / 1e3).max(1.0);
        let devices: Vec<String> = device_stats(events).into_iter().map(|(d, _)| d).collect();

        // RSSI over time.
        let rssis: Vec<i16> = events.iter().filter_map(|e| e.rssi).collect();
        let lo = rssis.iter().min().copied().unwrap_or(-100).min(-30) - 5;
        let hi = rssis.iter().max().copied().unwrap_or(-30).max(-100) + 5;
        let mut chart = ChartBuilder::on(&top)
            .caption("RSSI over time", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..secs, f64::from(lo)..f64::from(hi))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("RSSI (dBm)")
            .draw()
            .map_err(plot_error)?;
        for (i, d) in devices.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = events
                .iter()
                .filter(|e| &e.device == d)
                .filter_map(|e| e.rssi.map(|r| (e.t_ms / 1e3, f64::from(r))))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(1)))
                .map_err(plot_error)?
                .label(format!("RSSI {d}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 2, color.filled())))
                .map_err(plot_error)?;
        }
        // Adverts that decrypted, marked on top.
        let ours: Vec<(f64, f64)> = events
            .iter()
            .filter(|e| matches!(e.verdict, Verdict::Decrypted { .. }))
            .filter_map(|e| e.rssi.map(|r| (e.t_ms / 1e3, f64::from(r))))
            .collect();
        if !ours.is_empty() {
            chart
                .draw_series(
                    ours.iter()
                        .map(|&p| TriangleMarker::new(p, 5, GREEN.mix(0.8).filled())),
                )
                .map_err(plot_error)?
                .label("decrypted with the QR code")
                .legend(|(x, y)| TriangleMarker::new((x + 8, y), 5, GREEN.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;

        // Adverts per second.
        let bin = (secs / 60.0).max(1.0);
        let bins = (secs / bin).ceil() as usize;
        let mut rates: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let mut max_rate: f64 = 1.0;
        for d in &devices {
            let mut counts = vec![0usize; bins.max(1)];
            for e in events.iter().filter(|e| &e.device == d) {
                let i = ((e.t_ms / 1e3 / bin) as usize).min(counts.len() - 1);
                counts[i] += 1;
            }
            let pts: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .map(|(i, &c)| ((i as f64 + 0.5) * bin, c as f64 / bin))
                .collect();
            max_rate = pts.iter().map(|p| p.1).fold(max_rate, f64::max);
            rates.push((d.clone(), pts));
        }
        let mut chart = ChartBuilder::on(&bottom)
            .caption(
                format!("adverts per second ({bin:.0} s bins)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..secs, 0f64..max_rate * 1.15)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("adverts/s")
            .draw()
            .map_err(plot_error)?;
        for (i, (d, pts)) in rates.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(format!("rate {d}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(buf)
}

/// The HTML report: summary, plots, per-device table, decoded tunnels, spec violations.
pub(crate) fn html(events: &[ScanEvent], duration_ms: f64) -> Result<String, BridgeError> {
    let stats = device_stats(events);
    let mut b = String::new();
    let flagged: Vec<&ScanEvent> = events.iter().filter(|e| !e.flags.is_empty()).collect();
    let decrypted = events
        .iter()
        .filter(|e| matches!(e.verdict, Verdict::Decrypted { .. }))
        .count();
    let _ = writeln!(
        b,
        "<p>{} adverts from {} device(s) in {:.1} s ({:.2} adverts/s); {decrypted} decrypted with the QR code; <span class=\"{}\">{} break the spec</span>. Written by hybrid-bridge {} at {}.</p>",
        events.len(),
        stats.len(),
        duration_ms / 1e3,
        events.len() as f64 / (duration_ms / 1e3).max(1e-3),
        if flagged.is_empty() { "ok" } else { "bad" },
        flagged.len(),
        env!("CARGO_PKG_VERSION"),
        cli_support::rfc3339(std::time::SystemTime::now())
    );
    b.push_str(&svg(events, duration_ms)?);
    b.push_str("\n<h2>Reception per device</h2>\n<table><tr><th class=\"l\">device</th><th>adverts</th><th>first s</th><th>last s</th><th>rate /s</th><th>median interval ms</th><th>longest gap ms</th><th>gaps</th><th>RSSI min / mean / max</th><th class=\"l\">verdicts</th></tr>\n");
    for (d, s) in &stats {
        let span = (s.last_ms - s.first_ms) / 1e3;
        let rate = if span > 0.0 {
            (s.count - 1) as f64 / span
        } else {
            0.0
        };
        let rssi = s
            .rssi
            .map(|(lo, mean, hi)| format!("{lo} / {mean:.1} / {hi}"))
            .unwrap_or_else(|| "-".into());
        let verdicts = s
            .verdicts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let gaps = s
            .gaps
            .iter()
            .map(|(at, len)| format!("{len:.0} ms at {:.1} s", at / 1e3))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            b,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{rate:.2}</td><td>{:.0}</td><td>{:.0}</td><td class=\"l\">{}</td><td>{rssi}</td><td class=\"l\">{}</td></tr>",
            escape_html(d),
            s.count,
            s.first_ms / 1e3,
            s.last_ms / 1e3,
            s.median_interval_ms,
            s.max_gap_ms,
            if gaps.is_empty() { "none".into() } else { escape_html(&gaps) },
            escape_html(&verdicts)
        );
    }
    b.push_str("</table>\n<h2>Tunnels decoded from adverts that decrypted</h2>\n");
    let mut tunnels: BTreeMap<(String, u16, String), usize> = BTreeMap::new();
    for e in events {
        if let Verdict::Decrypted {
            domain,
            domain_name,
            routing_id,
        } = &e.verdict
        {
            *tunnels
                .entry((domain_name.clone(), *domain, routing_id.clone()))
                .or_insert(0) += 1;
        }
    }
    if tunnels.is_empty() {
        b.push_str("<p>None (no QR code given, or no advert matched it).</p>\n");
    } else {
        b.push_str("<table><tr><th class=\"l\">tunnel domain</th><th>number</th><th class=\"l\">routing ID</th><th>adverts</th></tr>\n");
        for ((name, n, rid), c) in &tunnels {
            let _ = writeln!(
                b,
                "<tr><td class=\"l\">{}</td><td>{n}</td><td class=\"l\">{}</td><td>{c}</td></tr>",
                escape_html(name),
                escape_html(rid)
            );
        }
        b.push_str("</table>\n");
    }
    b.push_str("<h2>Adverts that break the spec</h2>\n");
    if flagged.is_empty() {
        b.push_str("<p class=\"ok\">None.</p>\n");
    } else {
        b.push_str("<table><tr><th>t s</th><th class=\"l\">device</th><th>len</th><th class=\"l\">problem</th></tr>\n");
        for e in flagged.iter().take(500) {
            let _ = writeln!(
                b,
                "<tr class=\"bad\"><td>{:.3}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                e.t_ms / 1e3,
                escape_html(&e.device),
                e.len,
                escape_html(&e.flags.join("; "))
            );
        }
        b.push_str("</table>\n");
    }
    Ok(html_page("hybrid-bridge scan report", &b))
}
