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

use super::bad_rows::{BadRowStats, BadRows, OnBadRow};
use super::csv_lenient::{infer_lenient, LenientCsv};
use super::{input_error, BatchSource, DEFAULT_BATCH_ROWS};
use crate::{Error, Result};

pub(super) const FORMAT: &str = "csv";

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
    /// What a row with the wrong number of fields, or a value that does not
    /// parse as its column's type, does (default [`OnBadRow::Fail`]).
    /// Without a `schema`, inference widens a column to fit the values it
    /// sees, so only values after the first `infer_rows` rows can be bad.
    pub on_bad_row: OnBadRow,
    /// The stage id written in the `_stage` column of dead-letter rows
    /// (default empty).
    pub stage_id: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            schema: None,
            has_header: true,
            delimiter: b',',
            batch_size: DEFAULT_BATCH_ROWS,
            infer_rows: 1000,
            on_bad_row: OnBadRow::Fail,
            stage_id: String::new(),
        }
    }
}

/// A CSV file read in batches.
///
/// A row with too few or too many fields, or a value that does not parse as
/// its column's type, is a *bad row* at `line N`, counting the header as
/// line 1. (Lines are records: a quoted field with a line break inside
/// counts once; blank lines are skipped and not counted.) Empty fields are
/// nulls.
///
/// What a bad row does is [`CsvOptions::on_bad_row`]: under
/// [`OnBadRow::Fail`] it is an [`Error::BadInput`] from `next_batch`; under
/// [`OnBadRow::Skip`] and [`OnBadRow::DeadLetter`] the read goes on without
/// it, it is counted in [`BatchSource::bad_rows`] and, for dead letters,
/// handed out by [`BatchSource::take_dead_letters`] with the error `fail`
/// would have given. The lenient modes cut records themselves before arrow
/// decodes them, so they are somewhat slower than `fail` on clean input.
///
/// ```
/// use std::sync::Arc;
/// use arrow_schema::{DataType, Field, Schema};
/// use garner_columnar::source::{BatchSource, CsvOptions, CsvSource, OnBadRow};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("in.csv");
/// std::fs::write(&path, "id,n\n1,10\n2,ten\n3\n4,40\n")?;
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("id", DataType::Int64, true),
///     Field::new("n", DataType::Int64, true),
/// ]));
/// let options = CsvOptions { schema: Some(schema), on_bad_row: OnBadRow::DeadLetter, ..Default::default() };
/// let mut source = CsvSource::open(&path, options)?;
/// assert_eq!(source.next_batch()?.unwrap().num_rows(), 2); // ids 1 and 4
/// let dead = source.take_dead_letters().unwrap(); // lines 3 and 4, with their errors
/// assert_eq!(dead.num_rows(), 2);
/// assert_eq!(source.bad_rows().dead_lettered, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CsvSource {
    path: PathBuf,
    inner: Inner,
}

/// The arrow-csv reader for `fail`, the record-cutting one otherwise.
enum Inner {
    Strict(Box<arrow_csv::Reader<File>>),
    Lenient(Box<LenientCsv>),
}

impl CsvSource {
    /// Opens `path`, inferring the schema first if `options` has none.
    ///
    /// Under a lenient [`on_bad_row`](CsvOptions::on_bad_row), inference
    /// passes over rows whose field count differs from the header's (or,
    /// without a header, the first row's).
    pub fn open(path: impl AsRef<Path>, options: CsvOptions) -> Result<Self> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let lenient = options.on_bad_row != OnBadRow::Fail;
        let format = CsvFormat::default().with_header(options.has_header).with_delimiter(options.delimiter);
        let schema = match options.schema {
            Some(schema) => schema,
            None => {
                let infer_rows = options.infer_rows.max(1);
                let schema = if lenient {
                    infer_lenient(path, &mut file, options.has_header, options.delimiter, infer_rows)?
                } else {
                    format.infer_schema(&mut file, Some(infer_rows)).map_err(|e| csv_error(path, e))?.0
                };
                file.rewind().map_err(|e| Error::io(path, e))?;
                Arc::new(schema)
            }
        };
        let batch_size = options.batch_size.max(1);
        let inner = if lenient {
            let bad = BadRows::new(options.on_bad_row, options.stage_id);
            Inner::Lenient(Box::new(LenientCsv::new(
                path,
                file,
                schema,
                options.has_header,
                options.delimiter,
                batch_size,
                bad,
            )?))
        } else {
            let reader = ReaderBuilder::new(schema)
                .with_format(format)
                .with_batch_size(batch_size)
                .build(file)
                .map_err(|e| csv_error(path, e))?;
            Inner::Strict(Box::new(reader))
        };
        Ok(Self { path: path.to_owned(), inner })
    }
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource").field("path", &self.path).finish_non_exhaustive()
    }
}

impl BatchSource for CsvSource {
    fn schema(&self) -> SchemaRef {
        match &self.inner {
            Inner::Strict(reader) => reader.schema(),
            Inner::Lenient(reader) => reader.schema(),
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match &mut self.inner {
            Inner::Strict(reader) => reader.next().transpose().map_err(|e| csv_error(&self.path, e)),
            Inner::Lenient(reader) => reader.next_batch(),
        }
    }

    fn take_dead_letters(&mut self) -> Option<RecordBatch> {
        match &mut self.inner {
            Inner::Strict(_) => None,
            Inner::Lenient(reader) => reader.bad_rows_mut().take(),
        }
    }

    fn bad_rows(&self) -> BadRowStats {
        match &self.inner {
            Inner::Strict(_) => BadRowStats::default(),
            Inner::Lenient(reader) => reader.bad_rows().stats(),
        }
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
pub(super) fn csv_error(path: &Path, err: ArrowError) -> Error {
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

/// Rewrites the line number in an arrow-csv `message` (as [`locate_line`]
/// finds it) to `line`: for a record decoded on its own, whose number the
/// decoder does not know.
pub(super) fn relocate(mut message: String, zero_based: bool, line: u64) -> String {
    if let Some((digits, _)) = locate_line(&message, zero_based) {
        message.replace_range(digits, &line.to_string());
    }
    message
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
    use crate::source::BadRowStats;

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

    /// 2000 rows `id,name,score` with every 100th row bad in one of three
    /// ways (too few fields, too many, an unparsable score); returns the
    /// text, the good ids, and the bad rows with their line numbers.
    fn one_percent_bad() -> (String, Vec<i64>, Vec<(String, u64)>) {
        let mut text = String::from("id,name,score\n");
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for id in 0..2000i64 {
            let line = id as u64 + 2; // the header is line 1
            let row = match id % 300 {
                50 => format!("{id},short"),
                150 => format!("{id},long,1.5,extra"),
                250 => format!("{id},\"quoted, with comma\",not-a-number"),
                _ => {
                    good.push(id);
                    format!("{id},n{id},{}.5", id % 7)
                }
            };
            if id % 300 == 50 || id % 300 == 150 || id % 300 == 250 {
                bad.push((row.clone(), line));
            }
            text.push_str(&row);
            text.push('\n');
        }
        (text, good, bad)
    }

    fn three_columns(on_bad_row: OnBadRow) -> CsvOptions {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]);
        CsvOptions {
            schema: Some(Arc::new(schema)),
            batch_size: 256,
            on_bad_row,
            stage_id: "read".into(),
            ..Default::default()
        }
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        use arrow_array::cast::AsArray;
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<arrow_array::types::Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn on_bad_row_skip_yields_exactly_the_good_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (text, good, bad) = one_percent_bad();
        assert!(bad.len() * 100 >= 2000 && bad.len() < 30, "{} bad rows", bad.len());
        let path = write(&dir, &text);
        let mut source = CsvSource::open(&path, three_columns(OnBadRow::Skip)).unwrap();
        let batches: Vec<_> =
            std::iter::from_fn(|| source.next_batch().transpose()).collect::<Result<_>>().unwrap();
        assert_eq!(ids(&batches), good);
        assert!(batches.iter().all(|b| b.num_rows() <= 256));
        assert_eq!(source.bad_rows(), BadRowStats { skipped: bad.len() as u64, dead_lettered: 0 });
        assert!(source.take_dead_letters().is_none(), "skipped rows are not kept");
    }

    #[test]
    fn on_bad_row_dead_letter_yields_the_good_rows_and_every_bad_row_with_its_error() {
        use arrow_array::cast::AsArray;
        let dir = tempfile::tempdir().unwrap();
        let (text, good, bad) = one_percent_bad();
        let path = write(&dir, &text);
        let mut source = CsvSource::open(&path, three_columns(OnBadRow::DeadLetter)).unwrap();
        let mut batches = Vec::new();
        let mut dead = Vec::new();
        while let Some(batch) = source.next_batch().unwrap() {
            batches.push(batch);
            dead.extend(source.take_dead_letters());
        }
        dead.extend(source.take_dead_letters());
        assert_eq!(ids(&batches), good);
        let column = |i: usize| -> Vec<String> {
            dead.iter()
                .flat_map(|b| b.column(i).as_string::<i32>().iter().map(|s| s.unwrap().to_owned()))
                .collect()
        };
        let (raw, errors, stages) = (column(0), column(1), column(2));
        assert_eq!(raw, bad.iter().map(|(row, _)| row.clone()).collect::<Vec<_>>());
        for ((row, line), error) in bad.iter().zip(&errors) {
            assert!(error.contains(&format!("invalid csv input at line {line}:")), "{row}: {error}");
            assert!(error.contains("input.csv"), "{error}");
        }
        assert!(
            errors[0].contains("incorrect number of fields for line 52, expected 3 got 2"),
            "{}",
            errors[0]
        );
        assert!(errors[2].contains("'not-a-number'") && errors[2].contains("at line 252"), "{}", errors[2]);
        assert!(stages.iter().all(|s| s == "read"));
        assert_eq!(source.bad_rows(), BadRowStats { skipped: 0, dead_lettered: bad.len() as u64 });
    }

    #[test]
    fn on_bad_row_fail_errors_at_the_first_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let (text, _, bad) = one_percent_bad();
        let path = write(&dir, &text);
        let err = read_all(&path, three_columns(OnBadRow::Fail)).unwrap_err();
        assert_eq!(position_of(&err), Some(format!("line {}", bad[0].1).as_str()), "{err}");
    }

    #[test]
    fn the_lenient_error_is_the_one_fail_would_give() {
        // The same bad value, read with `fail` and with `dead_letter`.
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "a,b\n1,2\n3,4\n5,x\n7,8\n");
        let fail = read_all(&path, two_ints()).unwrap_err().to_string();
        let mut source =
            CsvSource::open(&path, CsvOptions { on_bad_row: OnBadRow::DeadLetter, ..two_ints() }).unwrap();
        while source.next_batch().unwrap().is_some() {}
        let dead = source.take_dead_letters().unwrap();
        use arrow_array::cast::AsArray;
        assert_eq!(dead.column(1).as_string::<i32>().value(0), fail);
        assert_eq!(dead.column(0).as_string::<i32>().value(0), "5,x");
        assert_eq!(dead.column(2).as_string::<i32>().value(0), "", "no stage id given");
    }

    #[test]
    fn a_batch_of_only_bad_rows_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        // Batches of two: the second batch is all bad.
        let path = write(&dir, "a,b\n1,2\n3,4\nx,y\n5\n7,8\n");
        let options = CsvOptions { on_bad_row: OnBadRow::Skip, ..two_ints() };
        let batches = read_all(&path, options).unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn lenient_inference_passes_over_ragged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "a,b\n1,2\n3\n4,5,6\n7,8\n");
        let err = CsvSource::open(&path, CsvOptions::default()).unwrap_err();
        assert_eq!(position_of(&err), Some("line 3"), "fail still fails at open: {err}");
        let options = CsvOptions { on_bad_row: OnBadRow::Skip, ..CsvOptions::default() };
        let mut source = CsvSource::open(&path, options).unwrap();
        assert_eq!(source.schema().field(1).data_type(), &DataType::Int64);
        assert_eq!(source.next_batch().unwrap().unwrap().num_rows(), 2);
        assert_eq!(source.bad_rows().skipped, 2);
    }

    #[test]
    fn lenient_reads_without_a_header_count_lines_from_the_first_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "1,2\n3,x\n");
        let options = CsvOptions { has_header: false, on_bad_row: OnBadRow::DeadLetter, ..two_ints() };
        let mut source = CsvSource::open(&path, options).unwrap();
        assert_eq!(source.next_batch().unwrap().unwrap().num_rows(), 1);
        use arrow_array::cast::AsArray;
        let dead = source.take_dead_letters().unwrap();
        assert!(dead.column(1).as_string::<i32>().value(0).contains("at line 2"));
    }
}
