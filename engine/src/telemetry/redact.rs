//! [`Redactor`]: keeps the values of named columns (personal data,
//! credit limits) out of what the run prints or writes about rows.
//!
//! What it covers:
//!
//! 1. Dead letters, when written ([`Redactor::redact_batch`] on the
//!    [`DeadLetterQueue`](crate::DeadLetterQueue)'s rows; `garner run`
//!    does this when `[pipeline] redact` is set): each named column is
//!    replaced by a Utf8 column of [`REDACTED`] (nulls stay null), and the
//!    row's own values of those columns, as Arrow displays them (a Float64
//!    100 is `100.0`), are cut out of its `_error` text.
//! 2. Fragments in the long (entity-attribute-value) layout an accumulator
//!    reads, once their columns are given
//!    ([`Redactor::with_fragment_columns`]): where the variable column
//!    holds a redacted name (`var = "name"`), the value column's value is
//!    replaced (and cut out of `_error`). The value column becomes Utf8,
//!    the other values as Arrow displays them.
//! 3. Any message about a row ([`Redactor::redact_text`]): the values given
//!    are replaced by [`REDACTED`].
//!
//! Metrics and `tracing` spans carry stage ids, counts and sizes, never
//! column values, so they need no redaction. What it does not cover: the
//! `_raw` text of a bad CSV or JSON-lines row (its fields are not known,
//! since the row did not parse), and values quoted in the error that ends a
//! failed run (the row is no longer at hand). Values shorter than
//! [`MIN_SCRUBBED_LEN`] characters are not cut out of text (they would
//! match inside unrelated words and numbers); their columns are still
//! replaced.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{cast::AsArray, ArrayRef, Int64Array, RecordBatch, StringArray};
//! use garner_engine::telemetry::{Redactor, REDACTED};
//!
//! let rows = RecordBatch::try_from_iter([
//!     ("name", Arc::new(StringArray::from(vec!["Alice"])) as ArrayRef),
//!     ("limit", Arc::new(Int64Array::from(vec![5000])) as ArrayRef),
//!     ("_error", Arc::new(StringArray::from(vec!["Alice: limit 5000 over cap"])) as ArrayRef),
//! ])
//! .unwrap();
//! let out = Redactor::new(["name", "limit"]).redact_batch(&rows).unwrap();
//! assert_eq!(out.column(0).as_string::<i32>().value(0), REDACTED);
//! assert_eq!(out.column(1).as_string::<i32>().value(0), REDACTED);
//! assert_eq!(out.column(2).as_string::<i32>().value(0), "<redacted>: limit <redacted> over cap");
//! ```

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema};

use crate::{Error, Result, ERROR_COLUMN};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Values shorter than this (in characters) are not cut out of message text.
pub const MIN_SCRUBBED_LEN: usize = 3;

/// Replaces the values of named columns with [`REDACTED`]; see the
/// [module docs](self) for where it applies. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Sorted, without duplicates.
    columns: Vec<String>,
    /// `(variable column, value column)` pairs of the long layout.
    fragments: Vec<(String, String)>,
}

impl Redactor {
    /// Redacts the columns named `columns` (exact, case-sensitive names).
    pub fn new<I, S>(columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut columns: Vec<String> = columns.into_iter().map(Into::into).collect();
        columns.sort();
        columns.dedup();
        Self { columns, fragments: Vec::new() }
    }

    /// Also redacts fragments in the long layout: rows whose `var_column`
    /// holds a redacted name get their `value_column` redacted. Call once
    /// per layout (accumulators may name their columns differently).
    pub fn with_fragment_columns(
        mut self,
        var_column: impl Into<String>,
        value_column: impl Into<String>,
    ) -> Self {
        let pair = (var_column.into(), value_column.into());
        if !self.fragments.contains(&pair) {
            self.fragments.push(pair);
        }
        self
    }

    /// Whether no column is redacted.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The redacted column names, sorted.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Whether `column`'s values are redacted.
    pub fn redacts(&self, column: &str) -> bool {
        self.columns.binary_search_by(|c| c.as_str().cmp(column)).is_ok()
    }

    /// `text` with every occurrence of each of `values` (of at least
    /// [`MIN_SCRUBBED_LEN`] characters) replaced by [`REDACTED`]. Longer
    /// values go first, so a value that contains another is cut whole.
    pub fn redact_text<'a>(&self, text: &str, values: impl IntoIterator<Item = &'a str>) -> String {
        let mut values: Vec<&str> =
            values.into_iter().filter(|v| v.chars().count() >= MIN_SCRUBBED_LEN).collect();
        if values.is_empty() {
            return text.to_owned();
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        // One pass, so a replacement is never matched again.
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            match values.iter().find(|v| rest.starts_with(**v)) {
                Some(v) => {
                    out.push_str(REDACTED);
                    rest = &rest[v.len()..];
                }
                None => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        out
    }

    /// `batch` with each redacted column it has replaced by a Utf8 column
    /// of [`REDACTED`] (null where the value was null), and, when it has an
    /// `_error` column, each row's values of those columns cut out of its
    /// error text ([`redact_text`](Self::redact_text)). Other columns are
    /// shared, not copied; a batch without redacted columns is returned
    /// as it is.
    pub fn redact_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        // Per column to redact: which rows (`None`: all).
        let mut targets: Vec<(usize, Option<Vec<bool>>)> = (0..schema.fields().len())
            .filter(|&i| self.redacts(schema.field(i).name()))
            .map(|i| (i, None))
            .collect();
        for (var, value) in &self.fragments {
            let (Ok(v), Ok(x)) = (schema.index_of(var), schema.index_of(value)) else { continue };
            if targets.iter().any(|(i, _)| *i == x) {
                continue;
            }
            let names = display(batch.column(v))?;
            let rows: Vec<bool> =
                (0..batch.num_rows()).map(|r| names.value(r).is_some_and(|n| self.redacts(&n))).collect();
            if rows.contains(&true) {
                targets.push((x, Some(rows)));
            }
        }
        if targets.is_empty() {
            return Ok(batch.clone());
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        if let Ok(e) = schema.index_of(ERROR_COLUMN) {
            columns[e] = self.scrub_errors(batch, e, &targets)?;
        }
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        for (i, rows) in &targets {
            let original = display(batch.column(*i))?;
            let redacted: StringArray = (0..batch.num_rows())
                .map(|r| {
                    let value = original.value(r)?;
                    Some(if rows.as_ref().is_none_or(|rows| rows[r]) { REDACTED.to_owned() } else { value })
                })
                .collect();
            columns[*i] = Arc::new(redacted);
            fields[*i] = Arc::new(Field::new(fields[*i].name(), DataType::Utf8, fields[*i].is_nullable()));
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        RecordBatch::try_new(schema, columns).map_err(|e| Error::arrow("redacting columns", e))
    }

    /// The `_error` column (at `error`) with each row's values of the
    /// `targets` columns (in the rows they name) cut out.
    fn scrub_errors(
        &self,
        batch: &RecordBatch,
        error: usize,
        targets: &[(usize, Option<Vec<bool>>)],
    ) -> Result<ArrayRef> {
        let messages = batch.column(error);
        let Some(messages) = messages.as_any().downcast_ref::<StringArray>() else {
            // Not text: nothing to scrub (dead letters always write Utf8).
            return Ok(messages.clone());
        };
        let shown = targets.iter().map(|(i, _)| display(batch.column(*i))).collect::<Result<Vec<_>>>()?;
        let scrubbed: StringArray = (0..batch.num_rows())
            .map(|r| {
                (!messages.is_null(r)).then(|| {
                    let values: Vec<String> = targets
                        .iter()
                        .zip(&shown)
                        .filter(|((_, rows), _)| rows.as_ref().is_none_or(|rows| rows[r]))
                        .filter_map(|(_, d)| d.value(r))
                        .collect();
                    self.redact_text(messages.value(r), values.iter().map(String::as_str))
                })
            })
            .collect();
        Ok(Arc::new(scrubbed))
    }
}

/// Values of a column as Arrow displays them.
struct Displayed<'a> {
    array: &'a dyn Array,
    formatter: ArrayFormatter<'a>,
}

impl Displayed<'_> {
    /// Row `r`'s value, `None` when null.
    fn value(&self, r: usize) -> Option<String> {
        (!self.array.is_null(r)).then(|| self.formatter.value(r).to_string())
    }
}

/// A [`Displayed`] view of `array` with Arrow's default format.
fn display(array: &ArrayRef) -> Result<Displayed<'_>> {
    static OPTIONS: std::sync::OnceLock<FormatOptions<'static>> = std::sync::OnceLock::new();
    let options = OPTIONS.get_or_init(FormatOptions::default);
    let formatter = ArrayFormatter::try_new(array.as_ref(), options)
        .map_err(|e| Error::arrow("formatting redacted values", e))?;
    Ok(Displayed { array: array.as_ref(), formatter })
}

#[cfg(test)]
mod tests {
    use arrow_array::{cast::AsArray, Float64Array, Int64Array};

    use super::*;

    fn rows() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec![Some("Alice"), None, Some("Al")])) as ArrayRef),
            ("limit", Arc::new(Float64Array::from(vec![2500.5, 100.0, 7.0])) as ArrayRef),
            (
                ERROR_COLUMN,
                Arc::new(StringArray::from(vec!["Alice over 2500.5", "nameless at 100.0", "Al at 7"]))
                    as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn named_columns_become_redacted_text_and_leave_the_error_messages() {
        let out = Redactor::new(["limit", "name", "name"]).redact_batch(&rows()).unwrap();
        assert_eq!(out.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(out.schema().field(2).data_type(), &DataType::Utf8);
        let name = out.column(1).as_string::<i32>();
        assert_eq!((name.value(0), name.is_null(1), name.value(2)), (REDACTED, true, REDACTED));
        assert!(out.column(2).as_string::<i32>().iter().all(|v| v == Some(REDACTED)));
        let errors: Vec<_> = out.column(3).as_string::<i32>().iter().flatten().collect();
        // "Al" and "7" are too short to cut out of text; their columns are still redacted.
        assert_eq!(errors, ["<redacted> over <redacted>", "nameless at <redacted>", "Al at 7"]);
        // Columns not named are the same arrays.
        assert_eq!(out.column(0).as_ref(), rows().column(0).as_ref());
    }

    #[test]
    fn a_batch_without_named_columns_is_returned_as_it_is() {
        let r = Redactor::new(["ssn"]);
        assert_eq!(r.redact_batch(&rows()).unwrap(), rows());
        assert!(Redactor::default().is_empty() && !r.is_empty());
        assert!(r.redacts("ssn") && !r.redacts("SSN"));
    }

    #[test]
    fn fragments_of_redacted_variables_have_their_values_redacted() {
        let fragments = RecordBatch::try_from_iter([
            ("subject_id", Arc::new(Int64Array::from(vec![1, 1, 2])) as ArrayRef),
            ("var", Arc::new(StringArray::from(vec!["name", "riskClass", "limit"])) as ArrayRef),
            ("value", Arc::new(StringArray::from(vec!["Bob", "high", "9000"])) as ArrayRef),
            (ERROR_COLUMN, Arc::new(StringArray::from(vec!["late: Bob", "late: high", "late"])) as ArrayRef),
        ])
        .unwrap();
        let r = Redactor::new(["name", "limit"]).with_fragment_columns("var", "value");
        let out = r.redact_batch(&fragments).unwrap();
        let values: Vec<_> = out.column(2).as_string::<i32>().iter().flatten().collect();
        assert_eq!(values, [REDACTED, "high", REDACTED]);
        let errors: Vec<_> = out.column(3).as_string::<i32>().iter().flatten().collect();
        assert_eq!(errors, ["late: <redacted>", "late: high", "late"]);
        // Without the layout, the fragments name no redacted column.
        assert_eq!(Redactor::new(["name"]).redact_batch(&fragments).unwrap(), fragments);
    }

    #[test]
    fn longer_values_are_cut_before_the_values_they_contain() {
        let r = Redactor::new(["a"]);
        assert_eq!(r.redact_text("Anna Annabel", ["Anna", "Annabel"]), "<redacted> <redacted>");
        // A value inside the replacement text is not cut again.
        assert_eq!(r.redact_text("red: red", ["red"]), "<redacted>: <redacted>");
    }
}
