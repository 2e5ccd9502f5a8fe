//! The default engine: actors on a work-stealing pool.

use super::runtime::{self, Placement, RuntimeConfig};
use super::{Engine, RunHandle, RunOptions};
use crate::{PipelineGraph, Result};

/// N workers over `crossbeam-deque` (an injector, a deque per worker,
/// stealing); a task is a stage instance with input waiting, at most one
/// task per instance runs at a time, stateless stages are replicated to the
/// node's parallelism and chains of them are fused into one task, keyed
/// stages get a hash exchange so each instance owns its keys. Idle workers
/// park; full links park their producers. See `exec/runtime` for the
/// protocol.
///
/// ```
/// use garner_engine::StealEngine;
/// let engine = StealEngine::with_threads(2).fusion(false);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StealEngine {
    threads: usize,
    fuse: bool,
}

impl Default for StealEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl StealEngine {
    /// An engine with one worker per core.
    pub fn new() -> Self {
        Self::with_threads(super::default_threads())
    }

    /// An engine with `threads` workers (and that many instances of each
    /// replicated stage).
    pub fn with_threads(threads: usize) -> Self {
        Self { threads: threads.max(1), fuse: true }
    }

    /// Turns the fusion of stateless chains on (the default) or off.
    pub fn fusion(mut self, on: bool) -> Self {
        self.fuse = on;
        self
    }
}

impl Engine for StealEngine {
    fn name(&self) -> &'static str {
        "steal"
    }

    fn spawn(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunHandle> {
        runtime::spawn(
            graph,
            opts,
            RuntimeConfig {
                engine: "steal",
                threads: self.threads,
                fuse: self.fuse,
                place: |_| Placement::Pool,
            },
        )
    }
}
