//! The envelope batch: the unit of work that flows between stages.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;

/// An inclusive range of event times (milliseconds since the epoch, or the
/// unit of the declared event-time column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest event time in the batch.
    pub min: i64,
    /// Latest event time in the batch.
    pub max: i64,
}

/// A small string map shared by every row of a batch.
pub type Headers = BTreeMap<String, String>;

/// W3C-style trace identity carried by a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceContext {
    /// The trace this batch belongs to.
    pub trace_id: u128,
    /// The span that produced it.
    pub span_id: u64,
}

/// What a batch costs to hold and to process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    /// Arrow memory size of the payload in bytes.
    pub bytes: usize,
    /// A relative CPU hint (1.0 = ordinary).
    pub cpu_hint: f32,
}

/// Batch-level metadata: the seed's per-record envelope, made per batch.
#[derive(Debug, Clone, Default)]
pub struct BatchMeta {
    /// Source-assigned sequence number; row `i` of the batch has the record
    /// sequence id `seq << 20 | i` (see [`Batch::row_seq`]).
    pub seq: u64,
    /// Min and max of the event-time column, if the source knows it.
    pub event_time: Option<TimeRange>,
    /// The source's watermark after this batch, if it has one.
    pub watermark: Option<i64>,
    /// Headers shared by all rows.
    pub headers: Arc<Headers>,
    /// Trace identity (boxed: rarely set, and batches move on every hop).
    pub trace: Option<Arc<TraceContext>>,
    /// Size and CPU hint.
    pub cost: Cost,
}

/// An Arrow record batch with its envelope metadata. Cloning is zero-copy:
/// the columns are `Arc`-shared.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::Batch;
///
/// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
/// let batch = Batch::new(7, data);
/// assert_eq!(batch.num_rows(), 3);
/// assert_eq!(batch.row_seq(2), 7 << 20 | 2);
/// ```
#[derive(Debug, Clone)]
pub struct Batch {
    /// Payload columns.
    pub data: RecordBatch,
    /// Envelope metadata.
    pub meta: BatchMeta,
}

/// Number of low bits of a record sequence id taken by the row index.
pub const ROW_SEQ_BITS: u32 = 20;

impl Batch {
    /// A batch with sequence number `seq` and its cost measured.
    pub fn new(seq: u64, data: RecordBatch) -> Self {
        let bytes = data.get_array_memory_size();
        Self { data, meta: BatchMeta { seq, cost: Cost { bytes, cpu_hint: 1.0 }, ..Default::default() } }
    }

    /// The same metadata (sequence, headers, trace) with other data: what a
    /// transform returns. The cost is measured anew.
    pub fn with_data(&self, data: RecordBatch) -> Self {
        let mut meta = self.meta.clone();
        meta.cost.bytes = data.get_array_memory_size();
        Self { data, meta }
    }

    /// Rows in the batch.
    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    /// The record sequence id of row `row`.
    pub fn row_seq(&self, row: usize) -> u64 {
        self.meta.seq << ROW_SEQ_BITS | row as u64
    }
}

impl From<RecordBatch> for Batch {
    fn from(data: RecordBatch) -> Self {
        Batch::new(0, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_stays_small_enough_to_move_cheaply() {
        // Batches are moved on every hop between stages; the chain benchmark
        // showed the copies of a 176-byte `Batch` in the profile. Rarely used
        // metadata goes behind a pointer.
        assert!(std::mem::size_of::<Batch>() <= 120, "Batch is {} bytes", std::mem::size_of::<Batch>());
    }
}
