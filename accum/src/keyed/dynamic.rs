//! Object-safe views of accumulator configurations and running
//! accumulators, so an engine stage can hold any of them: one virtual call
//! per batch, never per row.

use std::fmt::Debug;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::{Accumulator, DeadLetters, KeyedAccumulator, SpillOptions};
use crate::{error::Result, stats::AccumStats, time::Millis, TimeMode};

/// A keyed accumulator's configuration: what an accumulate stage is built
/// from. Implemented by [`VarSet`](crate::VarSet),
/// [`CountAccumulator`](crate::CountAccumulator) and
/// [`WindowAccumulator`](crate::WindowAccumulator); implement it for your
/// own configuration to run your [`Accumulator`] in a pipeline.
pub trait AccumulatorSpec: Send + Sync + Debug {
    /// A short name for messages and graphs (`varset`, `count`, `window`).
    fn kind(&self) -> &'static str;
    /// The key column names.
    fn key_columns(&self) -> Vec<String>;
    /// Where fragment time comes from.
    fn time_mode(&self) -> TimeMode;
    /// Validates against `input` and returns the output schema.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.build_dyn(input)?.output_schema())
    }
    /// Validates against `input` and builds an empty running accumulator.
    fn build_dyn(&self, input: &SchemaRef) -> Result<Box<dyn RunningAccumulator>>;
    /// Whether its state may spill under memory pressure (default: no).
    fn spills(&self) -> bool {
        false
    }
}

/// A running keyed accumulator behind a pointer: the calls of
/// [`KeyedAccumulator`], object-safe.
pub trait RunningAccumulator: Send + Sync + Debug {
    /// See [`KeyedAccumulator::output_schema`].
    fn output_schema(&self) -> SchemaRef;
    /// See [`KeyedAccumulator::push`].
    fn push(&mut self, batch: &RecordBatch, now: Millis) -> Result<Option<RecordBatch>>;
    /// See [`KeyedAccumulator::advance`].
    fn advance(&mut self, now: Millis) -> Result<Option<RecordBatch>>;
    /// See [`KeyedAccumulator::observe_watermark`].
    fn observe_watermark(&mut self, watermark: Millis) -> Result<Option<RecordBatch>>;
    /// See [`KeyedAccumulator::finish`].
    fn finish(&mut self) -> Result<Option<RecordBatch>>;
    /// See [`KeyedAccumulator::finish_into`].
    fn finish_into(&mut self, rows_per_batch: usize, out: &mut dyn FnMut(RecordBatch)) -> Result<()>;
    /// See [`KeyedAccumulator::finish_step`].
    fn finish_step(&mut self, rows_per_batch: usize, out: &mut dyn FnMut(RecordBatch)) -> Result<bool>;
    /// See [`KeyedAccumulator::take_dead_letters`].
    fn take_dead_letters(&mut self) -> DeadLetters;
    /// See [`KeyedAccumulator::stats`].
    fn stats(&self) -> AccumStats;
    /// See [`KeyedAccumulator::bytes_held`].
    fn bytes_held(&self) -> u64;
    /// See [`KeyedAccumulator::resident_keys`].
    fn resident_keys(&self) -> usize;
    /// See [`KeyedAccumulator::spilled_keys`].
    fn spilled_keys(&self) -> u64;
    /// See [`KeyedAccumulator::take_spill_errors`].
    fn take_spill_errors(&mut self) -> Vec<crate::Error>;
    /// See [`KeyedAccumulator::enable_spill`].
    fn enable_spill(&mut self, options: SpillOptions) -> Result<()>;
    /// See [`KeyedAccumulator::spill_to`].
    fn spill_to(&mut self, target_bytes: u64) -> Result<Option<RecordBatch>>;
}

impl<A: Accumulator> RunningAccumulator for KeyedAccumulator<A> {
    fn output_schema(&self) -> SchemaRef {
        KeyedAccumulator::output_schema(self)
    }
    fn push(&mut self, batch: &RecordBatch, now: Millis) -> Result<Option<RecordBatch>> {
        KeyedAccumulator::push(self, batch, now)
    }
    fn advance(&mut self, now: Millis) -> Result<Option<RecordBatch>> {
        KeyedAccumulator::advance(self, now)
    }
    fn observe_watermark(&mut self, watermark: Millis) -> Result<Option<RecordBatch>> {
        KeyedAccumulator::observe_watermark(self, watermark)
    }
    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        KeyedAccumulator::finish(self)
    }
    fn finish_into(&mut self, rows_per_batch: usize, out: &mut dyn FnMut(RecordBatch)) -> Result<()> {
        KeyedAccumulator::finish_into(self, rows_per_batch, out)
    }
    fn finish_step(&mut self, rows_per_batch: usize, out: &mut dyn FnMut(RecordBatch)) -> Result<bool> {
        KeyedAccumulator::finish_step(self, rows_per_batch, out)
    }
    fn take_dead_letters(&mut self) -> DeadLetters {
        KeyedAccumulator::take_dead_letters(self)
    }
    fn stats(&self) -> AccumStats {
        KeyedAccumulator::stats(self)
    }
    fn bytes_held(&self) -> u64 {
        KeyedAccumulator::bytes_held(self)
    }
    fn resident_keys(&self) -> usize {
        KeyedAccumulator::resident_keys(self)
    }
    fn spilled_keys(&self) -> u64 {
        KeyedAccumulator::spilled_keys(self)
    }
    fn take_spill_errors(&mut self) -> Vec<crate::Error> {
        KeyedAccumulator::take_spill_errors(self)
    }
    fn enable_spill(&mut self, options: SpillOptions) -> Result<()> {
        KeyedAccumulator::enable_spill(self, options)
    }
    fn spill_to(&mut self, target_bytes: u64) -> Result<Option<RecordBatch>> {
        KeyedAccumulator::spill_to(self, target_bytes)
    }
}
