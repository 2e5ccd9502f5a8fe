//! Adaptive batch sizing: the seed's rule (seed §14, DESIGN §7) over an
//! EMA-smoothed batch latency.

use super::FlowError;

/// Parameters of an [`AdaptiveBatch`].
///
/// Valid when `1 <= min <= initial <= max`, `target_latency_ms` is finite and
/// positive, and `0 < alpha <= 1`.
///
/// ```
/// use garner_engine::flow::AdaptiveConfig;
/// let config = AdaptiveConfig { min: 64, max: 8192, initial: 1024, target_latency_ms: 20.0, alpha: 0.3 };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// The smallest batch size; at least 1.
    pub min: usize,
    /// The largest batch size.
    pub max: usize,
    /// The starting batch size, within `min..=max`.
    pub initial: usize,
    /// The batch latency to aim for, in milliseconds.
    pub target_latency_ms: f64,
    /// EMA smoothing factor in `(0, 1]`: the weight of the newest sample.
    /// 1 means no smoothing.
    pub alpha: f64,
}

impl AdaptiveConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    ///
    /// [`FlowError::InvalidBatchBounds`], [`FlowError::InvalidTargetLatency`]
    /// or [`FlowError::InvalidAlpha`], for the first violated condition.
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveConfig, FlowError};
    /// let config = AdaptiveConfig { min: 10, max: 5, initial: 8, target_latency_ms: 20.0, alpha: 0.3 };
    /// assert!(matches!(config.validate(), Err(FlowError::InvalidBatchBounds { .. })));
    /// ```
    pub fn validate(&self) -> Result<(), FlowError> {
        let Self { min, max, initial, target_latency_ms, alpha } = *self;
        if !(1 <= min && min <= initial && initial <= max) {
            return Err(FlowError::InvalidBatchBounds { min, initial, max });
        }
        if !(target_latency_ms.is_finite() && target_latency_ms > 0.0) {
            return Err(FlowError::InvalidTargetLatency { target_latency_ms });
        }
        if !(alpha > 0.0 && alpha <= 1.0) {
            // Also catches NaN.
            return Err(FlowError::InvalidAlpha { alpha });
        }
        Ok(())
    }
}

/// Picks the next batch size from the latency of the last batch and how full
/// the downstream queue is.
///
/// After each batch, call [`observe`](Self::observe). The latency is smoothed
/// with an exponential moving average (`ema = alpha·x + (1 − alpha)·ema`, the
/// first sample sets it), then:
///
/// | condition                                   | next size                      |
/// |---------------------------------------------|--------------------------------|
/// | `ema < 0.7·target` and `queue_fill > 0.5`   | `min(⌈size·1.5⌉, max)` (grow)  |
/// | else `ema > target` or `queue_fill < 0.2`   | `max(⌊size/2⌋, min)` (shrink)  |
/// | otherwise                                   | unchanged                      |
///
/// Growth rounds up so that a size of 1 can grow. The size never leaves
/// `min..=max`. [`increments`](Self::increments) and
/// [`decrements`](Self::decrements) count observations that actually changed
/// the size (their sum is the seed's `adaptive_batch_adjustments` metric); a
/// grow at `max` or a shrink at `min` is not counted.
///
/// ```
/// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig};
///
/// let config = AdaptiveConfig { min: 8, max: 100, initial: 40, target_latency_ms: 10.0, alpha: 1.0 };
/// let mut batch = AdaptiveBatch::new(config).unwrap();
/// assert_eq!(batch.observe(2.0, 0.9), 60); // fast and backed up: grow
/// assert_eq!(batch.observe(2.0, 0.9), 90);
/// assert_eq!(batch.observe(2.0, 0.9), 100); // capped at max
/// assert_eq!(batch.observe(15.0, 0.9), 50); // too slow: halve
/// assert_eq!(batch.observe(8.0, 0.4), 50); // in between: keep
/// assert_eq!((batch.increments(), batch.decrements()), (3, 1));
/// ```
#[derive(Debug, Clone)]
pub struct AdaptiveBatch {
    config: AdaptiveConfig,
    size: usize,
    /// The smoothed latency in ms; `None` before the first valid sample.
    ema_ms: Option<f64>,
    increments: u64,
    decrements: u64,
}

impl AdaptiveBatch {
    /// Grow when the smoothed latency is below this fraction of the target…
    const FAST_FRACTION: f64 = 0.7;
    /// …and the queue is fuller than this.
    const BACKED_UP_FILL: f64 = 0.5;
    /// Shrink when the queue is emptier than this (or latency is over target).
    const STARVED_FILL: f64 = 0.2;

    /// A sizer starting at `config.initial`.
    ///
    /// # Errors
    ///
    /// As [`AdaptiveConfig::validate`].
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig, FlowError};
    /// let config = AdaptiveConfig { min: 1, max: 10, initial: 5, target_latency_ms: 5.0, alpha: 0.0 };
    /// assert_eq!(AdaptiveBatch::new(config).unwrap_err(), FlowError::InvalidAlpha { alpha: 0.0 });
    /// ```
    pub fn new(config: AdaptiveConfig) -> Result<Self, FlowError> {
        config.validate()?;
        Ok(Self { config, size: config.initial, ema_ms: None, increments: 0, decrements: 0 })
    }

    /// Records one batch — its latency in ms and the downstream queue's fill
    /// in `0..=1` — and returns the next batch size.
    ///
    /// A latency that is negative or not finite is ignored (the size is
    /// returned unchanged). A fill outside `0..=1` is clamped; a NaN fill
    /// counts as neither backed up nor starved.
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig};
    /// let config = AdaptiveConfig { min: 4, max: 64, initial: 16, target_latency_ms: 10.0, alpha: 0.5 };
    /// let mut batch = AdaptiveBatch::new(config).unwrap();
    /// assert_eq!(batch.observe(1.0, 0.1), 8); // queue nearly empty: shrink
    /// assert_eq!(batch.observe(f64::NAN, 0.1), 8); // ignored
    /// ```
    pub fn observe(&mut self, batch_latency_ms: f64, queue_fill: f64) -> usize {
        if !(batch_latency_ms.is_finite() && batch_latency_ms >= 0.0) {
            return self.size;
        }
        let alpha = self.config.alpha;
        let ema = match self.ema_ms {
            None => batch_latency_ms,
            Some(prev) => alpha * batch_latency_ms + (1.0 - alpha) * prev,
        };
        self.ema_ms = Some(ema);
        let fill = queue_fill.clamp(0.0, 1.0); // NaN stays NaN: every comparison below is false

        let target = self.config.target_latency_ms;
        let next = if ema < Self::FAST_FRACTION * target && fill > Self::BACKED_UP_FILL {
            self.size.saturating_add(self.size.div_ceil(2)).min(self.config.max)
        } else if ema > target || fill < Self::STARVED_FILL {
            (self.size / 2).max(self.config.min)
        } else {
            self.size
        };
        match next.cmp(&self.size) {
            std::cmp::Ordering::Greater => self.increments += 1,
            std::cmp::Ordering::Less => self.decrements += 1,
            std::cmp::Ordering::Equal => {}
        }
        self.size = next;
        next
    }

    /// The current batch size.
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig};
    /// let config = AdaptiveConfig { min: 1, max: 10, initial: 5, target_latency_ms: 5.0, alpha: 1.0 };
    /// assert_eq!(AdaptiveBatch::new(config).unwrap().size(), 5);
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// The smoothed latency in ms, or `None` before the first valid sample.
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig};
    /// let config = AdaptiveConfig { min: 1, max: 10, initial: 5, target_latency_ms: 5.0, alpha: 0.5 };
    /// let mut batch = AdaptiveBatch::new(config).unwrap();
    /// assert_eq!(batch.smoothed_latency_ms(), None);
    /// batch.observe(4.0, 0.3);
    /// batch.observe(2.0, 0.3);
    /// assert_eq!(batch.smoothed_latency_ms(), Some(3.0));
    /// ```
    pub fn smoothed_latency_ms(&self) -> Option<f64> {
        self.ema_ms
    }

    /// How many observations grew the size.
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig};
    /// let config = AdaptiveConfig { min: 1, max: 10, initial: 5, target_latency_ms: 5.0, alpha: 1.0 };
    /// let mut batch = AdaptiveBatch::new(config).unwrap();
    /// batch.observe(1.0, 0.9);
    /// assert_eq!(batch.increments(), 1);
    /// ```
    pub fn increments(&self) -> u64 {
        self.increments
    }

    /// How many observations shrank the size.
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig};
    /// let config = AdaptiveConfig { min: 1, max: 10, initial: 5, target_latency_ms: 5.0, alpha: 1.0 };
    /// let mut batch = AdaptiveBatch::new(config).unwrap();
    /// batch.observe(9.0, 0.9);
    /// assert_eq!(batch.decrements(), 1);
    /// ```
    pub fn decrements(&self) -> u64 {
        self.decrements
    }

    /// The configuration this sizer was built with.
    ///
    /// ```
    /// use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig};
    /// let config = AdaptiveConfig { min: 1, max: 10, initial: 5, target_latency_ms: 5.0, alpha: 1.0 };
    /// assert_eq!(*AdaptiveBatch::new(config).unwrap().config(), config);
    /// ```
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(min: usize, initial: usize, max: usize, alpha: f64) -> AdaptiveConfig {
        AdaptiveConfig { min, max, initial, target_latency_ms: 100.0, alpha }
    }

    #[test]
    fn rejects_bad_config() {
        let bad_bounds = [(0, 0, 10), (5, 4, 10), (5, 11, 10), (10, 10, 9)];
        for (min, initial, max) in bad_bounds {
            assert_eq!(
                AdaptiveBatch::new(config(min, initial, max, 0.5)).unwrap_err(),
                FlowError::InvalidBatchBounds { min, initial, max }
            );
        }
        for target in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let c = AdaptiveConfig { target_latency_ms: target, ..config(1, 1, 1, 0.5) };
            assert!(matches!(AdaptiveBatch::new(c), Err(FlowError::InvalidTargetLatency { .. })));
        }
        for alpha in [0.0, -0.1, 1.01, f64::NAN] {
            assert!(matches!(
                AdaptiveBatch::new(config(1, 1, 1, alpha)),
                Err(FlowError::InvalidAlpha { .. })
            ));
        }
        // Edges that are allowed: min == initial == max, alpha == 1.
        assert!(AdaptiveBatch::new(config(1, 1, 1, 1.0)).is_ok());
    }

    #[test]
    fn fast_and_backed_up_grows_by_half_capped_at_max() {
        let mut batch = AdaptiveBatch::new(config(10, 100, 200, 1.0)).unwrap();
        assert_eq!(batch.observe(69.0, 0.51), 150);
        assert_eq!(batch.observe(10.0, 1.0), 200, "225 is capped at max");
        assert_eq!(batch.observe(10.0, 1.0), 200);
        assert_eq!(batch.increments(), 2, "a grow at max is not counted");
    }

    #[test]
    fn growth_rounds_up_so_size_one_can_grow() {
        let mut batch = AdaptiveBatch::new(config(1, 1, 10, 1.0)).unwrap();
        let sizes: Vec<_> = (0..5).map(|_| batch.observe(1.0, 0.9)).collect();
        assert_eq!(sizes, [2, 3, 5, 8, 10]);
    }

    #[test]
    fn slow_latency_halves_floored_at_min() {
        let mut batch = AdaptiveBatch::new(config(30, 100, 200, 1.0)).unwrap();
        // Over target shrinks even with a full queue.
        assert_eq!(batch.observe(101.0, 0.9), 50);
        assert_eq!(batch.observe(500.0, 0.9), 30, "25 is floored at min");
        assert_eq!(batch.observe(500.0, 0.9), 30);
        assert_eq!(batch.decrements(), 2, "a shrink at min is not counted");
    }

    #[test]
    fn starved_queue_halves_even_when_fast() {
        let mut batch = AdaptiveBatch::new(config(1, 100, 200, 1.0)).unwrap();
        assert_eq!(batch.observe(1.0, 0.19), 50);
        assert_eq!(batch.observe(1.0, 0.0), 25);
    }

    #[test]
    fn between_thresholds_keeps_the_size() {
        let mut batch = AdaptiveBatch::new(config(1, 100, 200, 1.0)).unwrap();
        // Fast but queue only half full (the grow rule needs > 0.5).
        assert_eq!(batch.observe(10.0, 0.5), 100);
        // Backed up, but latency between 0.7·target and target.
        assert_eq!(batch.observe(70.0, 0.9), 100);
        assert_eq!(batch.observe(100.0, 0.9), 100, "exactly at target is not over it");
        // Queue exactly at 0.2 is not starved.
        assert_eq!(batch.observe(80.0, 0.2), 100);
        assert_eq!((batch.increments(), batch.decrements()), (0, 0));
    }

    #[test]
    fn first_sample_sets_the_ema_then_it_smooths() {
        let mut batch = AdaptiveBatch::new(config(1, 100, 200, 0.25)).unwrap();
        batch.observe(40.0, 0.3);
        assert_eq!(batch.smoothed_latency_ms(), Some(40.0));
        batch.observe(80.0, 0.3);
        assert_eq!(batch.smoothed_latency_ms(), Some(50.0)); // 0.25·80 + 0.75·40
    }

    #[test]
    fn single_latency_spike_with_small_alpha_does_not_halve() {
        let mut batch = AdaptiveBatch::new(config(1, 100, 1_000, 0.1)).unwrap();
        // Steady at 50 ms with a moderately full queue: no change.
        for _ in 0..10 {
            assert_eq!(batch.observe(50.0, 0.4), 100);
        }
        // One 400 ms spike: ema = 0.1·400 + 0.9·50 = 85 < 100, so no halving.
        assert_eq!(batch.observe(400.0, 0.4), 100);
        assert_eq!(batch.decrements(), 0);

        // Without smoothing the same spike halves.
        let mut raw = AdaptiveBatch::new(config(1, 100, 1_000, 1.0)).unwrap();
        raw.observe(50.0, 0.4);
        assert_eq!(raw.observe(400.0, 0.4), 50);
    }

    #[test]
    fn sustained_slowness_eventually_halves_with_small_alpha() {
        let mut batch = AdaptiveBatch::new(config(1, 100, 1_000, 0.1)).unwrap();
        batch.observe(50.0, 0.4);
        let mut steps = 0;
        while batch.observe(400.0, 0.4) == 100 {
            steps += 1;
            assert!(steps < 10, "should halve within a few samples");
        }
        assert_eq!(batch.size(), 50);
    }

    #[test]
    fn invalid_samples_are_ignored_and_fill_is_clamped() {
        let mut batch = AdaptiveBatch::new(config(1, 100, 1_000, 0.5)).unwrap();
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(batch.observe(bad, 0.0), 100);
        }
        assert_eq!(batch.smoothed_latency_ms(), None);
        assert_eq!(batch.observe(10.0, 7.0), 150, "fill 7.0 clamps to 1.0: backed up");
        assert_eq!(batch.observe(10.0, -3.0), 75, "fill -3.0 clamps to 0.0: starved");
        assert_eq!(batch.observe(10.0, f64::NAN), 75, "NaN fill is neither");
    }

    #[test]
    fn counters_count_actual_changes() {
        let mut batch = AdaptiveBatch::new(config(10, 40, 80, 1.0)).unwrap();
        batch.observe(10.0, 0.9); // 60
        batch.observe(10.0, 0.9); // 80
        batch.observe(10.0, 0.9); // 80, at max
        batch.observe(200.0, 0.9); // 40
        batch.observe(80.0, 0.3); // 40, in between
        batch.observe(200.0, 0.9); // 20
        assert_eq!(batch.size(), 20);
        assert_eq!((batch.increments(), batch.decrements()), (2, 2));
    }

    proptest! {
        #[test]
        fn size_stays_within_bounds(
            min in 1usize..50,
            span in 0usize..500,
            initial_offset in 0usize..500,
            alpha in 0.01f64..=1.0,
            samples in prop::collection::vec((0.0f64..400.0, -0.5f64..1.5), 0..200),
        ) {
            let max = min + span;
            let initial = min + initial_offset.min(span);
            let mut batch = AdaptiveBatch::new(config(min, initial, max, alpha)).unwrap();
            let mut changes = 0u64;
            for (latency, fill) in samples {
                let before = batch.size();
                let next = batch.observe(latency, fill);
                prop_assert!((min..=max).contains(&next), "{next} outside {min}..={max}");
                prop_assert_eq!(next, batch.size());
                changes += u64::from(next != before);
            }
            prop_assert_eq!(changes, batch.increments() + batch.decrements());
        }
    }
}
