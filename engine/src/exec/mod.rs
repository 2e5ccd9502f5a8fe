//! Engines: strategies that run a [`PipelineGraph`], all producing the same
//! result as the reference [`SyncEngine`].

mod report;
mod sync;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use report::{RunReport, StageReport};
pub use sync::SyncEngine;

use crate::{Clock, Error, PipelineGraph, Progress, Result, SystemClock};

/// Runs pipelines.
pub trait Engine {
    /// The engine's name (`sync`, ...).
    fn name(&self) -> &'static str;

    /// Runs `graph` to completion: every source read to its end, every
    /// accumulator flushed, every sink finished. On error every sink is
    /// aborted (no partial output file is left) and the error names the
    /// stage that failed.
    fn run(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunReport>;
}

/// Options for one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Processing time (inject a [`ManualClock`](crate::ManualClock) in tests).
    pub clock: Arc<dyn Clock>,
    /// Live counters to update, for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// How often stages are told that processing time moved (`on_time`).
    pub tick: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), progress: None, tick: Duration::from_millis(100) }
    }
}

impl RunOptions {
    /// Uses `clock` for processing time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Updates `progress` while running.
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// The engines, by name: what `--engine` and the spec's `engine` key choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineKind {
    /// [`SyncEngine`]: one thread, deterministic.
    Sync,
}

impl EngineKind {
    /// Names of the engines this build has.
    pub const AVAILABLE: &'static str = "sync";

    /// An engine of this kind. `threads` is ignored by single-threaded engines.
    pub fn create(self, _threads: usize) -> Box<dyn Engine> {
        match self {
            EngineKind::Sync => Box::new(SyncEngine::new()),
        }
    }
}

impl FromStr for EngineKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(EngineKind::Sync),
            _ => Err(Error::UnknownEngine {
                name: s.to_owned(),
                available: "sync (steal, rayon, dataflow and hybrid are not built yet)",
            }),
        }
    }
}
