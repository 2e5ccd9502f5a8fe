//! Histograms: the exported shape ([`Histogram`]) and the per-batch latency
//! recorder the engines keep per stage ([`BatchLatency`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// A histogram as exported: finite upper bounds and one count per bucket.
///
/// `counts[i]` holds the observations that fell in bucket `i` (not
/// cumulative); the bucket after the last bound (`counts[bounds.len()]`)
/// holds the rest (`le="+Inf"`). The Prometheus export makes the counts
/// cumulative.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Upper bounds of the finite buckets, ascending.
    pub bounds: Vec<f64>,
    /// Observations per bucket; one more entry than `bounds`.
    pub counts: Vec<u64>,
    /// Sum of the observations (see each metric for how exact it is).
    pub sum: f64,
}

impl Histogram {
    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The cumulative counts, one per bound and a last one for `+Inf`
    /// (which equals [`count`](Self::count)).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |acc, &n| {
                *acc += n;
                Some(*acc)
            })
            .collect()
    }
}

/// Buckets of [`BatchLatency`]: bucket 0 holds `[0, 1)` µs, bucket `i`
/// holds `[2^(i-1), 2^i)` µs, the last one everything from 2^26 µs (67 s).
pub const LATENCY_BUCKETS: usize = 28;

/// The bucket of a latency of `nanos`.
#[inline]
fn bucket_of(nanos: u64) -> usize {
    let micros = nanos / 1_000;
    ((u64::BITS - micros.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
}

/// Time spent per batch in a stage's own code, in power-of-two microsecond
/// buckets: constant size, one add to record, cheap to merge. What the
/// engines record into [`StageReport::latency`](crate::StageReport::latency);
/// exported as the seed's `stage_latency` histogram (`stage_latency_bucket`).
///
/// ```
/// use std::time::Duration;
/// use garner_engine::telemetry::BatchLatency;
///
/// let mut l = BatchLatency::default();
/// l.record(Duration::from_micros(3)); // bucket [2, 4) µs
/// l.record(Duration::from_micros(700)); // bucket [512, 1024) µs
/// assert_eq!(l.count(), 2);
/// let h = l.histogram();
/// assert_eq!(h.cumulative()[2], 1); // le = 4 µs
/// assert_eq!(h.bounds[2], 4e-6);
/// assert!((h.sum - 703e-6).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLatency {
    buckets: [u64; LATENCY_BUCKETS],
    sum_nanos: u64,
}

impl Default for BatchLatency {
    fn default() -> Self {
        Self { buckets: [0; LATENCY_BUCKETS], sum_nanos: 0 }
    }
}

impl BatchLatency {
    /// Counts one batch that took `took`.
    #[inline]
    pub fn record(&mut self, took: std::time::Duration) {
        let nanos = took.as_nanos().min(u64::MAX as u128) as u64;
        self.buckets[bucket_of(nanos)] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }

    /// Batches counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Total time of the batches counted.
    pub fn sum(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.sum_nanos)
    }

    /// Adds `other`'s counts (another instance of the same stage).
    pub fn merge(&mut self, other: &BatchLatency) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
    }

    /// The exported shape, in seconds: bounds 1 µs, 2 µs, 4 µs, … 2^26 µs.
    pub fn histogram(&self) -> Histogram {
        Histogram {
            bounds: (0..LATENCY_BUCKETS - 1).map(|i| (1u64 << i) as f64 * 1e-6).collect(),
            counts: self.buckets.to_vec(),
            sum: self.sum_nanos as f64 * 1e-9,
        }
    }
}

/// [`BatchLatency`] for a counter that one actor writes and snapshots read:
/// stores are plain load-add-store (see `runtime::actor::bump`), since one
/// step runs per actor at a time.
#[derive(Debug, Default)]
pub(crate) struct AtomicBatchLatency {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    sum_nanos: AtomicU64,
}

impl AtomicBatchLatency {
    /// Counts one batch; only the owning actor calls this.
    #[inline]
    pub(crate) fn record(&self, nanos: u64) {
        let b = &self.buckets[bucket_of(nanos)];
        b.store(b.load(Relaxed) + 1, Relaxed);
        self.sum_nanos.store(self.sum_nanos.load(Relaxed).saturating_add(nanos), Relaxed);
    }

    /// Adds what was recorded so far to `into`.
    pub(crate) fn add_to(&self, into: &mut BatchLatency) {
        for (a, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *a += b.load(Relaxed);
        }
        into.sum_nanos = into.sum_nanos.saturating_add(self.sum_nanos.load(Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn latencies_land_in_power_of_two_microsecond_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(999), 0);
        assert_eq!(bucket_of(1_000), 1);
        assert_eq!(bucket_of(3_999), 2);
        assert_eq!(bucket_of(4_000), 3);
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn the_atomic_twin_records_the_same_as_the_plain_one() {
        let (mut plain, atomic) = (BatchLatency::default(), AtomicBatchLatency::default());
        for micros in [0, 1, 5, 5, 100, 70_000_000] {
            plain.record(Duration::from_micros(micros));
            atomic.record(micros * 1_000);
        }
        let mut read = BatchLatency::default();
        atomic.add_to(&mut read);
        assert_eq!(read, plain);
        let h = read.histogram();
        assert_eq!(h.counts.len(), h.bounds.len() + 1);
        assert_eq!(h.cumulative(), {
            let mut c = vec![1, 2, 2, 4, 4, 4, 4, 5];
            c.resize(LATENCY_BUCKETS, 5);
            *c.last_mut().unwrap() = 6;
            c
        });
    }
}
