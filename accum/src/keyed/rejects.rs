//! Rows that go to the dead-letter output: input fragments the policies
//! reject (late, after completion), gathered per call and copied out of the
//! batch before it is released.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};

use crate::error::{Error, Result};

/// The column holding why a row was dead-lettered.
pub const ERROR_COLUMN: &str = "_error";

/// Why a fragment was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Late,
    /// A window accumulator's fragment without an event time.
    NoTime,
    AfterComplete,
}

impl Rejection {
    fn message(self) -> &'static str {
        match self {
            Rejection::Late => {
                "late: event time before the watermark minus the allowed lateness, or of a closed window"
            }
            Rejection::NoTime => "late: no event time (a window needs one)",
            Rejection::AfterComplete => "after_complete: the key's generation already completed",
        }
    }
}

/// Rejected rows of the current batch.
#[derive(Debug, Default)]
pub(crate) struct Rejects {
    rows: Vec<u32>,
    why: Vec<Rejection>,
}

impl Rejects {
    #[inline]
    pub(crate) fn push(&mut self, row: usize, why: Rejection) {
        self.rows.push(row as u32);
        self.why.push(why);
    }

    /// The rejected rows of `batch` with an `_error` column; `None` when
    /// there are none. Empties the list.
    pub(crate) fn take(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let indices = UInt32Array::from(std::mem::take(&mut self.rows));
        let mut columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| arrow_select::take::take(c, &indices, None))
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::arrow("copying dead-lettered fragments"))?;
        columns.push(Arc::new(StringArray::from_iter_values(self.why.drain(..).map(Rejection::message))));
        let out = with_error_column(batch.schema_ref())?;
        RecordBatch::try_new(out, columns).map_err(Error::arrow("building the dead-letter batch")).map(Some)
    }
}

/// `schema` plus the `_error` column.
pub(crate) fn with_error_column(schema: &Schema) -> Result<Arc<Schema>> {
    if schema.field_with_name(ERROR_COLUMN).is_ok() {
        return Err(Error::DuplicateOutputColumn { column: ERROR_COLUMN.to_owned() });
    }
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ERROR_COLUMN, DataType::Utf8, false)));
    Ok(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}
