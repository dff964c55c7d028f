//! Moments as the binaries write them: for a person in a listing (`phones list`, phone-sim's
//! stores), `2026-11-28 15:04:05 UTC` ([`human_date`]); in a report or a JSON field meant for
//! programs too (`doctor`, the scan report), RFC 3339 `2026-11-28T15:04:05Z` ([`rfc3339`]).
//! Whole seconds, always UTC, so that two machines' outputs compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-28 15:04:05 UTC` for a Unix time in seconds.
pub fn human_date(unix_secs: u64) -> String {
    human_system_time(UNIX_EPOCH + Duration::from_secs(unix_secs))
}

/// `2026-11-28 15:04:05 UTC` for a system time (sub-seconds dropped).
pub fn human_system_time(at: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// `2026-11-28T15:04:05Z` (RFC 3339, UTC, sub-seconds dropped).
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_show_in_utc_to_the_second() {
        assert_eq!(human_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(human_date(1_795_878_245), "2026-11-28 15:04:05 UTC");
        assert_eq!(
            human_system_time(UNIX_EPOCH + Duration::from_millis(1_795_878_245_999)),
            "2026-11-28 15:04:05 UTC"
        );
    }

    #[test]
    fn reports_get_rfc_3339() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_878_245_999);
        assert_eq!(rfc3339(at), "2026-11-28T15:04:05Z");
    }
}
