//! The run's dead-letter output: rows a stage could not process, with why.
//!
//! Every row keeps its original columns and gets `_error` (the message) and
//! `_stage` (the stage that gave up on it). Stages that dead-letter rows
//! (a [`Guarded`](crate::resilience::Guarded) stage after its retries, a
//! quarantined stage, an accumulator's rejected fragments, a CSV or JSON
//! lines source with `on_bad_row = "dead_letter"`) push them into a
//! [`DeadLetterQueue`] shared by the run; after the run it is written to a
//! sink with [`DeadLetterQueue::write_to`] (the `garner` CLI does this for
//! `[pipeline] dead_letter = { format = "parquet", path = "dlq.parquet" }`).
//!
//! Dead letters are expected to be rare: the queue holds them in memory and
//! writes them at the end, as one schema: the union of their columns, in
//! order of first appearance, null where a row's stage had no such column.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use garner_columnar::BatchSink;

use crate::{Error, Result};

/// The error column of a dead letter.
pub const ERROR_COLUMN: &str = "_error";
/// The stage column of a dead letter.
pub const STAGE_COLUMN: &str = "_stage";

#[derive(Debug, Default)]
struct Inner {
    batches: Vec<RecordBatch>,
    by_stage: BTreeMap<String, u64>,
}

/// A run's dead-letter output, cheap to clone (every clone is the same queue).
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_engine::DeadLetterQueue;
///
/// let dlq = DeadLetterQueue::new();
/// let rows = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2])) as _)]).unwrap();
/// dlq.push_failed("parse", &rows, "not a number").unwrap();
/// assert_eq!(dlq.rows(), 2);
/// let all = dlq.concat().unwrap().unwrap();
/// assert_eq!(all.schema().field(1).name(), "_error");
/// assert_eq!(all.schema().field(2).name(), "_stage");
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQueue {
    inner: Arc<Mutex<Inner>>,
}

impl DeadLetterQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds rows that already carry `_error` (and maybe `_stage`): `_stage`
    /// is set to `stage` where it is missing.
    pub fn push(&self, stage: &str, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = batch.schema();
        if schema.index_of(ERROR_COLUMN).is_err() {
            return Err(Error::Internal(format!(
                "dead letters of `{stage}` without an `{ERROR_COLUMN}` column"
            )));
        }
        let batch = if schema.index_of(STAGE_COLUMN).is_ok() {
            batch
        } else {
            let stages: ArrayRef = Arc::new(StringArray::from(vec![stage; batch.num_rows()]));
            append(&batch, STAGE_COLUMN, stages)?
        };
        let mut inner = self.lock();
        *inner.by_stage.entry(stage.to_owned()).or_default() += batch.num_rows() as u64;
        inner.batches.push(batch);
        Ok(())
    }

    /// Adds every row of `batch` (its original columns) as failed with `error`.
    pub fn push_failed(&self, stage: &str, batch: &RecordBatch, error: &str) -> Result<()> {
        let errors: ArrayRef = Arc::new(StringArray::from(vec![error; batch.num_rows()]));
        self.push(stage, append(batch, ERROR_COLUMN, errors)?)
    }

    /// Rows held, over all stages.
    pub fn rows(&self) -> u64 {
        self.lock().by_stage.values().sum()
    }

    /// Rows `stage` dead-lettered.
    pub fn rows_of(&self, stage: &str) -> u64 {
        self.lock().by_stage.get(stage).copied().unwrap_or(0)
    }

    /// Rows per stage.
    pub fn by_stage(&self) -> BTreeMap<String, u64> {
        self.lock().by_stage.clone()
    }

    /// Every row as one batch of the union schema, or `None` when empty.
    /// Columns of one name must have one type.
    pub fn concat(&self) -> Result<Option<RecordBatch>> {
        let batches = self.lock().batches.clone();
        if batches.is_empty() {
            return Ok(None);
        }
        let schema = union_schema(&batches)?;
        let aligned = batches.iter().map(|b| align(b, &schema)).collect::<Result<Vec<_>>>()?;
        arrow_select::concat::concat_batches(&schema, &aligned)
            .map(Some)
            .map_err(|e| Error::arrow("joining dead letters", e))
    }

    /// Opens `sink` with the union schema and writes every row to it (the
    /// caller then finishes and commits it); returns the rows written. An
    /// empty queue leaves the sink unopened.
    pub fn write_to(&self, sink: &mut dyn BatchSink) -> Result<u64> {
        let Some(all) = self.concat()? else { return Ok(0) };
        sink.open(all.schema())?;
        sink.write(&all)?;
        Ok(all.num_rows() as u64)
    }
}

/// `batch` with `column` appended as `name` (nullable Utf8).
fn append(batch: &RecordBatch, name: &str, column: ArrayRef) -> Result<RecordBatch> {
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(name, DataType::Utf8, true)));
    let mut columns = batch.columns().to_vec();
    columns.push(column);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::arrow("dead letters", e))
}

/// The columns of all batches, in order of first appearance, `_error` and
/// `_stage` last; every field nullable.
fn union_schema(batches: &[RecordBatch]) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = Vec::new();
    for batch in batches {
        for f in batch.schema().fields() {
            if f.name() == ERROR_COLUMN || f.name() == STAGE_COLUMN {
                continue;
            }
            match fields.iter().find(|g| g.name() == f.name()) {
                Some(g) if g.data_type() != f.data_type() => {
                    return Err(Error::Internal(format!(
                        "dead letters disagree on column `{}`: {} and {}",
                        f.name(),
                        g.data_type(),
                        f.data_type()
                    )))
                }
                Some(_) => {}
                None => fields.push(f.as_ref().clone().with_nullable(true)),
            }
        }
    }
    fields.push(Field::new(ERROR_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(STAGE_COLUMN, DataType::Utf8, true));
    Ok(Arc::new(Schema::new(fields)))
}

/// `batch` with the columns of `schema` (nulls where it has none).
fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow("aligning dead letters", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{cast::AsArray, Int64Array};

    #[test]
    fn rows_of_different_stages_share_one_union_schema() {
        let dlq = DeadLetterQueue::new();
        let a = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]).unwrap();
        let b = RecordBatch::try_from_iter([
            ("y", Arc::new(StringArray::from(vec!["p", "q"])) as ArrayRef),
            ("x", Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef),
        ])
        .unwrap();
        dlq.push_failed("one", &a, "bad x").unwrap();
        dlq.clone().push_failed("two", &b, "bad y").unwrap();
        assert_eq!((dlq.rows(), dlq.rows_of("one"), dlq.rows_of("two")), (3, 1, 2));
        let all = dlq.concat().unwrap().unwrap();
        let names: Vec<_> = all.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["x", "y", "_error", "_stage"]);
        assert_eq!(all.column(1).null_count(), 1);
        assert_eq!(all.column(3).as_string::<i32>().value(2), "two");
        let conflict =
            RecordBatch::try_from_iter([("x", Arc::new(StringArray::from(vec!["s"])) as ArrayRef)]).unwrap();
        dlq.push_failed("three", &conflict, "e").unwrap();
        assert!(dlq.concat().unwrap_err().to_string().contains("disagree on column `x`"));
        let no_error =
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]).unwrap();
        assert!(dlq.push("four", no_error).is_err());
    }
}
