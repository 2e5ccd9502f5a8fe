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

mod csv;
mod ipc;
mod ipc_stream;
mod jsonl;
mod parquet;
mod reader;

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
    /// CSV only: header, delimiter, schema and inference. Its `batch_size`
    /// is replaced by `batch_rows`.
    pub csv: CsvOptions,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self { batch_rows: DEFAULT_BATCH_ROWS, csv: CsvOptions::default() }
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
