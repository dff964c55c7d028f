//! Durations as the library's messages show them (`60 s`, `1.5 s`, `250 ms`): timeouts in
//! errors, waits in progress lines. A leaf module: it uses nothing else here. Duration flags and
//! dates in listings are `cli_support`'s, shared by every binary.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_waits_in_milliseconds_and_longer_ones_in_seconds() {
        assert_eq!(format_secs(Duration::from_millis(250)), "250 ms");
        assert_eq!(format_secs(Duration::from_secs(60)), "60 s");
        assert_eq!(format_secs(Duration::from_millis(1500)), "1.5 s");
    }
}
