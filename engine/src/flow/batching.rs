//! Per-stage batch sizing driven by the engines (seed §14 "Micro-Batching
//! Modes": Fixed and Adaptive): the engine re-cuts a stage's input batches
//! to the current size before the stage sees them.

use garner_columnar::Batch;

use super::{AdaptiveBatch, AdaptiveConfig, FlowError};

/// How an engine cuts a stage's input batches (set with
/// [`Pipeline::batching`](crate::Pipeline::batching)).
///
/// Batches larger than the size are split into zero-copy slices, in order,
/// and the stage is called once per slice; smaller batches pass whole (the
/// engines do not coalesce). A batch's watermark travels with its last
/// slice only, so it is never applied before all of the batch's rows, as in
/// the `SyncEngine`.
///
/// A stage whose output depends on where its input batches begin and end
/// (one that treats each batch's first row specially, say) sees other
/// batches when they are cut, so its output can differ from a run without
/// batching: set batching only on stages that work row by row or by key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Batching {
    /// Slices of at most this many rows (at least 1).
    Fixed(usize),
    /// The size follows [`AdaptiveBatch`]'s rule: after every slice the
    /// engine reports the stage's latency for it and how full the stage's
    /// input queue is.
    Adaptive(AdaptiveConfig),
}

impl Batching {
    /// Checks the parameters.
    ///
    /// # Errors
    ///
    /// [`FlowError::InvalidBatchBounds`] for `Fixed(0)`; as
    /// [`AdaptiveConfig::validate`] for `Adaptive`.
    ///
    /// ```
    /// use garner_engine::flow::Batching;
    /// assert!(Batching::Fixed(512).validate().is_ok());
    /// assert!(Batching::Fixed(0).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), FlowError> {
        match *self {
            Batching::Fixed(0) => Err(FlowError::InvalidBatchBounds { min: 0, initial: 0, max: 0 }),
            Batching::Fixed(_) => Ok(()),
            Batching::Adaptive(config) => config.validate(),
        }
    }
}

/// The per-instance state an engine keeps for a stage with [`Batching`]:
/// the current size, and the adjustments made.
///
/// ```
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::Batch;
/// use garner_engine::flow::{AdaptiveConfig, BatchSizer, Batching};
///
/// let config = AdaptiveConfig { min: 2, max: 8, initial: 4, target_latency_ms: 10.0, alpha: 1.0 };
/// let mut sizer = BatchSizer::new(Batching::Adaptive(config)).unwrap();
/// let data = RecordBatch::try_from_iter([("x", std::sync::Arc::new(Int64Array::from_iter_values(0..10)) as _)]).unwrap();
/// let mut batch = Batch::new(0, data);
/// batch.meta.watermark = Some(99);
///
/// let mut sizes = Vec::new();
/// let mut rest = Some(batch);
/// while let Some(b) = rest {
///     let (piece, more) = sizer.cut(b);
///     sizes.push(piece.num_rows());
///     assert_eq!(piece.meta.watermark, more.is_none().then_some(99));
///     sizer.observe(50.0, 0.9); // slow: halve
///     rest = more;
/// }
/// assert_eq!(sizes, [4, 2, 2, 2]);
/// assert_eq!((sizer.increments(), sizer.decrements()), (0, 1));
/// ```
#[derive(Debug, Clone)]
pub struct BatchSizer {
    fixed: usize,
    adaptive: Option<AdaptiveBatch>,
}

impl BatchSizer {
    /// A sizer for `batching`.
    ///
    /// # Errors
    ///
    /// As [`Batching::validate`].
    pub fn new(batching: Batching) -> Result<Self, FlowError> {
        batching.validate()?;
        Ok(match batching {
            Batching::Fixed(n) => Self { fixed: n, adaptive: None },
            Batching::Adaptive(config) => {
                Self { fixed: config.initial, adaptive: Some(AdaptiveBatch::new(config)?) }
            }
        })
    }

    /// The current size: the most rows the next slice has.
    pub fn size(&self) -> usize {
        self.adaptive.as_ref().map_or(self.fixed, AdaptiveBatch::size)
    }

    /// Whether the size adapts (so the engine should time the stage).
    pub fn adapts(&self) -> bool {
        self.adaptive.is_some()
    }

    /// Cuts the first [`size`](Self::size) rows off `batch`: the slice (zero
    /// copy) and the rest, if any. A batch that fits (an empty one too)
    /// comes back whole. Only the last slice keeps the batch's watermark.
    pub fn cut(&self, batch: Batch) -> (Batch, Option<Batch>) {
        let size = self.size().max(1);
        let rows = batch.num_rows();
        if rows <= size {
            return (batch, None);
        }
        let mut head = batch.with_data(batch.data.slice(0, size));
        head.meta.watermark = None;
        let rest = batch.with_data(batch.data.slice(size, rows - size));
        (head, Some(rest))
    }

    /// Reports one slice — the stage's latency for it, in ms, and its input
    /// queue's fill in `0..=1` — and returns the next size. A fixed size
    /// never changes.
    pub fn observe(&mut self, latency_ms: f64, queue_fill: f64) -> usize {
        match &mut self.adaptive {
            Some(a) => a.observe(latency_ms, queue_fill),
            None => self.fixed,
        }
    }

    /// Times the size grew.
    pub fn increments(&self) -> u64 {
        self.adaptive.as_ref().map_or(0, AdaptiveBatch::increments)
    }

    /// Times the size shrank.
    pub fn decrements(&self) -> u64 {
        self.adaptive.as_ref().map_or(0, AdaptiveBatch::decrements)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch};

    use super::*;

    fn batch(rows: i64) -> Batch {
        let data =
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..rows)) as ArrayRef)])
                .unwrap();
        Batch::new(3, data)
    }

    fn pieces(sizer: &BatchSizer, b: Batch) -> Vec<Batch> {
        let mut out = Vec::new();
        let mut rest = Some(b);
        while let Some(b) = rest {
            let (piece, more) = sizer.cut(b);
            out.push(piece);
            rest = more;
        }
        out
    }

    #[test]
    fn fixed_slices_keep_rows_in_order_and_the_watermark_on_the_last() {
        let sizer = BatchSizer::new(Batching::Fixed(4)).unwrap();
        let mut b = batch(10);
        b.meta.watermark = Some(7);
        let out = pieces(&sizer, b);
        assert_eq!(out.iter().map(Batch::num_rows).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(out.iter().map(|b| b.meta.watermark).collect::<Vec<_>>(), [None, None, Some(7)]);
        let values: Vec<i64> = out
            .iter()
            .flat_map(|b| {
                let a = b.data.column(0).as_any().downcast_ref::<Int64Array>().unwrap().clone();
                a.values().to_vec()
            })
            .collect();
        assert_eq!(values, (0..10).collect::<Vec<_>>());
        assert!(out.iter().all(|b| b.meta.seq == 3));
    }

    #[test]
    fn small_and_empty_batches_pass_whole() {
        let sizer = BatchSizer::new(Batching::Fixed(4)).unwrap();
        let mut empty = batch(0);
        empty.meta.watermark = Some(1);
        let out = pieces(&sizer, empty);
        assert_eq!((out.len(), out[0].meta.watermark), (1, Some(1)));
        assert_eq!(pieces(&sizer, batch(4)).len(), 1);
    }

    #[test]
    fn fixed_never_adjusts_and_bad_parameters_are_refused() {
        let mut sizer = BatchSizer::new(Batching::Fixed(4)).unwrap();
        assert_eq!(sizer.observe(1e9, 0.0), 4);
        assert!(!sizer.adapts());
        assert_eq!((sizer.increments(), sizer.decrements()), (0, 0));
        assert!(BatchSizer::new(Batching::Fixed(0)).is_err());
        let bad = AdaptiveConfig { min: 8, max: 4, initial: 8, target_latency_ms: 1.0, alpha: 0.5 };
        assert!(BatchSizer::new(Batching::Adaptive(bad)).is_err());
    }
}
