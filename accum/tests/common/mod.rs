//! Helpers shared by the VarSet tests: building fragment batches and
//! rendering output batches as text rows, so a failure shows the data.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{Field, Schema, SchemaRef};

/// A schema with the given (name, array) columns, all nullable.
pub fn schema_of(columns: &[(&str, &ArrayRef)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ))
}

/// A batch of the given (name, array) columns.
pub fn batch_of(columns: &[(&str, ArrayRef)]) -> RecordBatch {
    let refs: Vec<(&str, &ArrayRef)> = columns.iter().map(|(n, a)| (*n, a)).collect();
    RecordBatch::try_new(schema_of(&refs), columns.iter().map(|(_, a)| a.clone()).collect()).unwrap()
}

/// Fragments `(k: UInt64, var: Utf8, value: Utf8)`.
pub fn frags(rows: &[(u64, &str, &str)]) -> RecordBatch {
    batch_of(&[
        ("k", Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0)))),
        ("var", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))),
        ("value", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))),
    ])
}

/// Timed fragments `(k: UInt64, var: Utf8, value: Utf8, ts: Int64)`.
pub fn timed(rows: &[(u64, &str, &str, i64)]) -> RecordBatch {
    batch_of(&[
        ("k", Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0)))),
        ("var", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))),
        ("value", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))),
        ("ts", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3)))),
    ])
}

/// The rows of `batch` as `a | b | c` lines (nulls as `null`).
pub fn lines(batch: &RecordBatch) -> Vec<String> {
    let options = FormatOptions::default().with_null("null");
    let formatters: Vec<_> =
        batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
    (0..batch.num_rows())
        .map(|r| formatters.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join(" | "))
        .collect()
}

/// The lines of an optional batch (none for `None`).
pub fn out(batch: Option<RecordBatch>) -> Vec<String> {
    batch.as_ref().map(lines).unwrap_or_default()
}

/// The column names of `batch` joined as a header line.
pub fn header(batch: &RecordBatch) -> String {
    batch.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(" | ")
}

/// The required variables of the property tests' fragment streams.
pub const VARS: [&str; 4] = ["w", "x", "y", "z"];

/// One fragment of a property test's stream: key (None = null), variable
/// index into [`VARS`] (4 = not required), time.
#[derive(Debug, Clone, Copy)]
pub struct Frag {
    pub key: Option<u64>,
    pub var: usize,
    pub time: i64,
}

/// Fragments `(k, var, value, ts)`; each value is the fragment's id (its
/// index in the whole stream, `first_id` for the first of these), so every
/// output cell says which fragment it came from.
pub fn to_batch(stream: &[Frag], first_id: usize) -> RecordBatch {
    batch_of(&[
        ("k", Arc::new(stream.iter().map(|f| f.key).collect::<UInt64Array>()) as ArrayRef),
        (
            "var",
            Arc::new(StringArray::from_iter_values(
                stream.iter().map(|f| VARS.get(f.var).copied().unwrap_or("other")),
            )),
        ),
        (
            "value",
            Arc::new(Int64Array::from_iter_values((first_id..first_id + stream.len()).map(|i| i as i64))),
        ),
        ("ts", Arc::new(Int64Array::from_iter_values(stream.iter().map(|f| f.time)))),
    ])
}
