//! How long to wait before trying a busy relay again. A relay that holds too much for peers
//! not yet connected closes a new tunnel with 1013 ("try again later", RFC 6455 §7.4.1); a
//! linked sign-in then starts its contact afresh (docs/PROTOCOL.md#flow-linked) after a
//! [`Backoff`] wait, for as long as its timeout allows. Pure: the time left and the randomness
//! are passed in (docs/STYLE.md#purity), so the policy is tested without clocks or sockets.

use std::time::Duration;

/// Jittered exponential waits: the step starts at [`Backoff::FIRST`] and doubles after each
/// wait up to [`Backoff::CAP`]; each wait is between half the step and the whole step, so that
/// desktops turned away together do not come back together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    step: Duration,
}

impl Backoff {
    /// The first step.
    pub(crate) const FIRST: Duration = Duration::from_millis(250);
    /// The largest step.
    pub(crate) const CAP: Duration = Duration::from_secs(4);

    /// A backoff before its first wait.
    pub(crate) const fn new() -> Self {
        Self { step: Self::FIRST }
    }

    /// The wait before the next try, with `jitter` in `[0, 1)` choosing where in the step it
    /// falls; `None` when that wait would not end before `left` does (give up now rather than
    /// try once more after the deadline).
    pub(crate) fn next_wait(&mut self, left: Duration, jitter: f64) -> Option<Duration> {
        let half = self.step / 2;
        let wait = half + half.mul_f64(jitter.clamp(0.0, 1.0));
        if wait >= left {
            return None;
        }
        self.step = (self.step * 2).min(Self::CAP);
        Some(wait)
    }
}

/// A uniform fraction in `[0, 1)` from 32 random bits, for [`Backoff::next_wait`].
pub(crate) fn jitter(bits: u32) -> f64 {
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
        let lowest: Vec<_> = (0..7).map(|_| b.next_wait(LONG, 0.0).unwrap()).collect();
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
        let highest: Vec<_> = (0..7).map(|_| b.next_wait(LONG, 1.0).unwrap()).collect();
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
            b.next_wait(LONG, 0.5),
            Some(ms(187) + Duration::from_micros(500))
        );
        assert_eq!(b.next_wait(LONG, 0.5), Some(ms(375)));
        assert_eq!(Backoff::new().next_wait(LONG, -3.0), Some(ms(125)));
        assert_eq!(Backoff::new().next_wait(LONG, 7.0), Some(ms(250)));
    }

    #[test]
    fn a_wait_that_would_outlast_the_time_left_is_not_taken() {
        let mut b = Backoff::new();
        assert_eq!(
            b.next_wait(ms(125), 0.0),
            None,
            "it would end at the deadline"
        );
        assert_eq!(b, Backoff::new(), "giving up does not advance the step");
        assert_eq!(b.next_wait(ms(126), 0.0), Some(ms(125)));
        assert_eq!(b.next_wait(Duration::ZERO, 0.0), None);
    }

    #[test]
    fn jitter_from_random_bits_stays_below_one() {
        assert_eq!(jitter(0), 0.0);
        assert!(jitter(u32::MAX) < 1.0);
        assert_eq!(jitter(1 << 31), 0.5);
    }
}
