//! An actor: one instance of a node or of a fused chain, with its input
//! links, its out-edges and its state. `step` runs it for a bounded number
//! of units; the scheduler guarantees one step at a time per actor.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::Instant;

use garner_accum::AccumStats;
use garner_columnar::{Batch, SinkSummary};

use super::super::plan::{ActorSpec, Body, Distribution, InGroup, OutEdge};
use super::link::{Credit, Msg};
use super::Shared;
use crate::flow::BatchSizer;
use crate::telemetry::AtomicBatchLatency;
use crate::{Emitter, Error, Millis, NodeId, Progress, Result};

/// Units an actor processes before it yields its worker to others.
const BUDGET: usize = 16;
/// One unit in this many is timed for the busy-time figures.
const BUSY_SAMPLE: u64 = 8;
/// `tick` when no tick is pending.
const NO_TICK: i64 = i64::MIN;

/// Live figures of one chain member of one actor, readable while running.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rows_in: AtomicU64,
    pub(crate) rows_out: AtomicU64,
    pub(crate) batches_in: AtomicU64,
    pub(crate) batches_out: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) resident_keys: AtomicU64,
    pub(crate) spilled_keys: AtomicU64,
    pub(crate) state_bytes: AtomicU64,
    pub(crate) rows_dropped: AtomicU64,
    pub(crate) active_spills: AtomicU64,
    pub(crate) circuit_state: AtomicU64,
    /// Batches whose processing failed.
    pub(crate) errors: AtomicU64,
    /// Time per batch (sampled in fused chains, see `through`).
    pub(crate) latency: AtomicBatchLatency,
    /// Steps that found an output link full (last chain member only).
    pub(crate) backpressure: AtomicU64,
    /// Adaptive batch-size increments and decrements (its sizer's totals).
    pub(crate) batch_up: AtomicU64,
    pub(crate) batch_down: AtomicU64,
}

/// Adds `v` to a counter that only its actor writes: a plain load and
/// store, not a read-modify-write. Sound because one step runs per actor at
/// a time (its state lock is held) and readers only need a recent value.
fn bump(counter: &AtomicU64, v: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(v), Relaxed);
}

/// The link of a round-robin edge that this instance's unit `k` goes to:
/// the unit's index in the node's logical stream, modulo the links.
fn round_robin_target(edge: &OutEdge, k: u64) -> usize {
    let (offset, step) = edge.stride;
    (offset.wrapping_add(k.wrapping_mul(step)) % edge.links.len() as u64) as usize
}

/// What a step ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Budget used up; more may be ready.
    Yield,
    /// No input ready.
    Idle,
    /// An out-link is full.
    Blocked,
    /// All input ended, state flushed, `End` sent downstream.
    Finished,
}

pub(crate) struct ActorState {
    body: Body,
    /// Per input group: the next link to read (ordered groups).
    cursors: Vec<usize>,
    /// Per input group, per link: the producer has ended.
    ended: Vec<Vec<bool>>,
    /// Per input group: the unit taken for the current cycle (all-ordered actors).
    staged: Vec<Option<Vec<Batch>>>,
    /// Per port, per out-edge: units sent (round robin).
    sent: Vec<Vec<u64>>,
    /// Per port, per out-edge: the event-time watermark passed on (hash).
    marks: Vec<Vec<Option<i64>>>,
    /// Per port: batches emitted by `on_time`, sent with the next unit.
    pending: Vec<Vec<Batch>>,
    emitter: Emitter,
    seq: u64,
    next_group: usize,
    pub(crate) finished: bool,
    /// Chain members before this one are finished (a member may finish in
    /// steps, each sent on before the next).
    finish_from: usize,
    pub(crate) sink_summary: Option<SinkSummary>,
    pub(crate) accum: Vec<Option<AccumStats>>,
    /// Per chain member: how its input batches are cut, if set.
    sizers: Vec<Option<BatchSizer>>,
}

impl ActorState {
    /// Cursors, ended links and staged units, for diagnostics.
    pub(crate) fn describe(&self) -> String {
        format!(
            "finished={} cursors={:?} ended={:?} staged={:?} sent={:?}",
            self.finished,
            self.cursors,
            self.ended,
            self.staged.iter().map(|s| s.as_ref().map(Vec::len)).collect::<Vec<_>>(),
            self.sent
        )
    }

    /// Accumulator statistics of chain member `k` now (final ones once finished).
    pub(crate) fn accum_stats(&self, k: usize) -> Option<AccumStats> {
        if self.finished {
            return self.accum.get(k).cloned().flatten();
        }
        match &self.body {
            Body::Chain(stages) => stages.get(k).and_then(|s| s.accum_stats()),
            _ => None,
        }
    }

    pub(crate) fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }
}

pub(crate) struct Actor {
    pub(crate) nodes: Vec<NodeId>,
    pub(crate) inputs: Vec<InGroup>,
    pub(crate) outputs: Vec<Vec<OutEdge>>,
    pub(crate) stateful: bool,
    pub(crate) is_source: bool,
    /// Every input is ordered: take one unit per input edge per cycle.
    all_ordered: bool,
    pub(crate) dedicated: bool,
    pub(crate) scheduled: AtomicBool,
    pub(crate) done: AtomicBool,
    pub(crate) tick: AtomicI64,
    pub(crate) counters: Vec<Counters>,
    pub(crate) state: Mutex<ActorState>,
    pub(crate) thread: OnceLock<Thread>,
    /// Units run through the chain (written by the running step only).
    units: AtomicU64,
    /// Per chain member: the accumulator statistics a metrics snapshot read
    /// last, used when a step holds the state at the next snapshot.
    pub(crate) live_accum: Mutex<Vec<Option<AccumStats>>>,
}

enum Input {
    Unit(Vec<Batch>),
    AllEnded,
    NotReady,
}

enum Taken {
    Unit(Vec<Batch>),
    Ended,
    NotReady,
}

impl Actor {
    /// An actor for `spec`; `batching` per chain member (nodes without a
    /// chain body ignore it).
    pub(crate) fn new(
        spec: ActorSpec,
        dedicated: bool,
        start: Millis,
        batching: &[Option<crate::flow::Batching>],
    ) -> Actor {
        let ActorSpec { nodes, body, inputs, outputs, stateful, .. } = spec;
        let is_source = matches!(body, Body::Source(_));
        let all_ordered = inputs.iter().all(|g| g.ordered);
        let chain_len = nodes.len();
        let state = ActorState {
            cursors: inputs.iter().map(|g| g.start).collect(),
            ended: inputs.iter().map(|g| vec![false; g.links.len()]).collect(),
            staged: inputs.iter().map(|_| None).collect(),
            sent: outputs.iter().map(|p| vec![0; p.len()]).collect(),
            marks: outputs.iter().map(|p| vec![None; p.len()]).collect(),
            pending: outputs.iter().map(|_| Vec::new()).collect(),
            emitter: Emitter::new(start),
            seq: 0,
            next_group: 0,
            finished: false,
            finish_from: 0,
            sink_summary: None,
            accum: vec![None; chain_len],
            sizers: (0..chain_len)
                .map(|k| batching.get(k).copied().flatten().and_then(|b| BatchSizer::new(b).ok()))
                .collect(),
            body,
        };
        Actor {
            counters: (0..chain_len).map(|_| Counters::default()).collect(),
            nodes,
            inputs,
            outputs,
            stateful,
            is_source,
            all_ordered,
            dedicated,
            scheduled: AtomicBool::new(false),
            done: AtomicBool::new(false),
            tick: AtomicI64::new(NO_TICK),
            state: Mutex::new(state),
            thread: OnceLock::new(),
            units: AtomicU64::new(0),
            live_accum: Mutex::new(vec![None; chain_len]),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ActorState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for `on_time(now)` at the next step.
    pub(crate) fn request_tick(&self, now: Millis) {
        self.tick.store(now, SeqCst);
    }

    fn stage_id<'a>(&self, rt: &'a Shared, k: usize) -> &'a str {
        &rt.nodes[self.nodes[k]].id
    }

    /// Whether a step would do something now (checked after the actor was
    /// descheduled, so that a wake-up in between is not lost).
    ///
    /// With `register`, a full out-link found here records that this actor
    /// waits for it. That matters: the step that blocked registered on the
    /// first full link it met, a pop may since have emptied that one (its
    /// wake-up found the actor still scheduled), and the link full now may
    /// be another one, whose consumer must know to wake us.
    pub(crate) fn wants_to_run(&self, rt: &Shared, register: bool) -> bool {
        if self.done.load(SeqCst) || rt.aborted() {
            return false;
        }
        let st = self.lock();
        if st.finished {
            return false;
        }
        if register {
            // A sender's announcement woke this actor: grant first.
            self.replenish_inputs(rt);
        }
        let work = self.is_source || self.tick.load(SeqCst) != NO_TICK || self.input_ready(&st, rt);
        work && self.room(&st, rt, register)
    }

    /// Whether `next_input` would return something other than `NotReady`.
    fn input_ready(&self, st: &ActorState, rt: &Shared) -> bool {
        let mut all_ended = true;
        let mut all_have = true;
        let mut any_has = false;
        for (g, group) in self.inputs.iter().enumerate() {
            let n = group.links.len();
            let has = if st.staged[g].is_some() {
                all_ended = false;
                true
            } else if group.ordered {
                match (0..n).map(|j| (st.cursors[g] + j) % n).find(|&i| !st.ended[g][i]) {
                    Some(i) => {
                        all_ended = false;
                        !rt.links[group.links[i]].is_empty()
                    }
                    None => continue,
                }
            } else {
                let live: Vec<usize> = (0..n).filter(|&i| !st.ended[g][i]).collect();
                if live.is_empty() {
                    continue;
                }
                all_ended = false;
                live.iter().any(|&i| !rt.links[group.links[i]].is_empty())
            };
            all_have &= has;
            any_has |= has;
        }
        all_ended || if self.all_ordered { all_have } else { any_has }
    }

    /// Whether every link the next unit goes to has credit for it; with
    /// `wait`, takes the credit (kept for the push), or records on the
    /// first link without that this actor waits for it, announcing its
    /// backlog (and waking the receiver, which may grant).
    fn room(&self, st: &ActorState, rt: &Shared, wait: bool) -> bool {
        let backlog = if wait { self.backlog(rt) } else { 0 };
        for (p, edges) in self.outputs.iter().enumerate() {
            for (e, edge) in edges.iter().enumerate() {
                let targets: &[usize] = match edge.distribution {
                    Distribution::RoundRobin => {
                        let i = round_robin_target(edge, st.sent[p][e]);
                        &edge.links[i..=i]
                    }
                    _ => &edge.links,
                };
                for &l in targets {
                    let link = &rt.links[l];
                    if !wait {
                        if !link.has_credit() {
                            return false;
                        }
                        continue;
                    }
                    if let Credit::Wait { notify_receiver } = link.acquire(backlog) {
                        if notify_receiver {
                            rt.notify(link.to);
                        }
                        return false;
                    }
                }
            }
        }
        true
    }

    /// The backlog this actor announces to its receivers: the unit it is
    /// about to send plus the units waiting in its input links (a source
    /// always has a budget's worth more to read until it ends).
    fn backlog(&self, rt: &Shared) -> u64 {
        if self.is_source {
            BUDGET as u64
        } else {
            1 + self.queue_depth_in(rt) as u64
        }
    }

    /// What this actor's state and spills count for on input link `link`,
    /// in units, when the effective queue is on (else 0).
    fn load(&self, rt: &Shared, link: usize) -> u64 {
        rt.links[link].pressure.map_or(0, |q| {
            let c = &self.counters[0];
            q.extra(c.state_bytes.load(Relaxed), c.active_spills.load(Relaxed)) as u64
        })
    }

    /// Receiver: grants on every input link what the grant rule gives now
    /// (floating credit, the never-starve credit, credit withheld under a
    /// load since gone), waking producers that waited for it.
    fn replenish_inputs(&self, rt: &Shared) {
        for group in &self.inputs {
            for &l in &group.links {
                let link = &rt.links[l];
                if link.replenish(self.load(rt, l)) {
                    rt.notify(link.from);
                }
            }
        }
    }

    /// Runs up to [`BUDGET`] units.
    pub(crate) fn step(&self, rt: &Shared) -> Result<Outcome> {
        let mut st = self.lock();
        if st.finished {
            return Ok(Outcome::Finished);
        }
        self.replenish_inputs(rt);
        let now = rt.clock.now();
        st.emitter.set_now(now);
        let tick = self.tick.swap(NO_TICK, SeqCst);
        if tick != NO_TICK && !self.is_source {
            self.on_time(&mut st, rt, tick)?;
        }
        for _ in 0..BUDGET {
            if rt.aborted() {
                return Ok(Outcome::Idle);
            }
            if !self.room(&st, rt, true) {
                bump(&self.counters[self.nodes.len() - 1].backpressure, 1);
                return Ok(Outcome::Blocked);
            }
            if self.is_source {
                if rt.stopping() {
                    return self.end(&mut st, rt);
                }
                let t = Instant::now();
                let next = match &mut st.body {
                    Body::Source(s) => s.next_batch().map_err(|e| {
                        bump(&self.counters[0].errors, 1);
                        Error::from(e).in_stage(self.stage_id(rt, 0))
                    })?,
                    _ => return Err(Error::Internal("source actor without a source".into())),
                };
                let took = t.elapsed().as_nanos() as u64;
                bump(&self.counters[0].busy_ns, took);
                if next.is_some() {
                    self.counters[0].latency.record(took);
                }
                match next {
                    Some(data) => {
                        let batch = Batch::new(st.seq, data);
                        st.seq += 1;
                        let rows = batch.num_rows() as u64;
                        bump(&self.counters[0].rows_out, rows);
                        bump(&self.counters[0].batches_out, 1);
                        if let Some(p) = &rt.progress {
                            Progress::add(&p.rows_in, rows);
                        }
                        self.route(&mut st, rt, vec![vec![batch]]);
                    }
                    None => return self.end(&mut st, rt),
                }
                continue;
            }
            match self.next_input(&mut st, rt) {
                Input::Unit(batches) => {
                    let out = self.process(&mut st, rt, batches)?;
                    self.route(&mut st, rt, out);
                }
                Input::AllEnded => return self.end(&mut st, rt),
                Input::NotReady => return Ok(Outcome::Idle),
            }
        }
        Ok(Outcome::Yield)
    }

    /// The next unit. All-ordered actors take one unit from every live
    /// input group (each read cyclically over its links) and join them in
    /// group order; others take whatever unit is there, groups in turn.
    fn next_input(&self, st: &mut ActorState, rt: &Shared) -> Input {
        let groups = self.inputs.len();
        if self.all_ordered {
            let (mut live, mut ready) = (false, true);
            for g in 0..groups {
                if st.staged[g].is_some() {
                    live = true;
                    continue;
                }
                match self.pop_ordered(st, rt, g) {
                    Taken::Unit(b) => {
                        st.staged[g] = Some(b);
                        live = true;
                    }
                    Taken::Ended => {}
                    Taken::NotReady => {
                        live = true;
                        ready = false;
                    }
                }
            }
            if !live {
                return Input::AllEnded;
            }
            if !ready {
                return Input::NotReady;
            }
            let mut unit = Vec::new();
            for staged in &mut st.staged {
                if let Some(b) = staged.take() {
                    unit.extend(b);
                }
            }
            return Input::Unit(unit);
        }
        let mut live = false;
        for k in 0..groups {
            let g = (st.next_group + k) % groups;
            let group = &self.inputs[g];
            let n = group.links.len();
            for j in 0..n {
                let i = (st.cursors[g] + j) % n;
                if st.ended[g][i] {
                    continue;
                }
                live = true;
                match self.pop(rt, group.links[i]) {
                    Some(Msg::Unit(batches)) => {
                        st.cursors[g] = (i + 1) % n;
                        st.next_group = (g + 1) % groups;
                        return Input::Unit(batches);
                    }
                    Some(Msg::End) => st.ended[g][i] = true,
                    None => {}
                }
            }
        }
        if live || st.ended.iter().any(|g| g.iter().any(|e| !e)) {
            Input::NotReady
        } else {
            Input::AllEnded
        }
    }

    /// The next unit of ordered group `g`: from the link at its cursor,
    /// skipping links that ended.
    fn pop_ordered(&self, st: &mut ActorState, rt: &Shared, g: usize) -> Taken {
        let group = &self.inputs[g];
        let n = group.links.len();
        let mut skipped = 0;
        while skipped < n {
            let i = st.cursors[g];
            if st.ended[g][i] {
                st.cursors[g] = (i + 1) % n;
                skipped += 1;
                continue;
            }
            match self.pop(rt, group.links[i]) {
                Some(Msg::Unit(batches)) => {
                    // The plan's step while every producer runs; once one has
                    // ended, the rest are last flushes, read in turn.
                    let step = if st.ended[g].iter().any(|&e| e) { 1 } else { group.step };
                    st.cursors[g] = (i + step) % n;
                    return Taken::Unit(batches);
                }
                Some(Msg::End) => {
                    st.ended[g][i] = true;
                    st.cursors[g] = (i + 1) % n;
                    skipped = 0;
                    if st.ended[g].iter().all(|&e| e) {
                        return Taken::Ended;
                    }
                }
                None => return Taken::NotReady,
            }
        }
        Taken::Ended
    }

    fn pop(&self, rt: &Shared, link: usize) -> Option<Msg> {
        let l = &rt.links[link];
        let (msg, wake) = l.pop(self.load(rt, link))?;
        if wake {
            rt.notify(l.from);
        }
        Some(msg)
    }

    /// Runs a unit through the chain (or into the sink); returns the
    /// batches per output port of the last stage.
    fn process(&self, st: &mut ActorState, rt: &Shared, batches: Vec<Batch>) -> Result<Vec<Vec<Batch>>> {
        let ActorState { body, emitter, sizers, .. } = st;
        match body {
            Body::Sink(sink) => {
                let c = &self.counters[0];
                for b in &batches {
                    let t = Instant::now();
                    sink.write(&b.data).map_err(|e| {
                        bump(&c.errors, 1);
                        Error::from(e).in_stage(self.stage_id(rt, 0))
                    })?;
                    let took = t.elapsed().as_nanos() as u64;
                    bump(&c.busy_ns, took);
                    c.latency.record(took);
                    bump(&c.rows_in, b.num_rows() as u64);
                    bump(&c.batches_in, 1);
                    if let Some(p) = &rt.progress {
                        Progress::add(&p.rows_out, b.num_rows() as u64);
                    }
                }
                Ok(Vec::new())
            }
            Body::Chain(stages) => {
                self.through(stages, emitter, sizers, rt, 0, batches, |s, b, out| s.process(b, out))
            }
            Body::Source(_) => Err(Error::Internal("a source received input".into())),
        }
    }

    /// Feeds `batches` to chain member `from` with `call`, and what it
    /// emits through the members after it. A member with a sizer gets its
    /// batches cut to the sizer's size, one call per slice; an adaptive
    /// sizer is told each call's latency and the input fill: 1 while the
    /// rest of a cut batch waits, else the actor's input links' fill
    /// (queued units over capacity).
    #[allow(clippy::too_many_arguments)] // the step's borrowed parts, split for the borrow checker
    fn through(
        &self,
        stages: &mut [Box<dyn crate::Stage>],
        emitter: &mut Emitter,
        sizers: &mut [Option<BatchSizer>],
        rt: &Shared,
        from: usize,
        batches: Vec<Batch>,
        call: impl Fn(&mut dyn crate::Stage, Batch, &mut Emitter) -> Result<()>,
    ) -> Result<Vec<Vec<Batch>>> {
        let last = stages.len() - 1;
        let ports = self.outputs.len();
        let mut current = batches;
        // Two lists swap roles from member to member: one allocation per
        // unit, not per hop. Only the last member sorts by port.
        let mut next: Vec<Batch> = Vec::new();
        let mut by_port: Vec<Vec<Batch>> = Vec::new();
        // Busy time is sampled: one unit in `BUSY_SAMPLE` is timed, with one
        // clock read per member (each member's end is the next one's start),
        // and counts for `BUSY_SAMPLE` units. Reading the clock twice per hop
        // cost more than the hop itself.
        let n = self.units.load(Relaxed);
        self.units.store(n.wrapping_add(1), Relaxed);
        let mut t = (n % BUSY_SAMPLE == 0).then(Instant::now);
        for (k, stage) in stages.iter_mut().enumerate().skip(from) {
            let c = &self.counters[k];
            let (mut rows_in, mut rows_out, mut batches_in) = (0u64, 0u64, 0u64);
            let mut sizer = sizers.get_mut(k).and_then(Option::as_mut);
            // `next` is empty here: new, or the list drained last round.
            if k == last {
                by_port = vec![Vec::new(); ports];
            }
            for whole in current.drain(..) {
                // Without a sizer the batch goes through as it is (no move
                // through an `Option`: batches are moved on every hop).
                let mut b = whole;
                let mut rest: Option<Batch> = None;
                loop {
                    if let Some(s) = sizer.as_deref() {
                        let (piece, more) = s.cut(b);
                        rest = more;
                        b = piece;
                    }
                    batches_in += 1;
                    rows_in += b.num_rows() as u64;
                    // Fields are computed only when a subscriber wants the span.
                    let span = tracing::trace_span!(
                        "stage.process",
                        stage = self.stage_id(rt, k),
                        engine = rt.engine,
                        batch_size = b.num_rows(),
                        queue_depth_in = self.queue_depth_in(rt),
                        queue_depth_out = self.queue_depth_out(rt),
                    );
                    let _entered = span.enter();
                    let timed = sizer.as_deref().is_some_and(BatchSizer::adapts).then(Instant::now);
                    if k == from { call(stage.as_mut(), b, emitter) } else { stage.process(b, emitter) }
                        .map_err(|e| {
                            bump(&c.errors, 1);
                            let e = e.in_stage(self.stage_id(rt, k));
                            if let Some(o) = &rt.observer {
                                o.on_error(self.stage_id(rt, k), &e);
                            }
                            e
                        })?;
                    if let (Some(s), Some(t0)) = (sizer.as_deref_mut(), timed) {
                        // The rest of a cut batch waits for the stage: backed up.
                        let fill = if rest.is_some() { 1.0 } else { self.input_fill(rt) };
                        s.observe(t0.elapsed().as_secs_f64() * 1e3, fill);
                        c.batch_up.store(s.increments(), Relaxed);
                        c.batch_down.store(s.decrements(), Relaxed);
                    }
                    for (port, out) in emitter.drain() {
                        rows_out += out.num_rows() as u64;
                        if k == last {
                            if let Some(v) = by_port.get_mut(port) {
                                v.push(out);
                            }
                        } else {
                            next.push(out);
                        }
                    }
                    match rest.take() {
                        Some(more) => b = more,
                        None => break,
                    }
                }
            }
            let mut sampled = None;
            if let Some(start) = t {
                // The sampled unit is also the latency sample (one in
                // `BUSY_SAMPLE`, counted once).
                let now = Instant::now();
                let took = now.duration_since(start).as_nanos() as u64;
                bump(&c.busy_ns, took * BUSY_SAMPLE);
                if batches_in > 0 {
                    c.latency.record(took);
                }
                sampled = Some(std::time::Duration::from_nanos(took));
                t = Some(now);
            }
            if let (Some(o), true) = (&rt.observer, batches_in > 0) {
                let b = crate::BatchProcessed { rows_in, rows_out, batches_in, latency: sampled };
                o.on_batch_processed(self.stage_id(rt, k), &b);
            }
            let batches_out = if k == last {
                by_port.iter().map(|p| p.len() as u64).sum::<u64>()
            } else {
                next.len() as u64
            };
            bump(&c.rows_in, rows_in);
            bump(&c.batches_in, batches_in);
            bump(&c.rows_out, rows_out);
            bump(&c.batches_out, batches_out);
            self.publish_pressure(stage.as_ref(), k);
            if k == last {
                return Ok(by_port);
            }
            std::mem::swap(&mut current, &mut next);
        }
        Ok(vec![Vec::new(); ports])
    }

    /// Units waiting on this actor's input links.
    fn queue_depth_in(&self, rt: &Shared) -> usize {
        self.inputs.iter().flat_map(|g| &g.links).map(|&l| rt.links[l].len()).sum()
    }

    /// How full this actor's input links are, in `0..=1`: units queued
    /// over their capacity (the queue fill an adaptive sizer sees).
    fn input_fill(&self, rt: &Shared) -> f64 {
        let (mut queued, mut capacity) = (0usize, 0usize);
        for &l in self.inputs.iter().flat_map(|g| &g.links) {
            queued += rt.links[l].len();
            capacity += rt.links[l].capacity();
        }
        if capacity == 0 {
            0.0
        } else {
            (queued as f64 / capacity as f64).min(1.0)
        }
    }

    /// Units waiting on this actor's output links.
    fn queue_depth_out(&self, rt: &Shared) -> usize {
        self.outputs.iter().flatten().flat_map(|e| &e.links).map(|&l| rt.links[l].len()).sum()
    }

    fn publish_pressure(&self, stage: &dyn crate::Stage, k: usize) {
        let p = stage.pressure();
        let c = &self.counters[k];
        c.resident_keys.store(p.resident_keys, Relaxed);
        c.spilled_keys.store(p.spilled_keys, Relaxed);
        c.state_bytes.store(p.latent_bytes, Relaxed);
        c.active_spills.store(u64::from(p.active_spills), Relaxed);
        c.circuit_state.store(u64::from(p.circuit_state), Relaxed);
        c.rows_dropped.store(stage.dropped_rows(), Relaxed);
    }

    /// `on_time` through the chain; what comes out waits for the next unit.
    fn on_time(&self, st: &mut ActorState, rt: &Shared, now: Millis) -> Result<()> {
        let ActorState { body, emitter, pending, sizers, .. } = st;
        if let Body::Chain(stages) = body {
            for k in 0..stages.len() {
                let out = self.through_one(stages, emitter, sizers, rt, k, |s, e| s.on_time(now, e))?;
                for (p, batches) in out.into_iter().enumerate() {
                    pending[p].extend(batches);
                }
            }
        }
        Ok(())
    }

    /// Calls `call` on member `k` alone, then runs its output through the rest.
    fn through_one(
        &self,
        stages: &mut [Box<dyn crate::Stage>],
        emitter: &mut Emitter,
        sizers: &mut [Option<BatchSizer>],
        rt: &Shared,
        k: usize,
        call: impl Fn(&mut dyn crate::Stage, &mut Emitter) -> Result<()>,
    ) -> Result<Vec<Vec<Batch>>> {
        let ports = self.outputs.len();
        let t = Instant::now();
        call(stages[k].as_mut(), emitter).map_err(|e| e.in_stage(self.stage_id(rt, k)))?;
        bump(&self.counters[k].busy_ns, t.elapsed().as_nanos() as u64);
        let emitted: Vec<(usize, Batch)> = emitter.drain().collect();
        let c = &self.counters[k];
        for (_, b) in &emitted {
            bump(&c.rows_out, b.num_rows() as u64);
            bump(&c.batches_out, 1);
        }
        self.publish_pressure(stages[k].as_ref(), k);
        if k + 1 == stages.len() {
            let mut by_port = vec![Vec::new(); ports];
            for (p, b) in emitted {
                if let Some(v) = by_port.get_mut(p) {
                    v.push(b);
                }
            }
            return Ok(by_port);
        }
        let next: Vec<Batch> = emitted.into_iter().map(|(_, b)| b).collect();
        self.through(stages, emitter, sizers, rt, k + 1, next, |s, b, out| s.process(b, out))
    }

    /// All input ended: flush the chain (or finish the sink), send the last
    /// unit and `End` downstream.
    fn end(&self, st: &mut ActorState, rt: &Shared) -> Result<Outcome> {
        let mut last_unit: Option<Vec<Vec<Batch>>> = None;
        let mut more = false;
        {
            let ActorState { body, emitter, accum, sink_summary, finish_from, sizers, .. } = &mut *st;
            match body {
                Body::Chain(stages) => {
                    let mut unit: Vec<Vec<Batch>> = vec![Vec::new(); self.outputs.len()];
                    for k in *finish_from..stages.len() {
                        let out = self.through_one(stages, emitter, sizers, rt, k, |s, e| s.finish(e))?;
                        for (p, b) in out.into_iter().enumerate() {
                            unit[p].extend(b);
                        }
                        if stages[k].finish_pending() {
                            *finish_from = k;
                            more = true;
                            break;
                        }
                    }
                    for (k, s) in stages.iter().enumerate() {
                        accum[k] = s.accum_stats();
                    }
                    last_unit = Some(unit);
                }
                Body::Sink(sink) => {
                    let t = Instant::now();
                    *sink_summary =
                        Some(sink.finish().map_err(|e| Error::from(e).in_stage(self.stage_id(rt, 0)))?);
                    bump(&self.counters[0].busy_ns, t.elapsed().as_nanos() as u64);
                }
                Body::Source(_) => {}
            }
        }
        if let Some(unit) = last_unit {
            if unit.iter().any(|p| !p.is_empty()) || st.pending.iter().any(|p| !p.is_empty()) {
                self.route(st, rt, unit);
            }
        }
        if more {
            // This step's rows are on their way; the next step runs when
            // the out-links have room again.
            return Ok(Outcome::Yield);
        }
        for edges in &self.outputs {
            for edge in edges {
                for &l in &edge.links {
                    // `End` is never refused.
                    let _ = rt.links[l].push(Msg::End, 0);
                    rt.notify(rt.links[l].to);
                }
            }
        }
        st.finished = true;
        Ok(Outcome::Finished)
    }

    /// Sends one unit per port along every out-edge.
    fn route(&self, st: &mut ActorState, rt: &Shared, mut unit: Vec<Vec<Batch>>) {
        for (p, edges) in self.outputs.iter().enumerate() {
            let mut batches = std::mem::take(&mut st.pending[p]);
            if let Some(u) = unit.get_mut(p) {
                batches.append(u);
            }
            for (e, edge) in edges.iter().enumerate() {
                let n = st.sent[p][e];
                st.sent[p][e] += 1;
                match &edge.distribution {
                    Distribution::One | Distribution::Broadcast => {
                        if edge.ordered || !batches.is_empty() {
                            for &l in &edge.links {
                                self.send(rt, l, batches.clone());
                            }
                        }
                    }
                    Distribution::RoundRobin => {
                        if edge.ordered || !batches.is_empty() {
                            let l = edge.links[round_robin_target(edge, n)];
                            self.send(rt, l, batches.clone());
                        }
                    }
                    Distribution::Hash(partitioner, time) => {
                        let mut parts: Vec<Vec<Batch>> = vec![Vec::new(); edge.links.len()];
                        for b in &batches {
                            let split = partitioner.split(&b.data).and_then(|split| {
                                let mark = match time {
                                    Some(c) => garner_accum::max_event_time(b.data.column(*c))?,
                                    None => None,
                                };
                                Ok((split, mark))
                            });
                            match split {
                                Ok((split, mark)) => {
                                    let mark = mark.max(st.marks[p][e]);
                                    st.marks[p][e] = mark;
                                    for (j, data) in split.into_iter().enumerate() {
                                        // An empty part still carries the watermark.
                                        if data.num_rows() > 0 || mark.is_some() {
                                            let mut part = b.with_data(data);
                                            part.meta.watermark = mark;
                                            parts[j].push(part);
                                        }
                                    }
                                }
                                Err(err) => {
                                    rt.fail(err.in_stage(self.stage_id(rt, self.nodes.len() - 1)));
                                    return;
                                }
                            }
                        }
                        for (j, part) in parts.into_iter().enumerate() {
                            if edge.ordered || !part.is_empty() {
                                self.send(rt, edge.links[j], part);
                            }
                        }
                    }
                }
            }
        }
    }

    fn send(&self, rt: &Shared, link: usize, batches: Vec<Batch>) {
        let l = &rt.links[link];
        if let Err(rows) = l.push(Msg::Unit(batches), self.backlog(rt)) {
            let stage = rt.nodes[rt.actors[l.to].nodes[0]].id.clone();
            rt.fail(Error::MailboxFull { stage, rows });
            return;
        }
        rt.notify(l.to);
    }
}
