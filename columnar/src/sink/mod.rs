//! Sinks: where batches go.
//!
//! A [`BatchSink`] that writes a file writes it under a temporary name in the
//! target's directory; `finish` completes and syncs it, `commit` renames it
//! into place, and `abort` (or dropping a sink that was not committed)
//! removes it. An engine finishes every sink of a run first and commits them
//! only when all finished, so a failed run never leaves an output file
//! behind, however many sinks it has.

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
/// The contract, in the order an engine calls it:
///
/// ```text
///   create(path, options)      checks what can be checked early (the directory)
///   open(schema)               once, before any batch
///   write(batch)*              batches of that schema
///   finish()                   writes everything, durably, but shows nothing yet
///   commit() | abort()         success: make the output visible | failure: leave nothing
/// ```
///
/// A run with several sinks finishes all of them and commits them only when
/// every `finish` succeeded; on any error it aborts all of them, also those
/// already finished. `abort` after `commit` leaves the committed output.
/// Dropping a sink that was not committed aborts it.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::BatchSink;
/// use garner_columnar::sink::CsvSink;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("x.csv");
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2])) as _)]).unwrap();
/// let mut sink = CsvSink::create(&path).unwrap();
/// sink.open(batch.schema()).unwrap();
/// sink.write(&batch).unwrap();
/// sink.finish().unwrap();
/// assert!(!path.exists(), "finished, not yet visible");
/// sink.commit().unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n1\n2\n");
/// ```
pub trait BatchSink: Send {
    /// Prepares to receive batches of `schema`. Called once, before `write`.
    fn open(&mut self, schema: SchemaRef) -> Result<()>;

    /// Writes one batch.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Completes the output (footer, flush, sync) without making it visible:
    /// everything that can fail for reasons of the data or the disk fails
    /// here. Follow with [`commit`](Self::commit) or [`abort`](Self::abort).
    fn finish(&mut self) -> Result<SinkSummary>;

    /// Makes the finished output visible (a file sink renames its temporary
    /// file into place). Called once, after a successful `finish`. Sinks
    /// without a file have nothing to do: the default returns `Ok(())`.
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }

    /// Discards the output: removes what was written, also after a `finish`
    /// that was not committed. Never fails; idempotent; after `commit` it
    /// leaves the committed output alone.
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
    fn commit(&mut self) -> Result<()> {
        (**self).commit()
    }
    fn abort(&mut self) {
        (**self).abort()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
