//! # garner
//!
//! High-throughput, memory-bounded pipelines over Apache Arrow, with
//! **conditional accumulation**: records assembled from fragments that
//! arrive in any order, keyed by subject, emitted the moment they are
//! complete, or flushed as partials (naming what is missing) when their TTL
//! expires.
//!
//! This facade re-exports the workspace's crates:
//!
//! | module | crate | holds |
//! |---|---|---|
//! | [`pools`] | `garner-pools` | memory budget, reservations, sizes |
//! | [`columnar`] | `garner-columnar` | envelope batches, micro-batching, Arrow IO |
//! | [`accum`] | `garner-accum` | accumulators (the `VarSet` assembler) |
//! | [`engine`] | `garner-engine` | stages, graph, DSL, engines |
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
//! use garner::prelude::*;
//!
//! // Fragments: (subject_id, var, value, ts), in any order.
//! let fragments = RecordBatch::try_from_iter([
//!     ("subject_id", Arc::new(UInt64Array::from(vec![1, 2, 1, 1, 2])) as ArrayRef),
//!     ("var", Arc::new(StringArray::from(vec!["id", "id", "name", "limit", "name"])) as ArrayRef),
//!     ("value", Arc::new(StringArray::from(vec!["S1", "S2", "Ann", "100", "Bob"])) as ArrayRef),
//!     ("ts", Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4])) as ArrayRef),
//! ])?;
//! let (sink, assembled) = CollectSink::new();
//! let graph = Pipeline::new("risk-assembly")
//!     .source("read", MemorySource::try_from_batches(vec![fragments])?)
//!     .transform("clean", DropNulls::on(["subject_id"]))
//!     .accumulate("assemble", VarSet::keyed("subject_id")
//!         .var_column("var").value_column("value")
//!         .require(["id", "name", "limit"])
//!         .time(TimeMode::Event { column: "ts".into() })
//!         .partial_flush_after(std::time::Duration::from_secs(10)))
//!     .sink("collect", sink)
//!     .build()?;
//! let report = SyncEngine::new().run(graph, RunOptions::default())?;
//! let out = assembled.concat()?;
//! assert_eq!(out.num_rows(), 2); // subject 1 complete, subject 2 partial (no `limit`)
//! assert_eq!(report.rows_in(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use garner_accum as accum;
pub use garner_columnar as columnar;
pub use garner_engine as engine;
pub use garner_pools as pools;

/// The names most programs need, in one import.
pub mod prelude {
    pub use garner_columnar::sink::{CollectSink, Collected};
    pub use garner_columnar::source::MemorySource;
    pub use garner_columnar::{Batch, BatchSink, BatchSource, Format};
    pub use garner_engine::prelude::*;
    pub use garner_pools::ByteSize;
}

pub mod workload;
