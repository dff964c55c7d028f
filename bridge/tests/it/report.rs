//! `hybrid-bridge scan --report … --events-out …` on the simulated medium: adverts written to
//! the advert file while the scan runs (ours, with an RSSI ramp and a pause; then ones that
//! break the spec and someone else's) come back in the CSV one for one, and the HTML and SVG
//! reports show the series, the gap, the decoded tunnel and the flagged adverts.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hybrid_protocol::eid::{self, EidPlaintext};
use hybrid_protocol::keys::QrSecret;
use hybrid_protocol::tunnel::{Domain, RoutingId};

/// What the test wrote: (RSSI, expected verdict) per line, in order.
fn write_adverts(path: &Path, secret: &QrSecret) -> Vec<(i16, &'static str)> {
    let key = secret.eid_key();
    let other = QrSecret::from_bytes([0x99; 16]).eid_key();
    let pt = EidPlaintext::new(
        RoutingId([0xaa, 0xbb, 0xcc]),
        Domain(0),
        &mut rand_core::OsRng,
    )
    .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut written = Vec::new();
    let mut put = |data: Vec<u8>, rssi: i16, verdict: &'static str, f: &mut std::fs::File| {
        writeln!(f, "fff9:{} {rssi}", hex::encode(data)).unwrap();
        f.flush().unwrap();
        written.push((rssi, verdict));
        std::thread::sleep(Duration::from_millis(30));
    };
    // 20 of ours, RSSI ramping down from -40.
    for i in 0..20 {
        put(
            eid::encrypt(&key, &pt).to_vec(),
            -40 - i,
            "decrypted",
            &mut f,
        );
    }
    // A pause the report must show as a gap.
    std::thread::sleep(Duration::from_millis(800));
    for i in 0..5 {
        let mut b = pt.to_bytes();
        b[0] = 0x01;
        put(
            eid::encrypt_raw(&key, &b).to_vec(),
            -70 - i,
            "invalid",
            &mut f,
        );
        let mut b = pt.to_bytes();
        b[14] = 7;
        put(
            eid::encrypt_raw(&key, &b).to_vec(),
            -75 - i,
            "invalid",
            &mut f,
        );
        put(
            eid::encrypt(&other, &pt).to_vec(),
            -80 - i,
            "not_ours",
            &mut f,
        );
        let mut long = eid::encrypt(&key, &pt).to_vec();
        long.push(0xff);
        put(long, -85 - i, "decrypted", &mut f);
    }
    written
}

fn run_scan(dir: &Path, secret: &QrSecret, report: &str, events: &str) -> Vec<(i16, &'static str)> {
    let adverts = dir.join("adverts.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
        .args(["scan", "--from-start", "--duration", "4s", "--qr-secret"])
        .arg(hex::encode(secret.expose()))
        .arg("--advert-file")
        .arg(&adverts)
        .arg("--report")
        .arg(dir.join(report))
        .arg("--events-out")
        .arg(dir.join(events))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let written = write_adverts(&adverts, secret);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    written
}

#[test]
fn scan_report_csv_matches_the_medium_and_html_shows_gaps_tunnels_and_violations() {
    let dir = tempfile::tempdir().unwrap();
    let secret = QrSecret::from_bytes([0x42; 16]);
    let written = run_scan(dir.path(), &secret, "report.html", "events.csv");

    let csv = std::fs::read_to_string(dir.path().join("events.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("t_ms,device,uuid16,len,rssi,verdict,domain,routing_id,flags,data")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows.len(),
        written.len(),
        "one row per advert written:\n{csv}"
    );
    for (row, (rssi, verdict)) in rows.iter().zip(&written) {
        assert_eq!(row[1], "medium fff9");
        assert_eq!(row[2], "fff9");
        assert_eq!(row[4], rssi.to_string(), "{row:?}");
        assert_eq!(row[5], *verdict, "{row:?}");
        if *verdict == "decrypted" {
            assert_eq!((row[6], row[7]), ("cable.ua5v.com", "AABBCC"), "{row:?}");
        }
    }
    let flags: Vec<&str> = rows.iter().map(|r| r[8]).collect();
    assert_eq!(
        flags
            .iter()
            .filter(|f| f.contains("reserved bits set"))
            .count(),
        5
    );
    assert_eq!(
        flags
            .iter()
            .filter(|f| **f == "unknown tunnel domain 7")
            .count(),
        5
    );
    assert_eq!(
        flags.iter().filter(|f| f.starts_with("length 21")).count(),
        5
    );
    assert_eq!(flags.iter().filter(|f| f.is_empty()).count(), 25);
    // Times rise, and the pause is there (written 800 ms apart; generous bound).
    let t: Vec<f64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(t.windows(2).all(|w| w[1] >= w[0]), "{t:?}");
    assert!(t[20] - t[19] >= 600.0, "the gap: {} ms", t[20] - t[19]);

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "self-contained"
    );
    assert!(html.contains("40 adverts from 1 device(s)"), "{html}");
    assert!(html.contains("25 decrypted with the QR code"), "{html}");
    assert!(html.contains("15 break the spec"), "{html}");
    assert!(
        html.contains(
            "<td class=\"l\">cable.ua5v.com</td><td>0</td><td class=\"l\">AABBCC</td><td>25</td>"
        ),
        "{html}"
    );
    assert!(
        html.contains("RSSI over time") && html.contains("<svg"),
        "plots inline"
    );
    let gap_row = html
        .lines()
        .find(|l| l.starts_with("<tr><td class=\"l\">medium fff9</td>"))
        .unwrap();
    assert!(gap_row.contains(" ms at "), "the gap is listed: {gap_row}");
    assert!(
        gap_row.contains("<td>-89 / ") && gap_row.contains(" / -40</td>"),
        "{gap_row}"
    );
}

#[test]
fn scan_report_svg_parses_and_has_the_rssi_rate_and_decrypted_series() {
    let dir = tempfile::tempdir().unwrap();
    let secret = QrSecret::from_bytes([0x43; 16]);
    let written = run_scan(dir.path(), &secret, "report.svg", "events.json");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("events.json")).unwrap())
            .unwrap();
    let events = json.as_array().unwrap();
    assert_eq!(events.len(), written.len());
    assert_eq!(events[0]["verdict"]["routing_id"], "AABBCC");
    assert_eq!(events[0]["rssi"], -40);

    let svg = std::fs::read_to_string(dir.path().join("report.svg")).unwrap();
    let doc = test_support::svg::parse(&svg, "report.svg");
    let texts = test_support::svg::texts(&doc);
    for want in [
        "RSSI over time",
        "RSSI (dBm)",
        "RSSI medium fff9",
        "rate medium fff9",
        "decrypted with the QR code",
    ] {
        assert!(texts.iter().any(|t| t == want), "no {want:?} in {texts:?}");
    }
    // The RSSI line has one vertex per advert; the circles mark each one.
    let polylines: Vec<usize> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .count()
        })
        .collect();
    assert!(polylines.contains(&written.len()), "{polylines:?}");
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert!(circles >= written.len(), "{circles}");
}

#[test]
fn report_flags_name_their_formats() {
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
        .args(["scan", "--advert-file", "/nonexistent", "--report", "r.pdf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must end in .html or .svg"));
}
