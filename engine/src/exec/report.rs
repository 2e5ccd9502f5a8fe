//! What a run did, per stage.

use std::time::Duration;

use garner_accum::AccumStats;
use garner_columnar::SinkSummary;

use crate::telemetry::BatchLatency;
use crate::StageKind;

/// Figures of one stage over a run (summed over its instances).
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The stage id.
    pub id: String,
    /// Its kind.
    pub kind: StageKind,
    /// Instances that ran.
    pub instances: usize,
    /// Rows received (sources: 0).
    pub rows_in: u64,
    /// Rows emitted (sources: rows read; sinks: 0).
    pub rows_out: u64,
    /// Batches received.
    pub batches_in: u64,
    /// Batches emitted.
    pub batches_out: u64,
    /// Time spent inside the stage's own code.
    pub busy: Duration,
    /// Accumulator statistics, for accumulators.
    pub accum: Option<AccumStats>,
    /// What a sink wrote.
    pub sink: Option<SinkSummary>,
    /// Rows the stage discarded by design (see
    /// [`Stage::dropped_rows`](crate::Stage::dropped_rows)), e.g. a branch's
    /// rows that matched no route and had no `otherwise` output.
    pub rows_dropped: u64,
    /// Rows its full input mailbox dropped before it saw them (a
    /// `DropNewest` / `DropOldest` mailbox policy): they are not in
    /// `rows_in`, and the producer's `rows_out` counts them.
    pub mailbox_dropped: u64,
    /// The state of a guarded stage's circuit breaker at the end (the
    /// worst over its instances): 0 closed, 1 half-open, 2 open.
    pub circuit_state: u8,
    /// Batches whose processing failed (an error ends the run, so this is
    /// seen in live metrics; a failed run returns its error, not a report).
    pub errors: u64,
    /// Time per batch in the stage's own code (see
    /// [`StageMetrics::stage_latency_bucket`](crate::telemetry::StageMetrics::stage_latency_bucket)
    /// for which batches each engine times).
    pub latency: BatchLatency,
    /// Times a step of the stage found an output link full and parked (the
    /// actor engines' bounded links; 0 in the sync and rayon engines).
    pub backpressure_events: u64,
    /// Adaptive batch-size changes, summed over instances (stages with
    /// [`Batching::Adaptive`](crate::flow::Batching::Adaptive), on the
    /// engines that drive it; 0 otherwise).
    pub batch_adjustments: crate::telemetry::BatchAdjustments,
}

impl StageReport {
    pub(crate) fn new(id: &str, kind: StageKind) -> Self {
        Self {
            id: id.to_owned(),
            kind,
            instances: 1,
            rows_in: 0,
            rows_out: 0,
            batches_in: 0,
            batches_out: 0,
            busy: Duration::ZERO,
            accum: None,
            sink: None,
            rows_dropped: 0,
            mailbox_dropped: 0,
            circuit_state: 0,
            errors: 0,
            latency: BatchLatency::default(),
            backpressure_events: 0,
            batch_adjustments: Default::default(),
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The pipeline's name.
    pub pipeline: String,
    /// The engine that ran it.
    pub engine: &'static str,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// One report per stage, in the graph's order.
    pub stages: Vec<StageReport>,
}

impl RunReport {
    /// The report of stage `id`.
    pub fn stage(&self, id: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// Rows read by all sources.
    pub fn rows_in(&self) -> u64 {
        self.stages.iter().filter(|s| s.kind == StageKind::Source).map(|s| s.rows_out).sum()
    }

    /// Rows written by all sinks.
    pub fn rows_out(&self) -> u64 {
        self.stages.iter().filter(|s| s.kind == StageKind::Sink).map(|s| s.rows_in).sum()
    }

    /// Source rows per second of wall-clock time.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows_in() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}
