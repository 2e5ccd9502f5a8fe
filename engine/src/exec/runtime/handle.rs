//! The handle of a running pipeline: look inside, drain, abort, wait.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::Shared;
use crate::exec::{RunReport, StageReport};
use crate::telemetry::MetricsSnapshot;
use crate::{Error, Result, StageKind};

/// A stage's live figures, summed over its instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageSnapshot {
    /// The stage's kind.
    pub kind: Option<StageKind>,
    /// Instances running.
    pub instances: usize,
    /// Rows received so far.
    pub rows_in: u64,
    /// Rows emitted so far.
    pub rows_out: u64,
    /// Batches received so far.
    pub batches_in: u64,
    /// Batches emitted so far.
    pub batches_out: u64,
    /// Rows the stage dropped on purpose so far (see
    /// [`Stage::dropped_rows`](crate::Stage::dropped_rows)).
    pub rows_dropped: u64,
    /// Units waiting in the stage's input links.
    pub queue_depth: u64,
    /// Units waiting in the stage's output links (0 when it is fused with
    /// its consumer, and in engines without links).
    pub queue_depth_out: u64,
    /// Keys resident in memory (accumulators).
    pub resident_keys: u64,
    /// Keys spilled out of memory (accumulators).
    pub spilled_keys: u64,
    /// Bytes of state held (accumulators).
    pub state_bytes: u64,
    /// Batches whose processing failed so far.
    pub errors: u64,
}

impl StageSnapshot {
    /// The counters of `r` (gauges 0).
    pub(crate) fn from_report(r: &StageReport) -> Self {
        StageSnapshot {
            kind: Some(r.kind),
            instances: r.instances,
            rows_in: r.rows_in,
            rows_out: r.rows_out,
            batches_in: r.batches_in,
            batches_out: r.batches_out,
            rows_dropped: r.rows_dropped,
            errors: r.errors,
            ..Default::default()
        }
    }
}

/// What a handle can ask of a running engine.
pub(crate) trait RunControl: Send + Sync {
    fn inspect(&self, stage_id: &str) -> Option<StageSnapshot>;
    /// Every metric now.
    fn metrics(&self) -> MetricsSnapshot;
    fn stop(&self);
    fn abort(&self);
    /// A human-readable account of the scheduler's state.
    fn diagnostics(&self) -> String {
        String::new()
    }
}

/// A pipeline running in the background, from [`Engine::spawn`](crate::Engine::spawn).
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::sink::CollectSink;
/// use garner_columnar::source::MemorySource;
/// use garner_engine::prelude::*;
/// use garner_engine::StealEngine;
///
/// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
/// let (sink, out) = CollectSink::new();
/// let graph = Pipeline::new("bg")
///     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
///     .sink("collect", sink)
///     .build()
///     .unwrap();
/// let handle = StealEngine::with_threads(2).spawn(graph, RunOptions::default()).unwrap();
/// let _live = handle.inspect("read");
/// let report = handle.join().unwrap();
/// assert_eq!(report.rows_out(), 3);
/// ```
pub struct RunHandle {
    control: Arc<dyn RunControl>,
    driver: Option<JoinHandle<Result<RunReport>>>,
}

impl RunHandle {
    pub(crate) fn new(control: Arc<dyn RunControl>, driver: JoinHandle<Result<RunReport>>) -> Self {
        Self { control, driver: Some(driver) }
    }

    /// The live figures of stage `stage_id`, or `None` if there is no such stage.
    pub fn inspect(&self, stage_id: &str) -> Option<StageSnapshot> {
        self.control.inspect(stage_id)
    }

    /// Every metric of the run now (see [`MetricsSnapshot`]). Counters only
    /// grow from one snapshot to the next; once the run has ended they equal
    /// those of its [`RunReport::metrics`].
    pub fn metrics(&self) -> MetricsSnapshot {
        self.control.metrics()
    }

    /// A cloneable, `Send` view of the run for another thread (a metrics
    /// endpoint, a progress display), valid even after the handle is joined.
    pub fn monitor(&self) -> RunMonitor {
        RunMonitor { control: self.control.clone() }
    }

    /// Graceful drain: sources stop reading, batches in flight complete,
    /// accumulators flush, sinks finish. Returns at once; [`join`](Self::join) waits.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Stops at once: nothing more is processed, sinks are aborted (no
    /// output file is left), and [`join`](Self::join) returns `Error::Aborted`.
    pub fn abort(&self) {
        self.control.abort();
    }

    /// A human-readable account of the engine's scheduler state (per actor:
    /// scheduled, finished, input and output link depths, the output links'
    /// unspent credit and parked producers), for diagnosing a pipeline that
    /// makes no progress. Empty for engines without actors.
    pub fn diagnostics(&self) -> String {
        self.control.diagnostics()
    }

    /// Whether the run has ended (successfully or not).
    pub fn is_finished(&self) -> bool {
        self.driver.as_ref().is_none_or(|d| d.is_finished())
    }

    /// Waits for the run to end and returns its report.
    pub fn join(mut self) -> Result<RunReport> {
        let driver = self.driver.take().ok_or_else(|| Error::Internal("run joined twice".into()))?;
        driver.join().unwrap_or_else(|_| Err(Error::Internal("the driver thread panicked".into())))
    }
}

impl Drop for RunHandle {
    /// Dropping a handle without joining aborts the run and waits for it.
    fn drop(&mut self) {
        if let Some(d) = self.driver.take() {
            self.control.abort();
            let _ = d.join();
        }
    }
}

/// A read-only view of a running pipeline, from [`RunHandle::monitor`]: it
/// can be cloned and sent to other threads; it cannot stop the run.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::sink::CollectSink;
/// use garner_columnar::source::MemorySource;
/// use garner_engine::prelude::*;
///
/// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
/// let (sink, _out) = CollectSink::new();
/// let graph = Pipeline::new("bg")
///     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
///     .sink("collect", sink)
///     .build()
///     .unwrap();
/// let handle = StealEngine::with_threads(2).spawn(graph, RunOptions::default()).unwrap();
/// let monitor = handle.monitor();
/// let report = handle.join().unwrap();
/// let last = monitor.metrics();
/// assert_eq!(last.pipeline_rows_out_total, report.rows_out());
/// ```
#[derive(Clone)]
pub struct RunMonitor {
    control: Arc<dyn RunControl>,
}

impl std::fmt::Debug for RunMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMonitor").finish_non_exhaustive()
    }
}

impl RunMonitor {
    /// As [`RunHandle::metrics`].
    pub fn metrics(&self) -> MetricsSnapshot {
        self.control.metrics()
    }

    /// As [`RunHandle::inspect`].
    pub fn inspect(&self, stage_id: &str) -> Option<StageSnapshot> {
        self.control.inspect(stage_id)
    }
}

impl RunControl for Shared {
    fn metrics(&self) -> MetricsSnapshot {
        let reports = self.stage_reports(true);
        let gauges = self.gauges();
        MetricsSnapshot::build(
            &self.pipeline,
            self.engine,
            self.started.elapsed().as_secs_f64(),
            self.finished(),
            reports.iter().zip(gauges.into_iter().map(Some)),
        )
    }

    fn inspect(&self, stage_id: &str) -> Option<StageSnapshot> {
        let node = self.nodes.iter().position(|n| n.id == stage_id)?;
        let info = &self.nodes[node];
        let mut snap =
            StageSnapshot { kind: Some(info.kind), instances: info.instances, ..Default::default() };
        for a in &self.actors {
            for (k, &n) in a.nodes.iter().enumerate() {
                if n != node {
                    continue;
                }
                let c = &a.counters[k];
                snap.rows_in += c.rows_in.load(Relaxed);
                snap.rows_out += c.rows_out.load(Relaxed);
                snap.batches_in += c.batches_in.load(Relaxed);
                snap.batches_out += c.batches_out.load(Relaxed);
                snap.rows_dropped += c.rows_dropped.load(Relaxed);
                snap.resident_keys += c.resident_keys.load(Relaxed);
                snap.spilled_keys += c.spilled_keys.load(Relaxed);
                snap.state_bytes += c.state_bytes.load(Relaxed);
                snap.errors += c.errors.load(Relaxed);
                if k == 0 {
                    snap.queue_depth += self.queued_in(a);
                }
                if k + 1 == a.nodes.len() {
                    snap.queue_depth_out += self.queued_out(a);
                }
            }
        }
        Some(snap)
    }

    fn stop(&self) {
        self.stopping.store(true, SeqCst);
        for (a, actor) in self.actors.iter().enumerate() {
            if actor.is_source {
                self.notify(a);
            }
        }
    }

    fn abort(&self) {
        self.fail(Error::Aborted);
    }

    fn diagnostics(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "live actors {}, aborted {}, stopping {}",
            self.live.load(SeqCst),
            self.aborted(),
            self.stopping()
        );
        for (a, actor) in self.actors.iter().enumerate() {
            let ids: Vec<&str> = actor.nodes.iter().map(|&n| self.nodes[n].id.as_str()).collect();
            let st = actor.state.try_lock();
            let detail = match &st {
                Ok(st) => st.describe(),
                Err(_) => "(running)".to_owned(),
            };
            let _ = writeln!(
                out,
                "actor {a} [{}] scheduled={} ready={} done={} dedicated={} {detail}",
                ids.join(">"),
                actor.scheduled.load(SeqCst),
                st.is_ok() && {
                    drop(st);
                    actor.wants_to_run(self, false)
                },
                actor.done.load(SeqCst),
                actor.dedicated,
            );
            for (g, group) in actor.inputs.iter().enumerate() {
                let lens: Vec<String> = group
                    .links
                    .iter()
                    .map(|&l| format!("{}<-a{}", self.links[l].len(), self.links[l].from))
                    .collect();
                let _ = writeln!(out, "  in group {g} (ordered {}): {}", group.ordered, lens.join(" "));
            }
            for (p, edges) in actor.outputs.iter().enumerate() {
                for edge in edges {
                    let lens: Vec<String> = edge
                        .links
                        .iter()
                        .map(|&l| {
                            format!(
                                "{}/c{}->a{}{}",
                                self.links[l].len(),
                                self.links[l].credits(),
                                self.links[l].to,
                                if self.links[l].waiting() { "(w)" } else { "" }
                            )
                        })
                        .collect();
                    let _ = writeln!(out, "  out port {p} ({:?}): {}", edge.distribution, lens.join(" "));
                }
            }
        }
        out
    }
}
