//! Durations and times as people write and read them: duration flags (`120s`, `2m`,
//! `1m30s`, or a bare number of seconds), durations in messages (`60 s`, `250 ms`) and
//! dates in listings (`2026-11-28 15:04:05 UTC`). A leaf module: it uses nothing else here.

use std::time::Duration;

/// A duration flag: `120s`, `2m`, `1m30s`, `500ms` (humantime), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(n)
            .map_err(|_| format!("{s:?} is not a duration (a non-negative number of seconds)"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 120s, 2m or 1m30s"))
}

/// `60 s`, `1.5 s`, `250 ms`.
pub fn format_secs(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `2026-11-28 15:04:05 UTC` for a Unix time in seconds.
pub fn human_time(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
        .replace('Z', " UTC")
}
