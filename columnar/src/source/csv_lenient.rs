//! The CSV reader behind `on_bad_row = "skip" | "dead_letter"`.
//!
//! 1. A [`RecordSplitter`] cuts the file into records with `csv-core`, set
//!    up as arrow-csv sets it up (so quoting, blank lines and terminators
//!    mean the same), keeping each record's raw bytes and field count.
//! 2. A record with the wrong number of fields is bad at once.
//! 3. Up to `batch_size` good-looking records are decoded by arrow-csv's
//!    own `Decoder` (so values parse exactly as in `fail` mode); if a value
//!    does not parse, [`decode_isolating`] splits the batch until each bad
//!    record is alone.
//! 4. Bad records go to [`BadRows`] with the error `fail` mode would have
//!    raised for them (file, `line N` counting records as arrow-csv does,
//!    header included).

use std::fs::File;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_csv::reader::Format as CsvFormat;
use arrow_csv::ReaderBuilder;
use arrow_schema::{ArrowError, Schema, SchemaRef};
use csv_core::ReadRecordResult;

use super::bad_rows::{decode_isolating, join_good, trim_terminator, BadRows};
use super::csv::{csv_error, relocate, FORMAT};
use crate::{Error, Result};

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One record found by a [`RecordSplitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Split {
    /// Where its raw bytes were appended to the caller's buffer.
    pub(super) range: Range<usize>,
    /// Its number of fields.
    pub(super) fields: usize,
    /// Its number, from 1 (a header is record 1).
    pub(super) number: u64,
}

/// Cuts CSV input into records, keeping their raw bytes.
pub(super) struct RecordSplitter<R> {
    input: R,
    parser: csv_core::Reader,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    eof: bool,
    /// Field contents are not needed, only counted: a scratch output.
    scratch: Box<[u8]>,
    ends: Box<[usize]>,
    number: u64,
}

impl<R: Read> RecordSplitter<R> {
    pub(super) fn new(input: R, delimiter: u8) -> Self {
        // arrow-csv's `Format::build_parser` with the options garner sets.
        let parser = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        RecordSplitter {
            input,
            parser,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            pos: 0,
            filled: 0,
            eof: false,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            ends: vec![0; 256].into_boxed_slice(),
            number: 0,
        }
    }

    /// Appends the next record's raw bytes to `out`; `None` at the end.
    pub(super) fn next_record(&mut self, out: &mut Vec<u8>) -> std::io::Result<Option<Split>> {
        let start = out.len();
        let mut fields = 0;
        loop {
            if self.pos == self.filled && !self.eof {
                self.pos = 0;
                self.filled = loop {
                    match self.input.read(&mut self.buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                self.eof = self.filled == 0;
            }
            // Empty at the end of the input: csv-core's signal to finish.
            let input = &self.buf[self.pos..self.filled];
            let (result, nin, _, nends) = self.parser.read_record(input, &mut self.scratch, &mut self.ends);
            out.extend_from_slice(&input[..nin]);
            self.pos += nin;
            fields += nends;
            match result {
                ReadRecordResult::Record => {
                    self.number += 1;
                    return Ok(Some(Split { range: start..out.len(), fields, number: self.number }));
                }
                ReadRecordResult::End => {
                    out.truncate(start);
                    return Ok(None);
                }
                ReadRecordResult::InputEmpty if self.eof => {
                    out.truncate(start);
                    return Ok(None);
                }
                // More input, or the scratch buffers are reused as they are.
                ReadRecordResult::InputEmpty
                | ReadRecordResult::OutputFull
                | ReadRecordResult::OutputEndsFull => {}
            }
        }
    }
}

/// A good-looking record waiting to be decoded: its bytes in the chunk and
/// its number.
#[derive(Debug, Clone)]
struct Pending {
    range: Range<usize>,
    number: u64,
}

/// The lenient CSV reader (see the module docs).
pub(super) struct LenientCsv {
    path: PathBuf,
    schema: SchemaRef,
    delimiter: u8,
    batch_size: usize,
    splitter: RecordSplitter<File>,
    bad: BadRows,
    /// The raw bytes of the records of the batch being read.
    chunk: Vec<u8>,
    pending: Vec<Pending>,
    /// Records re-assembled for one decode.
    feed: Vec<u8>,
    /// The bad records of the batch being read: number, bytes in the
    /// chunk, error.
    rejected: Vec<(u64, Range<usize>, String)>,
    done: bool,
}

impl LenientCsv {
    /// Reads `file` (positioned at its start) against `schema`.
    pub(super) fn new(
        path: &Path,
        file: File,
        schema: SchemaRef,
        has_header: bool,
        delimiter: u8,
        batch_size: usize,
        bad: BadRows,
    ) -> Result<Self> {
        let mut splitter = RecordSplitter::new(file, delimiter);
        let mut chunk = Vec::new();
        if has_header {
            splitter.next_record(&mut chunk).map_err(|e| Error::io(path, e))?;
            chunk.clear();
        }
        Ok(LenientCsv {
            path: path.to_owned(),
            schema,
            delimiter,
            batch_size,
            splitter,
            bad,
            chunk,
            pending: Vec::new(),
            feed: Vec::new(),
            rejected: Vec::new(),
            done: false,
        })
    }

    pub(super) fn schema(&self) -> SchemaRef {
        SchemaRef::clone(&self.schema)
    }

    pub(super) fn bad_rows(&self) -> &BadRows {
        &self.bad
    }

    pub(super) fn bad_rows_mut(&mut self) -> &mut BadRows {
        &mut self.bad
    }

    /// The next batch of good rows, `None` at the end. A batch may hold
    /// fewer than `batch_size` rows when some were bad.
    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let expected = self.schema.fields().len();
        while !self.done {
            self.chunk.clear();
            self.pending.clear();
            while self.pending.len() < self.batch_size {
                let split =
                    self.splitter.next_record(&mut self.chunk).map_err(|e| Error::io(&self.path, e))?;
                let Some(split) = split else {
                    self.done = true;
                    break;
                };
                if split.fields != expected {
                    let message = format!(
                        "incorrect number of fields for line {}, expected {expected} got {}",
                        split.number, split.fields
                    );
                    let error = bad_row_error(&self.path, split.number, message);
                    self.rejected.push((split.number, split.range, error));
                    continue;
                }
                self.pending.push(Pending { range: split.range, number: split.number });
            }
            let Self { path, schema, delimiter, chunk, pending, feed, bad, rejected, .. } = self;
            let mut decode = |records: &[Pending]| decode_records(schema, *delimiter, chunk, records, feed);
            let mut reject = |record: &Pending, err: ArrowError| {
                let message = match err {
                    ArrowError::ParseError(m) => relocate(m, true, record.number),
                    ArrowError::CsvError(m) => relocate(m, false, record.number),
                    other => other.to_string(),
                };
                rejected.push((
                    record.number,
                    record.range.clone(),
                    bad_row_error(path, record.number, message),
                ));
            };
            let mut good = Vec::new();
            decode_isolating(pending, &mut decode, &mut reject, &mut good);
            // Ragged records were found before the decode: restore file order.
            rejected.sort_unstable_by_key(|r| r.0);
            for (_, range, error) in rejected.drain(..) {
                bad.push(&chunk[range], error);
            }
            let Some(batch) = join_good(schema, good, || format!("csv file {}", path.display()))? else {
                continue;
            };
            if batch.num_rows() > 0 {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }
}

/// The message `fail` mode would give for a bad record.
fn bad_row_error(path: &Path, line: u64, message: String) -> String {
    Error::BadInput { path: path.to_owned(), format: FORMAT, position: Some(format!("line {line}")), message }
        .to_string()
}

/// Decodes `records` (slices of `chunk`) with arrow-csv, all or nothing,
/// one row per record.
fn decode_records(
    schema: &SchemaRef,
    delimiter: u8,
    chunk: &[u8],
    records: &[Pending],
    feed: &mut Vec<u8>,
) -> Result<RecordBatch, ArrowError> {
    feed.clear();
    for r in records {
        feed.extend_from_slice(trim_terminator(&chunk[r.range.clone()]));
        feed.push(b'\n');
    }
    let format = CsvFormat::default().with_header(false).with_delimiter(delimiter);
    let mut decoder = ReaderBuilder::new(SchemaRef::clone(schema))
        .with_format(format)
        .with_batch_size(records.len())
        .build_decoder();
    let mut offset = 0;
    while offset < feed.len() {
        let n = decoder.decode(&feed[offset..])?;
        if n == 0 {
            break;
        }
        offset += n;
    }
    decoder.decode(&[])?;
    let batch = decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(SchemaRef::clone(schema)));
    if batch.num_rows() != records.len() {
        return Err(ArrowError::CsvError(format!(
            "{} records decoded as {} rows",
            records.len(),
            batch.num_rows()
        )));
    }
    Ok(batch)
}

/// Infers a schema from the first `infer_rows` records that have as many
/// fields as the header (or, without one, the first record): a ragged row
/// near the top must not stop a lenient read before it starts.
pub(super) fn infer_lenient(
    path: &Path,
    file: &mut File,
    has_header: bool,
    delimiter: u8,
    infer_rows: usize,
) -> Result<Schema> {
    let mut splitter = RecordSplitter::new(file, delimiter);
    let mut sample = Vec::new();
    let mut width = None;
    let mut kept = 0;
    let limit = infer_rows + usize::from(has_header);
    while kept < limit {
        let start = sample.len();
        let Some(split) = splitter.next_record(&mut sample).map_err(|e| Error::io(path, e))? else { break };
        if *width.get_or_insert(split.fields) != split.fields {
            sample.truncate(start);
            continue;
        }
        let raw = trim_terminator(&sample[start..]).to_vec();
        sample.truncate(start);
        sample.extend_from_slice(&raw);
        sample.push(b'\n');
        kept += 1;
    }
    let format = CsvFormat::default().with_header(has_header).with_delimiter(delimiter);
    let (schema, _) =
        format.infer_schema(Cursor::new(sample), Some(infer_rows.max(1))).map_err(|e| csv_error(path, e))?;
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(text: &str) -> Vec<(String, usize, u64)> {
        let mut splitter = RecordSplitter::new(text.as_bytes(), b',');
        let mut out = Vec::new();
        let mut records = Vec::new();
        while let Some(s) = splitter.next_record(&mut out).unwrap() {
            let raw = String::from_utf8(trim_terminator(&out[s.range.clone()]).to_vec()).unwrap();
            records.push((raw, s.fields, s.number));
        }
        records
    }

    #[test]
    fn records_keep_their_raw_text_quotes_and_all() {
        let records = split_all("a,b\n1,\"x\ny\"\r\n\n3\n4,5,6");
        assert_eq!(
            records,
            [
                ("a,b".to_owned(), 2, 1),
                ("1,\"x\ny\"".to_owned(), 2, 2),
                ("3".to_owned(), 1, 3), // the blank line is skipped, as arrow-csv does
                ("4,5,6".to_owned(), 3, 4),
            ]
        );
    }

    #[test]
    fn records_longer_than_the_read_chunk_are_whole() {
        let long = "y".repeat(3 * READ_CHUNK);
        let records = split_all(&format!("1,{long}\n2,z\n"));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0.len(), long.len() + 2);
        assert_eq!((records[1].1, records[1].2), (2, 2));
    }
}
