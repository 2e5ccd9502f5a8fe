//! Plain counters an accumulator reports; the engine's telemetry turns them
//! into metrics (`accumulator_active_keys`, ...).

/// Counters of one accumulator instance since it was built.
///
/// Every fragment row pushed is counted in `fragments_in`; of those, rows with
/// a null key are counted in `null_key_fragments`, rows whose variable is not
/// required (or null) in `unknown_var_fragments`, and repeats of a variable
/// within one key generation in `duplicate_fragments`. Every other row set one
/// variable of one output row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccumStats {
    /// Fragment rows pushed.
    pub fragments_in: u64,
    /// Rows emitted (complete + partial).
    pub rows_out: u64,
    /// Rows emitted with every required variable (`acc_reason = "complete"`).
    pub complete: u64,
    /// Rows emitted with some variable missing (reason `ttl`, `max_latency` or
    /// `end_of_input`).
    pub partial: u64,
    /// Key generations currently held (not yet emitted).
    pub active_keys: u64,
    /// Generations evicted to respect `max_keys` (emitted as partials,
    /// reason `evicted`; also counted in `partial`).
    pub evicted: u64,
    /// Late fragments (older than the watermark minus the allowed lateness,
    /// of a closed window, or without an event time for a window
    /// accumulator), sent to the dead-letter output.
    pub late: u64,
    /// Fragments of a completed key rejected by `after_complete = drop`,
    /// sent to the dead-letter output.
    pub dropped_after_complete: u64,
    /// Generations expired by the TTL with `partial_flush` off, sent to the
    /// dead-letter output instead of the output.
    pub expired_dead_lettered: u64,
    /// Completed keys currently remembered for `after_complete = drop`
    /// (until their deadline, or the end of input without one).
    pub completed_marks: u64,
    /// Generations currently spilled out of memory.
    pub spilled_keys: u64,
    /// Generations written to the spill store.
    pub spill_writes: u64,
    /// Generations read back from the spill store.
    pub spill_reads: u64,
    /// Spilled generations that could not be read back (emitted with
    /// reason `corrupted`).
    pub spill_corrupted: u64,
    /// Generations the spill store had no room for (emitted as partials
    /// with reason `evicted`).
    pub spill_failures: u64,
    /// Bytes the spill store holds.
    pub spilled_bytes: u64,
    /// Fragments that repeated a variable already present in their key
    /// generation (kept or overwritten according to the repeat policy).
    pub duplicate_fragments: u64,
    /// Fragments whose variable is not required, or null; they are ignored.
    pub unknown_var_fragments: u64,
    /// Fragments with a null in a key column; they are ignored.
    pub null_key_fragments: u64,
    /// Approximate bytes held by the state: value and key arenas, per-slot
    /// vectors, the key table and the deadline heap (capacities, not lengths).
    pub bytes_held: u64,
    /// Emitted rows by completeness (present / required variables), in
    /// tenths: bucket `i` holds rows with `i/10 <= completeness < (i+1)/10`,
    /// bucket 10 the complete ones.
    pub completeness: [u64; 11],
    /// Time from a key generation's first fragment to its emission, in
    /// milliseconds of the accumulator's time (event or processing).
    pub latency: LatencyHistogram,
}

/// A histogram of millisecond latencies in power-of-two buckets: bucket 0
/// holds 0 ms, bucket `i` holds `[2^(i-1), 2^i)` ms. Constant size, cheap to
/// record and to merge; quantiles are exact to within a factor of two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: [u64; LATENCY_BUCKETS],
}

const LATENCY_BUCKETS: usize = 48;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { buckets: [0; LATENCY_BUCKETS] }
    }
}

impl LatencyHistogram {
    /// Counts one latency of `ms` milliseconds (negative counts as 0).
    #[inline]
    pub fn record(&mut self, ms: i64) {
        let ms = ms.max(0) as u64;
        let bucket = (u64::BITS - ms.leading_zeros()) as usize;
        self.buckets[bucket.min(LATENCY_BUCKETS - 1)] += 1;
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// An upper bound of the `q` quantile (`0.0..=1.0`) in milliseconds:
    /// the top of the bucket it falls in; `None` when nothing was counted.
    ///
    /// ```
    /// use garner_accum::LatencyHistogram;
    /// let mut h = LatencyHistogram::default();
    /// for ms in [0, 3, 5, 6, 7, 100] {
    ///     h.record(ms);
    /// }
    /// assert_eq!(h.quantile(0.5), Some(7)); // 5..=7 share the bucket [4, 8)
    /// assert_eq!(h.quantile(1.0), Some(127));
    /// ```
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(if i == 0 { 0 } else { (1u64 << i) - 1 });
            }
        }
        None
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }
}

impl AccumStats {
    /// Fragments that contributed to some output row (everything not ignored).
    pub fn applied_fragments(&self) -> u64 {
        self.fragments_in - self.null_key_fragments - self.unknown_var_fragments
    }

    /// Adds `other`'s counts: the figures of several instances (shards) of
    /// one accumulator stage.
    pub fn merge(&mut self, other: &AccumStats) {
        self.fragments_in += other.fragments_in;
        self.rows_out += other.rows_out;
        self.complete += other.complete;
        self.partial += other.partial;
        self.active_keys += other.active_keys;
        self.evicted += other.evicted;
        self.late += other.late;
        self.dropped_after_complete += other.dropped_after_complete;
        self.expired_dead_lettered += other.expired_dead_lettered;
        self.completed_marks += other.completed_marks;
        self.spilled_keys += other.spilled_keys;
        self.spill_writes += other.spill_writes;
        self.spill_reads += other.spill_reads;
        self.spill_corrupted += other.spill_corrupted;
        self.spill_failures += other.spill_failures;
        self.spilled_bytes += other.spilled_bytes;
        self.duplicate_fragments += other.duplicate_fragments;
        self.unknown_var_fragments += other.unknown_var_fragments;
        self.null_key_fragments += other.null_key_fragments;
        self.bytes_held += other.bytes_held;
        for (a, b) in self.completeness.iter_mut().zip(&other.completeness) {
            *a += b;
        }
        self.latency.merge(&other.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_fragments_exclude_the_ignored_ones() {
        let s = AccumStats {
            fragments_in: 10,
            null_key_fragments: 2,
            unknown_var_fragments: 3,
            ..Default::default()
        };
        assert_eq!(s.applied_fragments(), 5);
    }

    #[test]
    fn merge_adds_every_count() {
        let one = AccumStats {
            fragments_in: 4,
            complete: 1,
            partial: 1,
            active_keys: 2,
            bytes_held: 10,
            ..Default::default()
        };
        let mut sum = one.clone();
        sum.merge(&one);
        assert_eq!(
            sum,
            AccumStats {
                fragments_in: 8,
                complete: 2,
                partial: 2,
                active_keys: 4,
                bytes_held: 20,
                ..Default::default()
            }
        );
    }
}
