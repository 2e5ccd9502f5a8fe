//! Stage at a time, data-parallel: for bounded inputs that fit in memory.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use garner_columnar::Batch;
use rayon::prelude::*;

use super::exchange::HashPartitioner;
use super::runtime::RunControl;
use super::{Engine, RunHandle, RunOptions, RunReport, StageReport, StageSnapshot};
use crate::graph::NodeBody;
use crate::telemetry::{BatchLatency, LiveGauges, MetricsSnapshot};
use crate::{Emitter, Error, Partitioning, PipelineGraph, Progress, Result, Stage, StageContext, StageKind};

/// Runs the graph one stage at a time on a rayon pool, in topological order:
///
/// 1. a source is read to its end;
/// 2. a stateless stage maps its input batches in parallel (an instance per
///    rayon job), keeping their order;
/// 3. an accumulator hash-partitions its input into one shard per thread
///    (in parallel), then each shard is accumulated by its own instance in
///    parallel, in input order;
/// 4. a sink writes its input in order.
///
/// Every intermediate result is held in memory, so this engine is for
/// bounded inputs that fit; in exchange it has no scheduling overhead at
/// all. Processing-time ticks do not apply (the input is already there);
/// accumulators flush at the end.
///
/// ```
/// use garner_engine::RayonEngine;
/// let engine = RayonEngine::with_threads(2);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RayonEngine {
    threads: usize,
}

impl RayonEngine {
    /// A pool of `threads` rayon workers.
    pub fn with_threads(threads: usize) -> Self {
        Self { threads: threads.max(1) }
    }
}

#[derive(Debug)]
struct RayonControl {
    abort: AtomicBool,
    pipeline: String,
    started: Instant,
    /// Per stage, its report once it ran (before: zeros); whether the run ended.
    live: Mutex<(Vec<StageReport>, bool)>,
}

impl RayonControl {
    fn new(pipeline: &str) -> Self {
        Self {
            abort: AtomicBool::new(false),
            pipeline: pipeline.to_owned(),
            started: Instant::now(),
            live: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<StageReport>, bool)> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RunControl for RayonControl {
    fn inspect(&self, stage_id: &str) -> Option<StageSnapshot> {
        self.lock().0.iter().find(|r| r.id == stage_id).map(StageSnapshot::from_report)
    }
    /// Stage at a time: a stage's figures appear when it is done; there are
    /// no links, so queue gauges are 0.
    fn metrics(&self) -> MetricsSnapshot {
        let live = self.lock();
        let elapsed = self.started.elapsed().as_secs_f64();
        let gauges = live.0.iter().map(|_| (!live.1).then(LiveGauges::default));
        MetricsSnapshot::build(&self.pipeline, "rayon", elapsed, live.1, live.0.iter().zip(gauges))
    }
    /// A stage-at-a-time run cannot drain early: stop lets it finish.
    fn stop(&self) {}
    fn abort(&self) {
        self.abort.store(true, Relaxed);
    }
}

impl Engine for RayonEngine {
    fn name(&self) -> &'static str {
        "rayon"
    }

    fn run(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunReport> {
        let control = RayonControl::new(graph.name());
        run_rayon(graph, &opts, self.threads, &control)
    }

    fn spawn(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunHandle> {
        let control = Arc::new(RayonControl::new(graph.name()));
        let c = control.clone();
        let threads = self.threads;
        let driver = std::thread::Builder::new()
            .name("garner-rayon".into())
            .spawn(move || run_rayon(graph, &opts, threads, &c))
            .map_err(|e| Error::Internal(format!("cannot start the run thread: {e}")))?;
        Ok(RunHandle::new(control, driver))
    }
}

fn run_rayon(
    graph: PipelineGraph,
    opts: &RunOptions,
    threads: usize,
    control: &RayonControl,
) -> Result<RunReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("garner-rayon-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the rayon pool: {e}")))?;
    let started = Instant::now();
    let pipeline = graph.name.clone();
    let mut sinks_to_abort = Vec::new();
    let partial_alert = opts.partial_alert;
    let result = pool.install(|| execute(graph, opts, threads, control, &mut sinks_to_abort));
    control.lock().1 = true;
    match result {
        Ok(stages) => {
            let report = RunReport { pipeline, engine: "rayon", elapsed: started.elapsed(), stages };
            if let Some(alert) = &partial_alert {
                alert.check(&report.metrics());
            }
            Ok(report)
        }
        Err(e) => {
            for mut s in sinks_to_abort {
                s.abort();
            }
            Err(e)
        }
    }
}

type Sink = Box<dyn garner_columnar::BatchSink>;

fn execute(
    graph: PipelineGraph,
    opts: &RunOptions,
    threads: usize,
    control: &RayonControl,
    open_sinks: &mut Vec<Sink>,
) -> Result<Vec<StageReport>> {
    let PipelineGraph { name, nodes, edges, topo } = graph;
    let start = opts.clock.now();
    let mut reports: Vec<StageReport> = nodes.iter().map(|n| StageReport::new(&n.id, n.kind)).collect();
    control.lock().0.clone_from(&reports);
    // Outputs per node, per port: units (the batches one input unit gave), in order.
    let mut outputs: Vec<Vec<Vec<Vec<Batch>>>> =
        nodes.iter().map(|n| vec![Vec::new(); n.output_ports.len()]).collect();
    let mut bodies: Vec<Option<NodeBody>> = Vec::with_capacity(nodes.len());
    let mut meta = Vec::with_capacity(nodes.len());
    for n in nodes {
        meta.push((n.id, n.kind, n.input_schema, n.parallelism));
        bodies.push(Some(n.body));
    }
    if let Some(p) = &opts.progress {
        let hint: Option<u64> = bodies
            .iter()
            .filter_map(|b| match b {
                Some(NodeBody::Source(s)) => Some(s.rows_hint()),
                _ => None,
            })
            .sum();
        Progress::set(&p.rows_expected, hint.unwrap_or(0));
    }
    // Sinks are opened up front so that a failure anywhere aborts them all.
    let mut sinks: Vec<Option<Sink>> = Vec::new();
    for b in bodies.iter_mut() {
        sinks.push(match b.take() {
            Some(NodeBody::Sink(s)) => Some(s),
            other => {
                *b = other;
                None
            }
        });
    }
    for (i, s) in sinks.iter_mut().enumerate() {
        if let Some(sink) = s {
            let schema = meta[i].2.clone().ok_or_else(|| Error::Internal("sink without schema".into()))?;
            if let Err(e) = sink.open(schema) {
                open_sinks.extend(sinks.into_iter().flatten());
                return Err(Error::from(e).in_stage(&meta[i].0));
            }
        }
    }
    let result = (|| -> Result<()> {
        for &i in &topo {
            if control.abort.load(Relaxed) {
                return Err(Error::Aborted);
            }
            let (id, kind, input_schema, parallelism) = &meta[i];
            let t = Instant::now();
            // Input units: with several inputs (a merge), unit k joins every
            // input's unit k, inputs in topological order, as the SyncEngine queues them.
            let mut in_edges: Vec<&crate::Edge> = edges.iter().filter(|e| e.to == i).collect();
            in_edges.sort_by_key(|e| topo_pos(&topo, e.from));
            let units = in_edges.iter().map(|e| outputs[e.from][e.from_port].len()).max().unwrap_or(0);
            let mut input_units: Vec<Vec<Batch>> = (0..units)
                .map(|k| {
                    in_edges
                        .iter()
                        .filter_map(|e| outputs[e.from][e.from_port].get(k))
                        .flatten()
                        .cloned()
                        .collect()
                })
                .collect();
            // Free what no later stage reads.
            for e in edges.iter().filter(|e| e.to == i) {
                if edges
                    .iter()
                    .filter(|x| x.from == e.from && x.from_port == e.from_port)
                    .all(|x| topo_pos(&topo, x.to) <= topo_pos(&topo, i))
                {
                    outputs[e.from][e.from_port].clear();
                }
            }
            let r = &mut reports[i];
            r.rows_in = input_units.iter().flatten().map(|b| b.num_rows() as u64).sum();
            r.batches_in = input_units.iter().map(|u| u.len() as u64).sum();
            let ctx = |partition: usize, partitions: usize| StageContext {
                pipeline: name.clone(),
                stage_id: id.clone(),
                partition,
                partitions,
                input_schema: input_schema.clone().unwrap_or_else(|| Arc::new(arrow_schema::Schema::empty())),
                start_time: start,
                memory: opts.memory_budget.clone(),
                observer: opts.observer.clone(),
            };
            match kind {
                StageKind::Source => {
                    let Some(NodeBody::Source(mut source)) = bodies[i].take() else {
                        return Err(Error::Internal("source body missing".into()));
                    };
                    let mut seq = 0;
                    loop {
                        let t = Instant::now();
                        let next = source.next_batch().map_err(|e| {
                            reports[i].errors += 1;
                            Error::from(e).in_stage(id)
                        })?;
                        let Some(data) = next else { break };
                        reports[i].latency.record(t.elapsed());
                        if let Some(p) = &opts.progress {
                            Progress::add(&p.rows_in, data.num_rows() as u64);
                        }
                        outputs[i][0].push(vec![Batch::new(seq, data)]);
                        seq += 1;
                        if control.abort.load(Relaxed) {
                            return Err(Error::Aborted);
                        }
                    }
                }
                StageKind::Sink => {
                    let sink = sinks[i].as_mut().ok_or_else(|| Error::Internal("sink missing".into()))?;
                    for b in input_units.iter().flatten() {
                        let t = Instant::now();
                        sink.write(&b.data).map_err(|e| {
                            reports[i].errors += 1;
                            Error::from(e).in_stage(id)
                        })?;
                        reports[i].latency.record(t.elapsed());
                        if let Some(p) = &opts.progress {
                            Progress::add(&p.rows_out, b.num_rows() as u64);
                        }
                    }
                    reports[i].sink = Some(sink.finish().map_err(|e| Error::from(e).in_stage(id))?);
                }
                StageKind::Accumulator => {
                    let Some(NodeBody::Stage(factory)) = &bodies[i] else {
                        return Err(Error::Internal("stage body missing".into()));
                    };
                    let shards = if *parallelism > 0 { *parallelism } else { threads };
                    let keys = edges.iter().find(|e| e.to == i).and_then(|e| match &e.partitioning {
                        Partitioning::Hash(k) => Some(k.clone()),
                        _ => None,
                    });
                    let schema =
                        input_schema.clone().ok_or_else(|| Error::Internal("no input schema".into()))?;
                    let parts: Vec<Vec<Batch>> = match keys {
                        Some(keys) if shards > 1 => {
                            let partitioner = HashPartitioner::new(&schema, &keys, shards)?;
                            // Each part carries the watermark of the whole input so far.
                            let time =
                                factory.create(0).event_time_column().and_then(|c| schema.index_of(&c).ok());
                            let input: Vec<Batch> =
                                std::mem::take(&mut input_units).into_iter().flatten().collect();
                            let split: Vec<(Vec<Batch>, Option<i64>)> = input
                                .par_iter()
                                .map(|b| {
                                    let parts = partitioner
                                        .split(&b.data)?
                                        .into_iter()
                                        .map(|d| b.with_data(d))
                                        .collect();
                                    let mark = match time {
                                        Some(c) => garner_accum::max_event_time(b.data.column(c))?,
                                        None => None,
                                    };
                                    Ok((parts, mark))
                                })
                                .collect::<Result<_>>()?;
                            let mut shards_in: Vec<Vec<Batch>> =
                                vec![Vec::with_capacity(split.len()); shards];
                            let mut mark: Option<i64> = None;
                            for (parts, m) in split {
                                mark = mark.max(m);
                                for (j, mut p) in parts.into_iter().enumerate() {
                                    if p.num_rows() > 0 || mark.is_some() {
                                        p.meta.watermark = mark;
                                        shards_in[j].push(p);
                                    }
                                }
                            }
                            shards_in
                        }
                        _ => vec![std::mem::take(&mut input_units).into_iter().flatten().collect()],
                    };
                    let n = parts.len();
                    type Shard = (Vec<Batch>, Option<garner_accum::AccumStats>, u64, BatchLatency);
                    let results: Vec<Shard> = parts
                        .into_par_iter()
                        .enumerate()
                        .map(|(p, batches)| {
                            let mut stage = factory.create(p);
                            let context = ctx(p, n);
                            stage.open(&context)?;
                            let observer = context.observer.as_ref();
                            if let Some(o) = observer {
                                let info = crate::StageStart { partition: p, partitions: n, engine: "rayon" };
                                o.on_stage_start(id, &info);
                            }
                            let mut out = Emitter::new(start);
                            let mut emitted = Vec::new();
                            let mut latency = BatchLatency::default();
                            for b in batches {
                                process_one(stage.as_mut(), b, &mut out, id, observer, &mut latency)?;
                                emitted.extend(out.drain().map(|(_, b)| b));
                            }
                            loop {
                                stage.finish(&mut out)?;
                                emitted.extend(out.drain().map(|(_, b)| b));
                                if !stage.finish_pending() {
                                    break;
                                }
                            }
                            Ok((emitted, stage.accum_stats(), stage.dropped_rows(), latency))
                        })
                        .collect::<Result<_>>()
                        .map_err(|e: Error| {
                            reports[i].errors += 1;
                            e.in_stage(id)
                        })?;
                    let mut stats: Option<garner_accum::AccumStats> = None;
                    for (batches, s, dropped, latency) in results {
                        reports[i].rows_dropped += dropped;
                        reports[i].latency.merge(&latency);
                        outputs[i][0].extend(batches.into_iter().map(|b| vec![b]));
                        if let Some(s) = s {
                            stats.get_or_insert_with(Default::default).merge(&s);
                        }
                    }
                    reports[i].accum = stats;
                    reports[i].instances = n;
                }
                StageKind::Transform | StageKind::Branch | StageKind::Merge => {
                    let Some(NodeBody::Stage(factory)) = &bodies[i] else {
                        return Err(Error::Internal("stage body missing".into()));
                    };
                    let ports = outputs[i].len();
                    let per_unit: Vec<(Vec<Vec<Batch>>, u64, BatchLatency)> =
                        std::mem::take(&mut input_units)
                            .into_par_iter()
                            .map_init(
                                || -> Result<Box<dyn Stage>> {
                                    let mut s = factory.create(0);
                                    let context = ctx(0, 1);
                                    s.open(&context)?;
                                    if let Some(o) = &context.observer {
                                        let info = crate::StageStart {
                                            partition: 0,
                                            partitions: 1,
                                            engine: "rayon",
                                        };
                                        o.on_stage_start(id, &info);
                                    }
                                    Ok(s)
                                },
                                |stage, unit| {
                                    let stage = stage.as_mut().map_err(|e| Error::Internal(e.to_string()))?;
                                    let mut out = Emitter::new(start);
                                    let mut by_port: Vec<Vec<Batch>> = vec![Vec::new(); ports];
                                    let dropped_before = stage.dropped_rows();
                                    let mut latency = BatchLatency::default();
                                    for b in unit {
                                        let observer = opts.observer.as_ref();
                                        process_one(stage.as_mut(), b, &mut out, id, observer, &mut latency)?;
                                        for (p, b) in out.drain() {
                                            if p < ports {
                                                by_port[p].push(b);
                                            }
                                        }
                                    }
                                    Ok((by_port, stage.dropped_rows() - dropped_before, latency))
                                },
                            )
                            .collect::<Result<_>>()
                            .map_err(|e: Error| {
                                reports[i].errors += 1;
                                e.in_stage(id)
                            })?;
                    // Stateless stages hold nothing, but `finish` is part of the contract.
                    let mut last = factory.create(0);
                    last.open(&ctx(0, 1)).map_err(|e| e.in_stage(id))?;
                    let mut out = Emitter::new(start);
                    last.finish(&mut out).map_err(|e| e.in_stage(id))?;
                    let mut finished: Vec<Vec<Batch>> = vec![Vec::new(); ports];
                    for (p, b) in out.drain() {
                        if p < ports {
                            finished[p].push(b);
                        }
                    }
                    reports[i].rows_dropped =
                        per_unit.iter().map(|(_, d, _)| d).sum::<u64>() + last.dropped_rows();
                    for (_, _, latency) in &per_unit {
                        reports[i].latency.merge(latency);
                    }
                    let per_unit = per_unit.into_iter().map(|(by_port, _, _)| by_port);
                    for by_port in per_unit.chain(std::iter::once(finished)) {
                        for (p, unit) in by_port.into_iter().enumerate() {
                            outputs[i][p].push(unit);
                        }
                    }
                    reports[i].instances = threads;
                }
            }
            let r = &mut reports[i];
            r.busy = t.elapsed();
            r.rows_out = outputs[i].iter().flatten().flatten().map(|b| b.num_rows() as u64).sum();
            r.batches_out = outputs[i].iter().flatten().map(|u| u.len() as u64).sum();
            control.lock().0[i].clone_from(r);
        }
        Ok(())
    })();
    let result = result.and_then(|()| {
        for (i, s) in sinks.iter_mut().enumerate() {
            if let Some(sink) = s {
                sink.commit().map_err(|e| Error::from(e).in_stage(&meta[i].0))?;
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        open_sinks.extend(sinks.into_iter().flatten());
        return Err(e);
    }
    Ok(reports)
}

/// Processes one batch of stage `id`: its `stage.process` span, its
/// latency, and the observer's batch and error hooks.
fn process_one(
    stage: &mut dyn Stage,
    batch: Batch,
    out: &mut Emitter,
    id: &str,
    observer: Option<&crate::ObserverRef>,
    latency: &mut BatchLatency,
) -> Result<()> {
    let t = Instant::now();
    let rows_in = batch.num_rows() as u64;
    let span = tracing::trace_span!(
        "stage.process",
        stage = id,
        engine = "rayon",
        batch_size = batch.num_rows(),
        queue_depth_in = 0usize,
        queue_depth_out = 0usize,
    );
    let _entered = span.enter();
    if let Err(e) = stage.process(batch, out) {
        if let Some(o) = observer {
            o.on_error(id, &e);
        }
        return Err(e);
    }
    latency.record(t.elapsed());
    if let Some(o) = observer {
        let b = crate::BatchProcessed {
            rows_in,
            rows_out: out.pending_rows(),
            batches_in: 1,
            latency: Some(t.elapsed()),
        };
        o.on_batch_processed(id, &b);
    }
    Ok(())
}

fn topo_pos(topo: &[usize], node: usize) -> usize {
    topo.iter().position(|&n| n == node).unwrap_or(usize::MAX)
}
