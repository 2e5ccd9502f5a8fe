//! The reference engine: one thread, topological order, deterministic.
//!
//! The loop:
//! 1. Open every stage instance and sink, in topological order.
//! 2. Pull one batch from each unfinished source in turn and queue it at
//!    the source's consumers.
//! 3. Walk the nodes in topological order, processing each queued batch;
//!    what a stage emits is queued at its consumers, which come later in
//!    the walk, so one walk empties every queue. Memory stays bounded by
//!    what one source batch fans out to.
//!    A stage with [`Batching`](crate::flow::Batching) gets its queued
//!    batches cut to its sizer's size (the rest goes back to the front of
//!    its queue); an adaptive sizer is told each call's latency and a
//!    queue fill of 1 when anything waits for the stage (another batch, or
//!    the rest of a cut one) and 0 otherwise: this engine has no bounded
//!    queue to measure.
//! 4. When processing time has moved by a tick, call `on_time` everywhere.
//! 5. When every source is done, walk once more calling `finish` after a
//!    node's queue is empty.
//! 6. Finish every sink (each writes and syncs its output, still invisible);
//!    only when all finished, commit them all (each renames its file into
//!    place).
//!
//! On any error every sink is aborted, finished or not, so a failed run
//! leaves no output file behind; the error names the stage.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use garner_columnar::{Batch, BatchSink, BatchSource};

use super::runtime::RunControl;
use super::{Engine, RunHandle, RunOptions, RunReport, StageReport, StageSnapshot};
use crate::flow::BatchSizer;
use crate::graph::NodeBody;
use crate::telemetry::{BatchAdjustments, LiveGauges, MetricsSnapshot};
use crate::{Emitter, Error, Millis, PipelineGraph, Progress, Result, Stage, StageContext};

/// One thread, deterministic: the reference every other engine is tested
/// against.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncEngine;

impl SyncEngine {
    /// The engine.
    pub fn new() -> Self {
        SyncEngine
    }
}

enum Instance {
    Source { source: Box<dyn BatchSource>, seq: u64, done: bool },
    Stage(Box<dyn Stage>),
    Sink(Box<dyn BatchSink>),
}

struct Run {
    instances: Vec<Instance>,
    queues: Vec<VecDeque<Batch>>,
    /// Per node, per output port: the consuming nodes.
    consumers: Vec<Vec<Vec<usize>>>,
    reports: Vec<StageReport>,
    ids: Vec<String>,
    topo: Vec<usize>,
    emitter: Emitter,
    /// What the last stage call emitted, being routed (reused, so routing
    /// allocates nothing per call).
    emitted: Vec<(usize, Batch)>,
    /// Per node: how a stage's input batches are cut, if set.
    sizers: Vec<Option<BatchSizer>>,
}

/// Stop and abort requests, and live figures, for a sync run in the background.
#[derive(Debug)]
pub(crate) struct SyncControl {
    stop: AtomicBool,
    abort: AtomicBool,
    pipeline: String,
    started: Instant,
    live: Mutex<Live>,
}

/// The figures of the last round: per stage, its report so far (with the
/// accumulator statistics of now) and its gauges.
#[derive(Debug, Default)]
struct Live {
    reports: Vec<StageReport>,
    gauges: Vec<LiveGauges>,
    finished: bool,
}

impl RunControl for SyncControl {
    fn inspect(&self, stage_id: &str) -> Option<StageSnapshot> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let i = live.reports.iter().position(|r| r.id == stage_id)?;
        let g = live.gauges.get(i).copied().unwrap_or_default();
        Some(StageSnapshot {
            queue_depth: g.queue_in,
            resident_keys: g.pressure.resident_keys,
            spilled_keys: g.pressure.spilled_keys,
            state_bytes: g.pressure.latent_bytes,
            ..StageSnapshot::from_report(&live.reports[i])
        })
    }
    fn metrics(&self) -> MetricsSnapshot {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = self.started.elapsed().as_secs_f64();
        let gauges = live.gauges.iter().map(|&g| (!live.finished).then_some(g));
        MetricsSnapshot::build(
            &self.pipeline,
            "sync",
            elapsed,
            live.finished,
            live.reports.iter().zip(gauges),
        )
    }
    fn stop(&self) {
        self.stop.store(true, Relaxed);
    }
    fn abort(&self) {
        self.abort.store(true, Relaxed);
    }
}

impl SyncControl {
    fn new(pipeline: &str) -> Self {
        Self {
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            pipeline: pipeline.to_owned(),
            started: Instant::now(),
            live: Mutex::default(),
        }
    }

    /// Publishes the figures of a round (once per source batch: per-batch
    /// work, not per row). Reports are copied with `clone_from`, which
    /// reuses the previous copy's allocations.
    fn publish(&self, run: &Run) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let Live { reports, gauges, .. } = &mut *live;
        reports.clone_from(&run.reports);
        gauges.clear();
        for ((r, q), instance) in reports.iter_mut().zip(&run.queues).zip(&run.instances) {
            let mut g = LiveGauges { queue_in: q.len() as u64, ..Default::default() };
            if let Instance::Stage(stage) = instance {
                g.pressure = stage.pressure();
                r.accum = stage.accum_stats();
                r.rows_dropped = stage.dropped_rows();
            }
            gauges.push(g);
        }
    }

    /// The run ended: its final figures (after an error, the last published).
    fn finish(&self, reports: Option<&[StageReport]>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = reports {
            live.reports = r.to_vec();
        }
        live.finished = true;
    }
}

fn run_sync(graph: PipelineGraph, opts: &RunOptions, control: Option<&SyncControl>) -> Result<RunReport> {
    let started = Instant::now();
    let pipeline = graph.name.clone();
    let mut run = match Run::new(graph, opts) {
        Ok(run) => run,
        Err(e) => {
            if let Some(c) = control {
                c.finish(None);
            }
            return Err(e);
        }
    };
    if let Err(e) = run.execute(opts, control) {
        run.abort_sinks();
        if let Some(c) = control {
            c.finish(None);
        }
        return Err(e);
    }
    if let Some(c) = control {
        c.finish(Some(&run.reports));
    }
    let report = RunReport { pipeline, engine: "sync", elapsed: started.elapsed(), stages: run.reports };
    if let Some(alert) = &opts.partial_alert {
        alert.check(&report.metrics());
    }
    Ok(report)
}

impl Engine for SyncEngine {
    fn name(&self) -> &'static str {
        "sync"
    }

    /// Runs on the calling thread.
    fn run(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunReport> {
        run_sync(graph, &opts, None)
    }

    /// Runs on one background thread.
    fn spawn(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunHandle> {
        let control = Arc::new(SyncControl::new(graph.name()));
        let c = control.clone();
        let driver = std::thread::Builder::new()
            .name("garner-sync".into())
            .spawn(move || run_sync(graph, &opts, Some(&c)))
            .map_err(|e| Error::Internal(format!("cannot start the run thread: {e}")))?;
        Ok(RunHandle::new(control, driver))
    }
}

impl Run {
    fn new(graph: PipelineGraph, opts: &RunOptions) -> Result<Self> {
        let start_time = opts.clock.now();
        let n = graph.nodes.len();
        let rows_hint = graph.rows_hint();
        let mut consumers: Vec<Vec<Vec<usize>>> =
            graph.nodes.iter().map(|node| vec![Vec::new(); node.output_ports.len()]).collect();
        for e in &graph.edges {
            consumers[e.from][e.from_port].push(e.to);
        }
        let mut reports = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut instances = Vec::with_capacity(n);
        let mut sizers = Vec::with_capacity(n);
        for node in graph.nodes {
            reports.push(StageReport::new(&node.id, node.kind));
            let stage = matches!(node.body, NodeBody::Stage(_));
            sizers.push(node.batching.filter(|_| stage).and_then(|b| BatchSizer::new(b).ok()));
            let instance = match node.body {
                NodeBody::Source(source) => Instance::Source { source, seq: 0, done: false },
                NodeBody::Stage(factory) => Instance::Stage(factory.create(0)),
                NodeBody::Sink(sink) => Instance::Sink(sink),
            };
            ids.push(node.id);
            instances.push((instance, node.input_schema));
        }
        if let Some(progress) = &opts.progress {
            Progress::set(&progress.rows_expected, 0);
        }
        let mut run = Run {
            instances: Vec::with_capacity(n),
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            consumers,
            reports,
            ids,
            topo: graph.topo,
            emitter: Emitter::new(start_time),
            emitted: Vec::new(),
            sizers,
        };
        // Open in topological order; on failure abort the sinks opened so far.
        let mut opened: Vec<Option<Instance>> = (0..n).map(|_| None).collect();
        let mut pending: Vec<Option<(Instance, Option<arrow_schema::SchemaRef>)>> =
            instances.into_iter().map(Some).collect();
        let mut failure = None;
        for &i in &run.topo {
            let (mut instance, input_schema) = pending[i].take().expect("each node opened once");
            let result = match (&mut instance, input_schema) {
                (Instance::Stage(stage), Some(input_schema)) => stage.open(&StageContext {
                    pipeline: graph.name.clone(),
                    stage_id: run.ids[i].clone(),
                    partition: 0,
                    partitions: 1,
                    input_schema,
                    start_time,
                    memory: opts.memory_budget.clone(),
                    observer: opts.observer.clone(),
                }),
                (Instance::Sink(sink), Some(schema)) => sink.open(schema).map_err(Error::from),
                _ => Ok(()),
            };
            let is_stage = matches!(instance, Instance::Stage(_));
            opened[i] = Some(instance);
            if let Err(e) = result {
                failure = Some(e.in_stage(&run.ids[i]));
                break;
            }
            if let (Some(o), true) = (&opts.observer, is_stage) {
                o.on_stage_start(
                    &run.ids[i],
                    &crate::StageStart { partition: 0, partitions: 1, engine: "sync" },
                );
            }
        }
        if let (Some(progress), Some(rows)) = (&opts.progress, rows_hint) {
            Progress::set(&progress.rows_expected, rows);
        }
        if let Some(e) = failure {
            for instance in opened.iter_mut().flatten() {
                if let Instance::Sink(sink) = instance {
                    sink.abort();
                }
            }
            return Err(e);
        }
        run.instances = opened.into_iter().map(|i| i.expect("every node opened")).collect();
        Ok(run)
    }

    fn execute(&mut self, opts: &RunOptions, control: Option<&SyncControl>) -> Result<()> {
        let tick = opts.tick.as_millis().max(1) as Millis;
        let mut last_tick = opts.clock.now();
        let monitor = opts.memory_budget.clone().and_then(garner_pools::RssMonitor::starting_now);
        loop {
            if let Some(c) = control {
                if c.abort.load(Relaxed) {
                    return Err(Error::Aborted);
                }
                if c.stop.load(Relaxed) {
                    break;
                }
                c.publish(self);
            }
            let mut active = false;
            for k in 0..self.topo.len() {
                let i = self.topo[k];
                let Instance::Source { source, seq, done } = &mut self.instances[i] else { continue };
                if *done {
                    continue;
                }
                let t = Instant::now();
                let next = source.next_batch().map_err(|e| {
                    self.reports[i].errors += 1;
                    Error::from(e).in_stage(&self.ids[i])
                })?;
                let took = t.elapsed();
                self.reports[i].busy += took;
                if next.is_some() {
                    self.reports[i].latency.record(took);
                }
                match next {
                    Some(data) => {
                        active = true;
                        let batch = Batch::new(*seq, data);
                        *seq += 1;
                        let r = &mut self.reports[i];
                        r.rows_out += batch.num_rows() as u64;
                        r.batches_out += 1;
                        if let Some(p) = &opts.progress {
                            Progress::add(&p.rows_in, batch.num_rows() as u64);
                        }
                        self.route(i, 0, batch);
                    }
                    None => *done = true,
                }
            }
            let now = opts.clock.now();
            self.emitter.set_now(now);
            self.drain(opts, None)?;
            if now - last_tick >= tick {
                last_tick = now;
                if let Some(m) = &monitor {
                    // Growth the reservations do not see makes them spill sooner.
                    m.sample();
                }
                self.tick(now, opts)?;
            }
            if let Some(p) = &opts.progress {
                self.publish(p);
            }
            if !active {
                break;
            }
        }
        let now = opts.clock.now();
        self.emitter.set_now(now);
        self.drain(opts, Some(now))?;
        for (i, instance) in self.instances.iter().enumerate() {
            if let Instance::Stage(stage) = instance {
                self.reports[i].accum = stage.accum_stats();
                self.reports[i].rows_dropped = stage.dropped_rows();
                self.reports[i].circuit_state = stage.pressure().circuit_state;
            }
        }
        self.finish_sinks()?;
        if let Some(p) = &opts.progress {
            self.publish(p);
        }
        Ok(())
    }

    /// One walk in topological order, processing every queued batch; with
    /// `finish_at`, each stage is finished once its queue is empty.
    fn drain(&mut self, opts: &RunOptions, finish_at: Option<Millis>) -> Result<()> {
        self.drain_from(0, opts, finish_at)
    }

    /// [`drain`](Self::drain) from the `from`-th stage in topological order.
    fn drain_from(&mut self, from: usize, opts: &RunOptions, finish_at: Option<Millis>) -> Result<()> {
        for k in from..self.topo.len() {
            let i = self.topo[k];
            while let Some(mut batch) = self.queues[i].pop_front() {
                if let Some(sizer) = &self.sizers[i] {
                    let (head, rest) = sizer.cut(batch);
                    if let Some(rest) = rest {
                        self.queues[i].push_front(rest);
                    }
                    batch = head;
                }
                let rows = batch.num_rows() as u64;
                let r = &mut self.reports[i];
                r.rows_in += rows;
                r.batches_in += 1;
                let t = Instant::now();
                match &mut self.instances[i] {
                    Instance::Stage(stage) => {
                        let span = tracing::trace_span!(
                            "stage.process",
                            stage = self.ids[i].as_str(),
                            engine = "sync",
                            batch_size = rows,
                            queue_depth_in = self.queues[i].len(),
                            queue_depth_out = 0usize,
                        );
                        let _entered = span.enter();
                        stage.process(batch, &mut self.emitter).map_err(|e| {
                            self.reports[i].errors += 1;
                            let e = e.in_stage(&self.ids[i]);
                            if let Some(o) = &opts.observer {
                                o.on_error(&self.ids[i], &e);
                            }
                            e
                        })?;
                        if let Some(o) = &opts.observer {
                            let rows_out = self.emitter.pending_rows();
                            let b = crate::BatchProcessed {
                                rows_in: rows,
                                rows_out,
                                batches_in: 1,
                                latency: Some(t.elapsed()),
                            };
                            o.on_batch_processed(&self.ids[i], &b);
                        }
                    }
                    Instance::Sink(sink) => {
                        sink.write(&batch.data).map_err(|e| {
                            self.reports[i].errors += 1;
                            Error::from(e).in_stage(&self.ids[i])
                        })?;
                        if let Some(p) = &opts.progress {
                            Progress::add(&p.rows_out, rows);
                        }
                    }
                    Instance::Source { .. } => {
                        return Err(Error::Internal("a source received a batch".into()))
                    }
                }
                let took = t.elapsed();
                self.reports[i].busy += took;
                self.reports[i].latency.record(took);
                if let Some(sizer) = self.sizers[i].as_mut().filter(|s| s.adapts()) {
                    let fill = if self.queues[i].is_empty() { 0.0 } else { 1.0 };
                    sizer.observe(took.as_secs_f64() * 1e3, fill);
                    self.reports[i].batch_adjustments =
                        BatchAdjustments { increment: sizer.increments(), decrement: sizer.decrements() };
                }
                self.route_emitted(i);
            }
            if finish_at.is_some() {
                while let Instance::Stage(stage) = &mut self.instances[i] {
                    let t = Instant::now();
                    stage.finish(&mut self.emitter).map_err(|e| e.in_stage(&self.ids[i]))?;
                    let more = stage.finish_pending();
                    self.reports[i].busy += t.elapsed();
                    self.route_emitted(i);
                    if !more {
                        break;
                    }
                    // Pass this step's rows downstream before the next step.
                    self.drain_from(k + 1, opts, None)?;
                }
            }
        }
        Ok(())
    }

    /// Tells every stage that processing time moved, then drains.
    fn tick(&mut self, now: Millis, opts: &RunOptions) -> Result<()> {
        for k in 0..self.topo.len() {
            let i = self.topo[k];
            if let Instance::Stage(stage) = &mut self.instances[i] {
                let t = Instant::now();
                stage.on_time(now, &mut self.emitter).map_err(|e| e.in_stage(&self.ids[i]))?;
                self.reports[i].busy += t.elapsed();
                self.route_emitted(i);
            }
        }
        self.drain(opts, None)
    }

    /// Finishes every sink, then, only if all finished, commits them all.
    /// On error the caller aborts every sink: those finished but not
    /// committed remove their output too.
    fn finish_sinks(&mut self) -> Result<()> {
        for i in 0..self.instances.len() {
            if let Instance::Sink(sink) = &mut self.instances[i] {
                let t = Instant::now();
                let summary = sink.finish().map_err(|e| Error::from(e).in_stage(&self.ids[i]))?;
                self.reports[i].busy += t.elapsed();
                self.reports[i].sink = Some(summary);
            }
        }
        for i in 0..self.instances.len() {
            if let Instance::Sink(sink) = &mut self.instances[i] {
                sink.commit().map_err(|e| Error::from(e).in_stage(&self.ids[i]))?;
            }
        }
        Ok(())
    }

    fn route_emitted(&mut self, from: usize) {
        // Move the buffer out so `route` can borrow `self`; put it back
        // (empty, capacity kept) after.
        let mut emitted = std::mem::take(&mut self.emitted);
        emitted.extend(self.emitter.drain());
        for (port, batch) in emitted.drain(..) {
            let r = &mut self.reports[from];
            r.rows_out += batch.num_rows() as u64;
            r.batches_out += 1;
            self.route(from, port, batch);
        }
        self.emitted = emitted;
    }

    fn route(&mut self, from: usize, port: usize, batch: Batch) {
        let targets = &self.consumers[from][port];
        if let Some((&last, rest)) = targets.split_last() {
            for &to in rest {
                self.queues[to].push_back(batch.clone());
            }
            self.queues[last].push_back(batch);
        }
    }

    fn publish(&self, progress: &Progress) {
        let (mut resident, mut spilled) = (0, 0);
        for instance in &self.instances {
            if let Instance::Stage(stage) = instance {
                let p = stage.pressure();
                resident += p.resident_keys;
                spilled += p.spilled_keys;
            }
        }
        Progress::set(&progress.keys_resident, resident);
        Progress::set(&progress.keys_spilled, spilled);
    }

    fn abort_sinks(&mut self) {
        for instance in &mut self.instances {
            if let Instance::Sink(sink) = instance {
                sink.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    use arrow_schema::SchemaRef;
    use garner_columnar::sink::{CollectSink, CsvSink};
    use garner_columnar::source::MemorySource;
    use garner_columnar::SinkSummary;

    use super::*;
    use crate::stages::Branch;
    use crate::{col, Pipeline};

    fn source() -> MemorySource {
        let batch = RecordBatch::try_from_iter([
            ("x", Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef),
            ("f", Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5])) as ArrayRef),
        ])
        .unwrap();
        MemorySource::try_from_batches(vec![batch]).unwrap()
    }

    /// A sink whose `finish` fails, as a full disk would.
    struct FailingFinish;

    impl BatchSink for FailingFinish {
        fn open(&mut self, _schema: SchemaRef) -> garner_columnar::Result<()> {
            Ok(())
        }
        fn write(&mut self, _batch: &RecordBatch) -> garner_columnar::Result<()> {
            Ok(())
        }
        fn finish(&mut self) -> garner_columnar::Result<SinkSummary> {
            let disk_full = std::io::Error::other("no space left on device");
            Err(garner_columnar::Error::io("failing.out", disk_full))
        }
        fn abort(&mut self) {}
        fn describe(&self) -> String {
            "failing sink".into()
        }
    }

    #[test]
    fn a_sink_that_fails_to_finish_leaves_no_other_sinks_output_behind() {
        // Caught: the first sink was renamed into place before the second
        // failed, so a failed run left `first.csv` behind.
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.csv");
        let (collect, collected) = CollectSink::new();
        let graph = Pipeline::new("two-sinks")
            .source("read", source())
            .branch("split", Branch::new().route("small", col("x").lt(3)).otherwise("big"))
            .from("split.small")
            .sink("first", CsvSink::create(&first).unwrap())
            .from("split.big")
            .transform("pass", crate::transforms::Select::columns(["x", "f"]))
            .sink("second", FailingFinish)
            .from("read")
            .sink("third", collect)
            .build()
            .unwrap();
        let err = SyncEngine::new().run(graph, RunOptions::default()).unwrap_err();
        assert!(err.to_string().contains("stage `second`"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert!(collected.batches().is_empty(), "the collect sink was aborted too");
    }

    #[test]
    fn every_sink_is_committed_after_a_successful_run() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        let graph = Pipeline::new("two-files")
            .source("read", source())
            .branch("split", Branch::new().route("small", col("x").lt(3)).otherwise("big"))
            .from("split.small")
            .sink("a", CsvSink::create(&a).unwrap())
            .from("split.big")
            .sink("b", CsvSink::create(&b).unwrap())
            .build()
            .unwrap();
        let report = SyncEngine::new().run(graph, RunOptions::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "x,f\n1,0.5\n2,1.5\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "x,f\n3,2.5\n4,3.5\n");
        assert_eq!(report.stage("a").unwrap().sink.as_ref().unwrap().rows, 2);
    }

    #[test]
    fn rows_a_branch_drops_are_reported() {
        // Caught: rows matching no route (no `otherwise`) vanished without a trace.
        let (sink, out) = CollectSink::new();
        let graph = Pipeline::new("drop")
            .source("read", source())
            .branch("split", Branch::new().route("small", col("f").lt(2)))
            .from("split.small")
            .sink("write", sink)
            .build()
            .unwrap();
        let report = SyncEngine::new().run(graph, RunOptions::default()).unwrap();
        assert_eq!(out.num_rows(), 2);
        let split = report.stage("split").unwrap();
        assert_eq!((split.rows_in, split.rows_out, split.rows_dropped), (4, 2, 2));
        assert_eq!(report.stage("read").unwrap().rows_dropped, 0);
    }
}
