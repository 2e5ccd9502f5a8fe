//! Adapters that turn batches a library user already has into sources.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};

use super::BatchSource;
use crate::schema::ensure_compatible;
use crate::{Error, Result};

/// Any Arrow [`RecordBatchReader`] as a source: a DataFusion stream made
/// blocking, an arrow-ipc or arrow-csv reader set up by hand, an FFI stream.
/// Reader errors become [`Error::Arrow`].
pub struct ReaderSource {
    reader: Box<dyn RecordBatchReader + Send>,
}

impl ReaderSource {
    /// Wraps `reader`.
    pub fn new(reader: impl RecordBatchReader + Send + 'static) -> Self {
        Self { reader: Box::new(reader) }
    }
}

impl std::fmt::Debug for ReaderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderSource").field("schema", &self.reader.schema()).finish()
    }
}

impl BatchSource for ReaderSource {
    fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.reader.next().transpose().map_err(|e| Error::arrow(self.describe(), e))
    }

    fn describe(&self) -> String {
        "record batch reader".to_owned()
    }
}

/// An iterator of batch results as a source. Every batch is checked against
/// `schema`; one that does not fit is an [`Error::SchemaMismatch`].
pub struct IterSource {
    schema: SchemaRef,
    iter: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>,
}

impl IterSource {
    /// Wraps `iter`, whose batches must have `schema`.
    pub fn new(
        schema: SchemaRef,
        iter: impl Iterator<Item = Result<RecordBatch, ArrowError>> + Send + 'static,
    ) -> Self {
        Self { schema, iter: Box::new(iter) }
    }
}

impl std::fmt::Debug for IterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IterSource").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl BatchSource for IterSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(batch) = self.iter.next().transpose().map_err(|e| Error::arrow(self.describe(), e))? else {
            return Ok(None);
        };
        check(&self.schema, &batch, || self.describe())?;
        Ok(Some(batch))
    }

    fn describe(&self) -> String {
        "batch iterator".to_owned()
    }
}

/// Batches held in memory as a source: for tests, and for data built by
/// the caller. Its `rows_hint` is exact.
#[derive(Debug, Clone)]
pub struct MemorySource {
    schema: SchemaRef,
    batches: VecDeque<RecordBatch>,
}

impl MemorySource {
    /// A source of `batches`, which must have `schema` (a batch that does not
    /// is an [`Error::SchemaMismatch`] when it is reached).
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Self { schema, batches: batches.into() }
    }

    /// A source of `batches` with the schema of the first.
    ///
    /// # Errors
    ///
    /// [`Error::Arrow`] if `batches` is empty (there is no schema to take),
    /// [`Error::SchemaMismatch`] if a later batch has another schema.
    pub fn try_from_batches(batches: Vec<RecordBatch>) -> Result<Self> {
        let Some(first) = batches.first() else {
            let message = "no batches to take the schema from".to_owned();
            return Err(Error::arrow("memory source", ArrowError::InvalidArgumentError(message)));
        };
        let schema = first.schema();
        for batch in &batches[1..] {
            check(&schema, batch, || "memory source".to_owned())?;
        }
        Ok(Self::new(schema, batches))
    }
}

impl BatchSource for MemorySource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(batch) = self.batches.pop_front() else { return Ok(None) };
        check(&self.schema, &batch, || self.describe())?;
        Ok(Some(batch))
    }

    fn rows_hint(&self) -> Option<u64> {
        Some(self.batches.iter().map(|b| b.num_rows() as u64).sum())
    }

    fn describe(&self) -> String {
        "memory source".to_owned()
    }
}

fn check(schema: &SchemaRef, batch: &RecordBatch, context: impl FnOnce() -> String) -> Result<()> {
    if Arc::ptr_eq(schema, &batch.schema()) {
        return Ok(());
    }
    ensure_compatible(context, schema, &batch.schema())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{project, sample, samples};

    fn drain(source: &mut dyn BatchSource) -> Result<Vec<RecordBatch>> {
        std::iter::from_fn(|| source.next_batch().transpose()).collect()
    }

    #[test]
    fn a_memory_source_returns_its_batches_in_order_and_knows_their_rows() {
        let batches = samples();
        let mut source = MemorySource::try_from_batches(batches.clone()).unwrap();
        assert_eq!(source.rows_hint(), Some(13));
        assert_eq!(drain(&mut source).unwrap(), batches);
        assert_eq!(source.rows_hint(), Some(0));
    }

    #[test]
    fn a_memory_source_needs_a_batch_and_one_schema() {
        let err = MemorySource::try_from_batches(vec![]).unwrap_err();
        assert!(matches!(err, Error::Arrow { .. }), "{err}");
        let other = project(&sample(0, 2), &["id"]);
        let err = MemorySource::try_from_batches(vec![sample(0, 2), other]).unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    }

    #[test]
    fn an_iter_source_checks_each_batch_and_passes_errors_on() {
        let schema = sample(0, 0).schema();
        let items = vec![
            Ok(sample(0, 3)),
            Err(ArrowError::ComputeError("upstream failed".into())),
            Ok(project(&sample(3, 1), &["id"])),
        ];
        let mut source = IterSource::new(schema, items.into_iter());
        assert_eq!(source.next_batch().unwrap().unwrap().num_rows(), 3);
        let err = source.next_batch().unwrap_err();
        assert!(matches!(err, Error::Arrow { .. }) && err.to_string().contains("upstream failed"), "{err}");
        let err = source.next_batch().unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
        assert!(source.next_batch().unwrap().is_none());
    }

    #[test]
    fn a_reader_source_adapts_any_record_batch_reader() {
        let batches = samples();
        let schema = batches[0].schema();
        let reader =
            arrow_array::RecordBatchIterator::new(batches.clone().into_iter().map(Ok), schema.clone());
        let mut source = ReaderSource::new(reader);
        assert_eq!(source.schema(), schema);
        assert_eq!(drain(&mut source).unwrap(), batches);
    }
}
