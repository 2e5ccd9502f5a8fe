//! The actor runtime behind the parallel engines (steal, dataflow, hybrid).
//!
//! 1. The plan's actors and links are built; each actor is placed on the
//!    work-stealing pool or on a thread of its own (dedicated).
//! 2. Sources are scheduled; an actor is scheduled again whenever a link
//!    into it gets a unit, a full link out of it gets room, or a tick is due.
//!    `scheduled` (swap true) makes sure one step runs per actor at a time.
//! 3. After a step that ran out of input or room, the actor is descheduled
//!    and then checks once more whether it could run, so a wake-up that
//!    raced with the step is never lost.
//! 4. The driver thread wakes every tick to ask stateful actors for
//!    `on_time`, publishes progress, and waits for every actor to finish
//!    (or for the first error, or an abort).
//! 5. On error or abort, every sink is aborted; the error names the stage.

mod actor;
mod handle;
mod link;
mod pool;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use handle::RunControl;
pub use handle::{RunHandle, RunMonitor, StageSnapshot};

use self::actor::{Actor, Outcome};
use self::link::Link;
use self::pool::Pool;
use super::plan::{ActorId, Body, NodeInfo, Plan, PlanOptions};
use super::{RunOptions, RunReport, StageReport};
use crate::telemetry::LiveGauges;
use crate::{Clock, Error, PipelineGraph, Progress, Result, StageKind};

/// Where an actor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On the work-stealing pool.
    Pool,
    /// On a thread of its own.
    Dedicated,
}

/// How to run: pool size, fusion, placement per node kind.
pub(crate) struct RuntimeConfig {
    pub(crate) engine: &'static str,
    pub(crate) threads: usize,
    pub(crate) fuse: bool,
    pub(crate) place: fn(&NodeInfo) -> Placement,
}

pub(crate) struct Shared {
    pub(crate) actors: Vec<Actor>,
    pub(crate) links: Vec<Link>,
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) progress: Option<Arc<Progress>>,
    pub(crate) pipeline: String,
    pub(crate) engine: &'static str,
    pub(crate) started: Instant,
    pub(crate) observer: Option<crate::ObserverRef>,
    pool: Pool,
    live: AtomicUsize,
    aborted: AtomicBool,
    pub(crate) stopping: AtomicBool,
    shutdown: AtomicBool,
    error: Mutex<Option<Error>>,
    done: Mutex<bool>,
    done_cv: Condvar,
}

impl Shared {
    pub(crate) fn aborted(&self) -> bool {
        self.aborted.load(Relaxed)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// Whether every actor has finished or the run failed.
    pub(crate) fn finished(&self) -> bool {
        *self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Units waiting in the input links of actor `a`.
    pub(crate) fn queued_in(&self, a: &Actor) -> u64 {
        a.inputs.iter().flat_map(|g| &g.links).map(|&l| self.links[l].len() as u64).sum()
    }

    /// Units waiting in the output links of actor `a`.
    pub(crate) fn queued_out(&self, a: &Actor) -> u64 {
        a.outputs.iter().flatten().flat_map(|e| &e.links).map(|&l| self.links[l].len() as u64).sum()
    }

    /// Per node: queue depths and pressure now, summed over instances.
    pub(crate) fn gauges(&self) -> Vec<LiveGauges> {
        let mut gauges = vec![LiveGauges::default(); self.nodes.len()];
        for a in &self.actors {
            for (k, &node) in a.nodes.iter().enumerate() {
                let (c, g) = (&a.counters[k], &mut gauges[node]);
                if k == 0 {
                    g.queue_in += self.queued_in(a);
                    g.credits += a
                        .inputs
                        .iter()
                        .flat_map(|g| &g.links)
                        .map(|&l| self.links[l].credits() as u64)
                        .sum::<u64>();
                }
                if k + 1 == a.nodes.len() {
                    g.queue_out += self.queued_out(a);
                }
                let p = &mut g.pressure;
                p.latent_bytes += c.state_bytes.load(Relaxed);
                p.resident_keys += c.resident_keys.load(Relaxed);
                p.spilled_keys += c.spilled_keys.load(Relaxed);
                p.active_spills += c.active_spills.load(Relaxed) as u32;
                p.circuit_state = p.circuit_state.max(c.circuit_state.load(Relaxed) as u8);
            }
        }
        gauges
    }

    /// One report per node from the actors' counters. With `live`, an
    /// actor's accumulator statistics are read only if no step holds its
    /// state (else the last ones read are used), so a snapshot never waits
    /// for a step.
    pub(crate) fn stage_reports(&self, live: bool) -> Vec<StageReport> {
        let mut stages: Vec<StageReport> = self
            .nodes
            .iter()
            .map(|n| {
                let mut r = StageReport::new(&n.id, n.kind);
                r.instances = n.instances;
                r
            })
            .collect();
        for a in &self.actors {
            let st = if live { a.state.try_lock().ok() } else { Some(a.lock()) };
            let mut cache = a.live_accum.lock().unwrap_or_else(|p| p.into_inner());
            for (k, &node) in a.nodes.iter().enumerate() {
                let c = &a.counters[k];
                let r = &mut stages[node];
                r.rows_in += c.rows_in.load(Relaxed);
                r.rows_out += c.rows_out.load(Relaxed);
                r.batches_in += c.batches_in.load(Relaxed);
                r.batches_out += c.batches_out.load(Relaxed);
                r.rows_dropped += c.rows_dropped.load(Relaxed);
                r.errors += c.errors.load(Relaxed);
                r.backpressure_events += c.backpressure.load(Relaxed);
                r.batch_adjustments.increment += c.batch_up.load(Relaxed);
                r.batch_adjustments.decrement += c.batch_down.load(Relaxed);
                r.circuit_state = r.circuit_state.max(c.circuit_state.load(Relaxed) as u8);
                c.latency.add_to(&mut r.latency);
                r.busy += Duration::from_nanos(c.busy_ns.load(Relaxed));
                if let Some(st) = &st {
                    cache[k] = st.accum_stats(k);
                }
                if let Some(s) = &cache[k] {
                    r.accum.get_or_insert_with(Default::default).merge(s);
                }
                if r.kind == StageKind::Sink {
                    if let Some(st) = &st {
                        r.sink = st.sink_summary.clone();
                    }
                }
            }
        }
        // Units a full mailbox dropped count against the stage it feeds.
        for l in &self.links {
            let node = self.actors[l.to].nodes[0];
            stages[node].mailbox_dropped += l.dropped_rows.load(Relaxed);
        }
        stages
    }

    /// Schedules actor `a` unless it already is.
    pub(crate) fn notify(&self, a: ActorId) {
        let actor = &self.actors[a];
        if actor.done.load(SeqCst) || actor.scheduled.swap(true, SeqCst) {
            return;
        }
        if actor.dedicated {
            if let Some(t) = actor.thread.get() {
                t.unpark();
            }
        } else {
            self.pool.submit(a);
        }
    }

    /// Records the first error and stops the run.
    pub(crate) fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        drop(slot);
        self.aborted.store(true, SeqCst);
        self.signal_done();
    }

    fn signal_done(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.done_cv.notify_all();
    }

    /// Runs actor `a`, which is scheduled, until it has nothing to do.
    /// Returns true when it should be submitted again (pool: yield).
    fn run_actor(&self, a: ActorId) -> bool {
        let actor = &self.actors[a];
        loop {
            let outcome = catch_unwind(AssertUnwindSafe(|| actor.step(self))).unwrap_or_else(|payload| {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                Err(Error::Panicked { stage: self.nodes[actor.nodes[0]].id.clone(), message })
            });
            match outcome {
                Err(e) => {
                    actor.scheduled.store(false, SeqCst);
                    self.fail(e);
                    return false;
                }
                Ok(Outcome::Finished) => {
                    // A finished actor can be scheduled again (a tick
                    // requested just before it finished): it reports
                    // `Finished` once more, but must be counted once, or the
                    // run would end before the others (a sink not finished
                    // when the driver commits).
                    let first_time = !actor.done.swap(true, SeqCst);
                    actor.scheduled.store(false, SeqCst);
                    if first_time && self.live.fetch_sub(1, SeqCst) == 1 {
                        self.signal_done();
                    }
                    return false;
                }
                Ok(Outcome::Yield) => {
                    if actor.dedicated {
                        continue;
                    }
                    return true;
                }
                Ok(Outcome::Idle | Outcome::Blocked) => {
                    actor.scheduled.store(false, SeqCst);
                    if actor.wants_to_run(self, true) && !actor.scheduled.swap(true, SeqCst) {
                        if actor.dedicated {
                            continue;
                        }
                        return true;
                    }
                    return false;
                }
            }
        }
    }
}

/// Starts a run in the background.
pub(crate) fn spawn(graph: PipelineGraph, opts: RunOptions, config: RuntimeConfig) -> Result<RunHandle> {
    let started = Instant::now();
    let pipeline = graph.name().to_owned();
    let plan = Plan::new(graph, PlanOptions { threads: config.threads, fuse: config.fuse })?;
    let Plan { nodes, actors: specs, links: link_specs, .. } = plan;
    let start = opts.clock.now();

    // Open every stage instance and sink; on failure abort the sinks.
    let mut specs = specs;
    let mut failure = None;
    for spec in &mut specs {
        let context = OpenContext {
            pipeline: &pipeline,
            start,
            memory: opts.memory_budget.as_ref(),
            observer: opts.observer.clone(),
            engine: config.engine,
        };
        if let Err(e) = open_actor(spec, &nodes, &context) {
            failure = Some(e);
            break;
        }
    }
    if let Some(e) = failure {
        for spec in &mut specs {
            if let Body::Sink(s) = &mut spec.body {
                s.abort();
            }
        }
        return Err(e);
    }
    if let Some(p) = &opts.progress {
        let hint: Option<u64> = specs
            .iter()
            .filter_map(|s| match &s.body {
                Body::Source(src) => Some(src.rows_hint()),
                _ => None,
            })
            .sum();
        Progress::set(&p.rows_expected, hint.unwrap_or(0));
    }

    let capacity = opts.mailbox_capacity.max(1);
    let links = link_specs
        .iter()
        .map(|l| {
            let (capacity, on_full) = match l.mailbox {
                Some(m) => (m.capacity, m.on_full),
                None => (capacity, crate::resilience::DropPolicy::Block),
            };
            let rule =
                crate::flow::GrantRule { capacity: capacity as u64, floating: opts.floating_credits as u64 };
            Link::new(l.from, l.to, rule, on_full, opts.memory_budget.as_ref(), opts.effective_queue)
        })
        .collect();
    let actors: Vec<Actor> = specs
        .into_iter()
        .map(|s| {
            let dedicated =
                (config.place)(&nodes[*s.nodes.last().expect("non-empty chain")]) == Placement::Dedicated;
            let batching: Vec<_> = s.nodes.iter().map(|&n| nodes[n].batching).collect();
            Actor::new(s, dedicated, start, &batching)
        })
        .collect();
    let pool_threads = if actors.iter().all(|a| a.dedicated) { 0 } else { config.threads.max(1) };
    let (pool, workers) = Pool::new(pool_threads.max(1));
    let shared = Arc::new(Shared {
        live: AtomicUsize::new(actors.len()),
        actors,
        links,
        nodes,
        clock: opts.clock.clone(),
        progress: opts.progress.clone(),
        pipeline: pipeline.clone(),
        engine: config.engine,
        started,
        observer: opts.observer.clone(),
        pool,
        aborted: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        shutdown: AtomicBool::new(false),
        error: Mutex::new(None),
        done: Mutex::new(false),
        done_cv: Condvar::new(),
    });

    let mut threads = Vec::new();
    if pool_threads > 0 {
        for (i, worker) in workers.into_iter().enumerate() {
            let sh = shared.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("garner-worker-{i}"))
                    .spawn(move || {
                        sh.pool.work(
                            worker,
                            |a| {
                                if sh.run_actor(a) {
                                    sh.pool.submit_yielded(a);
                                }
                            },
                            || sh.shutdown.load(Relaxed),
                        )
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a worker thread: {e}")))?,
            );
        }
    }
    for a in 0..shared.actors.len() {
        if !shared.actors[a].dedicated {
            continue;
        }
        let sh = shared.clone();
        let name = format!("garner-{}", sh.nodes[*sh.actors[a].nodes.last().expect("non-empty")].id);
        let t = thread::Builder::new()
            .name(name)
            .spawn(move || {
                let actor = &sh.actors[a];
                while !sh.shutdown.load(Relaxed) && !actor.done.load(SeqCst) {
                    if actor.scheduled.load(SeqCst) {
                        sh.run_actor(a);
                    } else {
                        thread::park_timeout(Duration::from_millis(50));
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start a stage thread: {e}")))?;
        let _ = shared.actors[a].thread.set(t.thread().clone());
        threads.push(t);
    }
    // Every actor looks once at its inputs: sources start reading.
    for a in 0..shared.actors.len() {
        shared.notify(a);
    }

    let sh = shared.clone();
    let tick = opts.tick;
    let engine = config.engine;
    let monitor = opts.memory_budget.clone().and_then(garner_pools::RssMonitor::starting_now);
    let partial_alert = opts.partial_alert;
    let driver = thread::Builder::new()
        .name("garner-driver".into())
        .spawn(move || drive(sh, threads, tick, started, pipeline, engine, monitor, partial_alert))
        .map_err(|e| Error::Internal(format!("cannot start the driver thread: {e}")))?;
    Ok(RunHandle::new(shared, driver))
}

/// What every stage instance of a run is opened with.
struct OpenContext<'a> {
    pipeline: &'a str,
    start: i64,
    memory: Option<&'a garner_pools::MemoryBudget>,
    observer: Option<crate::ObserverRef>,
    engine: &'static str,
}

fn open_actor(
    spec: &mut super::plan::ActorSpec,
    nodes: &[NodeInfo],
    context: &OpenContext<'_>,
) -> Result<()> {
    let OpenContext { pipeline, start, memory, observer, engine } = context;
    let (pipeline, start, engine) = (*pipeline, *start, *engine);
    match &mut spec.body {
        Body::Chain(stages) => {
            for (k, stage) in stages.iter_mut().enumerate() {
                let node = &nodes[spec.nodes[k]];
                let ctx = crate::StageContext {
                    pipeline: pipeline.to_owned(),
                    stage_id: node.id.clone(),
                    partition: spec.instance,
                    partitions: spec.instances,
                    input_schema: node
                        .input_schema
                        .clone()
                        .ok_or_else(|| Error::Internal("no input schema".into()))?,
                    start_time: start,
                    memory: memory.cloned(),
                    observer: observer.clone(),
                };
                stage.open(&ctx).map_err(|e| e.in_stage(&node.id))?;
                if let Some(o) = &observer {
                    let info =
                        crate::StageStart { partition: spec.instance, partitions: spec.instances, engine };
                    o.on_stage_start(&node.id, &info);
                }
            }
        }
        Body::Sink(sink) => {
            let node = &nodes[spec.nodes[0]];
            let schema =
                node.input_schema.clone().ok_or_else(|| Error::Internal("no input schema".into()))?;
            sink.open(schema).map_err(|e| Error::from(e).in_stage(&node.id))?;
        }
        Body::Source(_) => {}
    }
    Ok(())
}

/// The driver: ticks, progress, completion, teardown, report.
#[allow(clippy::too_many_arguments)] // the run's parts, moved into the driver thread at once
fn drive(
    sh: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
    tick: Duration,
    started: Instant,
    pipeline: String,
    engine: &'static str,
    monitor: Option<garner_pools::RssMonitor>,
    partial_alert: Option<crate::telemetry::PartialAlert>,
) -> Result<RunReport> {
    let tick = tick.max(Duration::from_millis(1));
    {
        let mut done = sh.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let (d, _) = sh.done_cv.wait_timeout(done, tick).unwrap_or_else(|p| p.into_inner());
            done = d;
            if *done {
                break;
            }
            drop(done);
            if let Some(m) = &monitor {
                // Growth the reservations do not see makes them spill sooner.
                m.sample();
            }
            let now = sh.clock.now();
            for (a, actor) in sh.actors.iter().enumerate() {
                if actor.stateful && !actor.done.load(SeqCst) {
                    actor.request_tick(now);
                    sh.notify(a);
                }
            }
            publish(&sh);
            done = sh.done.lock().unwrap_or_else(|p| p.into_inner());
        }
    }
    sh.shutdown.store(true, SeqCst);
    sh.pool.wake_all();
    for a in &sh.actors {
        if let Some(t) = a.thread.get() {
            t.unpark();
        }
    }
    for t in threads {
        let _ = t.join();
    }
    publish(&sh);
    let error = sh.error.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(e) = error {
        for a in &sh.actors {
            let mut st = a.lock();
            if let Body::Sink(s) = st.body_mut() {
                s.abort();
            }
        }
        return Err(e);
    }
    // Every sink finished: make their outputs visible, all or none.
    let mut failure = None;
    for a in &sh.actors {
        let mut st = a.lock();
        if let Body::Sink(s) = st.body_mut() {
            if let Err(e) = s.commit() {
                failure = Some(Error::from(e).in_stage(&sh.nodes[a.nodes[0]].id));
                break;
            }
        }
    }
    if let Some(e) = failure {
        for a in &sh.actors {
            if let Body::Sink(s) = a.lock().body_mut() {
                s.abort();
            }
        }
        return Err(e);
    }
    let report = report(&sh, started, pipeline, engine);
    if let Some(alert) = &partial_alert {
        alert.check(&report.metrics());
    }
    Ok(report)
}

fn publish(sh: &Shared) {
    if let Some(p) = &sh.progress {
        let (mut resident, mut spilled) = (0, 0);
        for a in &sh.actors {
            for c in &a.counters {
                resident += c.resident_keys.load(Relaxed);
                spilled += c.spilled_keys.load(Relaxed);
            }
        }
        Progress::set(&p.keys_resident, resident);
        Progress::set(&p.keys_spilled, spilled);
    }
}

fn report(sh: &Shared, started: Instant, pipeline: String, engine: &'static str) -> RunReport {
    RunReport { pipeline, engine, elapsed: started.elapsed(), stages: sh.stage_reports(false) }
}
