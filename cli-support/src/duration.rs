//! Durations as people write them on a command line, in an environment variable or in a config
//! file: `500ms`, `30s`, `2m`, `1m30s`, `1h`, `90days` (humantime's units, which may be
//! combined, with or without spaces) or a bare number of seconds (`7`, `0.5`). Every binary's
//! duration flags parse with [`parse_duration`] and say so in `--help` with
//! [`DURATION_FORMS`]; [`format_duration`] writes a duration the parser reads back.

use std::time::Duration;

/// The line a binary's `--help` shows about its duration flags, as a literal for `concat!`
/// (a command's long help is often a `const` built from several parts).
#[macro_export]
macro_rules! duration_forms {
    () => {
        "Durations take a unit (500ms, 30s, 2m, 1m30s, 1h, 90days); a bare number is seconds (7, 0.5)."
    };
}

/// The line a binary's `--help` shows about its duration flags ([`duration_forms!`]).
pub const DURATION_FORMS: &str = duration_forms!();

/// A duration flag, environment variable or config value: humantime's forms (`500ms`, `2m`,
/// `1m 30s`, `90days`) or a bare non-negative number of seconds (`7`, `0.5`). The error says
/// what would be accepted; clap shows it after the flag's name.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a duration (a non-negative number of seconds)"));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write e.g. 500ms, 30s, 2m, 1m30s or 1h")
    })
}

/// A duration in units [`parse_duration`] reads back, largest first and days at most
/// (humantime's own formatter writes 90 days as `2months 29days 2h 52m 48s`): `10s`, `2m`,
/// `1m 30s`, `90days`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let days = secs / 86_400;
    let parts = [
        (days, if days == 1 { "day" } else { "days" }),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_string()
    } else {
        text.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_their_combinations_parse() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("2m", 120_000),
            ("1m30s", 90_000),
            ("1m 30s", 90_000),
            ("1h", 3_600_000),
            ("90days", 90 * 86_400_000),
            ("  2m  ", 120_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("18446744073709551615"),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn words_negative_and_non_finite_numbers_are_refused_with_the_accepted_forms() {
        for text in ["soon", "fast", "3 parsecs", "", "2 m s"] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains("is not a duration"), "{text}: {e}");
            assert!(
                e.ends_with("; write e.g. 500ms, 30s, 2m, 1m30s or 1h"),
                "{text}: {e}"
            );
        }
        for text in ["-1", "nan", "inf", "-0.5"] {
            let e = parse_duration(text).unwrap_err();
            assert_eq!(
                e,
                format!("{text:?} is not a duration (a non-negative number of seconds)")
            );
        }
    }

    #[test]
    fn formatted_durations_read_back() {
        for (ms, text) in [
            (500, "500ms"),
            (10_000, "10s"),
            (90_000, "1m 30s"),
            (120_000, "2m"),
            (1_500, "1s 500ms"),
            (86_400_000, "1day"),
            (90 * 86_400_000, "90days"),
            (90 * 86_400_000 + 3_600_000, "90days 1h"),
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
        let odd = Duration::new(3, 1_002_003);
        assert_eq!(parse_duration(&format_duration(odd)), Ok(odd));
    }

    #[test]
    fn the_help_line_names_forms_the_parser_takes() {
        for form in ["500ms", "30s", "2m", "1m30s", "1h", "90days", "7", "0.5"] {
            assert!(DURATION_FORMS.contains(form), "{form}");
            assert!(parse_duration(form).is_ok(), "{form}");
        }
    }
}
