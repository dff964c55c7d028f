//! A soak's samples and what they say: the CSV every soak writes (one row per sample: seconds
//! since the start, the phase, ceremonies done, then one column per series such as RSS or open
//! descriptors), the verdict on each series (its band after warm-up relative to its median,
//! and the idle value after the load against the idle value before it), the summary table, and
//! the plot (an SVG with one panel per series, drawn here). `loadgen soak` judges its own
//! samples; `loadgen soak-report` judges a CSV another program wrote (the bridge and phone-sim
//! soak, `hybrid-demo --soak`), so both are held to one rule.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

/// Where a sample was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A short burst of ceremonies before the idle baseline, so that the baseline is a process
    /// that has served ceremonies (thread pool and allocator grown), not a fresh one.
    Prime,
    /// No load, before the soak: the idle baseline.
    IdleBefore,
    /// The first ceremonies of the soak, excluded from the band.
    Warmup,
    /// The soak after warm-up: the band is measured here.
    Load,
    /// No load, after the soak.
    IdleAfter,
}

impl Phase {
    const ALL: [Self; 5] = [
        Self::Prime,
        Self::IdleBefore,
        Self::Warmup,
        Self::Load,
        Self::IdleAfter,
    ];

    /// The CSV label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Prime => "prime",
            Self::IdleBefore => "idle-before",
            Self::Warmup => "warmup",
            Self::Load => "load",
            Self::IdleAfter => "idle-after",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.label() == s)
    }
}

/// One sample: its time, phase, ceremonies done, and a value per series (`None` where the
/// reading failed).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub(crate) t: f64,
    pub(crate) phase: Phase,
    pub(crate) ceremonies: u64,
    pub(crate) values: Vec<Option<f64>>,
}

/// A soak's samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Samples {
    pub(crate) names: Vec<String>,
    pub(crate) rows: Vec<Row>,
}

impl Samples {
    /// Series named `names`, no rows yet.
    pub(crate) fn new(names: &[&str]) -> Self {
        Self {
            names: names.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// The CSV header line.
    pub(crate) fn header(&self) -> String {
        format!("t_s,phase,ceremonies,{}\n", self.names.join(","))
    }

    /// One row as a CSV line.
    pub(crate) fn line(row: &Row) -> String {
        let values: Vec<String> = row
            .values
            .iter()
            .map(|v| v.map_or(String::new(), |v| format!("{v}")))
            .collect();
        format!(
            "{:.3},{},{},{}\n",
            row.t,
            row.phase.label(),
            row.ceremonies,
            values.join(",")
        )
    }

    /// The whole CSV.
    #[cfg(test)]
    pub(crate) fn csv(&self) -> String {
        let mut out = self.header();
        for r in &self.rows {
            out.push_str(&Self::line(r));
        }
        out
    }

    /// Parses a soak CSV; a malformed line is an error naming it.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().context("the CSV is empty")?;
        let cols: Vec<&str> = header.split(',').collect();
        if cols.len() < 4 || cols[..3] != ["t_s", "phase", "ceremonies"] {
            bail!("the CSV's header is {header:?}; a soak CSV starts t_s,phase,ceremonies and has a column per series");
        }
        let mut samples = Self {
            names: cols[3..].iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        };
        for (i, line) in lines {
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            let bad = || {
                format!(
                    "line {} of the CSV ({line:?}) does not match its header",
                    i + 1
                )
            };
            if f.len() != cols.len() {
                bail!(bad());
            }
            let values = f[3..]
                .iter()
                .map(|v| {
                    if v.is_empty() {
                        Ok(None)
                    } else {
                        v.parse::<f64>().map(Some)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .with_context(bad)?;
            samples.rows.push(Row {
                t: f[0].parse().with_context(bad)?,
                phase: Phase::parse(f[1]).with_context(bad)?,
                ceremonies: f[2].parse().with_context(bad)?,
                values,
            });
        }
        Ok(samples)
    }

    fn series(&self, i: usize, phase: Phase) -> Vec<f64> {
        self.rows
            .iter()
            .filter(|r| r.phase == phase)
            .filter_map(|r| r.values[i])
            .collect()
    }
}

/// What one series did.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) name: String,
    /// Samples after warm-up.
    pub(crate) n: usize,
    /// Their median.
    pub(crate) median: f64,
    /// Their minimum and maximum, relative to the median, %.
    pub(crate) low_pct: f64,
    pub(crate) high_pct: f64,
    /// The last idle sample before and after the load.
    pub(crate) idle_before: Option<f64>,
    pub(crate) idle_after: Option<f64>,
    /// Whether it counts what is in flight (gated on its idle value only).
    pub(crate) in_flight: bool,
    /// Why it fails, if it does.
    pub(crate) failures: Vec<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Judges every series: its last idle sample after the load is at most `tolerance` % above
/// its last idle sample before it (zero again when that was zero; lower is fine), and, unless it is named in
/// `in_flight`, after warm-up it stays within ±`tolerance` % of its median. A series in
/// `in_flight` counts what the ceremonies in flight hold (sockets, tunnels): it follows the
/// rate, which a shared machine moves, so its band is reported but only its return to idle
/// is required.
pub(crate) fn judge(s: &Samples, tolerance: f64, in_flight: &[String]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (i, name) in s.names.iter().enumerate() {
        let flying = in_flight.contains(name);
        let load = s.series(i, Phase::Load);
        let m = median(&load);
        let (lo, hi) = load
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let pct = |v: f64| {
            if m == 0.0 {
                if v == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (v - m) / m * 100.0
            }
        };
        let mut failures = Vec::new();
        let (low_pct, high_pct) = if load.is_empty() {
            failures.push(format!(
                "{name}: no sample after warm-up; sample more often (--sample-every) or run more ceremonies"
            ));
            (f64::NAN, f64::NAN)
        } else {
            (pct(lo), pct(hi))
        };
        if !flying && (low_pct < -tolerance || high_pct > tolerance) {
            failures.push(format!(
                "{name}: after warm-up it ranged {low_pct:+.1} % to {high_pct:+.1} % of its median {m} (limit ±{tolerance} %)"
            ));
        }
        let idle_before = s.series(i, Phase::IdleBefore).last().copied();
        let idle_after = s.series(i, Phase::IdleAfter).last().copied();
        match (idle_before, idle_after) {
            (Some(b), Some(a)) => {
                // Only growth is drift: an allocator that gives back more after the load than
                // it had given back before it has not leaked.
                let off = if b == 0.0 {
                    a > 0.0
                } else {
                    (a - b) / b * 100.0 > tolerance
                };
                if off {
                    failures.push(format!(
                        "{name}: idle after the load {a} against {b} before it (limit +{tolerance} %)"
                    ));
                }
            }
            _ => failures.push(format!(
                "{name}: no idle sample before or after the load; give the idle windows more time (--idle)"
            )),
        }
        out.push(Verdict {
            name: name.clone(),
            n: load.len(),
            median: m,
            low_pct,
            high_pct,
            idle_before,
            idle_after,
            in_flight: flying,
            failures,
        });
    }
    out
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "n/a".into(),
    }
}

/// The summary table (Markdown) of `verdicts`.
pub(crate) fn table(verdicts: &[Verdict]) -> String {
    let mut out = String::from(
        "| series | samples after warm-up | median | min | max | idle before | idle after | after ÷ before | required | verdict |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for v in verdicts {
        let ratio = match (v.idle_before, v.idle_after) {
            (Some(b), Some(a)) if b != 0.0 => format!("{:.2}", a / b),
            _ => "n/a".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:+.1} % | {:+.1} % | {} | {} | {} | {} | {} |",
            v.name,
            v.n,
            num(Some(v.median)),
            v.low_pct,
            v.high_pct,
            num(v.idle_before),
            num(v.idle_after),
            ratio,
            if v.in_flight { "idle" } else { "band, idle" },
            if v.failures.is_empty() { "ok" } else { "DRIFT" }
        );
    }
    out
}

/// The plot: one panel per series over the whole run, the phases shaded, the median after
/// warm-up and its ±`tolerance` % band drawn as dashed lines.
pub(crate) fn svg(s: &Samples, title: &str, tolerance: f64) -> String {
    const W: f64 = 760.0;
    const PANEL: f64 = 130.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    let plot_w = W - LEFT - RIGHT;
    let h = TOP + PANEL * s.names.len() as f64 + 30.0;
    let t_end = s.rows.last().map_or(1.0, |r| r.t).max(1e-9);
    let x = |t: f64| LEFT + t / t_end * plot_w;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="18" font-size="14">{}</text>"#,
        escape(title)
    );
    // Phase spans, shared by every panel.
    let mut spans: Vec<(Phase, f64, f64)> = Vec::new();
    for r in &s.rows {
        match spans.last_mut() {
            Some((p, _, end)) if *p == r.phase => *end = r.t,
            _ => spans.push((r.phase, r.t, r.t)),
        }
    }
    let shade = |p: Phase| match p {
        Phase::Prime | Phase::Warmup => Some("#f3e6d0"),
        Phase::IdleBefore | Phase::IdleAfter => Some("#dde8f3"),
        Phase::Load => None,
    };
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="32" fill="#555">shaded: blue idle, tan priming and warm-up (left out of the band); dashed: median after warm-up and ±{tolerance} %</text>"##
    );
    for (i, name) in s.names.iter().enumerate() {
        let top = TOP + PANEL * i as f64 + 10.0;
        let ph = PANEL - 30.0;
        let points: Vec<(f64, f64)> = s
            .rows
            .iter()
            .filter_map(|r| r.values[i].map(|v| (r.t, v)))
            .collect();
        let load = s.series(i, Phase::Load);
        let m = median(&load);
        let mut lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if m.is_finite() {
            lo = lo.min(m * (1.0 - tolerance / 100.0));
            hi = hi.max(m * (1.0 + tolerance / 100.0));
        }
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-9 {
            hi = lo + 1.0;
        }
        let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
        for (p, a, b) in &spans {
            if let Some(c) = shade(*p) {
                let _ = writeln!(
                    out,
                    r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{ph:.1}" fill="{c}"/>"#,
                    x(*a),
                    (x(*b) - x(*a)).max(1.0)
                );
            }
        }
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top:.1}" width="{plot_w:.1}" height="{ph:.1}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text>"#,
            top - 2.0,
            escape(name)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            top + 10.0,
            num(Some(hi)),
            LEFT - 4.0,
            top + ph,
            num(Some(lo))
        );
        if m.is_finite() {
            for (v, dash) in [
                (m, "6 3"),
                (m * (1.0 - tolerance / 100.0), "2 3"),
                (m * (1.0 + tolerance / 100.0), "2 3"),
            ] {
                let _ = writeln!(
                    out,
                    r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#c33" stroke-dasharray="{dash}"/>"##,
                    LEFT + plot_w,
                    y(v),
                    y(v)
                );
            }
        }
        let path: Vec<String> = points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline fill="none" stroke="#1f5fa8" stroke-width="1.2" points="{}"/>"##,
            path.join(" ")
        );
    }
    let base = TOP + PANEL * s.names.len() as f64;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{base:.1}">0 s</text><text x="{:.1}" y="{base:.1}" text-anchor="end">{t_end:.0} s</text>"#,
        LEFT + plot_w
    );
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `loadgen soak-report`.
#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// The soak CSV to judge.
    #[arg(long)]
    csv: PathBuf,
    /// Write the plot here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// The plot's title.
    #[arg(long, default_value = "soak")]
    title: String,
    /// How far, in %, a series may stray from its median after warm-up, and its idle value
    /// after the load from the one before.
    #[arg(long, default_value_t = 10.0)]
    tolerance: f64,
    /// Series that count what is in flight (e.g. fds): only their return to idle is required.
    #[arg(long, value_delimiter = ',')]
    in_flight: Vec<String>,
}

/// Prints the summary of `samples`, writes the plot, and fails naming every series that
/// drifted.
pub(crate) fn conclude(
    samples: &Samples,
    title: &str,
    tolerance: f64,
    in_flight: &[String],
    svg_path: Option<&std::path::Path>,
) -> Result<()> {
    for n in in_flight {
        if !samples.names.contains(n) {
            bail!(
                "no series {n:?} in the samples; they have {}",
                samples.names.join(", ")
            );
        }
    }
    if let Some(p) = svg_path {
        std::fs::write(p, svg(samples, title, tolerance))
            .with_context(|| format!("cannot write {}", p.display()))?;
        println!("plot: {}", p.display());
    }
    let verdicts = judge(samples, tolerance, in_flight);
    println!("\n{}", table(&verdicts));
    let failures: Vec<String> = verdicts.into_iter().flat_map(|v| v.failures).collect();
    if !failures.is_empty() {
        bail!(
            "the soak drifted (see the plot and the table above):\n  {}",
            failures.join("\n  ")
        );
    }
    println!(
        "every series came back to its idle baseline, and every one not in flight stayed within ±{tolerance} % after warm-up"
    );
    Ok(())
}

/// Runs `loadgen soak-report`.
pub(crate) fn run(args: &ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("cannot read {}", args.csv.display()))?;
    let samples = Samples::parse(&text)?;
    conclude(
        &samples,
        &args.title,
        args.tolerance,
        &args.in_flight,
        args.svg.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(load: &[f64], before: f64, after: f64) -> Samples {
        let mut s = Samples::new(&["rss_kib"]);
        let mut t = 0.0;
        let mut push = |phase, v: f64| {
            t += 1.0;
            s.rows.push(Row {
                t,
                phase,
                ceremonies: 0,
                values: vec![Some(v)],
            });
        };
        push(Phase::Prime, 1.0);
        push(Phase::IdleBefore, before);
        push(Phase::Warmup, 1000.0);
        for &v in load {
            push(Phase::Load, v);
        }
        push(Phase::IdleAfter, after);
        s
    }

    #[test]
    fn a_steady_series_that_returns_to_idle_passes() {
        let v = judge(&samples(&[100.0, 105.0, 95.0], 50.0, 52.0), 10.0, &[]);
        assert_eq!(v[0].failures, Vec::<String>::new());
        assert_eq!(
            (v[0].median, v[0].low_pct, v[0].high_pct),
            (100.0, -5.0, 5.0)
        );
    }

    #[test]
    fn warm_up_is_left_out_but_a_climb_after_it_is_drift() {
        let v = judge(&samples(&[100.0, 100.0, 120.0], 50.0, 50.0), 10.0, &[]);
        assert_eq!(v[0].failures.len(), 1, "{:?}", v[0].failures);
        assert!(v[0].failures[0].contains("+20.0 %"), "{:?}", v[0].failures);
        let flying = judge(
            &samples(&[100.0, 100.0, 120.0], 50.0, 50.0),
            10.0,
            &["rss_kib".into()],
        );
        assert_eq!(
            flying[0].failures,
            Vec::<String>::new(),
            "in flight: idle only"
        );
        assert_eq!(flying[0].high_pct, 20.0, "and its band still reported");
    }

    #[test]
    fn an_idle_value_that_does_not_come_back_is_drift() {
        let v = judge(
            &samples(&[100.0, 100.0], 50.0, 60.0),
            10.0,
            &["rss_kib".into()],
        );
        assert!(v[0].failures[0].contains("idle after the load 60 against 50"));
        let lower = judge(
            &samples(&[100.0, 100.0], 50.0, 40.0),
            10.0,
            &["rss_kib".into()],
        );
        assert_eq!(
            lower[0].failures,
            Vec::<String>::new(),
            "giving back more than before is not drift"
        );
        let zero = judge(&samples(&[0.0, 0.0], 0.0, 1.0), 10.0, &[]);
        assert_eq!(
            zero[0].failures.len(),
            1,
            "a count of zero must come back to zero"
        );
    }

    #[test]
    fn no_sample_after_warm_up_fails_and_says_what_to_do() {
        let v = judge(&samples(&[], 50.0, 50.0), 10.0, &[]);
        assert!(v[0].failures[0].contains("--sample-every"));
    }

    #[test]
    fn the_csv_reads_back_what_was_written_and_names_a_bad_line() {
        let mut s = samples(&[100.0, 101.0], 50.0, 50.0);
        s.rows[2].values[0] = None;
        let back = Samples::parse(&s.csv()).unwrap();
        assert_eq!(back, s);
        let err = Samples::parse("t_s,phase,ceremonies,a\n1,load,3\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        assert!(Samples::parse("x,y\n").is_err());
        assert!(Samples::parse("t_s,phase,ceremonies,a\n1,lunch,3,4\n").is_err());
    }

    #[test]
    fn the_plot_has_a_panel_and_a_line_per_series() {
        let mut s = samples(&[100.0, 101.0], 50.0, 50.0);
        s.names.push("fds".into());
        for r in &mut s.rows {
            r.values.push(Some(7.0));
        }
        let svg = svg(&s, "a <soak>", 10.0);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;soak&gt;"));
        assert!(svg.contains(">fds<") && svg.contains(">rss_kib<"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
