//! The accumulator stage: adapts a `garner_accum` keyed accumulator to the
//! stage contract. The accumulator is a pure state machine; this adapter
//! passes it batches and processing time and forwards what it emits.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use garner_accum::{
    AccumStats, AccumulatorSpec, CountAccumulator, RunningAccumulator, SpillOptions, TimeMode, VarSet,
    WindowAccumulator,
};
use garner_columnar::Batch;
use garner_pools::{MemoryBudget, Reservation};

use crate::{DeadLetterQueue, Emitter, Error, Millis, Pressure, Result, Stage, StageContext};

/// Rows per batch flushed at the end of input.
const FINISH_ROWS: usize = 65_536;

/// Runs a keyed accumulator ([`VarSet`], [`CountAccumulator`],
/// [`WindowAccumulator`] or any [`AccumulatorSpec`]) as a pipeline stage.
/// Built with `.into()` from those, which is what
/// [`Pipeline::accumulate`](crate::Pipeline::accumulate) does, or with
/// [`AccumulateStage::new`].
///
/// Rows the accumulator's policies send to the dead-letter output (late
/// fragments, fragments after completion, TTL-expired partials with
/// `partial_flush` off) go to the run's [`DeadLetterQueue`] when the stage
/// has one ([`dead_letters`](Self::dead_letters)), and are counted in the
/// stage's `rows_dropped` either way (logged when there is no queue).
///
/// With a run memory budget ([`RunOptions::with_memory_budget`](crate::RunOptions::with_memory_budget))
/// and an accumulator that may spill ([`AccumulatorSpec::spills`]), each
/// instance keeps a reservation the size of its state; when the budget
/// refuses to grow it, the instance spills (whole hash partitions of its
/// keys, see `garner_accum`'s spill docs) down to three quarters of its fair
/// share (the limit over the live reservations). The engines also watch the
/// process's resident set ([`garner_pools::RssMonitor`]): growth no
/// reservation accounts for squeezes the limit, so instances spill sooner.
/// At the end of input a spilled instance finishes a partition per step
/// ([`Stage::finish_pending`]), each step's rows passed on before the next.
#[derive(Debug)]
pub struct AccumulateStage {
    spec: Arc<dyn AccumulatorSpec>,
    running: Option<Box<dyn RunningAccumulator>>,
    dead_lettered: u64,
    memory: Option<(MemoryBudget, Reservation)>,
    /// Bytes held right after the last spill: what could not go. Spilling
    /// again before the state has grown a quarter past it would thrash.
    spill_floor: u64,
    /// `finish` has more steps (spilled partitions not yet emitted).
    finishing: bool,
    dead_letters: Option<DeadLetterQueue>,
    stage_id: String,
    observer: Option<crate::ObserverRef>,
}

impl Clone for AccumulateStage {
    /// A clone is a fresh instance with the same configuration and no state.
    fn clone(&self) -> Self {
        Self { dead_letters: self.dead_letters.clone(), ..Self::from_spec(self.spec.clone()) }
    }
}

impl AccumulateStage {
    /// A stage running the accumulator `spec` describes.
    pub fn new(spec: impl AccumulatorSpec + 'static) -> Self {
        Self::from_spec(Arc::new(spec))
    }

    fn from_spec(spec: Arc<dyn AccumulatorSpec>) -> Self {
        Self {
            spec,
            running: None,
            dead_lettered: 0,
            memory: None,
            spill_floor: 0,
            finishing: false,
            dead_letters: None,
            stage_id: String::new(),
            observer: None,
        }
    }

    /// Keeps the state within the run's budget: grows the reservation to
    /// the bytes held, and spills when the budget says no.
    fn account(&mut self, out: &mut Emitter) -> Result<()> {
        let (Some((budget, reservation)), Some(running)) = (self.memory.as_mut(), self.running.as_mut())
        else {
            return Ok(());
        };
        let held = running.bytes_held();
        if reservation.try_resize(held).is_ok() {
            return Ok(());
        }
        if held <= self.spill_floor.saturating_add(self.spill_floor / 4) {
            // Most of what is held cannot spill (keys, per-slot vectors):
            // hold what the budget has left until the state grows further.
            let room = budget.effective_limit().saturating_sub(budget.stats().reserved_bytes);
            let _ = reservation.try_grow(room.min(held.saturating_sub(reservation.size())));
            return Ok(());
        }
        let live = budget.stats().live_reservations.max(1);
        let target = (budget.effective_limit() / live).min(held) / 4 * 3;
        let span = tracing::debug_span!(
            "accumulator.spill",
            stage = self.stage_id.as_str(),
            held_bytes = held,
            target_bytes = target,
            spilled_keys = tracing::field::Empty,
        );
        let _entered = span.enter();
        let emitted = running.spill_to(target)?;
        span.record("spilled_keys", running.spilled_keys());
        let held = running.bytes_held();
        self.spill_floor = held;
        if reservation.try_resize(held).is_err() {
            // Still over (what cannot spill: keys, per-slot vectors): hold
            // what the budget has left, and try again after the next batch.
            let room = budget.effective_limit().saturating_sub(budget.stats().reserved_bytes);
            let _ = reservation.try_grow(room.min(held.saturating_sub(reservation.size())));
        }
        self.forward(out, emitted)?;
        Ok(())
    }

    fn running(&mut self, batch_schema: &SchemaRef) -> Result<&mut Box<dyn RunningAccumulator>> {
        if self.running.is_none() {
            self.running = Some(self.spec.build_dyn(batch_schema)?);
        }
        self.running.as_mut().ok_or_else(|| Error::Internal("accumulator missing".into()))
    }

    /// Forwards emitted rows and counts what went to the dead-letter output.
    fn forward(&mut self, out: &mut Emitter, emitted: Option<RecordBatch>) -> Result<()> {
        if let Some(data) = emitted {
            out.emit_data(data);
        }
        if let Some(running) = self.running.as_mut() {
            for e in running.take_spill_errors() {
                tracing::warn!(accumulator = self.spec.kind(), error = %e, "spilled state lost; emitted as corrupted");
            }
            let dead = running.take_dead_letters();
            if !dead.is_empty() {
                let rows = dead.rows() as u64;
                match &self.dead_letters {
                    Some(queue) => {
                        for batch in dead.fragments.into_iter().chain(dead.partials) {
                            queue.push(&self.stage_id, batch)?;
                        }
                    }
                    None if self.dead_lettered == 0 => tracing::warn!(
                        accumulator = self.spec.kind(),
                        rows,
                        "accumulator policies rejected rows (late, after completion or expired) and the run has no dead-letter output; counted as dropped"
                    ),
                    None => {}
                }
                self.dead_lettered += rows;
            }
        }
        Ok(())
    }

    /// Sends the rows the accumulator's policies reject (late fragments,
    /// fragments after completion, TTL-expired partials with `partial_flush`
    /// off) to `queue`, with `_error` and `_stage`.
    pub fn dead_letters(mut self, queue: DeadLetterQueue) -> Self {
        self.dead_letters = Some(queue);
        self
    }
}

/// The attributes of an `accumulator.update` span known after the push:
/// rows emitted, their mean completeness, keys resident, whether state is
/// spilled.
fn record_update(
    span: &tracing::Span,
    emitted: Option<&RecordBatch>,
    running: Option<&dyn RunningAccumulator>,
) {
    use arrow_array::cast::AsArray;
    let rows = emitted.map_or(0, RecordBatch::num_rows);
    span.record("emitted", rows);
    let mean = emitted
        .and_then(|b| b.column_by_name("acc_completeness"))
        .and_then(|c| c.as_primitive_opt::<arrow_array::types::Float64Type>())
        .filter(|c| !c.is_empty())
        .map(|c| c.values().iter().sum::<f64>() / c.len() as f64);
    if let Some(mean) = mean {
        span.record("completeness", mean);
    }
    if let Some(a) = running {
        span.record("resident_keys", a.resident_keys());
        span.record("spill", a.spilled_keys() > 0);
    }
}

impl From<VarSet> for AccumulateStage {
    fn from(spec: VarSet) -> Self {
        Self::new(spec)
    }
}

impl From<CountAccumulator> for AccumulateStage {
    fn from(spec: CountAccumulator) -> Self {
        Self::new(spec)
    }
}

impl From<WindowAccumulator> for AccumulateStage {
    fn from(spec: WindowAccumulator) -> Self {
        Self::new(spec)
    }
}

impl Stage for AccumulateStage {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        self.stage_id = ctx.stage_id.clone();
        self.observer = ctx.observer.clone();
        let mut running = self.spec.build_dyn(&ctx.input_schema)?;
        if let (Some(budget), true) = (&ctx.memory, self.spec.spills()) {
            // The engine decides when to spill (see `account`), not a fixed limit.
            // The lz4-in-memory tier is held in memory too: a slice of the budget.
            let mut options = SpillOptions {
                limit_bytes: u64::MAX,
                buffers: Some(budget.buffers().clone()),
                ..SpillOptions::limit(0)
            };
            options.store.memory_bytes = budget.limit() / 8 / ctx.partitions.max(1) as u64;
            running.enable_spill(options)?;
            let reservation = budget.reservation(format!("{}[{}]", ctx.stage_id, ctx.partition));
            self.memory = Some((budget.clone(), reservation));
        }
        self.running = Some(running);
        Ok(())
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.spec.output_schema(input)?)
    }

    fn key_columns(&self) -> Vec<String> {
        self.spec.key_columns()
    }

    fn event_time_column(&self) -> Option<String> {
        match self.spec.time_mode() {
            TimeMode::Event { column } => Some(column),
            TimeMode::Processing => None,
        }
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let now = out.now();
        let span = tracing::trace_span!(
            "accumulator.update",
            stage = self.stage_id.as_str(),
            batch_size = batch.num_rows(),
            emitted = tracing::field::Empty,
            completeness = tracing::field::Empty,
            resident_keys = tracing::field::Empty,
            spill = tracing::field::Empty,
        );
        let _entered = span.enter();
        let emitted = self.running(&batch.data.schema())?.push(&batch.data, now)?;
        if !span.is_disabled() {
            record_update(&span, emitted.as_ref(), self.running.as_deref());
        }
        let (rows, dead_before) =
            (emitted.as_ref().map_or(0, RecordBatch::num_rows) as u64, self.dead_lettered);
        self.forward(out, emitted)?;
        if let (Some(o), Some(a)) = (&self.observer, &self.running) {
            let event = crate::AccumulatorEvent {
                emitted: rows,
                dead_lettered: self.dead_lettered - dead_before,
                resident_keys: a.resident_keys() as u64,
                spilled_keys: a.spilled_keys(),
            };
            o.on_accumulator_event(&self.stage_id, &event);
        }
        if let Some(watermark) = batch.meta.watermark {
            let emitted = self.running(&batch.data.schema())?.observe_watermark(watermark)?;
            self.forward(out, emitted)?;
        }
        self.account(out)
    }

    fn on_time(&mut self, now: Millis, out: &mut Emitter) -> Result<()> {
        if let Some(a) = self.running.as_mut() {
            let emitted = a.advance(now)?;
            self.forward(out, emitted)?;
        }
        self.account(out)
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<()> {
        if let Some(a) = self.running.as_mut() {
            // A spilled partition per step, in parts: spilled state comes
            // back a partition at a time, and leaves before the next.
            self.finishing = a.finish_step(FINISH_ROWS, &mut |batch| out.emit_data(batch))?;
            self.forward(out, None)?;
        }
        self.account(out)
    }

    fn finish_pending(&self) -> bool {
        self.finishing
    }

    fn pressure(&self) -> Pressure {
        match &self.running {
            Some(a) => Pressure {
                latent_bytes: a.bytes_held(),
                resident_keys: a.resident_keys() as u64,
                spilled_keys: a.spilled_keys(),
                // An instance with state out of memory is one spill in progress.
                active_spills: u32::from(a.spilled_keys() > 0),
                ..Pressure::default()
            },
            None => Pressure::default(),
        }
    }

    fn accum_stats(&self) -> Option<AccumStats> {
        self.running.as_ref().map(|a| a.stats())
    }

    fn dropped_rows(&self) -> u64 {
        self.dead_lettered
    }
}
