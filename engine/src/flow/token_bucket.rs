//! Token-bucket rate shaping with exact, integer refill.
//!
//! The level is kept in nano-tokens (10⁻⁹ of a token) and the rate in
//! micro-tokens per second, so one millisecond adds exactly
//! `rate_micro_per_sec` nano-tokens:
//!
//! ```text
//! rate [tokens/s] · 1 ms = rate · 10⁻³ tokens = (rate · 10⁶) · 10⁻⁹ tokens
//! ```
//!
//! Refill is therefore an integer multiply with no rounding and no drift, no
//! matter how often or how rarely the bucket is consulted. The only rounding
//! is once, at construction: the rate is quantized to 10⁻⁶ tokens per second.

use super::FlowError;
use crate::Millis;

/// Nano-tokens per token.
const NANOS_PER_TOKEN: u128 = 1_000_000_000;

/// A token bucket: admits on average `rate_per_sec` tokens per second, with
/// bursts of up to `burst` tokens.
///
/// The bucket starts full at the time of its first use. Refill is continuous
/// (fractions of a token carry over exactly). Time is passed in by the caller;
/// a `now` earlier than one already seen counts as no time passing.
///
/// ```
/// use garner_engine::flow::TokenBucket;
///
/// // 2 rows per second, at most 4 at once.
/// let mut bucket = TokenBucket::new(2.0, 4).unwrap();
/// assert!(bucket.try_take(10_000, 4)); // starts full
/// assert!(!bucket.try_take(10_000, 1)); // empty now
/// assert_eq!(bucket.time_until(10_000, 1), Some(500));
/// assert!(bucket.try_take(10_500, 1));
/// assert_eq!(bucket.available(20_000), 4); // capped at burst
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Refill rate in micro-tokens per second, i.e. nano-tokens per millisecond.
    rate_micro_per_sec: u64,
    /// Capacity in tokens.
    burst: u64,
    /// Current level in nano-tokens; at most `burst · NANOS_PER_TOKEN`.
    level_nanos: u128,
    /// The latest time seen; `None` until first use.
    last: Option<Millis>,
}

impl TokenBucket {
    /// The smallest accepted rate: one token per million seconds.
    pub const MIN_RATE_PER_SEC: f64 = 1e-6;
    /// The largest accepted rate: 10¹² tokens per second.
    pub const MAX_RATE_PER_SEC: f64 = 1e12;

    /// A bucket refilling at `rate_per_sec` tokens per second, holding at most
    /// `burst` tokens.
    ///
    /// The rate is quantized to 10⁻⁶ tokens per second.
    ///
    /// # Errors
    ///
    /// [`FlowError::InvalidRate`] if the rate is NaN, infinite, or outside
    /// [`MIN_RATE_PER_SEC`](Self::MIN_RATE_PER_SEC)..=[`MAX_RATE_PER_SEC`](Self::MAX_RATE_PER_SEC)
    /// (in particular if it is zero or negative); [`FlowError::ZeroBurst`] if
    /// `burst` is 0.
    ///
    /// ```
    /// use garner_engine::flow::{FlowError, TokenBucket};
    /// assert!(TokenBucket::new(0.5, 1).is_ok());
    /// assert!(matches!(TokenBucket::new(0.0, 1), Err(FlowError::InvalidRate { .. })));
    /// assert!(matches!(TokenBucket::new(f64::NAN, 1), Err(FlowError::InvalidRate { .. })));
    /// assert_eq!(TokenBucket::new(10.0, 0).unwrap_err(), FlowError::ZeroBurst);
    /// ```
    pub fn new(rate_per_sec: f64, burst: u64) -> Result<Self, FlowError> {
        if !(Self::MIN_RATE_PER_SEC..=Self::MAX_RATE_PER_SEC).contains(&rate_per_sec) {
            // Also catches NaN: `contains` is false for it.
            return Err(FlowError::InvalidRate { rate_per_sec });
        }
        if burst == 0 {
            return Err(FlowError::ZeroBurst);
        }
        // In range, so the product is in 1..=1e18 and fits a u64.
        let rate_micro_per_sec = (rate_per_sec * 1e6).round() as u64;
        Ok(Self { rate_micro_per_sec, burst, level_nanos: 0, last: None })
    }

    /// The refill rate in tokens per second, as quantized by [`new`](Self::new).
    ///
    /// ```
    /// use garner_engine::flow::TokenBucket;
    /// assert_eq!(TokenBucket::new(0.25, 1).unwrap().rate_per_sec(), 0.25);
    /// ```
    pub fn rate_per_sec(&self) -> f64 {
        self.rate_micro_per_sec as f64 / 1e6
    }

    /// The capacity in tokens.
    ///
    /// ```
    /// use garner_engine::flow::TokenBucket;
    /// assert_eq!(TokenBucket::new(1.0, 7).unwrap().burst(), 7);
    /// ```
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Takes `n` tokens if at least `n` are available at `now`; otherwise takes
    /// nothing. Returns whether the tokens were taken.
    ///
    /// Taking 0 tokens always succeeds; taking more than [`burst`](Self::burst)
    /// never does.
    ///
    /// ```
    /// use garner_engine::flow::TokenBucket;
    /// let mut bucket = TokenBucket::new(1.0, 3).unwrap();
    /// assert!(!bucket.try_take(0, 4)); // more than the burst: never
    /// assert!(bucket.try_take(0, 3));
    /// assert!(!bucket.try_take(999, 1));
    /// assert!(bucket.try_take(1_000, 1));
    /// ```
    pub fn try_take(&mut self, now: Millis, n: u64) -> bool {
        self.refill(now);
        let need = u128::from(n) * NANOS_PER_TOKEN;
        if need <= self.level_nanos {
            self.level_nanos -= need;
            true
        } else {
            false
        }
    }

    /// Milliseconds from `now` until `n` tokens are available: `Some(0)` if
    /// they are available now, `None` if `n` exceeds [`burst`](Self::burst)
    /// and so never will be.
    ///
    /// The answer is exact: at `now + wait`, [`try_take`](Self::try_take)
    /// of `n` succeeds (if nothing else takes tokens meanwhile), and at
    /// `now + wait - 1` it would not. A wait longer than `Millis::MAX`
    /// saturates to `Millis::MAX`.
    ///
    /// ```
    /// use garner_engine::flow::TokenBucket;
    /// let mut bucket = TokenBucket::new(0.5, 2).unwrap(); // one token per 2 s
    /// assert_eq!(bucket.time_until(0, 2), Some(0));
    /// assert!(bucket.try_take(0, 2));
    /// assert_eq!(bucket.time_until(0, 1), Some(2_000));
    /// assert_eq!(bucket.time_until(0, 3), None);
    /// ```
    pub fn time_until(&mut self, now: Millis, n: u64) -> Option<Millis> {
        if n > self.burst {
            return None;
        }
        self.refill(now);
        let need = u128::from(n) * NANOS_PER_TOKEN;
        let deficit = need.saturating_sub(self.level_nanos);
        let wait = deficit.div_ceil(u128::from(self.rate_micro_per_sec));
        Some(Millis::try_from(wait).unwrap_or(Millis::MAX))
    }

    /// Whole tokens available at `now`.
    ///
    /// ```
    /// use garner_engine::flow::TokenBucket;
    /// let mut bucket = TokenBucket::new(10.0, 5).unwrap();
    /// assert_eq!(bucket.available(0), 5);
    /// assert!(bucket.try_take(0, 5));
    /// assert_eq!(bucket.available(250), 2); // 2.5 tokens refilled
    /// ```
    pub fn available(&mut self, now: Millis) -> u64 {
        self.refill(now);
        // At most `burst`, so it fits.
        (self.level_nanos / NANOS_PER_TOKEN) as u64
    }

    /// Brings the level up to date at `now`: full on first use, otherwise
    /// adds the refill for the time since the latest `now` seen.
    fn refill(&mut self, now: Millis) {
        let cap = u128::from(self.burst) * NANOS_PER_TOKEN;
        match self.last {
            None => {
                self.level_nanos = cap;
                self.last = Some(now);
            }
            Some(last) if now > last => {
                // `now > last`, so the difference is positive and fits a u64.
                let elapsed_ms = now.abs_diff(last);
                let gained = u128::from(elapsed_ms).saturating_mul(u128::from(self.rate_micro_per_sec));
                self.level_nanos = self.level_nanos.saturating_add(gained).min(cap);
                self.last = Some(now);
            }
            // Time went backwards or stood still: nothing refills, and the
            // latest time stays, so moving forward again is not counted twice.
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock};
    use proptest::prelude::*;

    #[test]
    fn rejects_bad_parameters() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-9, 1e13] {
            assert!(
                matches!(TokenBucket::new(rate, 1), Err(FlowError::InvalidRate { .. })),
                "rate {rate} should be rejected"
            );
        }
        assert_eq!(TokenBucket::new(1.0, 0).unwrap_err(), FlowError::ZeroBurst);
        let message = TokenBucket::new(-2.0, 1).unwrap_err().to_string();
        assert!(message.contains("-2"), "{message}");
    }

    #[test]
    fn starts_full_at_first_use_not_at_construction() {
        let mut bucket = TokenBucket::new(1.0, 10).unwrap();
        // First use at t=1_000_000: full, not "full plus a million seconds".
        assert_eq!(bucket.available(1_000_000), 10);
        assert!(bucket.try_take(1_000_000, 10));
        assert_eq!(bucket.available(1_000_000), 0);
    }

    #[test]
    fn long_run_at_1000_per_sec_admits_rate_times_time_plus_burst() {
        // A greedy consumer polls every millisecond for 60 simulated seconds,
        // taking a row at a time as long as the bucket allows.
        let clock = ManualClock::new(5_000);
        let mut bucket = TokenBucket::new(1_000.0, 100).unwrap();
        let start = clock.now();
        let mut admitted: u64 = 0;
        for _ in 0..=60_000 {
            while bucket.try_take(clock.now(), 1) {
                admitted += 1;
            }
            clock.advance(1);
        }
        let elapsed_ms = (clock.now() - 1 - start) as u64;
        let expected = elapsed_ms + 100; // 1 token per ms, plus the initial burst
        assert!(admitted.abs_diff(expected) <= 1, "admitted {admitted}, expected {expected}");
    }

    #[test]
    fn fractional_refill_carries_over_between_polls() {
        // 1000/s polled every ms with batches of 3: fractions must not be lost.
        let mut bucket = TokenBucket::new(1_000.0, 3).unwrap();
        let mut admitted = 0u64;
        for t in 0..=30_000 {
            while bucket.try_take(t, 3) {
                admitted += 3;
            }
        }
        // 30_000 refilled + 3 initial, taken in threes.
        assert!(admitted.abs_diff(30_003) <= 3, "admitted {admitted}");
    }

    #[test]
    fn burst_caps_the_level_after_a_long_idle() {
        let mut bucket = TokenBucket::new(1_000.0, 100).unwrap();
        assert!(bucket.try_take(0, 100));
        assert_eq!(bucket.available(3_600_000), 100);
        assert!(bucket.try_take(3_600_000, 100));
        assert!(!bucket.try_take(3_600_000, 1));
    }

    #[test]
    fn rates_below_one_per_second() {
        // One token every 4 seconds.
        let mut bucket = TokenBucket::new(0.25, 1).unwrap();
        assert!(bucket.try_take(0, 1));
        assert_eq!(bucket.time_until(0, 1), Some(4_000));
        assert!(!bucket.try_take(3_999, 1));
        assert_eq!(bucket.time_until(3_999, 1), Some(1));
        assert!(bucket.try_take(4_000, 1));

        // One token per million seconds, the slowest accepted rate.
        let mut slow = TokenBucket::new(TokenBucket::MIN_RATE_PER_SEC, 1).unwrap();
        assert!(slow.try_take(0, 1));
        assert_eq!(slow.time_until(0, 1), Some(1_000_000_000));
    }

    #[test]
    fn huge_n_is_never_admitted_and_does_not_overflow() {
        let mut bucket = TokenBucket::new(TokenBucket::MAX_RATE_PER_SEC, u64::MAX).unwrap();
        assert!(bucket.try_take(0, u64::MAX));
        assert_eq!(bucket.time_until(0, u64::MAX), Some(18_446_744_074)); // ceil(u64::MAX / 1e9 tokens per ms)

        let mut small = TokenBucket::new(1.0, 10).unwrap();
        assert!(!small.try_take(0, u64::MAX));
        assert_eq!(small.time_until(0, u64::MAX), None);
        assert_eq!(small.time_until(0, 11), None);
        assert_eq!(small.available(0), 10, "a refused take leaves the level alone");

        // Waits beyond Millis::MAX saturate.
        let mut glacial = TokenBucket::new(TokenBucket::MIN_RATE_PER_SEC, u64::MAX).unwrap();
        assert!(glacial.try_take(0, u64::MAX));
        assert_eq!(glacial.time_until(0, u64::MAX), Some(Millis::MAX));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut bucket = TokenBucket::new(TokenBucket::MAX_RATE_PER_SEC, 5).unwrap();
        assert!(bucket.try_take(Millis::MIN, 5));
        assert_eq!(bucket.available(Millis::MAX), 5);
    }

    #[test]
    fn time_going_backwards_counts_as_no_time_passing() {
        let mut bucket = TokenBucket::new(1.0, 10).unwrap();
        assert!(bucket.try_take(10_000, 10));
        assert_eq!(bucket.available(5_000), 0, "going back refills nothing");
        // Forward again to 11_000: only the one second since 10_000 counts.
        assert_eq!(bucket.available(11_000), 1);
    }

    #[test]
    fn take_zero_always_succeeds() {
        let mut bucket = TokenBucket::new(1.0, 1).unwrap();
        assert!(bucket.try_take(0, 1));
        assert!(bucket.try_take(0, 0));
        assert_eq!(bucket.time_until(0, 0), Some(0));
    }

    #[test]
    fn time_until_is_exact() {
        let mut bucket = TokenBucket::new(3.0, 5).unwrap(); // 1 token per 333.33 ms
        assert!(bucket.try_take(0, 5));
        let wait = bucket.time_until(0, 2).unwrap();
        assert_eq!(wait, 667);
        assert!(!bucket.clone().try_take(wait - 1, 2));
        assert!(bucket.try_take(wait, 2));
    }

    proptest! {
        #[test]
        fn admitted_never_exceeds_burst_plus_rate_times_elapsed(
            rate_milli in 1u64..5_000_000, // 0.001 .. 5000 tokens/s
            burst in 1u64..1_000,
            steps in prop::collection::vec((-50i64..500, 0u64..200), 1..200),
        ) {
            let rate = rate_milli as f64 / 1_000.0;
            let mut bucket = TokenBucket::new(rate, burst).unwrap();
            let mut now: Millis = 1_000;
            // The bucket starts full at its first use: elapsed counts from there.
            let mut start: Option<Millis> = None;
            let mut latest = Millis::MIN;
            let mut admitted: u128 = 0;
            for (dt, n) in steps {
                now += dt; // may go backwards
                let start = *start.get_or_insert(now);
                latest = latest.max(now);
                if bucket.try_take(now, n) {
                    admitted += u128::from(n);
                }
                // Exact, in nano-tokens: admitted <= burst + rate · elapsed.
                let elapsed_ms = (latest - start) as u128;
                let bound = u128::from(burst) * NANOS_PER_TOKEN
                    + elapsed_ms * u128::from(bucket.rate_micro_per_sec);
                prop_assert!(admitted * NANOS_PER_TOKEN <= bound,
                    "admitted {admitted} over bound {bound} nano-tokens");
                prop_assert!(bucket.available(now) <= burst);
            }
        }
    }
}
