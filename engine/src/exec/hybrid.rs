//! Per-stage placement by hint.

use super::plan::NodeInfo;
use super::runtime::{self, Placement, RuntimeConfig};
use super::{Engine, RunHandle, RunOptions};
use crate::{ParallelismHint, PipelineGraph, Result};

/// Places each stage by its [`ParallelismHint`], following the seed's
/// selection flow (§7.1), mapped onto garner's two placements:
///
/// ```text
/// IO bound (sources, sinks, hinted stages)      -> a thread of its own (dataflow style):
///                                                  a blocking read or write never holds a pool worker
/// CPU bound, stateless                          -> the work-stealing pool (fine-grained, fused)
/// stateful or fan-out (accumulators, branches)  -> the work-stealing pool: hash-partitioned
///                                                  instances are independent tasks
/// ```
///
/// ```
/// use garner_engine::HybridEngine;
/// let engine = HybridEngine::with_threads(2);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HybridEngine {
    threads: usize,
}

impl HybridEngine {
    /// A pool of `threads` workers plus a thread per IO-bound stage.
    pub fn with_threads(threads: usize) -> Self {
        Self { threads: threads.max(1) }
    }
}

fn place(node: &NodeInfo) -> Placement {
    match node.hint {
        ParallelismHint::IoBound => Placement::Dedicated,
        ParallelismHint::CpuBound | ParallelismHint::Stateful | ParallelismHint::FanOut => Placement::Pool,
    }
}

impl Engine for HybridEngine {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn spawn(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunHandle> {
        runtime::spawn(
            graph,
            opts,
            RuntimeConfig { engine: "hybrid", threads: self.threads, fuse: true, place },
        )
    }
}
