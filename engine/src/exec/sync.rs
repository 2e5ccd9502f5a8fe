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
//! 4. When processing time has moved by a tick, call `on_time` everywhere.
//! 5. When every source is done, walk once more calling `finish` after a
//!    node's queue is empty, then finish the sinks.
//!
//! On any error every sink is aborted and the error names the stage.

use std::collections::VecDeque;
use std::time::Instant;

use garner_columnar::{Batch, BatchSink, BatchSource};

use super::{Engine, RunOptions, RunReport, StageReport};
use crate::graph::NodeBody;
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
}

impl Engine for SyncEngine {
    fn name(&self) -> &'static str {
        "sync"
    }

    fn run(&self, graph: PipelineGraph, opts: RunOptions) -> Result<RunReport> {
        let started = Instant::now();
        let pipeline = graph.name.clone();
        let mut run = Run::new(graph, &opts)?;
        match run.execute(&opts) {
            Ok(()) => {}
            Err(e) => {
                run.abort_sinks();
                return Err(e);
            }
        }
        Ok(RunReport { pipeline, engine: "sync", elapsed: started.elapsed(), stages: run.reports })
    }
}

impl Run {
    fn new(graph: PipelineGraph, opts: &RunOptions) -> Result<Self> {
        let start_time = opts.clock.now();
        let n = graph.nodes.len();
        let mut consumers: Vec<Vec<Vec<usize>>> =
            graph.nodes.iter().map(|node| vec![Vec::new(); node.output_ports.len()]).collect();
        for e in &graph.edges {
            consumers[e.from][e.from_port].push(e.to);
        }
        let mut reports = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut instances = Vec::with_capacity(n);
        for node in graph.nodes {
            reports.push(StageReport::new(&node.id, node.kind));
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
                }),
                (Instance::Sink(sink), Some(schema)) => sink.open(schema).map_err(Error::from),
                _ => Ok(()),
            };
            opened[i] = Some(instance);
            if let Err(e) = result {
                failure = Some(e.in_stage(&run.ids[i]));
                break;
            }
        }
        if let (Some(progress), Some(rows)) = (&opts.progress, total_hint(&opened)) {
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

    fn execute(&mut self, opts: &RunOptions) -> Result<()> {
        let tick = opts.tick.as_millis().max(1) as Millis;
        let mut last_tick = opts.clock.now();
        loop {
            let mut active = false;
            for &i in &self.topo.clone() {
                let Instance::Source { source, seq, done } = &mut self.instances[i] else { continue };
                if *done {
                    continue;
                }
                let t = Instant::now();
                let next = source.next_batch().map_err(|e| Error::from(e).in_stage(&self.ids[i]))?;
                self.reports[i].busy += t.elapsed();
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
        for i in 0..self.instances.len() {
            if let Instance::Sink(sink) = &mut self.instances[i] {
                let t = Instant::now();
                let summary = sink.finish().map_err(|e| Error::from(e).in_stage(&self.ids[i]))?;
                self.reports[i].busy += t.elapsed();
                self.reports[i].sink = Some(summary);
            }
        }
        for (i, instance) in self.instances.iter().enumerate() {
            if let Instance::Stage(stage) = instance {
                self.reports[i].accum = stage.accum_stats();
            }
        }
        if let Some(p) = &opts.progress {
            self.publish(p);
        }
        Ok(())
    }

    /// One walk in topological order, processing every queued batch; with
    /// `finish_at`, each stage is finished once its queue is empty.
    fn drain(&mut self, opts: &RunOptions, finish_at: Option<Millis>) -> Result<()> {
        for k in 0..self.topo.len() {
            let i = self.topo[k];
            while let Some(batch) = self.queues[i].pop_front() {
                let rows = batch.num_rows() as u64;
                let r = &mut self.reports[i];
                r.rows_in += rows;
                r.batches_in += 1;
                let t = Instant::now();
                match &mut self.instances[i] {
                    Instance::Stage(stage) => {
                        stage.process(batch, &mut self.emitter).map_err(|e| e.in_stage(&self.ids[i]))?;
                    }
                    Instance::Sink(sink) => {
                        sink.write(&batch.data).map_err(|e| Error::from(e).in_stage(&self.ids[i]))?;
                        if let Some(p) = &opts.progress {
                            Progress::add(&p.rows_out, rows);
                        }
                    }
                    Instance::Source { .. } => {
                        return Err(Error::Internal("a source received a batch".into()))
                    }
                }
                self.reports[i].busy += t.elapsed();
                self.route_emitted(i);
            }
            if finish_at.is_some() {
                if let Instance::Stage(stage) = &mut self.instances[i] {
                    let t = Instant::now();
                    stage.finish(&mut self.emitter).map_err(|e| e.in_stage(&self.ids[i]))?;
                    self.reports[i].busy += t.elapsed();
                    self.route_emitted(i);
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

    fn route_emitted(&mut self, from: usize) {
        let emitted: Vec<(usize, Batch)> = self.emitter.drain().collect();
        for (port, batch) in emitted {
            let r = &mut self.reports[from];
            r.rows_out += batch.num_rows() as u64;
            r.batches_out += 1;
            self.route(from, port, batch);
        }
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

fn total_hint(instances: &[Option<Instance>]) -> Option<u64> {
    instances
        .iter()
        .flatten()
        .filter_map(|i| match i {
            Instance::Source { source, .. } => Some(source.rows_hint()),
            _ => None,
        })
        .sum()
}
