//! Engines: strategies that run a [`PipelineGraph`], all producing the same
//! result as the reference [`SyncEngine`].
//!
//! | engine | model | for |
//! |---|---|---|
//! | [`SyncEngine`] | one thread, topological, deterministic | tests, golden outputs |
//! | [`StealEngine`] | actors on a work-stealing pool, fused stateless chains | the default |
//! | [`RayonEngine`] | bounded waves of batches, each stage data-parallel over a wave | batch jobs, data-parallel stages |
//! | [`DataflowEngine`] | a thread per stage instance, bounded links | coarse stages, blocking IO |
//! | [`HybridEngine`] | per-stage placement by [`ParallelismHint`](crate::ParallelismHint) | mixed pipelines |

mod dataflow;
pub(crate) mod exchange;
mod hybrid;
pub(crate) mod plan;
mod rayon;
mod report;
mod runtime;
mod steal;
mod sync;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use self::rayon::RayonEngine;
pub use dataflow::DataflowEngine;
pub use hybrid::HybridEngine;
pub use report::{RunReport, StageReport};
pub use runtime::{RunHandle, RunMonitor, StageSnapshot};
pub use steal::StealEngine;
pub use sync::SyncEngine;

use crate::{Clock, Error, PipelineGraph, Progress, Result, SystemClock};

/// Runs pipelines.
pub trait Engine {
    /// The engine's name (`sync`, `steal`, ...).
    fn name(&self) -> &'static str;

    /// Starts `graph` in the background and returns a handle to inspect,
    /// drain or abort it.
    fn spawn(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunHandle>;

    /// Runs `graph` to completion: every source read to its end, every
    /// accumulator flushed, every sink finished. On error every sink is
    /// aborted (no partial output file is left) and the error names the
    /// stage that failed.
    fn run(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunReport> {
        self.spawn(graph, opts)?.join()
    }
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
    /// Units a link between two stage instances holds before its producer
    /// parks (parallel engines).
    pub mailbox_capacity: usize,
    /// Floating credit: units a receiver idle on a link may grant beyond
    /// the link's capacity to a sender that announced a backlog (parallel
    /// engines; see [`GrantRule`](crate::flow::GrantRule)). A link holds at
    /// most `capacity + floating_credits` units. 0 by default.
    pub floating_credits: usize,
    /// The memory budget shared by the run's stateful stages (accumulators
    /// with spilling on reserve against it and spill when it is exhausted).
    pub memory_budget: Option<garner_pools::MemoryBudget>,
    /// Count receivers' state and spills as queued units when giving a
    /// producer room ([`EffectiveQueue`](crate::flow::EffectiveQueue)); off by default.
    pub effective_queue: Option<crate::flow::EffectiveQueue>,
    /// Hooks the run calls (stage start, batches, accumulator events,
    /// errors, circuit changes).
    pub observer: Option<crate::ObserverRef>,
    /// Alert when an accumulate stage flushes more than this share of its
    /// rows as partials. The engines do not check it: whoever finishes the
    /// run does, with [`PartialAlert::check`](crate::telemetry::PartialAlert::check)
    /// on the report's metrics (`garner run` does).
    pub partial_alert: Option<crate::telemetry::PartialAlert>,
    /// Column values to keep out of dead letters and messages (see
    /// [`Redactor`](crate::telemetry::Redactor)). Applied where rows are
    /// written out: `garner run` redacts the dead letters it writes.
    pub redactor: Option<crate::telemetry::Redactor>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            progress: None,
            tick: Duration::from_millis(100),
            mailbox_capacity: 8,
            floating_credits: 0,
            memory_budget: None,
            effective_queue: None,
            observer: None,
            partial_alert: None,
            redactor: None,
        }
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

    /// Tells stages every `tick` that processing time moved (at least 1 ms).
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// Calls `observer`'s hooks during the run.
    pub fn with_observer(mut self, observer: Arc<dyn crate::PipelineObserver>) -> Self {
        self.observer = Some(crate::ObserverRef(observer));
        self
    }

    /// Gives producers room by the receivers' effective queue (see
    /// [`EffectiveQueue`](crate::flow::EffectiveQueue)).
    pub fn with_effective_queue(mut self, queue: crate::flow::EffectiveQueue) -> Self {
        self.effective_queue = Some(queue);
        self
    }

    /// A memory budget of `limit` for the run's stateful stages.
    pub fn with_memory_budget(mut self, limit: garner_pools::ByteSize) -> Self {
        self.memory_budget = Some(garner_pools::MemoryBudget::new(limit));
        self
    }

    /// Alerts when an accumulate stage flushes more than `ratio` (in
    /// `[0, 1]`, e.g. `0.2`) of its rows as partials (see
    /// [`partial_alert`](Self::partial_alert)).
    ///
    /// # Panics
    ///
    /// If `ratio` is outside `[0, 1]`; check it with
    /// [`PartialAlert::try_new`](crate::telemetry::PartialAlert::try_new) first.
    pub fn with_partial_alert(mut self, ratio: f64) -> Self {
        self.partial_alert = Some(crate::telemetry::PartialAlert::new(ratio));
        self
    }

    /// Redacts the values of `columns` (see [`redactor`](Self::redactor)).
    pub fn with_redacted_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.redactor = Some(crate::telemetry::Redactor::new(columns));
        self
    }

    /// Lets a receiver idle on a link grant up to `units` credits beyond the
    /// link's capacity to a sender with a backlog (see
    /// [`floating_credits`](Self::floating_credits)).
    ///
    /// ```
    /// use garner_engine::RunOptions;
    /// let opts = RunOptions::default().with_mailbox_capacity(4).with_floating_credits(2);
    /// assert_eq!((opts.mailbox_capacity, opts.floating_credits), (4, 2));
    /// ```
    pub fn with_floating_credits(mut self, units: usize) -> Self {
        self.floating_credits = units;
        self
    }

    /// Sets the link capacity of the parallel engines.
    pub fn with_mailbox_capacity(mut self, units: usize) -> Self {
        self.mailbox_capacity = units.max(1);
        self
    }
}

/// The engines, by name: what `--engine` and the spec's `engine` key choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// [`SyncEngine`].
    Sync,
    /// [`StealEngine`].
    Steal,
    /// [`RayonEngine`].
    Rayon,
    /// [`DataflowEngine`].
    Dataflow,
    /// [`HybridEngine`].
    Hybrid,
}

impl Default for EngineKind {
    /// [`StealEngine`]: the engine for everything but golden-output tests.
    fn default() -> Self {
        EngineKind::Steal
    }
}

impl EngineKind {
    /// Names of the engines, for help texts.
    pub const AVAILABLE: &'static str = "sync, steal, rayon, dataflow, hybrid";

    /// An engine of this kind with `threads` workers (ignored by `sync`).
    pub fn create(self, threads: usize) -> Box<dyn Engine> {
        match self {
            EngineKind::Sync => Box::new(SyncEngine::new()),
            EngineKind::Steal => Box::new(StealEngine::with_threads(threads)),
            EngineKind::Rayon => Box::new(RayonEngine::with_threads(threads)),
            EngineKind::Dataflow => Box::new(DataflowEngine::with_threads(threads)),
            EngineKind::Hybrid => Box::new(HybridEngine::with_threads(threads)),
        }
    }
}

impl FromStr for EngineKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(EngineKind::Sync),
            "steal" => Ok(EngineKind::Steal),
            "rayon" => Ok(EngineKind::Rayon),
            "dataflow" => Ok(EngineKind::Dataflow),
            "hybrid" => Ok(EngineKind::Hybrid),
            _ => Err(Error::UnknownEngine { name: s.to_owned(), available: Self::AVAILABLE }),
        }
    }
}

/// Threads to use when none are given: the machine's cores.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
