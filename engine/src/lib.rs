//! garner-engine: stages, the pipeline graph and its DSL, and the engines
//! that run it.
//!
//! A pipeline is described with the [`Pipeline`] builder, which produces an
//! inert, validated [`PipelineGraph`]; an [`Engine`] runs it and returns a
//! [`RunReport`].
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int64Array, RecordBatch};
//! use garner_columnar::sink::CollectSink;
//! use garner_columnar::source::MemorySource;
//! use garner_engine::prelude::*;
//!
//! let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 5, 9])) as _)]).unwrap();
//! let (sink, out) = CollectSink::new();
//! let graph = Pipeline::new("demo")
//!     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
//!     .transform("big", Filter::new(col("x").gt(3)))
//!     .sink("collect", sink)
//!     .build()
//!     .unwrap();
//! let report = SyncEngine::new().run(graph, RunOptions::default()).unwrap();
//! assert_eq!(out.concat().unwrap().num_rows(), 2);
//! assert_eq!(report.stage("big").unwrap().rows_out, 2);
//! ```

mod builder;
mod clock;
mod dead_letter;
mod emitter;
mod error;
pub mod exec;
pub mod flow;
mod graph;
mod observer;
mod predicate;
mod progress;
mod render;
pub mod resilience;
mod stage;
pub mod stages;
pub mod telemetry;
pub mod transforms;
mod validate;

pub use builder::{IntoPorts, Pipeline};
pub use clock::{Clock, ManualClock, Millis, SystemClock};
pub use dead_letter::{DeadLetterQueue, ERROR_COLUMN, STAGE_COLUMN};
pub use emitter::Emitter;
pub use error::{Error, Result};
pub use exec::{
    DataflowEngine, Engine, EngineKind, HybridEngine, RayonEngine, RunHandle, RunMonitor, RunOptions,
    RunReport, StageReport, StageSnapshot, StealEngine, SyncEngine,
};
pub use graph::{
    Edge, Node, NodeId, Ordering, ParallelismHint, Partitioning, PipelineGraph, PortRef, StageFactory,
};
pub use observer::{AccumulatorEvent, BatchProcessed, ObserverRef, PipelineObserver, StageStart};
pub use predicate::{col, BoundPredicate, CmpOp, ColumnRef, Literal, Predicate};
pub use progress::Progress;
pub use stage::{Pressure, Stage, StageContext, StageKind};

/// The names most pipelines need, in one import.
pub mod prelude {
    pub use crate::stages::{AccumulateStage, Branch, Merge};
    pub use crate::transforms::{Cast, DropNulls, Filter, MapBatches, Rename, Select};
    pub use crate::{
        col, DataflowEngine, Engine, HybridEngine, Pipeline, PipelineGraph, Predicate, RayonEngine,
        RunOptions, RunReport, Stage, StealEngine, SyncEngine,
    };
    pub use garner_accum::{
        AfterComplete, CountAccumulator, RepeatPolicy, TimeMode, VarSet, WindowAccumulator, WithPolicies,
    };
}
