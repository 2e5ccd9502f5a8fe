//! JSON lines source: one JSON object per line.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::reader::{infer_json_schema, infer_json_schema_from_seekable, Reader};
use arrow_json::ReaderBuilder;
use arrow_schema::{ArrowError, SchemaRef};

use super::bad_rows::{decode_isolating, join_good, trim_terminator, BadRowStats, BadRows, OnBadRow};
use super::{input_error, BatchSource, DEFAULT_BATCH_ROWS};
use crate::{Error, Result};

const FORMAT: &str = "jsonl";

/// How to read a JSON lines file.
#[derive(Debug, Clone)]
pub struct JsonlOptions {
    /// The columns; `None` infers them from the first `infer_rows` objects
    /// (numbers become Int64 or Float64, arrays become lists, objects
    /// structs; every column is nullable).
    pub schema: Option<SchemaRef>,
    /// Rows per batch (default [`DEFAULT_BATCH_ROWS`]).
    pub batch_size: usize,
    /// Objects read to infer the schema (default 1000, at least 1).
    pub infer_rows: usize,
    /// What a line that is not one JSON object, or holds a value of the
    /// wrong type, does (default [`OnBadRow::Fail`]).
    pub on_bad_row: OnBadRow,
    /// The stage id written in the `_stage` column of dead-letter rows
    /// (default empty).
    pub stage_id: String,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        Self {
            schema: None,
            batch_size: DEFAULT_BATCH_ROWS,
            infer_rows: 1000,
            on_bad_row: OnBadRow::Fail,
            stage_id: String::new(),
        }
    }
}

/// A JSON lines file read in batches. Keys not in the schema are ignored,
/// missing keys are nulls, blank lines are skipped.
///
/// Under [`OnBadRow::Fail`] (the default) the file is read by arrow-json as
/// a stream of JSON values, and arrow-json does not report where in a batch
/// an error lies, so a bad object is an [`Error::BadInput`] whose position
/// is the range of records of the batch that holds it (`records
/// 8193-16384`).
///
/// Under [`OnBadRow::Skip`] and [`OnBadRow::DeadLetter`] each line must
/// hold exactly one object. A line that does not (malformed JSON, two
/// values, a value of the wrong type for its column) is a bad row at `line
/// N` (counting every line from 1, blank ones included): counted in
/// [`BatchSource::bad_rows`] and, for dead letters, handed out by
/// [`BatchSource::take_dead_letters`] with its error. Inference then uses
/// the first `infer_rows` lines that are JSON objects.
///
/// ```
/// use garner_columnar::source::{BatchSource, JsonlOptions, JsonlSource, OnBadRow};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("in.jsonl");
/// std::fs::write(&path, "{\"a\": 1}\n{\"a\": oops}\n{\"a\": 3}\n")?;
/// let options = JsonlOptions { on_bad_row: OnBadRow::Skip, ..Default::default() };
/// let mut source = JsonlSource::open(&path, options)?;
/// assert_eq!(source.next_batch()?.unwrap().num_rows(), 2);
/// assert_eq!(source.bad_rows().skipped, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JsonlSource {
    path: PathBuf,
    inner: Inner,
}

/// arrow-json's streaming reader for `fail`, the line-cutting one otherwise.
enum Inner {
    Strict { reader: Box<Reader<BufReader<File>>>, batch_size: usize, rows_read: u64 },
    Lenient(Box<LenientJsonl>),
}

impl JsonlSource {
    /// Opens `path`, inferring the schema first if `options` has none.
    pub fn open(path: impl AsRef<Path>, options: JsonlOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut input = BufReader::new(file);
        let lenient = options.on_bad_row != OnBadRow::Fail;
        let infer_rows = options.infer_rows.max(1);
        let schema = match options.schema {
            Some(schema) => schema,
            None if lenient => {
                let schema = infer_lenient(path, &mut input, infer_rows)?;
                input.rewind().map_err(|e| Error::io(path, e))?;
                schema
            }
            None => {
                let (schema, _) = infer_json_schema_from_seekable(&mut input, Some(infer_rows))
                    .map_err(|e| input_error(path, FORMAT, Some("schema inference".into()), e))?;
                Arc::new(schema)
            }
        };
        let batch_size = options.batch_size.max(1);
        let inner = if lenient {
            Inner::Lenient(Box::new(LenientJsonl {
                path: path.to_owned(),
                schema,
                batch_size,
                input,
                bad: BadRows::new(options.on_bad_row, options.stage_id),
                chunk: Vec::new(),
                pending: Vec::new(),
                feed: Vec::new(),
                line: 0,
                done: false,
            }))
        } else {
            let reader = ReaderBuilder::new(schema)
                .with_batch_size(batch_size)
                .build(input)
                .map_err(|e| input_error(path, FORMAT, None, e))?;
            Inner::Strict { reader: Box::new(reader), batch_size, rows_read: 0 }
        };
        Ok(Self { path: path.to_owned(), inner })
    }
}

impl std::fmt::Debug for JsonlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("JsonlSource");
        d.field("path", &self.path);
        match &self.inner {
            Inner::Strict { rows_read, .. } => d.field("rows_read", rows_read),
            Inner::Lenient(l) => d.field("lines_read", &l.line).field("bad_rows", &l.bad.stats()),
        };
        d.finish()
    }
}

impl BatchSource for JsonlSource {
    fn schema(&self) -> SchemaRef {
        match &self.inner {
            Inner::Strict { reader, .. } => arrow_array::RecordBatchReader::schema(reader),
            Inner::Lenient(l) => SchemaRef::clone(&l.schema),
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let (reader, batch_size, rows_read) = match &mut self.inner {
            Inner::Lenient(l) => return l.next_batch(),
            Inner::Strict { reader, batch_size, rows_read } => (reader, *batch_size, rows_read),
        };
        match reader.next().transpose() {
            Ok(batch) => {
                *rows_read += batch.as_ref().map_or(0, |b| b.num_rows() as u64);
                Ok(batch)
            }
            Err(e) => {
                let first = *rows_read + 1;
                let position = format!("records {first}-{}", *rows_read + batch_size as u64);
                Err(input_error(&self.path, FORMAT, Some(position), e))
            }
        }
    }

    fn describe(&self) -> String {
        format!("jsonl file {}", self.path.display())
    }

    fn take_dead_letters(&mut self) -> Option<RecordBatch> {
        match &mut self.inner {
            Inner::Strict { .. } => None,
            Inner::Lenient(l) => l.bad.take(),
        }
    }

    fn bad_rows(&self) -> BadRowStats {
        match &self.inner {
            Inner::Strict { .. } => BadRowStats::default(),
            Inner::Lenient(l) => l.bad.stats(),
        }
    }
}

/// A non-blank line waiting to be decoded: its bytes in the chunk and its
/// line number.
#[derive(Debug, Clone)]
struct Pending {
    range: Range<usize>,
    line: u64,
}

/// The reader behind the lenient policies: cuts lines, decodes a batch of
/// them with arrow-json, and isolates the bad ones by bisection when that
/// fails (see [`decode_isolating`]).
struct LenientJsonl {
    path: PathBuf,
    schema: SchemaRef,
    batch_size: usize,
    input: BufReader<File>,
    bad: BadRows,
    chunk: Vec<u8>,
    pending: Vec<Pending>,
    feed: Vec<u8>,
    /// Lines read so far.
    line: u64,
    done: bool,
}

impl LenientJsonl {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while !self.done {
            self.chunk.clear();
            self.pending.clear();
            while self.pending.len() < self.batch_size {
                let start = self.chunk.len();
                let n =
                    self.input.read_until(b'\n', &mut self.chunk).map_err(|e| Error::io(&self.path, e))?;
                if n == 0 {
                    self.done = true;
                    break;
                }
                self.line += 1;
                if self.chunk[start..].iter().all(u8::is_ascii_whitespace) {
                    self.chunk.truncate(start);
                    continue;
                }
                self.pending.push(Pending { range: start..self.chunk.len(), line: self.line });
            }
            let Self { path, schema, chunk, pending, feed, bad, .. } = self;
            let mut decode = |lines: &[Pending]| decode_lines(schema, chunk, lines, feed);
            let mut reject = |line: &Pending, err: ArrowError| {
                let error = Error::BadInput {
                    path: path.clone(),
                    format: FORMAT,
                    position: Some(format!("line {}", line.line)),
                    message: err.to_string(),
                };
                bad.push(&chunk[line.range.clone()], error.to_string());
            };
            let mut good = Vec::new();
            decode_isolating(pending, &mut decode, &mut reject, &mut good);
            let Some(batch) = join_good(schema, good, || format!("jsonl file {}", path.display()))? else {
                continue;
            };
            if batch.num_rows() > 0 {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }
}

/// Decodes `lines` (slices of `chunk`) with arrow-json, all or nothing,
/// one row per line.
fn decode_lines(
    schema: &SchemaRef,
    chunk: &[u8],
    lines: &[Pending],
    feed: &mut Vec<u8>,
) -> Result<RecordBatch, ArrowError> {
    feed.clear();
    for l in lines {
        feed.extend_from_slice(trim_terminator(&chunk[l.range.clone()]));
        feed.push(b'\n');
    }
    // One more than the lines, so a line holding two values shows as a
    // row count mismatch instead of a batch boundary.
    let mut decoder =
        ReaderBuilder::new(SchemaRef::clone(schema)).with_batch_size(lines.len() + 1).build_decoder()?;
    let mut offset = 0;
    while offset < feed.len() {
        let n = decoder.decode(&feed[offset..])?;
        if n == 0 {
            break;
        }
        offset += n;
    }
    if offset < feed.len() {
        return Err(ArrowError::JsonError("more than one JSON value per line".into()));
    }
    let batch = decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(SchemaRef::clone(schema)));
    if batch.num_rows() != lines.len() {
        return Err(ArrowError::JsonError(format!(
            "expected one JSON object per line, found {} values in {} lines",
            batch.num_rows(),
            lines.len()
        )));
    }
    Ok(batch)
}

/// Infers a schema from the first `infer_rows` lines that are JSON objects
/// on their own, so a bad line near the top does not stop a lenient read.
fn infer_lenient(path: &Path, input: &mut BufReader<File>, infer_rows: usize) -> Result<SchemaRef> {
    let mut sample = Vec::new();
    let mut line = Vec::new();
    let mut kept = 0;
    while kept < infer_rows {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))? == 0 {
            break;
        }
        let text = trim_terminator(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if matches!(infer_json_schema(Cursor::new(text), None), Ok((_, 1))) {
            sample.extend_from_slice(text);
            sample.push(b'\n');
            kept += 1;
        }
    }
    let (schema, _) = infer_json_schema(Cursor::new(sample), None)
        .map_err(|e| input_error(path, FORMAT, Some("schema inference".into()), e))?;
    Ok(Arc::new(schema))
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::DataType;

    use super::*;
    use crate::source::BadRowStats;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("input.jsonl");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_schema_is_inferred_and_missing_keys_are_null() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "{\"a\": 1, \"b\": \"x\"}\n\n{\"a\": 2}\n{\"b\": \"y\", \"c\": [1.5]}\n");
        let mut source = JsonlSource::open(&path, JsonlOptions::default()).unwrap();
        let schema = source.schema();
        assert_eq!(schema.field_with_name("a").unwrap().data_type(), &DataType::Int64);
        assert!(matches!(schema.field_with_name("c").unwrap().data_type(), DataType::List(_)));
        let batch = source.next_batch().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 3);
        let a = batch.column_by_name("a").unwrap().as_primitive::<Int64Type>();
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some(1), Some(2), None]);
        assert!(source.next_batch().unwrap().is_none());
    }

    #[test]
    fn a_malformed_object_is_bad_input_naming_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n{\"a\": [}\n";
        let path = write(&dir, text);
        let schema =
            Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new("a", DataType::Int64, true)]));
        let options = JsonlOptions { schema: Some(schema), batch_size: 2, ..Default::default() };
        let mut source = JsonlSource::open(&path, options).unwrap();
        assert_eq!(source.next_batch().unwrap().unwrap().num_rows(), 2);
        let err = source.next_batch().unwrap_err();
        match &err {
            Error::BadInput { format: "jsonl", position, path: p, .. } => {
                assert_eq!(position.as_deref(), Some("records 3-4"));
                assert_eq!(p, &path);
            }
            other => panic!("expected bad input, got {other}"),
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "{\"a\": 1}\n{\"a\": \"one\"}\n");
        let schema =
            Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new("a", DataType::Int64, true)]));
        let mut source =
            JsonlSource::open(&path, JsonlOptions { schema: Some(schema), ..Default::default() }).unwrap();
        let err = source.next_batch().unwrap_err();
        assert!(matches!(err, Error::BadInput { format: "jsonl", .. }), "{err}");
    }

    #[test]
    fn garbage_met_while_inferring_is_bad_input_from_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "this is not json\n");
        let err = JsonlSource::open(&path, JsonlOptions::default()).unwrap_err();
        assert!(matches!(err, Error::BadInput { format: "jsonl", .. }), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.jsonl");
        let err = JsonlSource::open(&path, JsonlOptions::default()).unwrap_err();
        assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{err}");
    }

    fn int_a(on_bad_row: OnBadRow) -> JsonlOptions {
        let schema =
            Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new("a", DataType::Int64, true)]));
        JsonlOptions {
            schema: Some(schema),
            batch_size: 4,
            on_bad_row,
            stage_id: "in".into(),
            ..Default::default()
        }
    }

    #[test]
    fn dead_letter_isolates_each_bad_line_with_its_line_number() {
        use arrow_array::cast::AsArray;
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"a\": 1}\n{\"a\": [}\n\n{\"a\": \"one\"}\n{\"a\": 4}\n{\"a\": 5} {\"a\": 6}\n{\"a\": 7}\nnot json\n";
        let path = write(&dir, text);
        let mut source = JsonlSource::open(&path, int_a(OnBadRow::DeadLetter)).unwrap();
        let mut values = Vec::new();
        while let Some(batch) = source.next_batch().unwrap() {
            values.extend(batch.column(0).as_primitive::<Int64Type>().iter().map(Option::unwrap));
        }
        assert_eq!(values, [1, 4, 7]);
        let dead = source.take_dead_letters().unwrap();
        let col = |i: usize| {
            dead.column(i).as_string::<i32>().iter().map(|s| s.unwrap().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(col(0), ["{\"a\": [}", "{\"a\": \"one\"}", "{\"a\": 5} {\"a\": 6}", "not json"]);
        let errors = col(1);
        for (error, line) in errors.iter().zip([2, 4, 6, 8]) {
            assert!(error.contains(&format!("invalid jsonl input at line {line}:")), "{error}");
        }
        assert!(col(2).iter().all(|s| s == "in"));
        assert_eq!(source.bad_rows(), BadRowStats { skipped: 0, dead_lettered: 4 });
    }

    #[test]
    fn skip_counts_and_drops_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..500 {
            if i % 100 == 7 {
                text.push_str("{\"a\": }\n");
            } else {
                text.push_str(&format!("{{\"a\": {i}}}\n"));
            }
        }
        let path = write(&dir, &text);
        let mut source =
            JsonlSource::open(&path, JsonlOptions { batch_size: 64, ..int_a(OnBadRow::Skip) }).unwrap();
        let mut rows = 0;
        while let Some(batch) = source.next_batch().unwrap() {
            rows += batch.num_rows();
        }
        assert_eq!(rows, 495);
        assert_eq!(source.bad_rows().skipped, 5);
        assert!(source.take_dead_letters().is_none());
    }

    #[test]
    fn lenient_inference_passes_over_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "this is not json\n{\"a\": 1}\n{\"a\": 2}\n");
        let options = JsonlOptions { on_bad_row: OnBadRow::Skip, ..Default::default() };
        let mut source = JsonlSource::open(&path, options).unwrap();
        assert_eq!(source.schema().field_with_name("a").unwrap().data_type(), &DataType::Int64);
        assert_eq!(source.next_batch().unwrap().unwrap().num_rows(), 2);
        assert_eq!(source.bad_rows().skipped, 1);
    }
}
