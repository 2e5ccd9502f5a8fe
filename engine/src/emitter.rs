//! Where a stage puts what it emits.

use arrow_array::RecordBatch;
use garner_columnar::{Batch, BatchMeta};

use crate::Millis;

/// Collects a stage's output batches per output port; the engine routes
/// them after the call returns. Empty batches are dropped here, so stages
/// need not check.
#[derive(Debug, Default)]
pub struct Emitter {
    now: Millis,
    out: Vec<(usize, Batch)>,
}

impl Emitter {
    /// An emitter for a call at processing time `now`.
    pub fn new(now: Millis) -> Self {
        Self { now, out: Vec::new() }
    }

    /// Processing time of this call.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Emits on the first (or only) output port.
    pub fn emit(&mut self, batch: Batch) {
        self.emit_to(0, batch);
    }

    /// Emits a record batch with fresh metadata on the first output port.
    pub fn emit_data(&mut self, data: RecordBatch) {
        let bytes = data.get_array_memory_size();
        let mut meta = BatchMeta::default();
        meta.cost.bytes = bytes;
        self.emit(Batch { data, meta });
    }

    /// Emits on output port `port` (index into the stage's `output_ports`).
    pub fn emit_to(&mut self, port: usize, batch: Batch) {
        if batch.num_rows() > 0 {
            self.out.push((port, batch));
        }
    }

    /// Takes what was emitted, leaving the emitter empty and reusable.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (usize, Batch)> {
        self.out.drain(..)
    }

    /// Resets the time for the next call.
    pub fn set_now(&mut self, now: Millis) {
        self.now = now;
    }

    /// True when nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}
