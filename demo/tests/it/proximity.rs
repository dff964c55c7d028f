//! `hybrid-demo --proximity` on the simulated medium: the per-ceremony numbers (adverts
//! written, their RSSI, success) match the advert file line for line, ceremonies whose adverts
//! were all below `--min-rssi` failed and those that started above it succeeded, and the SVG
//! and HTML reports carry the expected series.

use std::time::Duration;

use hybrid_demo::proximity::{experiment, ProximityArgs, CSV_HEADER};
use hybrid_protocol::medium::AdvertLine;
use phone_sim::medium::RssiProfile;

fn args(profile: &str, ceremonies: usize) -> ProximityArgs {
    ProximityArgs {
        proximity: true,
        ceremonies,
        rssi_profile: RssiProfile::parse(profile).unwrap(),
        min_rssi: -75,
        advert_timeout: Duration::from_secs(1),
        report: None,
        events_out: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_below_the_threshold_fails_and_the_report_matches_the_medium() {
    let dir = tempfile::tempdir().unwrap();
    // -70, -72, -74, -75 (rounded), -77, … -90: four ceremonies start at or above -75.
    let e = experiment(
        dir.path().to_path_buf(),
        &args("ramp:-70:-90:12", 6),
        Duration::from_millis(20),
    )
    .await
    .unwrap();
    assert_eq!(e.ceremonies.len(), 6);

    // What the medium holds, line for line, is what the ceremonies say was written.
    let file = std::fs::read_to_string(dir.path().join("adverts.txt")).unwrap();
    let on_medium: Vec<i16> = file
        .lines()
        .map(|l| l.parse::<AdvertLine>().unwrap().rssi.unwrap())
        .collect();
    let reported: Vec<i16> = e
        .ceremonies
        .iter()
        .flat_map(|c| c.written.clone())
        .collect();
    assert_eq!(on_medium, reported);
    // … and it is the ramp, advert by advert.
    let ramp: Vec<i16> = (0..on_medium.len())
        .map(|n| (-70.0 - 20.0 * (n as f64 / 11.0).min(1.0)).round() as i16)
        .collect();
    assert_eq!(on_medium, ramp);

    for c in &e.ceremonies {
        let first = c.first_rssi().expect("the phone advertised");
        let max = *c.written.iter().max().unwrap();
        if max < -75 {
            assert!(
                !c.success,
                "nothing at or above -75 dBm, yet it succeeded: {c:?}"
            );
            assert!(
                c.error
                    .as_deref()
                    .unwrap()
                    .contains("no advert matched this QR code"),
                "{c:?}"
            );
        }
        if first >= -75 {
            assert!(c.success, "the first advert was strong enough: {c:?}");
            assert!(c.time_to_advert.unwrap() <= Duration::from_secs(1));
        }
    }
    // Ceremonies 0..=3 start at -70…-75 (fewer if one wrote two adverts); the rest below.
    let ok = e.ceremonies.iter().filter(|c| c.success).count();
    assert!((2..=4).contains(&ok), "{ok} succeeded");

    // CSV: one row per ceremony with the same numbers.
    let csv = e.csv();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    for (row, c) in lines.zip(&e.ceremonies) {
        let f: Vec<&str> = row.splitn(8, ',').collect();
        assert_eq!(f[0], c.index.to_string());
        assert_eq!(f[1], c.first_rssi().unwrap().to_string());
        assert_eq!(f[2], c.written.iter().max().unwrap().to_string());
        assert_eq!(f[3], c.written.len().to_string());
        assert_eq!(
            f[4],
            c.written.iter().filter(|&&r| r >= -75).count().to_string()
        );
        assert_eq!(f[5], c.success.to_string());
    }

    // SVG: parses, with both plots' series.
    let svg = e.svg().unwrap();
    let doc = test_support::svg::parse(&svg, "the experiment's SVG");
    let texts = test_support::svg::texts(&doc);
    for want in [
        "time to advert against RSSI",
        "success rate against RSSI (5 dB bins)",
        "success rate (%)",
        "succeeded",
        "failed (advert timeout)",
        "min RSSI -75 dBm",
    ] {
        assert!(texts.iter().any(|t| t == want), "no {want:?} in {texts:?}");
    }
    let bins = e.bins();
    let polylines: Vec<usize> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| n.attribute("points").unwrap().split_whitespace().count())
        .collect();
    assert!(
        polylines.contains(&bins.len()),
        "the rate line has one point per bin: {polylines:?}"
    );
    assert_eq!(
        bins.iter().map(|b| b.1).sum::<usize>(),
        6,
        "every ceremony is in a bin"
    );
    let html = e.html().unwrap();
    assert!(html.contains(&format!("{ok} of 6 succeeded")), "{html}");
    assert!(
        html.contains(&format!("RSSI profile <code>{}</code>", e.profile))
            && !html.contains(&format!("{:?}", e.profile)),
        "the profile as spelled on the command line, not a Rust value: {html}"
    );
}

#[test]
fn the_binary_runs_a_short_experiment_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-demo"))
        .args([
            "--proximity",
            "--ceremonies",
            "3",
            "--rssi-profile",
            "fixed:-60",
        ])
        .args(["--advert-interval", "20", "--dir"])
        .arg(dir.path())
        .arg("--report")
        .arg(dir.path().join("p.svg"))
        .arg("--events-out")
        .arg(dir.path().join("p.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "3 of 3 ceremonies succeeded with --min-rssi -75 and RSSI profile fixed:-60 ("
        ),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.contains(",-60,-60,") && l.contains(",true,")),
        "{csv}"
    );
    test_support::svg::parse(
        &std::fs::read_to_string(dir.path().join("p.svg")).unwrap(),
        "p.svg",
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-demo"))
        .args(["--proximity", "--rssi-profile", "loud:3"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an RSSI profile"));
}
