//! Sinks: where batches go.
//!
//! A [`BatchSink`] that writes a file writes it under a temporary name in the
//! target's directory and renames it into place in `finish`; `abort` (or
//! dropping an unfinished sink) removes the temporary file. A failed run
//! therefore never leaves a partial output file behind.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::Result;

mod collect;
mod csv;
mod file;
mod ipc;
mod jsonl;
mod parquet;

pub use self::collect::{CollectSink, Collected};
pub use self::csv::{CsvSink, CSV_LIST_SEPARATOR};
pub use self::ipc::{IpcFileSink, IpcStreamSink};
pub use self::jsonl::JsonlSink;
pub use self::parquet::{ParquetCompression, ParquetOptions, ParquetSink};
pub use crate::format::create_sink;

/// What a sink wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// Rows written.
    pub rows: u64,
    /// Batches written.
    pub batches: u64,
    /// Bytes written to the file, when there is one.
    pub bytes: Option<u64>,
}

/// A push sink of record batches.
///
/// The contract: a sink is created from a path and options (checking what
/// can be checked early, such as the directory), then `open` is called once
/// with the schema of the batches to come, `write` with batches of that
/// schema, and last exactly one of `finish` (success: make the output
/// visible) or `abort` (failure: leave nothing behind). Dropping a sink that
/// was not finished aborts it.
pub trait BatchSink: Send {
    /// Prepares to receive batches of `schema`. Called once, before `write`.
    fn open(&mut self, schema: SchemaRef) -> Result<()>;

    /// Writes one batch.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Completes the output and makes it visible.
    fn finish(&mut self) -> Result<SinkSummary>;

    /// Discards the output. Never fails; idempotent.
    fn abort(&mut self);

    /// A short description for errors and reports.
    fn describe(&self) -> String;
}

impl<S: BatchSink + ?Sized> BatchSink for Box<S> {
    fn open(&mut self, schema: SchemaRef) -> Result<()> {
        (**self).open(schema)
    }
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        (**self).write(batch)
    }
    fn finish(&mut self) -> Result<SinkSummary> {
        (**self).finish()
    }
    fn abort(&mut self) {
        (**self).abort()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
