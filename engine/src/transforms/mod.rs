//! Built-in stateless transforms. Each works on whole batches with Arrow
//! kernels and is `Clone`, so a parallel engine can run one per partition.

mod cast;
mod filter;
mod map;
mod rename;
mod select;

pub use cast::Cast;
pub use filter::{DropNulls, Filter};
pub use map::MapBatches;
pub use rename::Rename;
pub use select::Select;

use arrow_schema::Schema;

use crate::{Error, Result};

/// The index of `column` in `schema`, or an error naming the stage and
/// listing the columns there are.
pub(crate) fn column_index(stage: &str, schema: &Schema, column: &str) -> Result<usize> {
    schema.index_of(column).map_err(|_| Error::unknown_column(stage, column, schema))
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use garner_columnar::Batch;

    use crate::{Emitter, Stage};

    pub(crate) fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(1), Some(2), None])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef),
            ("score", Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])) as ArrayRef),
        ])
        .unwrap()
    }

    /// Runs one batch through a stage the way an engine does.
    pub(crate) fn run(stage: &mut dyn Stage, data: RecordBatch) -> Vec<RecordBatch> {
        let schema = stage.output_schema(&data.schema()).unwrap();
        let mut out = Emitter::new(0);
        stage.process(Batch::new(0, data), &mut out).unwrap();
        let batches: Vec<RecordBatch> = out.drain().map(|(_, b)| b.data).collect();
        for b in &batches {
            assert_eq!(b.schema().fields(), schema.fields(), "output matches the declared schema");
        }
        batches
    }
}
