//! How long to wait before trying a busy relay again ([`RelayError::is_busy`]). A relay that
//! holds too much for peers not yet connected closes a new tunnel with 1013 ("try again later",
//! RFC 6455 §7.4.1); one that is full or shutting down answers the upgrade with 503, perhaps
//! with `Retry-After`. The desktop's linked sign-in then starts its contact afresh
//! (docs/PROTOCOL.md#flow-linked), and the phone opens its tunnel again, after a [`Backoff`]
//! wait, for as long as its time allows. Pure: the time left, the randomness and the relay's
//! `Retry-After` are passed in (docs/STYLE.md#purity), so the policy is tested without clocks
//! or sockets.
//!
//! [`RelayError::is_busy`]: crate::RelayError::is_busy

use std::time::Duration;

/// Jittered exponential waits: the step starts at [`Backoff::FIRST`] and doubles after each
/// wait up to [`Backoff::CAP`]; each wait is between half the step and the whole step, so that
/// clients turned away together do not come back together. A relay's `Retry-After` is a floor
/// for the wait, itself capped at [`Backoff::MAX_ASKED`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    step: Duration,
}

impl Backoff {
    /// The first step.
    pub const FIRST: Duration = Duration::from_millis(250);
    /// The largest step.
    pub const CAP: Duration = Duration::from_secs(4);
    /// The longest wait a relay's `Retry-After` can ask for; a longer one is cut to this, and
    /// the client gives up when even that would outlast its time.
    pub const MAX_ASKED: Duration = Duration::from_secs(10);

    /// A backoff before its first wait.
    pub const fn new() -> Self {
        Self { step: Self::FIRST }
    }

    /// The wait before the next try, with `jitter` in `[0, 1)` choosing where in the step it
    /// falls and `asked` the relay's `Retry-After` ([`RelayError::retry_after`]), which the
    /// wait is at least (up to [`Backoff::MAX_ASKED`]); `None` when that wait would not end
    /// before `left` does (give up now rather than try once more after the deadline).
    ///
    /// [`RelayError::retry_after`]: crate::RelayError::retry_after
    pub fn next_wait(
        &mut self,
        left: Duration,
        jitter: f64,
        asked: Option<Duration>,
    ) -> Option<Duration> {
        let half = self.step / 2;
        let stepped = half + half.mul_f64(jitter.clamp(0.0, 1.0));
        let wait = stepped.max(asked.unwrap_or_default().min(Self::MAX_ASKED));
        if wait >= left {
            return None;
        }
        self.step = (self.step * 2).min(Self::CAP);
        Some(wait)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// A uniform fraction in `[0, 1)` from 32 random bits, for [`Backoff::next_wait`].
pub fn jitter(bits: u32) -> f64 {
    f64::from(bits) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(600);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn waits_double_from_250_ms_up_to_the_cap() {
        let mut b = Backoff::new();
        let lowest: Vec<_> = (0..7)
            .map(|_| b.next_wait(LONG, 0.0, None).unwrap())
            .collect();
        assert_eq!(
            lowest,
            [
                ms(125),
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(2000),
                ms(2000)
            ]
        );
        let mut b = Backoff::new();
        let highest: Vec<_> = (0..7)
            .map(|_| b.next_wait(LONG, 1.0, None).unwrap())
            .collect();
        assert_eq!(
            highest,
            [
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(4000),
                ms(4000)
            ]
        );
    }

    #[test]
    fn jitter_places_the_wait_between_half_the_step_and_the_step() {
        let mut b = Backoff::new();
        assert_eq!(
            b.next_wait(LONG, 0.5, None),
            Some(ms(187) + Duration::from_micros(500))
        );
        assert_eq!(b.next_wait(LONG, 0.5, None), Some(ms(375)));
        assert_eq!(Backoff::new().next_wait(LONG, -3.0, None), Some(ms(125)));
        assert_eq!(Backoff::new().next_wait(LONG, 7.0, None), Some(ms(250)));
    }

    #[test]
    fn a_wait_that_would_outlast_the_time_left_is_not_taken() {
        let mut b = Backoff::new();
        assert_eq!(
            b.next_wait(ms(125), 0.0, None),
            None,
            "it would end at the deadline"
        );
        assert_eq!(b, Backoff::new(), "giving up does not advance the step");
        assert_eq!(b.next_wait(ms(126), 0.0, None), Some(ms(125)));
        assert_eq!(b.next_wait(Duration::ZERO, 0.0, None), None);
    }

    #[test]
    fn retry_after_is_a_floor_for_the_wait_up_to_its_cap() {
        let mut b = Backoff::new();
        assert_eq!(b.next_wait(LONG, 0.0, Some(ms(1000))), Some(ms(1000)));
        assert_eq!(
            b.next_wait(LONG, 1.0, Some(ms(100))),
            Some(ms(500)),
            "a shorter ask leaves the step's wait"
        );
        assert_eq!(
            b.next_wait(LONG, 0.0, Some(Duration::from_secs(3600))),
            Some(Backoff::MAX_ASKED),
            "an hour is cut to the cap"
        );
        let mut b = Backoff::new();
        assert_eq!(
            b.next_wait(Duration::from_secs(5), 0.0, Some(Duration::from_secs(30))),
            None,
            "even the capped ask outlasts the time left"
        );
        assert_eq!(b, Backoff::new());
    }

    #[test]
    fn jitter_from_random_bits_stays_below_one() {
        assert_eq!(jitter(0), 0.0);
        assert!(jitter(u32::MAX) < 1.0);
        assert_eq!(jitter(1 << 31), 0.5);
    }
}
