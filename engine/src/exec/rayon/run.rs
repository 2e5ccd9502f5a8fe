//! The wave loop.
//!
//! 1. Open every stage's instances and every sink, in topological order.
//! 2. Read a wave: up to `wave` rounds, a round reading one batch from
//!    every source not at its end (as the sync engine's rounds do).
//! 3. Flow the wave through the nodes in topological order; a node reads
//!    its producers' units (the last reader of an output takes it, the
//!    others share it: batches are Arc-shared), so a wave's memory is
//!    released as it moves on.
//! 4. When processing time has moved by a tick, flow a one-unit wave in
//!    which every stage is first told (`on_time`).
//! 5. At the end of input (or on stop), finish the stages in topological
//!    order; each step's rows flow through the nodes after it before the
//!    next step.
//! 6. Finish every sink, then, only if all finished, commit them all. On
//!    error the caller aborts every sink.

use std::sync::Arc;
use std::time::Instant;

use garner_columnar::{Batch, BatchSink, BatchSource};

use super::control::RayonControl;
use super::group::{Group, Layout, PortUnits, Site, Unit};
use crate::exec::{RunOptions, StageReport};
use crate::graph::NodeBody;
use crate::telemetry::LiveGauges;
use crate::{Error, Millis, Partitioning, PipelineGraph, Progress, Result, StageContext, StageKind};

/// What a node runs.
enum Body {
    Source { source: Box<dyn BatchSource>, seq: u64, done: bool },
    Group(Group),
    Sink(Box<dyn BatchSink>),
}

/// Where a node's input comes from: an output port of a producer.
#[derive(Debug, Clone, Copy)]
struct Feed {
    from: usize,
    port: usize,
    /// This is the output's last reader in topological order: it takes
    /// the units instead of sharing them.
    take: bool,
}

/// A rayon run in progress.
pub(super) struct Run<'a> {
    opts: &'a RunOptions,
    control: &'a RayonControl,
    ids: Vec<String>,
    bodies: Vec<Body>,
    reports: Vec<StageReport>,
    topo: Vec<usize>,
    /// Per node: its feeds, producers in topological order.
    feeds: Vec<Vec<Feed>>,
    /// Per node, per port, per unit: what the node made of the current wave.
    outputs: Vec<PortUnits>,
    /// Rounds of source reads per wave.
    wave: usize,
    monitor: Option<garner_pools::RssMonitor>,
}

impl<'a> Run<'a> {
    /// Opens every stage instance and sink of `graph`, in topological
    /// order; on failure the sinks opened so far are aborted.
    pub(super) fn open(
        graph: PipelineGraph,
        opts: &'a RunOptions,
        control: &'a RayonControl,
        threads: usize,
        wave: usize,
    ) -> Result<Self> {
        let rows_hint = graph.rows_hint();
        let PipelineGraph { name, nodes, edges, topo } = graph;
        let start = opts.clock.now();
        let n = nodes.len();
        let mut pos = vec![usize::MAX; n];
        for (k, &i) in topo.iter().enumerate() {
            pos[i] = k;
        }
        let mut feeds: Vec<Vec<Feed>> = vec![Vec::new(); n];
        for e in &edges {
            feeds[e.to].push(Feed { from: e.from, port: e.from_port, take: false });
        }
        for f in &mut feeds {
            f.sort_by_key(|f| pos[f.from]);
        }
        // The last reader of each output, in the order the flow reads them.
        let mut last: std::collections::HashMap<(usize, usize), (usize, usize)> = Default::default();
        for &i in &topo {
            for (j, f) in feeds[i].iter().enumerate() {
                last.insert((f.from, f.port), (i, j));
            }
        }
        for ((_, _), (i, j)) in last {
            feeds[i][j].take = true;
        }
        if let Some(p) = &opts.progress {
            Progress::set(&p.rows_expected, rows_hint.unwrap_or(0));
        }
        let reports: Vec<StageReport> = nodes.iter().map(|nd| StageReport::new(&nd.id, nd.kind)).collect();
        control.publish(&reports, std::iter::empty());
        let outputs = nodes.iter().map(|nd| vec![Vec::new(); nd.output_ports.len()]).collect();
        let ids: Vec<String> = nodes.iter().map(|nd| nd.id.clone()).collect();
        let mut pending: Vec<Option<crate::graph::Node>> = nodes.into_iter().map(Some).collect();
        let mut opened: Vec<Option<Body>> = (0..n).map(|_| None).collect();
        let mut failure = None;
        for &i in &topo {
            let node = pending[i].take().expect("each node opened once");
            let site = Site { id: &node.id, observer: opts.observer.as_ref() };
            let body = match node.body {
                NodeBody::Source(source) => Ok(Body::Source { source, seq: 0, done: false }),
                NodeBody::Sink(mut sink) => match node.input_schema.clone() {
                    Some(schema) => match sink.open(schema) {
                        Ok(()) => Ok(Body::Sink(sink)),
                        Err(e) => Err(Error::from(e)),
                    },
                    None => Err(Error::Internal("sink without schema".into())),
                },
                NodeBody::Stage(factory) => {
                    let schema =
                        node.input_schema.clone().unwrap_or_else(|| Arc::new(arrow_schema::Schema::empty()));
                    let keys = edges.iter().find(|e| e.to == i).and_then(|e| match &e.partitioning {
                        Partitioning::Hash(k) => Some(k.clone()),
                        _ => None,
                    });
                    let instances = if node.parallelism > 0 { node.parallelism } else { threads };
                    let layout = match (node.kind, &keys) {
                        (StageKind::Accumulator, Some(keys)) if instances > 1 => {
                            Layout::Hash { shards: instances, schema: &schema, keys }
                        }
                        (StageKind::Accumulator, _) => Layout::Runs(1),
                        _ => Layout::Runs(instances),
                    };
                    let context = |partition: usize, partitions: usize| StageContext {
                        pipeline: name.clone(),
                        stage_id: node.id.clone(),
                        partition,
                        partitions,
                        input_schema: schema.clone(),
                        start_time: start,
                        memory: opts.memory_budget.clone(),
                        observer: opts.observer.clone(),
                    };
                    Group::open(factory.as_ref(), layout, node.output_ports.len(), context, site)
                        .map(Body::Group)
                }
            };
            match body {
                Ok(body) => opened[i] = Some(body),
                Err(e) => {
                    failure = Some(e.in_stage(&node.id));
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for body in opened.iter_mut().flatten() {
                if let Body::Sink(sink) = body {
                    sink.abort();
                }
            }
            return Err(e);
        }
        let bodies: Vec<Body> = opened.into_iter().map(|b| b.expect("every node opened")).collect();
        let mut reports = reports;
        for (r, b) in reports.iter_mut().zip(&bodies) {
            if let Body::Group(g) = b {
                r.instances = g.len();
            }
        }
        Ok(Self {
            opts,
            control,
            ids,
            bodies,
            reports,
            topo,
            feeds,
            outputs,
            wave,
            monitor: opts.memory_budget.clone().and_then(garner_pools::RssMonitor::starting_now),
        })
    }

    /// Runs to the end of input (or a stop), finishes every stage and sink.
    pub(super) fn execute(&mut self) -> Result<()> {
        let clock = self.opts.clock.clone();
        let tick = self.opts.tick.as_millis().max(1) as Millis;
        let mut last_tick = clock.now();
        self.publish();
        loop {
            if self.control.aborted() {
                return Err(Error::Aborted);
            }
            if self.control.stopped() {
                break;
            }
            let rounds = self.read_wave()?;
            if rounds == 0 {
                break;
            }
            self.flow(0, rounds, None, clock.now())?;
            let now = clock.now();
            if now - last_tick >= tick {
                last_tick = now;
                if let Some(m) = &self.monitor {
                    // Growth the reservations do not see makes them spill sooner.
                    m.sample();
                }
                self.flow(0, 1, Some(now), now)?;
            }
            self.publish();
        }
        self.finish_stages(clock.now())?;
        self.collect_figures();
        self.finish_sinks()?;
        self.publish();
        Ok(())
    }

    /// The reports, once the run ended.
    pub(super) fn into_reports(self) -> Vec<StageReport> {
        self.reports
    }

    /// Aborts every sink: those finished but not committed remove their
    /// output too.
    pub(super) fn abort_sinks(&mut self) {
        for body in &mut self.bodies {
            if let Body::Sink(sink) = body {
                sink.abort();
            }
        }
    }

    /// Reads up to `wave` rounds into the sources' outputs (every source
    /// gets one unit per round, empty once at its end); returns the rounds.
    fn read_wave(&mut self) -> Result<usize> {
        let mut rounds = 0;
        while rounds < self.wave {
            if self.control.aborted() {
                return Err(Error::Aborted);
            }
            let mut any = false;
            for k in 0..self.topo.len() {
                let i = self.topo[k];
                let Body::Source { source, seq, done } = &mut self.bodies[i] else { continue };
                if *done {
                    continue;
                }
                let t = Instant::now();
                let next = source.next_batch().map_err(|e| {
                    self.reports[i].errors += 1;
                    Error::from(e).in_stage(&self.ids[i])
                })?;
                let took = t.elapsed();
                let r = &mut self.reports[i];
                r.busy += took;
                let Some(data) = next else {
                    *done = true;
                    continue;
                };
                any = true;
                r.latency.record(took);
                let batch = Batch::new(*seq, data);
                *seq += 1;
                r.rows_out += batch.num_rows() as u64;
                r.batches_out += 1;
                if let Some(p) = &self.opts.progress {
                    Progress::add(&p.rows_in, batch.num_rows() as u64);
                }
                if let Some(units) = self.outputs[i].first_mut() {
                    units.resize_with(rounds, Vec::new);
                    units.push(vec![batch]);
                }
            }
            if !any {
                break;
            }
            rounds += 1;
        }
        for (i, body) in self.bodies.iter().enumerate() {
            if let (Body::Source { .. }, Some(units)) = (body, self.outputs[i].first_mut()) {
                units.resize_with(rounds, Vec::new);
            }
        }
        Ok(rounds)
    }

    /// Flows `units` units through the nodes from the `from`-th in
    /// topological order on (the outputs of those before are its input).
    /// With `on_time`, every stage is first told that processing time moved.
    fn flow(&mut self, from: usize, units: usize, on_time: Option<Millis>, now: Millis) -> Result<()> {
        for k in from..self.topo.len() {
            if self.control.aborted() {
                return Err(Error::Aborted);
            }
            let i = self.topo[k];
            if matches!(self.bodies[i], Body::Source { .. }) {
                continue;
            }
            let input = self.gather(i, units);
            let batches: u64 = input.iter().map(|u| u.len() as u64).sum();
            let r = &mut self.reports[i];
            r.rows_in += input.iter().flatten().map(|b| b.num_rows() as u64).sum::<u64>();
            r.batches_in += batches;
            let t = Instant::now();
            let id = self.ids[i].as_str();
            let site = Site { id, observer: self.opts.observer.as_ref() };
            match &mut self.bodies[i] {
                Body::Group(group) => {
                    let mut out: PortUnits = if batches == 0 && on_time.is_none() {
                        vec![vec![Vec::new(); units]; group.ports()]
                    } else {
                        let ticked = match on_time {
                            Some(at) => Some(group.on_time(at).map_err(|e| e.in_stage(id))?),
                            None => None,
                        };
                        let mut out = group.process(input, now, site).map_err(|e| {
                            self.reports[i].errors += 1;
                            e.in_stage(id)
                        })?;
                        for (port, mut first) in out.iter_mut().zip(ticked.into_iter().flatten()) {
                            if let Some(unit) = port.first_mut() {
                                // What time made due goes before what the input made.
                                first.append(unit);
                                *unit = first;
                            }
                        }
                        out
                    };
                    let r = &mut self.reports[i];
                    for b in out.iter().flatten().flatten() {
                        r.rows_out += b.num_rows() as u64;
                        r.batches_out += 1;
                    }
                    std::mem::swap(&mut self.outputs[i], &mut out);
                }
                Body::Sink(sink) => {
                    for b in input.iter().flatten() {
                        let t = Instant::now();
                        sink.write(&b.data).map_err(|e| {
                            self.reports[i].errors += 1;
                            Error::from(e).in_stage(id)
                        })?;
                        self.reports[i].latency.record(t.elapsed());
                        if let Some(p) = &self.opts.progress {
                            Progress::add(&p.rows_out, b.num_rows() as u64);
                        }
                    }
                }
                Body::Source { .. } => return Err(Error::Internal("a source received a batch".into())),
            }
            self.reports[i].busy += t.elapsed();
        }
        for ports in &mut self.outputs {
            for units in ports {
                units.clear();
            }
        }
        Ok(())
    }

    /// Node `i`'s input units: unit `k` joins every feed's unit `k`,
    /// producers in topological order.
    fn gather(&mut self, i: usize, units: usize) -> Vec<Unit> {
        let mut input: Vec<Unit> = vec![Vec::new(); units];
        for f in &self.feeds[i] {
            let Some(from) = self.outputs[f.from].get_mut(f.port) else { continue };
            if f.take {
                for (to, mut unit) in input.iter_mut().zip(from.drain(..)) {
                    if to.is_empty() {
                        *to = unit;
                    } else {
                        to.append(&mut unit);
                    }
                }
            } else {
                for (to, unit) in input.iter_mut().zip(from.iter()) {
                    to.extend(unit.iter().cloned());
                }
            }
        }
        input
    }

    /// Finishes every stage in topological order, each step's rows
    /// flowing through the nodes after it before the next step.
    fn finish_stages(&mut self, now: Millis) -> Result<()> {
        for k in 0..self.topo.len() {
            let i = self.topo[k];
            loop {
                if self.control.aborted() {
                    return Err(Error::Aborted);
                }
                let Body::Group(group) = &mut self.bodies[i] else { break };
                let t = Instant::now();
                let step = group.finish_step(now).map_err(|e| e.in_stage(&self.ids[i]))?;
                let more = group.finishing();
                let r = &mut self.reports[i];
                r.busy += t.elapsed();
                for b in step.iter().flatten() {
                    r.rows_out += b.num_rows() as u64;
                    r.batches_out += 1;
                }
                for (units, unit) in self.outputs[i].iter_mut().zip(step) {
                    units.push(unit);
                }
                self.flow(k + 1, 1, None, now)?;
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Copies what the stage instances know into their reports.
    fn collect_figures(&mut self) {
        for (r, body) in self.reports.iter_mut().zip(&self.bodies) {
            if let Body::Group(g) = body {
                r.accum = g.accum_stats();
                r.rows_dropped = g.dropped_rows();
                r.latency = g.latency();
                r.circuit_state = g.pressure().circuit_state;
            }
        }
    }

    /// Finishes every sink, then, only if all finished, commits them all.
    fn finish_sinks(&mut self) -> Result<()> {
        for (i, body) in self.bodies.iter_mut().enumerate() {
            if let Body::Sink(sink) = body {
                let t = Instant::now();
                let summary = sink.finish().map_err(|e| Error::from(e).in_stage(&self.ids[i]))?;
                self.reports[i].busy += t.elapsed();
                self.reports[i].sink = Some(summary);
            }
        }
        for (i, body) in self.bodies.iter_mut().enumerate() {
            if let Body::Sink(sink) = body {
                sink.commit().map_err(|e| Error::from(e).in_stage(&self.ids[i]))?;
            }
        }
        Ok(())
    }

    /// Publishes the figures after a wave: live metrics and progress.
    fn publish(&mut self) {
        self.collect_figures();
        let gauges: Vec<LiveGauges> = self
            .bodies
            .iter()
            .map(|b| match b {
                Body::Group(g) => LiveGauges { pressure: g.pressure(), ..LiveGauges::default() },
                _ => LiveGauges::default(),
            })
            .collect();
        if let Some(p) = &self.opts.progress {
            let resident = gauges.iter().map(|g| g.pressure.resident_keys).sum();
            let spilled = gauges.iter().map(|g| g.pressure.spilled_keys).sum();
            Progress::set(&p.keys_resident, resident);
            Progress::set(&p.keys_spilled, spilled);
        }
        self.control.publish(&self.reports, gauges.into_iter());
    }
}
