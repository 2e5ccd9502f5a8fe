//! A thread per stage instance.

use super::runtime::{self, Placement, RuntimeConfig};
use super::{Engine, RunHandle, RunOptions};
use crate::{PipelineGraph, Result};

/// One OS thread per stage instance, connected by bounded links: a producer
/// whose link is full parks until the consumer makes room. Suits coarse
/// stages and blocking IO; no fusion (every stage has its thread).
///
/// ```
/// use garner_engine::DataflowEngine;
/// let engine = DataflowEngine::with_threads(2);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DataflowEngine {
    threads: usize,
}

impl DataflowEngine {
    /// Replicated stages get `threads` instances (threads) each.
    pub fn with_threads(threads: usize) -> Self {
        Self { threads: threads.max(1) }
    }
}

impl Engine for DataflowEngine {
    fn name(&self) -> &'static str {
        "dataflow"
    }

    fn spawn(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunHandle> {
        runtime::spawn(
            graph,
            opts,
            RuntimeConfig {
                engine: "dataflow",
                threads: self.threads,
                fuse: false,
                place: |_| Placement::Dedicated,
            },
        )
    }
}
