//! Sources: where batches come from.
//!
//! A [`BatchSource`] is a pull iterator over record batches with a known
//! schema. Files are opened eagerly (a missing file or a bad header is an
//! error from `open`, before any pipeline runs); bad data further in is an
//! error from `next_batch`, naming the file and the position.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use crate::{Error, Result};

mod bad_rows;
mod csv;
mod csv_lenient;
mod ipc;
mod ipc_stream;
mod jsonl;
mod parquet;
mod reader;

pub use self::bad_rows::{
    dead_letter_schema, BadRowStats, OnBadRow, UnknownOnBadRow, ERROR_COLUMN, RAW_COLUMN, STAGE_COLUMN,
};
pub use self::csv::{CsvOptions, CsvSource};
pub use self::ipc::IpcFileSource;
pub use self::ipc_stream::IpcStreamSource;
pub use self::jsonl::{JsonlOptions, JsonlSource};
pub use self::parquet::ParquetSource;
pub use self::reader::{IterSource, MemorySource, ReaderSource};
pub use crate::format::{open_source, open_source_with};

/// Rows per batch the file sources produce unless told otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// How [`open_source_with`] opens a file, whatever its format.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Rows per batch for the formats that cut their own batches (Parquet,
    /// CSV, JSON lines); default [`DEFAULT_BATCH_ROWS`]. Arrow IPC files and
    /// streams return their batches as stored, so this does not apply to them.
    pub batch_rows: usize,
    /// CSV only: header, delimiter, schema and inference. Its `batch_size`,
    /// `on_bad_row` and `stage_id` are replaced by the fields here.
    pub csv: CsvOptions,
    /// CSV and JSON lines: what a row that cannot be read does (default
    /// [`OnBadRow::Fail`]). The other formats are binary and self-describing:
    /// bad input there is always an error.
    pub on_bad_row: OnBadRow,
    /// CSV and JSON lines: the stage id for the `_stage` column of
    /// dead-letter rows (default empty).
    pub stage_id: String,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            csv: CsvOptions::default(),
            on_bad_row: OnBadRow::Fail,
            stage_id: String::new(),
        }
    }
}

/// A pull source of record batches.
pub trait BatchSource: Send {
    /// The schema of every batch this source returns.
    fn schema(&self) -> SchemaRef;

    /// The next batch, `Ok(None)` at the end.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>>;

    /// Total rows, when the source knows it up front (IPC file, Parquet):
    /// used for progress displays.
    fn rows_hint(&self) -> Option<u64> {
        None
    }

    /// A short description for errors and reports, e.g. `ipc file data.arrow`.
    fn describe(&self) -> String;

    /// The rows set aside as dead letters since the last call, as one batch
    /// of [`dead_letter_schema`] (`_raw`: the row's original text,
    /// `_error`: what was wrong, naming the file and line, `_stage`: the
    /// source's stage id); `None` if there are none.
    ///
    /// Only sources opened with [`OnBadRow::DeadLetter`] set rows aside. A
    /// caller routing dead letters takes them after each
    /// [`next_batch`](Self::next_batch) (and once after the end): they are
    /// held until taken. The default has none.
    fn take_dead_letters(&mut self) -> Option<RecordBatch> {
        None
    }

    /// How many bad rows were skipped or dead-lettered so far.
    fn bad_rows(&self) -> BadRowStats {
        BadRowStats::default()
    }
}

impl<S: BatchSource + ?Sized> BatchSource for Box<S> {
    fn schema(&self) -> SchemaRef {
        (**self).schema()
    }
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        (**self).next_batch()
    }
    fn rows_hint(&self) -> Option<u64> {
        (**self).rows_hint()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn take_dead_letters(&mut self) -> Option<RecordBatch> {
        (**self).take_dead_letters()
    }
    fn bad_rows(&self) -> BadRowStats {
        (**self).bad_rows()
    }
}

/// Turns an Arrow error met while reading `path` into an [`Error`]: a real
/// I/O failure stays [`Error::Io`]; anything else, including an early end of
/// file, is [`Error::BadInput`] at `position`.
pub(crate) fn input_error(
    path: &Path,
    format: &'static str,
    position: Option<String>,
    err: ArrowError,
) -> Error {
    match err {
        ArrowError::IoError(_, source) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            Error::io(path, source)
        }
        ArrowError::IoError(message, _) => {
            Error::bad_input(path, format, position, format!("unexpected end of input ({message})"))
        }
        other => Error::bad_input(path, format, position, other.to_string()),
    }
}

/// Runs a decoder from arrow-ipc or parquet on untrusted bytes, turning a
/// panic into an error.
///
/// Those decoders check most of what a malformed file can claim, not all of
/// it: in version 60 a few lies still reach a slice index or an assertion
/// (the byte-flip tests in `ipc.rs` and `ipc_stream.rs` find them). A reader must not take the
/// process down for bad input, so decoding runs under `catch_unwind`; the
/// panic hook still reports the panic on stderr first. The file sources
/// check what they cheaply can before decoding, so this is a backstop. A
/// decoder that panicked may be in any (memory-safe) state, so callers stop
/// using a stateful one afterwards.
pub(crate) fn decode_guarded<T>(decode: impl FnOnce() -> Result<T, ArrowError>) -> Result<T, ArrowError> {
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(ArrowError::InvalidArgumentError(format!("malformed input made the decoder panic: {what}")))
    })
}
