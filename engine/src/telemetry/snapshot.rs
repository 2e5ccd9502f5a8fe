//! [`MetricsSnapshot`]: every metric of the seed's tables (§10.1–10.3) for
//! every stage, plus pipeline-level figures, built from what the engines
//! count ([`StageReport`], the live counters behind
//! [`StageSnapshot`](crate::StageSnapshot), [`AccumStats`]).

use garner_accum::{AccumStats, LatencyHistogram};
use serde::{Deserialize, Serialize};

use super::Histogram;
use crate::{Pressure, RunReport, StageKind, StageReport};

/// State bytes that count as one queued unit in
/// [`FlowMetrics::effective_queue_size`] (the seed's `bytes_unit`; the
/// default of [`EffectiveQueue`](crate::flow::EffectiveQueue)).
pub const EFFECTIVE_QUEUE_BYTES_UNIT: u64 = 1 << 20;
/// Queued units one spill in progress counts for in
/// [`FlowMetrics::effective_queue_size`] (the seed's `spill_penalty`; the
/// default of [`EffectiveQueue`](crate::flow::EffectiveQueue)).
pub const EFFECTIVE_QUEUE_SPILL_PENALTY: f64 = 4.0;

/// Every metric of a run at one moment: while it runs
/// ([`RunHandle::metrics`](crate::RunHandle::metrics)) or at its end
/// ([`RunReport::metrics`]). Field names are the seed's metric names, which
/// are also the names of the exported series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// The pipeline's name.
    pub pipeline: String,
    /// The engine running it (`sync`, `steal`, ...).
    pub engine: String,
    /// Seconds since the run started (at the end: the run's wall-clock time).
    pub uptime_seconds: f64,
    /// Whether the run has ended (a snapshot of a [`RunReport`]).
    pub finished: bool,
    /// Rows read by all sources.
    pub pipeline_rows_in_total: u64,
    /// Rows written by all sinks.
    pub pipeline_rows_out_total: u64,
    /// One entry per stage, in the graph's order.
    pub stages: Vec<StageMetrics>,
}

/// The metrics of one stage (summed over its instances); exported with the
/// label `stage="<id>"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMetrics {
    /// The stage id: the `stage` label.
    pub stage: String,
    /// The stage's kind, as the spec writes it (`source`, `accumulate`, ...).
    pub kind: String,
    /// Instances running (or that ran).
    pub instances: u64,
    /// Rows received (sources: 0).
    pub stage_rows_in_total: u64,
    /// Rows emitted (sinks: 0).
    pub stage_rows_out_total: u64,
    /// Batches received.
    pub stage_batches_in_total: u64,
    /// Batches emitted.
    pub stage_batches_out_total: u64,
    /// Batches whose processing failed.
    pub stage_errors_total: u64,
    /// Rows discarded by design (a branch without `otherwise`, dead letters).
    pub stage_rows_dropped_total: u64,
    /// Items per second since the run started: rows emitted for a source,
    /// rows received for every other stage.
    pub stage_throughput: f64,
    /// Units (batches from one upstream step) waiting in the stage's input
    /// links now; 0 at the end, and in the rayon engine, which has no links.
    pub stage_input_queue_depth: u64,
    /// Units waiting in the stage's output links now (the input links of
    /// its consumers); 0 for a stage fused with its consumer, at the end,
    /// and in the sync and rayon engines.
    pub stage_output_queue_depth: u64,
    /// Seconds spent in the stage's own code per batch (exported as the
    /// histogram `stage_latency`, whose buckets are the seed's
    /// `stage_latency_bucket`). The sync and rayon engines time every
    /// batch; the actor engines (steal, dataflow, hybrid) time one unit in
    /// eight of a fused chain, every batch of a source or sink.
    pub stage_latency_bucket: Histogram,
    /// `stage_errors_total / stage_batches_in_total` (0 before any batch).
    /// An error ends the run, so this is above 0 only in a live snapshot
    /// taken between the error and the end.
    pub stage_error_rate: f64,
    /// 0 = closed, 1 = half-open, 2 = open: the breaker of a
    /// [`Guarded`](crate::resilience::Guarded) stage (the worst over its
    /// instances); 0 for a stage without one.
    pub stage_circuit_state: u8,
    /// Mean rows per emitted batch since the run started (sinks: per
    /// received batch).
    pub stage_batch_size: f64,
    /// Accumulator metrics, for accumulator stages.
    pub accumulator: Option<AccumulatorMetrics>,
    /// Flow-control metrics.
    pub flow: FlowMetrics,
}

/// The seed's accumulator metrics (§10.2) of one accumulator stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccumulatorMetrics {
    /// Key generations resident in memory (open, not spilled).
    pub accumulator_active_keys: u64,
    /// Key generations spilled out of memory now.
    pub accumulator_spilled_keys: u64,
    /// Emitted rows by completeness (present / required variables). The
    /// accumulator counts tenths, so the bucket `le="0.5"` holds the rows
    /// with completeness below 0.5 (and `le="0.99"` those below 1.0;
    /// `le="1"` adds the complete ones). The sum adds each bucket's lower
    /// edge: exact for complete rows, a lower bound for the others.
    pub accumulator_completeness_ratio: Histogram,
    /// Seconds from a key generation's first fragment to its emission, in
    /// the accumulator's time (event or processing). Power-of-two
    /// millisecond buckets; the sum adds each bucket's lower edge (a lower
    /// bound).
    pub accumulator_flush_latency: Histogram,
    /// Rows emitted with some variable missing (TTL, max latency, end of
    /// input, eviction).
    pub accumulator_partial_flush_total: u64,
    /// Rows emitted complete.
    pub accumulator_complete_total: u64,
    /// Bytes held by the state (arenas, per-key vectors, key table).
    pub accumulator_memory_bytes: u64,
    /// Bytes the spill store holds. The accumulator does not count the
    /// volume it writes and reads back yet, so this is the stored bytes (a
    /// lower bound of what was written) until `AccumStats` carries it.
    pub accumulator_spill_io_bytes: u64,
    /// Key generations written to the spill store.
    pub accumulator_spill_writes_total: u64,
    /// Key generations read back from the spill store.
    pub accumulator_spill_reads_total: u64,
    /// TTL expirations without completeness that went to the dead-letter
    /// output (`partial_flush` off). TTL expirations flushed as partials are
    /// in `accumulator_partial_flush_total` (the accumulator does not count
    /// them by reason yet).
    pub accumulator_deadlock_incidents: u64,
}

/// The seed's backpressure and flow metrics (§10.3) of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowMetrics {
    /// Times the stage's output was refused, by strategy (the `strategy`
    /// label).
    pub backpressure_events_total: BackpressureEvents,
    /// Credits granted on the stage's input links and not yet spent: the
    /// units its producers may still send (read from the links' credit
    /// ledgers; 0 on engines without mailboxes, and in the final snapshot).
    pub credit_tokens_available: u64,
    /// Batch-size adjustments (the `direction` label) of a stage with
    /// adaptive batching, summed over its instances: live and final on the
    /// sync, steal, dataflow and hybrid engines; 0 on the rayon engine and
    /// for stages without adaptive batching.
    pub adaptive_batch_adjustments: BatchAdjustments,
    /// `input queue + state bytes / EFFECTIVE_QUEUE_BYTES_UNIT + spills in
    /// progress × EFFECTIVE_QUEUE_SPILL_PENALTY`: the queue flow control
    /// sees, state included (DESIGN §7).
    pub effective_queue_size: f64,
}

/// Backpressure events by strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackpressureEvents {
    /// A step of the stage found an output link full and parked
    /// (`strategy="block"`; the actor engines' bounded links).
    pub block: u64,
    /// Units dropped as the newest (`strategy="drop_newest"`; not counted per
    /// strategy yet: dropped rows are in `StageReport::mailbox_dropped`).
    pub drop_newest: u64,
    /// Units dropped as the oldest (`strategy="drop_oldest"`; not counted per
    /// strategy yet: dropped rows are in `StageReport::mailbox_dropped`).
    pub drop_oldest: u64,
    /// Runs failed on a full link (`strategy="fail"`; not counted yet: such a
    /// run ends with `Error::MailboxFull`).
    pub fail: u64,
}

/// Adaptive batch-size adjustments by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAdjustments {
    /// Times the batch size grew.
    pub increment: u64,
    /// Times the batch size shrank.
    pub decrement: u64,
}

/// What a live snapshot knows beyond a [`StageReport`]: gauges of now.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LiveGauges {
    pub(crate) queue_in: u64,
    pub(crate) queue_out: u64,
    /// Units the stage's input links can still take (their credit).
    pub(crate) credits: u64,
    pub(crate) pressure: Pressure,
}

impl MetricsSnapshot {
    /// Builds a snapshot from per-stage reports and, while running, gauges.
    pub(crate) fn build<'a>(
        pipeline: &str,
        engine: &str,
        uptime_seconds: f64,
        finished: bool,
        stages: impl IntoIterator<Item = (&'a StageReport, Option<LiveGauges>)>,
    ) -> Self {
        let stages: Vec<StageMetrics> =
            stages.into_iter().map(|(r, live)| StageMetrics::build(r, live, uptime_seconds)).collect();
        let sum = |kind: &str, f: fn(&StageMetrics) -> u64| -> u64 {
            stages.iter().filter(|s| s.kind == kind).map(f).sum()
        };
        Self {
            pipeline: pipeline.to_owned(),
            engine: engine.to_owned(),
            uptime_seconds,
            finished,
            pipeline_rows_in_total: sum(StageKind::Source.name(), |s| s.stage_rows_out_total),
            pipeline_rows_out_total: sum(StageKind::Sink.name(), |s| s.stage_rows_in_total),
            stages,
        }
    }

    /// The metrics of stage `id`.
    pub fn stage(&self, id: &str) -> Option<&StageMetrics> {
        self.stages.iter().find(|s| s.stage == id)
    }

    /// The snapshot as JSON (an object whose keys are the field names).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a snapshot always serializes")
    }

    /// The snapshot as JSON on one line, for a JSON-lines timeline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a snapshot always serializes")
    }

    /// Reads back what [`to_json`](Self::to_json) wrote.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl StageMetrics {
    fn build(r: &StageReport, live: Option<LiveGauges>, uptime_seconds: f64) -> Self {
        let items = if r.kind == StageKind::Source { r.rows_out } else { r.rows_in };
        let (rows, batches) =
            if r.kind == StageKind::Sink { (r.rows_in, r.batches_in) } else { (r.rows_out, r.batches_out) };
        let gauges = live.unwrap_or_default();
        let accumulator = (r.kind == StageKind::Accumulator).then(|| {
            let stats = r.accum.clone().unwrap_or_default();
            AccumulatorMetrics::build(&stats, live.map(|g| g.pressure))
        });
        let state_bytes =
            accumulator.as_ref().map_or(gauges.pressure.latent_bytes, |a| a.accumulator_memory_bytes);
        let queue = crate::flow::EffectiveQueue {
            bytes_unit: EFFECTIVE_QUEUE_BYTES_UNIT,
            spill_penalty: EFFECTIVE_QUEUE_SPILL_PENALTY,
        };
        let effective =
            gauges.queue_in as f64 + queue.extra(state_bytes, u64::from(gauges.pressure.active_spills));
        Self {
            stage: r.id.clone(),
            kind: r.kind.name().to_owned(),
            instances: r.instances as u64,
            stage_rows_in_total: r.rows_in,
            stage_rows_out_total: r.rows_out,
            stage_batches_in_total: r.batches_in,
            stage_batches_out_total: r.batches_out,
            stage_errors_total: r.errors,
            stage_rows_dropped_total: r.rows_dropped,
            stage_throughput: if uptime_seconds > 0.0 { items as f64 / uptime_seconds } else { 0.0 },
            stage_input_queue_depth: gauges.queue_in,
            stage_output_queue_depth: gauges.queue_out,
            stage_latency_bucket: r.latency.histogram(),
            stage_error_rate: if r.batches_in > 0 { r.errors as f64 / r.batches_in as f64 } else { 0.0 },
            stage_circuit_state: live
                .map_or(r.circuit_state, |g| g.pressure.circuit_state.max(r.circuit_state)),
            stage_batch_size: if batches > 0 { rows as f64 / batches as f64 } else { 0.0 },
            accumulator,
            flow: FlowMetrics {
                backpressure_events_total: BackpressureEvents {
                    block: r.backpressure_events,
                    ..Default::default()
                },
                credit_tokens_available: gauges.credits,
                adaptive_batch_adjustments: r.batch_adjustments,
                effective_queue_size: effective,
            },
        }
    }
}

impl AccumulatorMetrics {
    /// From the accumulator's counters; `pressure` (while running) gives
    /// the resident keys and state bytes of now.
    fn build(s: &AccumStats, pressure: Option<Pressure>) -> Self {
        let (resident, spilled, bytes) = match pressure {
            Some(p) => (p.resident_keys, p.spilled_keys, p.latent_bytes),
            None => (s.active_keys.saturating_sub(s.spilled_keys), s.spilled_keys, s.bytes_held),
        };
        Self {
            accumulator_active_keys: resident,
            accumulator_spilled_keys: spilled,
            accumulator_completeness_ratio: completeness_histogram(&s.completeness),
            accumulator_flush_latency: flush_latency_histogram(&s.latency),
            accumulator_partial_flush_total: s.partial,
            accumulator_complete_total: s.complete,
            accumulator_memory_bytes: bytes,
            accumulator_spill_io_bytes: s.spilled_bytes,
            accumulator_spill_writes_total: s.spill_writes,
            accumulator_spill_reads_total: s.spill_reads,
            accumulator_deadlock_incidents: s.expired_dead_lettered,
        }
    }
}

/// The accumulator's tenths (bucket `i` holds `[i/10, (i+1)/10)`, bucket 10
/// the complete rows) as a histogram with bounds 0.1 … 0.9, 0.99, 1.
fn completeness_histogram(tenths: &[u64; 11]) -> Histogram {
    let mut bounds: Vec<f64> = (1..=9).map(|i| i as f64 / 10.0).collect();
    bounds.extend([0.99, 1.0]);
    let mut counts = tenths.to_vec();
    counts.push(0); // nothing above 1
    let sum = tenths.iter().enumerate().map(|(i, &n)| n as f64 * i as f64 / 10.0).sum();
    Histogram { bounds, counts, sum }
}

/// Finite buckets exported for the flush latency: 0 ms, then up to 2^24 ms
/// (4.7 hours); the rest is in `+Inf`.
const FLUSH_BUCKETS: usize = 25;

/// The accumulator's power-of-two millisecond histogram (bucket 0 holds
/// 0 ms, bucket `i` holds `[2^(i-1), 2^i)` ms) in seconds.
///
/// `LatencyHistogram` does not expose its buckets, only quantiles (the top
/// of the bucket a rank falls in), so each bucket's cumulative count is
/// found as the highest rank whose quantile is at most the bucket's top.
/// That is exact: rank `r` is asked for as `q = (r - 0.5) / total`, which
/// `quantile` rounds up to `r`.
fn flush_latency_histogram(h: &LatencyHistogram) -> Histogram {
    let total = h.count();
    let top = |i: usize| if i == 0 { 0 } else { (1u64 << i) - 1 };
    // The highest rank in bucket `i` or below.
    let cumulative = |i: usize| -> u64 {
        let (mut lo, mut hi) = (0u64, total);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let q = (mid as f64 - 0.5) / total as f64;
            if h.quantile(q).is_some_and(|v| v <= top(i)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    };
    let mut counts = Vec::with_capacity(FLUSH_BUCKETS + 1);
    let mut sum_ms = 0.0;
    let mut below = 0;
    for i in 0..64 {
        if below == total {
            break;
        }
        let c = cumulative(i).max(below);
        let n = c - below;
        if i < FLUSH_BUCKETS {
            counts.push(n);
        } else if let Some(last) = counts.get_mut(FLUSH_BUCKETS) {
            *last += n;
        } else {
            counts.push(n);
        }
        sum_ms += n as f64 * if i == 0 { 0.0 } else { (1u64 << (i - 1)) as f64 };
        below = c;
    }
    counts.resize(FLUSH_BUCKETS + 1, 0);
    let bounds = (0..FLUSH_BUCKETS).map(|i| if i == 0 { 0.0 } else { (1u64 << i) as f64 / 1000.0 }).collect();
    Histogram { bounds, counts, sum: sum_ms / 1000.0 }
}

impl RunReport {
    /// Every metric of the finished run (see [`MetricsSnapshot`]): the
    /// counters are the report's, the queue gauges 0.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use garner_columnar::sink::CollectSink;
    /// use garner_columnar::source::MemorySource;
    /// use garner_engine::prelude::*;
    ///
    /// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 5, 9])) as _)]).unwrap();
    /// let (sink, _out) = CollectSink::new();
    /// let graph = Pipeline::new("demo")
    ///     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
    ///     .sink("collect", sink)
    ///     .build()
    ///     .unwrap();
    /// let metrics = SyncEngine::new().run(graph, RunOptions::default()).unwrap().metrics();
    /// assert_eq!(metrics.pipeline_rows_out_total, 3);
    /// assert_eq!(metrics.stage("collect").unwrap().stage_latency_bucket.count(), 1);
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        MetricsSnapshot::build(
            &self.pipeline,
            self.engine,
            self.elapsed.as_secs_f64(),
            true,
            self.stages.iter().map(|s| (s, None)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_latency_buckets_are_recovered_exactly_from_quantiles() {
        let mut h = LatencyHistogram::default();
        // 0 ms twice, 1 ms (bucket 1), 5..7 ms (bucket 3), 1000 ms (bucket 10).
        for ms in [0, 0, 1, 5, 6, 7, 1000] {
            h.record(ms);
        }
        let out = flush_latency_histogram(&h);
        assert_eq!(out.count(), 7);
        assert_eq!(&out.counts[..11], &[2, 1, 0, 3, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(out.bounds[0], 0.0);
        assert_eq!(out.bounds[3], 0.008);
        // Lower edges: 0 + 0 + 1 + 3·4 + 512 ms.
        assert!((out.sum - 0.525).abs() < 1e-12, "{}", out.sum);
    }

    #[test]
    fn flush_latencies_beyond_the_last_bound_land_in_inf() {
        let mut h = LatencyHistogram::default();
        h.record(1 << 30);
        h.record(3);
        let out = flush_latency_histogram(&h);
        assert_eq!(out.counts.len(), FLUSH_BUCKETS + 1);
        assert_eq!(out.counts[2], 1);
        assert_eq!(out.counts[FLUSH_BUCKETS], 1);
        assert_eq!(flush_latency_histogram(&LatencyHistogram::default()).count(), 0);
    }

    #[test]
    fn completeness_tenths_map_to_bounds_with_complete_rows_at_one() {
        let mut tenths = [0u64; 11];
        tenths[7] = 2; // 0.75
        tenths[10] = 5;
        let h = completeness_histogram(&tenths);
        assert_eq!(h.bounds.len(), 11);
        let cum = h.cumulative();
        assert_eq!(cum[6], 0); // le 0.7
        assert_eq!(cum[7], 2); // le 0.8
        assert_eq!(cum[9], 2); // le 0.99
        assert_eq!(cum[10], 7); // le 1
        assert_eq!(cum[11], 7); // +Inf
        assert!((h.sum - 6.4).abs() < 1e-12);
    }
}
