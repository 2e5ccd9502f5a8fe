//! Data-parallel in bounded waves: a few source batches at a time, each
//! wave pushed through the whole graph stage by stage on a rayon pool.
//!
//! - [`control`]: stop, abort and the live figures behind a
//!   [`RunHandle`](crate::RunHandle).
//! - [`group`]: the instances of one stage and how a wave is spread over
//!   them (contiguous runs of units, or a hash exchange to shards).
//! - [`run`]: the wave loop: read, flow, tick, finish.

mod control;
mod group;
mod run;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use self::control::RayonControl;
use self::run::Run;
use super::{Engine, RunHandle, RunOptions, RunReport};
use crate::{Error, PipelineGraph, Result};

/// Runs the graph in bounded waves on a rayon pool.
///
/// A wave is up to [`wave_batches`](Self::wave_batches) rounds of source
/// reads (a round reads one batch from every source not yet at its end).
/// The wave then goes through the stages in topological order, each stage
/// done with the whole wave before the next starts:
///
/// 1. a stateless stage (transform, branch, merge) maps the wave's batches
///    in parallel, contiguous runs of them per instance, keeping their order;
/// 2. an accumulator hash-partitions the wave's batches over its shards (in
///    parallel, each part stamped with the event-time watermark of all rows
///    so far), then every shard updates its keyed state with its parts in
///    parallel; shards keep their state from wave to wave;
/// 3. a sink writes the wave in order.
///
/// Then the next wave is read. When processing time has moved by a
/// [`tick`](crate::RunOptions::tick) between two waves, every stage is told
/// (`on_time`), as in the [`SyncEngine`](crate::SyncEngine). At the end of
/// the input every stage is finished in topological order; a stage that
/// finishes in steps (see [`Stage::finish_pending`](crate::Stage::finish_pending))
/// has each step's rows pass through the stages after it before the next.
///
/// What the engine holds is one wave (its batches and what the stages
/// made of them, until the stages after have read it) plus the
/// accumulators' state, so memory does not grow with the input. The
/// default wave is threads × [`mailbox_capacity`](crate::RunOptions::mailbox_capacity)
/// rounds: larger waves keep the pool busier, smaller ones hold less. A
/// wave flows once it is full or every source is at its end, so a source
/// that blocks waiting for input holds back the rows already read: for
/// live streams the [`StealEngine`](crate::StealEngine) suits better.
/// [`RunHandle::stop`](crate::RunHandle::stop) reads no more input and
/// finishes the run with what was read.
///
/// ```
/// use garner_engine::RayonEngine;
/// let engine = RayonEngine::with_threads(2).wave_batches(16);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RayonEngine {
    threads: usize,
    wave: Option<usize>,
}

impl RayonEngine {
    /// A pool of `threads` rayon workers.
    pub fn with_threads(threads: usize) -> Self {
        Self { threads: threads.max(1), wave: None }
    }

    /// Reads at most `rounds` batches per source in a wave (at least 1),
    /// instead of threads × the run's mailbox capacity.
    pub fn wave_batches(mut self, rounds: usize) -> Self {
        self.wave = Some(rounds.max(1));
        self
    }

    /// Rounds of source reads per wave for a run with `opts`.
    fn wave_for(&self, opts: &RunOptions) -> usize {
        self.wave.unwrap_or(self.threads * opts.mailbox_capacity).max(1)
    }
}

impl Engine for RayonEngine {
    fn name(&self) -> &'static str {
        "rayon"
    }

    fn run(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunReport> {
        let control = RayonControl::new(graph.name());
        run_rayon(graph, &opts, self.threads, self.wave_for(&opts), &control)
    }

    fn spawn(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunHandle> {
        let control = Arc::new(RayonControl::new(graph.name()));
        let c = control.clone();
        let (threads, wave) = (self.threads, self.wave_for(&opts));
        let driver = std::thread::Builder::new()
            .name("garner-rayon".into())
            .spawn(move || run_rayon(graph, &opts, threads, wave, &c))
            .map_err(|e| Error::Internal(format!("cannot start the run thread: {e}")))?;
        Ok(RunHandle::new(control, driver))
    }
}

fn run_rayon(
    graph: PipelineGraph,
    opts: &RunOptions,
    threads: usize,
    wave: usize,
    control: &RayonControl,
) -> Result<RunReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("garner-rayon-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the rayon pool: {e}")))?;
    let started = Instant::now();
    let pipeline = graph.name.clone();
    let result = pool.install(|| {
        let mut run = Run::open(graph, opts, control, threads, wave)?;
        match run.execute() {
            Ok(()) => Ok(run.into_reports()),
            Err(e) => {
                run.abort_sinks();
                Err(e)
            }
        }
    });
    control.finish(result.as_ref().ok().map(Vec::as_slice));
    let stages = result?;
    let report = RunReport { pipeline, engine: "rayon", elapsed: started.elapsed(), stages };
    if let Some(alert) = &opts.partial_alert {
        alert.check(&report.metrics());
    }
    Ok(report)
}
