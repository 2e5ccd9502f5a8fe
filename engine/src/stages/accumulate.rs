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

use crate::{Emitter, Error, Millis, Pressure, Result, Stage, StageContext};

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
/// `partial_flush` off) are counted in the stage's `rows_dropped` and
/// logged; they are not routed further yet.
///
/// With a run memory budget ([`RunOptions::with_memory_budget`](crate::RunOptions::with_memory_budget))
/// and an accumulator that may spill ([`AccumulatorSpec::spills`]), each
/// instance keeps a reservation the size of its state; when the budget
/// refuses to grow it, the instance spills generations down to three
/// quarters of its fair share (the limit over the live reservations).
#[derive(Debug)]
pub struct AccumulateStage {
    spec: Arc<dyn AccumulatorSpec>,
    running: Option<Box<dyn RunningAccumulator>>,
    dead_lettered: u64,
    memory: Option<(MemoryBudget, Reservation)>,
    /// Bytes held right after the last spill: what could not go. Spilling
    /// again before the state has grown a quarter past it would thrash.
    spill_floor: u64,
}

impl Clone for AccumulateStage {
    /// A clone is a fresh instance with the same configuration and no state.
    fn clone(&self) -> Self {
        Self { spec: self.spec.clone(), running: None, dead_lettered: 0, memory: None, spill_floor: 0 }
    }
}

impl AccumulateStage {
    /// A stage running the accumulator `spec` describes.
    pub fn new(spec: impl AccumulatorSpec + 'static) -> Self {
        Self { spec: Arc::new(spec), running: None, dead_lettered: 0, memory: None, spill_floor: 0 }
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
            let room = budget.limit().saturating_sub(budget.stats().reserved_bytes);
            let _ = reservation.try_grow(room.min(held.saturating_sub(reservation.size())));
            return Ok(());
        }
        let live = budget.stats().live_reservations.max(1);
        let target = (budget.limit() / live).min(held) / 4 * 3;
        let emitted = running.spill_to(target)?;
        let held = running.bytes_held();
        self.spill_floor = held;
        if reservation.try_resize(held).is_err() {
            // Still over (what cannot spill: keys, per-slot vectors): hold
            // what the budget has left, and try again after the next batch.
            let room = budget.limit().saturating_sub(budget.stats().reserved_bytes);
            let _ = reservation.try_grow(room.min(held.saturating_sub(reservation.size())));
        }
        self.forward(out, emitted);
        Ok(())
    }

    fn running(&mut self, batch_schema: &SchemaRef) -> Result<&mut Box<dyn RunningAccumulator>> {
        if self.running.is_none() {
            self.running = Some(self.spec.build_dyn(batch_schema)?);
        }
        self.running.as_mut().ok_or_else(|| Error::Internal("accumulator missing".into()))
    }

    /// Forwards emitted rows and counts what went to the dead-letter output.
    fn forward(&mut self, out: &mut Emitter, emitted: Option<RecordBatch>) {
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
                if self.dead_lettered == 0 {
                    tracing::warn!(
                        accumulator = self.spec.kind(),
                        rows,
                        "accumulator policies rejected rows (late, after completion or expired); counted as dropped"
                    );
                }
                self.dead_lettered += rows;
            }
        }
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
        let mut running = self.spec.build_dyn(&ctx.input_schema)?;
        if let (Some(budget), true) = (&ctx.memory, self.spec.spills()) {
            // The engine decides when to spill (see `account`), not a fixed limit.
            // The lz4-in-memory tier is held in memory too: a slice of the budget.
            let mut options = SpillOptions { limit_bytes: u64::MAX, ..SpillOptions::limit(0) };
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
        let emitted = self.running(&batch.data.schema())?.push(&batch.data, now)?;
        self.forward(out, emitted);
        if let Some(watermark) = batch.meta.watermark {
            let emitted = self.running(&batch.data.schema())?.observe_watermark(watermark)?;
            self.forward(out, emitted);
        }
        self.account(out)
    }

    fn on_time(&mut self, now: Millis, out: &mut Emitter) -> Result<()> {
        if let Some(a) = self.running.as_mut() {
            let emitted = a.advance(now)?;
            self.forward(out, emitted);
        }
        self.account(out)
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<()> {
        if let Some(a) = self.running.as_mut() {
            // In parts, so spilled state comes back a part at a time.
            a.finish_into(FINISH_ROWS, &mut |batch| out.emit_data(batch))?;
            self.forward(out, None);
        }
        self.account(out)
    }

    fn pressure(&self) -> Pressure {
        match &self.running {
            Some(a) => Pressure {
                latent_bytes: a.bytes_held(),
                resident_keys: a.resident_keys() as u64,
                spilled_keys: a.spilled_keys(),
                ..Default::default()
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
