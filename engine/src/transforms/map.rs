//! A transform given as a closure over record batches.

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use garner_columnar::Batch;

use crate::{Emitter, Error, Result, Stage};

type BatchFn = dyn Fn(RecordBatch) -> std::result::Result<RecordBatch, Box<dyn std::error::Error + Send + Sync>>
    + Send
    + Sync;

/// Applies a function to every batch. The function's output schema is the
/// input's unless [`with_output_schema`](Self::with_output_schema) says
/// otherwise; a batch of another schema is an error.
///
/// ```
/// use arrow_array::RecordBatch;
/// use garner_engine::transforms::MapBatches;
/// // Keep the first 100 rows of every batch.
/// let head = MapBatches::new(|b: RecordBatch| Ok(b.slice(0, b.num_rows().min(100))));
/// ```
#[derive(Clone)]
pub struct MapBatches {
    f: Arc<BatchFn>,
    schema: Option<SchemaRef>,
}

impl MapBatches {
    /// Wraps `f`.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(RecordBatch) -> std::result::Result<RecordBatch, Box<dyn std::error::Error + Send + Sync>>
            + Send
            + Sync
            + 'static,
    {
        Self { f: Arc::new(f), schema: None }
    }

    /// Declares the schema `f` returns.
    pub fn with_output_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }
}

impl fmt::Debug for MapBatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBatches").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl Stage for MapBatches {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.schema.clone().unwrap_or_else(|| input.clone()))
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let expected = self.schema.clone().unwrap_or_else(|| batch.data.schema());
        let data = (self.f)(batch.data.clone()).map_err(Error::User)?;
        if data.schema().fields() != expected.fields() {
            return Err(Error::SchemaMismatch {
                stage: String::new(),
                input: "its function".into(),
                expected: crate::validate::schema_str(&expected),
                found: crate::validate::schema_str(&data.schema()),
            });
        }
        out.emit(batch.with_data(data));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::test_util::{batch, run};

    #[test]
    fn applies_the_function() {
        let out = run(&mut MapBatches::new(|b: RecordBatch| Ok(b.slice(1, 2))), batch());
        assert_eq!(out[0].num_rows(), 2);
    }

    #[test]
    fn a_function_error_is_reported() {
        let mut m = MapBatches::new(|_b: RecordBatch| Err("boom".into()));
        let mut out = Emitter::new(0);
        let err = m.process(Batch::new(0, batch()), &mut out).unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn an_undeclared_schema_change_is_caught() {
        let mut m = MapBatches::new(|b: RecordBatch| Ok(b.project(&[0]).unwrap()));
        let mut out = Emitter::new(0);
        assert!(matches!(m.process(Batch::new(0, batch()), &mut out), Err(Error::SchemaMismatch { .. })));
    }
}
