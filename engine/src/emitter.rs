//! Where a stage puts what it emits.

use arrow_array::{BooleanArray, RecordBatch};
use arrow_buffer::BooleanBuffer;
use garner_columnar::{Batch, BatchMeta};

use crate::{Error, Millis, Result};

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

    /// Emits the rows of `batch` selected by `mask` on output port `port`:
    /// the batch itself (no copy) when every row is selected, nothing when
    /// none is, else the selected rows (what filters and branches do).
    pub fn emit_selected(&mut self, port: usize, batch: &Batch, mask: &BooleanBuffer) -> Result<()> {
        let selected = mask.count_set_bits();
        if selected == batch.num_rows() {
            self.emit_to(port, batch.clone());
        } else if selected > 0 {
            let data = arrow_select::filter::filter_record_batch(
                &batch.data,
                &BooleanArray::new(mask.clone(), None),
            )
            .map_err(|e| Error::arrow("selecting rows", e))?;
            self.emit_to(port, batch.with_data(data));
        }
        Ok(())
    }

    /// Rows emitted and not yet drained.
    pub fn pending_rows(&self) -> u64 {
        self.out.iter().map(|(_, b)| b.num_rows() as u64).sum()
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
