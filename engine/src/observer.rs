//! [`PipelineObserver`]: hooks a run calls at batch granularity (the seed's
//! observability hooks). Every method has an empty default; implement the
//! ones you need. Hooks run on the engine's threads, so keep them short.

use std::time::Duration;

use crate::resilience::CircuitState;
use crate::Error;

/// A stage instance opened.
#[derive(Debug, Clone)]
pub struct StageStart {
    /// The instance's partition, `0..partitions`.
    pub partition: usize,
    /// Instances of the stage.
    pub partitions: usize,
    /// The engine running it.
    pub engine: &'static str,
}

/// A stage instance processed input.
#[derive(Debug, Clone)]
pub struct BatchProcessed {
    /// Rows in and out of this call.
    pub rows_in: u64,
    /// Rows emitted.
    pub rows_out: u64,
    /// Batches received.
    pub batches_in: u64,
    /// Time spent, when measured (the parallel engines time one unit in eight).
    pub latency: Option<Duration>,
}

/// What an accumulator did with one batch.
#[derive(Debug, Clone, Default)]
pub struct AccumulatorEvent {
    /// Rows emitted (complete or partial).
    pub emitted: u64,
    /// Rows sent to the dead-letter output.
    pub dead_lettered: u64,
    /// Keys resident after the batch.
    pub resident_keys: u64,
    /// Keys spilled out of memory after the batch.
    pub spilled_keys: u64,
}

/// Hooks a run calls; set with [`RunOptions::with_observer`](crate::RunOptions::with_observer).
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::{sink::CollectSink, source::MemorySource};
/// use garner_engine::prelude::*;
/// use garner_engine::{BatchProcessed, PipelineObserver};
///
/// #[derive(Default)]
/// struct Rows(AtomicU64);
/// impl PipelineObserver for Rows {
///     fn on_batch_processed(&self, stage: &str, b: &BatchProcessed) {
///         if stage == "keep" { self.0.fetch_add(b.rows_in, Ordering::Relaxed); }
///     }
/// }
/// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
/// let (sink, _) = CollectSink::new();
/// let graph = Pipeline::new("observed")
///     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
///     .transform("keep", Filter::new(col("x").gt(1)))
///     .sink("out", sink)
///     .build()
///     .unwrap();
/// let rows = Arc::new(Rows::default());
/// SyncEngine::new().run(graph, RunOptions::default().with_observer(rows.clone())).unwrap();
/// assert_eq!(rows.0.load(Ordering::Relaxed), 3);
/// ```
pub trait PipelineObserver: Send + Sync {
    /// A stage instance opened.
    fn on_stage_start(&self, _stage: &str, _info: &StageStart) {}
    /// A stage instance processed a batch (the parallel engines: a unit).
    fn on_batch_processed(&self, _stage: &str, _batch: &BatchProcessed) {}
    /// An accumulator processed a batch.
    fn on_accumulator_event(&self, _stage: &str, _event: &AccumulatorEvent) {}
    /// A stage failed (the run ends with this error, unless its error
    /// policy contains it).
    fn on_error(&self, _stage: &str, _error: &Error) {}
    /// A guarded stage's circuit breaker changed state.
    fn on_circuit_change(&self, _stage: &str, _state: CircuitState) {}
}

/// A shared [`PipelineObserver`] as the run options and stage contexts hold it.
#[derive(Clone)]
pub struct ObserverRef(pub std::sync::Arc<dyn PipelineObserver>);

impl std::fmt::Debug for ObserverRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipelineObserver")
    }
}

impl std::ops::Deref for ObserverRef {
    type Target = dyn PipelineObserver;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}
