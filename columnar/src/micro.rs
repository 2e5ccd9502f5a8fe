//! Micro-batching: [`Coalescer`] joins small batches up to a target size,
//! [`Splitter`] slices big ones. Both keep row order.
//!
//! ```text
//!   push 3 ─┐
//!   push 4 ─┼─► buffered 3+4+5 = 12 ≥ target 10 ─► one batch of 12 (copied once)
//!   push 5 ─┘
//!   push 25 ─────► buffer empty and 25 ≥ 10 ──────► the same batch (not copied)
//!   split 25 by 10 ───────────────────────────────► 10, 10, 5 (views, not copied)
//! ```

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::schema::ensure_compatible;
use crate::{Error, Result};

/// Joins small batches into batches of at least `target_rows` rows.
///
/// [`push`](Self::push) buffers a batch and, once the buffer holds
/// `target_rows` or more, returns all of it as one batch. The output may
/// thus exceed the target by up to one input batch less one row; combine
/// with a [`Splitter`] for a hard upper bound. A batch that reaches the
/// target on its own while nothing is buffered passes through without
/// copying. [`flush`](Self::flush) returns what is left at the end.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::Coalescer;
///
/// let batch = |n: i64| RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..n)) as _)]).unwrap();
/// let mut coalescer = Coalescer::new(batch(0).schema(), 10);
/// assert!(coalescer.push(batch(4)).unwrap().is_none());
/// assert_eq!(coalescer.push(batch(7)).unwrap().unwrap().num_rows(), 11);
/// assert!(coalescer.push(batch(2)).unwrap().is_none());
/// assert_eq!(coalescer.flush().unwrap().unwrap().num_rows(), 2);
/// ```
#[derive(Debug)]
pub struct Coalescer {
    schema: SchemaRef,
    target_rows: usize,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    reservation: Option<garner_pools::Reservation>,
}

impl Coalescer {
    /// A coalescer of batches of `schema` up to `target_rows` (a target of 0
    /// is taken as 1: every non-empty batch passes through).
    pub fn new(schema: SchemaRef, target_rows: usize) -> Self {
        Self {
            schema,
            target_rows: target_rows.max(1),
            buffer: Vec::new(),
            buffered_rows: 0,
            reservation: None,
        }
    }

    /// Holds what it buffers against `reservation` (buffers shared between
    /// the batches counted once, see [`distinct_buffer_bytes`](crate::distinct_buffer_bytes)):
    /// when the budget refuses to grow it, the coalescer returns what it has
    /// early instead of buffering past the budget.
    pub fn with_reservation(mut self, reservation: garner_pools::Reservation) -> Self {
        self.reservation = Some(reservation);
        self
    }

    /// Buffers `batch`; returns the buffered rows as one batch once they
    /// reach the target. Empty batches are dropped.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaMismatch`] if `batch` does not have the coalescer's
    /// schema; [`Error::Arrow`] if concatenation fails.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        if !Arc::ptr_eq(&self.schema, &batch.schema()) {
            ensure_compatible(|| "coalescer".to_owned(), &self.schema, &batch.schema())?;
        }
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        if self.buffer.is_empty() && batch.num_rows() >= self.target_rows {
            return Ok(Some(batch));
        }
        self.buffered_rows += batch.num_rows();
        self.buffer.push(batch);
        if self.buffered_rows >= self.target_rows {
            return self.flush();
        }
        if let Some(r) = &mut self.reservation {
            if r.try_resize(crate::distinct_buffer_bytes(&self.buffer) as u64).is_err() {
                return self.flush(); // the budget says no: pass on what is held
            }
        }
        Ok(None)
    }

    /// Returns everything buffered as one batch, `None` if nothing is.
    ///
    /// # Errors
    ///
    /// [`Error::Arrow`] if concatenation fails.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        let buffered = std::mem::take(&mut self.buffer);
        self.buffered_rows = 0;
        if let Some(r) = &mut self.reservation {
            r.free();
        }
        match <[RecordBatch; 1]>::try_from(buffered) {
            Ok([single]) => Ok(Some(single)),
            Err(buffered) if buffered.is_empty() => Ok(None),
            Err(buffered) => arrow_select::concat::concat_batches(&self.schema, &buffered)
                .map(Some)
                .map_err(|e| Error::arrow("coalescer", e)),
        }
    }

    /// Rows buffered and not yet returned.
    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows
    }

    /// The target the coalescer fills batches to.
    pub fn target_rows(&self) -> usize {
        self.target_rows
    }
}

/// Cuts batches into pieces of at most `max_rows` rows. The pieces are
/// zero-copy slices of the input.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::Splitter;
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..25)) as _)]).unwrap();
/// let sizes: Vec<usize> = Splitter::new(10).split(&batch).map(|b| b.num_rows()).collect();
/// assert_eq!(sizes, [10, 10, 5]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Splitter {
    max_rows: usize,
}

impl Splitter {
    /// A splitter into pieces of at most `max_rows` rows (0 is taken as 1).
    pub fn new(max_rows: usize) -> Self {
        Self { max_rows: max_rows.max(1) }
    }

    /// The pieces of `batch`, in order: all of `max_rows` rows but the last.
    /// A batch that already fits comes back whole; an empty batch gives no
    /// pieces.
    pub fn split(&self, batch: &RecordBatch) -> impl ExactSizeIterator<Item = RecordBatch> {
        let batch = batch.clone();
        let rows = batch.num_rows();
        let max = self.max_rows;
        (0..rows.div_ceil(max)).map(move |k| {
            let offset = k * max;
            let len = max.min(rows - offset);
            if len == rows {
                batch.clone()
            } else {
                batch.slice(offset, len)
            }
        })
    }

    /// The largest piece [`split`](Self::split) returns.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    use super::*;
    use crate::testdata::{project, sample};

    fn ids(batch: &RecordBatch) -> Vec<i64> {
        batch.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec()
    }

    fn data_ptr(batch: &RecordBatch) -> *const u8 {
        batch.column(0).to_data().buffers()[0].as_ptr()
    }

    #[test]
    fn small_batches_are_joined_once_the_target_is_reached() {
        let schema = sample(0, 0).schema();
        let mut coalescer = Coalescer::new(schema, 10);
        assert!(coalescer.push(sample(0, 3)).unwrap().is_none());
        assert!(coalescer.push(sample(3, 4)).unwrap().is_none());
        assert_eq!(coalescer.buffered_rows(), 7);
        let out = coalescer.push(sample(7, 5)).unwrap().unwrap();
        assert_eq!(ids(&out), (0..12).collect::<Vec<_>>());
        assert_eq!(out, sample(0, 12), "every column, dictionary and list included");
        assert_eq!(coalescer.buffered_rows(), 0);
        assert!(coalescer.flush().unwrap().is_none());
    }

    #[test]
    fn a_batch_at_the_target_passes_through_uncopied() {
        let mut coalescer = Coalescer::new(sample(0, 0).schema(), 10);
        let big = sample(0, 25);
        let out = coalescer.push(big.clone()).unwrap().unwrap();
        assert_eq!(data_ptr(&out), data_ptr(&big));

        // Behind buffered rows it is joined to them instead, keeping order.
        assert!(coalescer.push(sample(100, 2)).unwrap().is_none());
        let out = coalescer.push(sample(102, 25)).unwrap().unwrap();
        assert_eq!(ids(&out), (100..127).collect::<Vec<_>>());
    }

    #[test]
    fn flush_returns_the_rest_and_a_lone_batch_uncopied() {
        let mut coalescer = Coalescer::new(sample(0, 0).schema(), 10);
        let lone = sample(0, 4);
        coalescer.push(lone.clone()).unwrap();
        let out = coalescer.flush().unwrap().unwrap();
        assert_eq!(data_ptr(&out), data_ptr(&lone));
        coalescer.push(sample(4, 1)).unwrap();
        coalescer.push(sample(5, 1)).unwrap();
        assert_eq!(ids(&coalescer.flush().unwrap().unwrap()), [4, 5]);
    }

    #[test]
    fn empty_batches_are_dropped_and_other_schemas_refused() {
        let mut coalescer = Coalescer::new(sample(0, 0).schema(), 1);
        assert!(coalescer.push(sample(0, 0)).unwrap().is_none());
        assert_eq!(coalescer.buffered_rows(), 0);
        let err = coalescer.push(project(&sample(0, 3), &["id"])).unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
        assert_eq!(Coalescer::new(sample(0, 0).schema(), 0).target_rows(), 1);
    }

    #[test]
    fn a_batch_is_split_into_zero_copy_slices() {
        let batch = sample(0, 25);
        let pieces: Vec<RecordBatch> = Splitter::new(10).split(&batch).collect();
        assert_eq!(pieces.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [10, 10, 5]);
        assert_eq!(pieces[2], sample(20, 5));
        for (k, piece) in pieces.iter().enumerate() {
            let expected = data_ptr(&batch).wrapping_add(k * 10 * size_of::<i64>());
            assert_eq!(data_ptr(piece), expected, "piece {k} is a view into the parent's ids");
        }
        assert_eq!(Splitter::new(10).split(&batch).len(), 3);
    }

    #[test]
    fn a_batch_that_fits_is_returned_whole_and_an_empty_one_vanishes() {
        let batch = sample(0, 10);
        let pieces: Vec<RecordBatch> = Splitter::new(10).split(&batch).collect();
        assert_eq!(pieces, [batch]);
        assert_eq!(Splitter::new(10).split(&sample(0, 0)).count(), 0);
        assert_eq!(Splitter::new(0).split(&sample(0, 3)).count(), 3, "0 is taken as 1");
    }
}

#[cfg(test)]
mod reservation_tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array};
    use garner_pools::{ByteSize, MemoryBudget};

    #[test]
    fn a_coalescer_holds_its_buffer_against_the_budget_and_flushes_early_when_refused() {
        let batch = |n: i64| {
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef)])
                .unwrap()
        };
        let schema = batch(1).schema();
        let budget = MemoryBudget::new(ByteSize::kib(64));
        let mut c =
            Coalescer::new(schema.clone(), 1_000_000).with_reservation(budget.reservation("coalescer"));
        assert!(c.push(batch(1000)).unwrap().is_none());
        let held = budget.stats().reserved_bytes;
        assert!(held >= 8000, "{held}");
        // Slices of one batch share its buffer: counted once.
        let big = batch(4000);
        assert!(c.push(big.slice(0, 2000)).unwrap().is_none());
        let with_slice = budget.stats().reserved_bytes;
        assert!(c.push(big.slice(2000, 2000)).unwrap().is_none());
        assert_eq!(budget.stats().reserved_bytes, with_slice);
        // Past 64 KiB the budget says no: what is held comes out.
        let out = c.push(batch(8000)).unwrap().expect("flushed early");
        assert_eq!(out.num_rows(), 13_000);
        assert_eq!(budget.stats().reserved_bytes, 0);
        assert!(c.flush().unwrap().is_none());
    }
}
