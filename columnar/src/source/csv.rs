//! CSV source.

use std::fs::File;
use std::io::Seek;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_csv::reader::Format as CsvFormat;
use arrow_csv::ReaderBuilder;
use arrow_schema::{ArrowError, SchemaRef};

use super::{input_error, BatchSource, DEFAULT_BATCH_ROWS};
use crate::{Error, Result};

const FORMAT: &str = "csv";

/// How to read a CSV file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// The columns; `None` infers them from the first `infer_rows` rows
    /// (integers, floats, booleans, dates and timestamps are recognised;
    /// everything else is Utf8; every column is nullable).
    pub schema: Option<SchemaRef>,
    /// Whether the first line names the columns (default `true`). Without a
    /// header, inferred columns are named `column_1`, `column_2`, ...
    pub has_header: bool,
    /// Field separator (default `b','`).
    pub delimiter: u8,
    /// Rows per batch (default [`DEFAULT_BATCH_ROWS`]).
    pub batch_size: usize,
    /// Rows read to infer the schema (default 1000, at least 1).
    pub infer_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            schema: None,
            has_header: true,
            delimiter: b',',
            batch_size: DEFAULT_BATCH_ROWS,
            infer_rows: 1000,
        }
    }
}

/// A CSV file read in batches.
///
/// A row with too few or too many fields, or a value that does not parse as
/// its column's type, is an [`Error::BadInput`] at `line N`, counting the
/// header as line 1. (Lines are records: a quoted field with a line break
/// inside counts once.) Empty fields are nulls.
pub struct CsvSource {
    path: PathBuf,
    reader: arrow_csv::Reader<File>,
}

impl CsvSource {
    /// Opens `path`, inferring the schema first if `options` has none.
    pub fn open(path: impl AsRef<Path>, options: CsvOptions) -> Result<Self> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let format = CsvFormat::default().with_header(options.has_header).with_delimiter(options.delimiter);
        let schema = match options.schema {
            Some(schema) => schema,
            None => {
                let (schema, _) = format
                    .infer_schema(&mut file, Some(options.infer_rows.max(1)))
                    .map_err(|e| csv_error(path, e))?;
                file.rewind().map_err(|e| Error::io(path, e))?;
                Arc::new(schema)
            }
        };
        let reader = ReaderBuilder::new(schema)
            .with_format(format)
            .with_batch_size(options.batch_size.max(1))
            .build(file)
            .map_err(|e| csv_error(path, e))?;
        Ok(Self { path: path.to_owned(), reader })
    }
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource").field("path", &self.path).finish_non_exhaustive()
    }
}

impl BatchSource for CsvSource {
    fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.reader.next().transpose().map_err(|e| csv_error(&self.path, e))
    }

    fn describe(&self) -> String {
        format!("csv file {}", self.path.display())
    }
}

/// Maps an arrow-csv error to [`Error::BadInput`] with the line it names.
///
/// arrow-csv 60 counts lines two ways. Record-level errors (`CsvError`: a
/// wrong number of fields, bad UTF-8, and everything from schema inference)
/// count records from 1, header included, as an editor does. Value parse
/// errors (`ParseError`) give the record's index from 0, so the message is
/// rewritten to say the line an editor shows. The tests pin both.
fn csv_error(path: &Path, err: ArrowError) -> Error {
    let (mut message, zero_based) = match err {
        ArrowError::CsvError(m) => (m, false),
        ArrowError::ParseError(m) => (m, true),
        other => return input_error(path, FORMAT, None, other),
    };
    let position = locate_line(&message, zero_based).map(|(digits, line)| {
        if zero_based {
            message.replace_range(digits, &line.to_string());
        }
        format!("line {line}")
    });
    Error::bad_input(path, FORMAT, position, message)
}

/// Finds the line number in an arrow-csv message: the digits after `line `
/// (for value errors, the first `line ` after `column `, because the value
/// itself comes earlier in the message). Returns where the digits are and
/// the line counted from 1.
fn locate_line(message: &str, zero_based: bool) -> Option<(Range<usize>, u64)> {
    let from = if zero_based { message.find("column ")? } else { 0 };
    let start = from + message[from..].find("line ")? + "line ".len();
    let digits = message[start..].bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = message[start..start + digits].parse().ok()?;
    Some((start..start + digits, n + u64::from(zero_based)))
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("input.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read_all(path: &Path, options: CsvOptions) -> Result<Vec<RecordBatch>> {
        let mut source = CsvSource::open(path, options)?;
        std::iter::from_fn(|| source.next_batch().transpose()).collect()
    }

    fn two_ints() -> CsvOptions {
        let schema =
            Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Int64, true)]);
        CsvOptions { schema: Some(Arc::new(schema)), batch_size: 2, ..Default::default() }
    }

    fn position_of(err: &Error) -> Option<&str> {
        match err {
            Error::BadInput { format: "csv", position, .. } => position.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn a_row_with_too_few_fields_is_bad_input_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        // Line 1 is the header; line 5 is short and lies in the second batch.
        let path = write(&dir, "a,b\n1,2\n3,4\n5,6\n7\n9,10\n");
        let err = read_all(&path, two_ints()).unwrap_err();
        assert_eq!(position_of(&err), Some("line 5"), "{err}");
        assert!(err.to_string().contains("input.csv"), "{err}");
    }

    #[test]
    fn a_row_with_too_many_fields_is_bad_input_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "a,b\n1,2\n3,4,5\n");
        let err = read_all(&path, two_ints()).unwrap_err();
        assert_eq!(position_of(&err), Some("line 3"), "{err}");
    }

    #[test]
    fn a_ragged_row_met_while_inferring_is_bad_input_from_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "a,b\n1,2\n3\n");
        let err = CsvSource::open(&path, CsvOptions::default()).unwrap_err();
        assert_eq!(position_of(&err), Some("line 3"), "{err}");
    }

    #[test]
    fn a_value_that_does_not_parse_is_bad_input_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        // Line 6 holds "x" in an Int64 column, in the third batch of two rows.
        let path = write(&dir, "a,b\n1,2\n3,4\n5,6\n7,8\n9,x\n");
        let err = read_all(&path, two_ints()).unwrap_err();
        assert_eq!(position_of(&err), Some("line 6"), "{err}");
        assert!(err.to_string().contains("at line 6"), "message rewritten to match: {err}");

        // Without a header the same value sits on line 5.
        let path = write(&dir, "1,2\n3,4\n5,6\n7,8\n9,x\n");
        let err = read_all(&path, CsvOptions { has_header: false, ..two_ints() }).unwrap_err();
        assert_eq!(position_of(&err), Some("line 5"), "{err}");
    }

    #[test]
    fn the_schema_is_inferred_from_the_header_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "id;name;ok\n1;x;true\n2;;false\n");
        let options = CsvOptions { delimiter: b';', ..Default::default() };
        let source = CsvSource::open(&path, options.clone()).unwrap();
        let types: Vec<_> =
            source.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(
            types,
            [
                ("id".into(), DataType::Int64),
                ("name".into(), DataType::Utf8),
                ("ok".into(), DataType::Boolean)
            ]
        );
        let batches = read_all(&path, options).unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
        assert_eq!(batches[0].column(1).null_count(), 1, "an empty field is null");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.csv");
        let err = CsvSource::open(&path, CsvOptions::default()).unwrap_err();
        assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{err}");
    }
}
