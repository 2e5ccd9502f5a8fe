//! garner-columnar: the data layer of garner.
//!
//! - [`Batch`] and [`BatchMeta`]: the envelope batch every stage exchanges (an
//!   Arrow `RecordBatch`, zero-copy to clone, plus batch-level metadata).
//! - Micro-batching: [`Coalescer`] joins small batches up to a target,
//!   [`Splitter`] slices big ones without copying.
//! - Arrow IO: [`BatchSource`]s and [`BatchSink`]s for Arrow IPC (file, read
//!   through a memory map without copying, and stream), Parquet, CSV and JSON
//!   lines, adapters from any `RecordBatchReader` or iterator, and a collecting
//!   sink. Bad input is a typed [`Error`] naming the file and the position.

mod batch;
mod error;
mod format;
mod memory;
mod micro;
mod schema;
pub mod sink;
pub mod source;
#[cfg(test)]
mod testdata;

pub use batch::{Batch, BatchMeta, Cost, Headers, TimeRange, TraceContext, ROW_SEQ_BITS};
pub use error::{Error, Result};
pub use format::{create_sink, open_source, open_source_with, Format};
pub use memory::distinct_buffer_bytes;
pub use micro::{Coalescer, Splitter};
pub use sink::{BatchSink, SinkSummary};
pub use source::BatchSource;
