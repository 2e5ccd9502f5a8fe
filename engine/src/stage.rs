//! The stage contract.
//!
//! ```text
//!            open(ctx)                       once, before any batch
//!   batch ─► process(batch, out) ─► out.emit(..)   per input batch
//!            on_time(now, out)               when processing time moves
//!            finish(out)                     end of input: flush what is held
//! ```
//!
//! An engine calls a stage instance from one thread at a time; instances of
//! a replicated node (one per partition) never share state.

use arrow_schema::SchemaRef;
use garner_accum::AccumStats;

use crate::{Emitter, Millis, Result};

/// What a node does in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageKind {
    /// Produces batches; no input.
    Source,
    /// Stateless batch → batch.
    Transform,
    /// Keyed state: assembles records from fragments.
    Accumulator,
    /// Routes rows to named outputs by predicate.
    Branch,
    /// Union of several inputs.
    Merge,
    /// Consumes batches; no output.
    Sink,
}

impl StageKind {
    /// The kind's name as the spec writes it.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Source => "source",
            StageKind::Transform => "transform",
            StageKind::Accumulator => "accumulate",
            StageKind::Branch => "branch",
            StageKind::Merge => "merge",
            StageKind::Sink => "sink",
        }
    }
}

/// What a stage instance knows about its place in the run.
#[derive(Debug, Clone)]
pub struct StageContext {
    /// The pipeline's name.
    pub pipeline: String,
    /// The stage's id.
    pub stage_id: String,
    /// This instance's partition, `0..partitions`.
    pub partition: usize,
    /// How many instances of the stage run.
    pub partitions: usize,
    /// The schema of the batches the stage will receive.
    pub input_schema: SchemaRef,
    /// Processing time when the run started.
    pub start_time: Millis,
    /// The run's memory budget, if it has one: stages that hold state take
    /// a reservation from it and spill when it says no.
    pub memory: Option<garner_pools::MemoryBudget>,
    /// The run's observer, if it has one (stages report their own events:
    /// accumulators, circuit breakers).
    pub observer: Option<crate::ObserverRef>,
}

/// Work a stage holds that is not visible as queued batches: feeds the
/// effective queue of flow control.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    /// Bytes held in state (accumulator keys, buffered rows).
    pub latent_bytes: u64,
    /// Spills in progress.
    pub active_spills: u32,
    /// Keys resident in memory.
    pub resident_keys: u64,
    /// Keys spilled out of memory.
    pub spilled_keys: u64,
    /// A guarded stage's circuit breaker: 0 closed, 1 half-open, 2 open.
    pub circuit_state: u8,
}

/// A pipeline stage: transform, accumulator, branch or merge. See the module
/// docs for the call sequence.
pub trait Stage: Send {
    /// Prepares the instance; called once before any batch.
    fn open(&mut self, _ctx: &StageContext) -> Result<()> {
        Ok(())
    }

    /// The schema of the batches the stage emits for `input`; an error names
    /// what does not fit (a missing column, a type that cannot be keyed).
    /// Called at `build()` for validation, so it must be cheap and pure.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;

    /// Named output ports; a stage with one output returns `["out"]`.
    fn output_ports(&self) -> Vec<String> {
        vec!["out".to_owned()]
    }

    /// Processes one batch, emitting any number of batches.
    fn process(&mut self, batch: garner_columnar::Batch, out: &mut Emitter) -> Result<()>;

    /// Processing time moved to `now`: emit what is due.
    fn on_time(&mut self, _now: Millis, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// End of input: emit everything still held.
    ///
    /// A stage holding much (an accumulator with spilled state) may emit it
    /// in steps: it returns with [`finish_pending`](Self::finish_pending)
    /// true, the engine passes the step's rows on, and calls `finish` again.
    fn finish(&mut self, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// After [`finish`](Self::finish): whether more remains to emit (call
    /// `finish` again once this step's rows are passed on).
    fn finish_pending(&self) -> bool {
        false
    }

    /// Latent work, for flow control and progress.
    fn pressure(&self) -> Pressure {
        Pressure::default()
    }

    /// The columns this stage is keyed on (empty for stateless stages); the
    /// graph hash-partitions its input on them.
    fn key_columns(&self) -> Vec<String> {
        Vec::new()
    }

    /// The event-time column this stage keeps a watermark on, if any. When
    /// a hash exchange splits batches over several instances, it stamps
    /// every part with the watermark of the whole input so far
    /// (`BatchMeta::watermark`), so that each instance's notion of time
    /// follows all rows, not only its share.
    fn event_time_column(&self) -> Option<String> {
        None
    }

    /// Accumulator statistics, for stages that hold keyed state.
    fn accum_stats(&self) -> Option<AccumStats> {
        None
    }

    /// Rows this instance discarded by design so far (a branch's rows that
    /// matched no route and had no `otherwise` output), counted so nothing
    /// is lost silently. Engines sum it over instances into
    /// [`StageReport::rows_dropped`](crate::StageReport::rows_dropped) at the
    /// end of a run. Rows filtered out by a [`Filter`](crate::transforms::Filter)
    /// are its purpose, not drops, and are not counted here.
    fn dropped_rows(&self) -> u64 {
        0
    }
}
