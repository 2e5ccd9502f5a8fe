//! The instances of one stage, kept for the whole run, and how a wave is
//! spread over them.
//!
//! A wave is a list of *units*: unit `k` holds what source round `k` of the
//! wave became at this point of the graph. A stage turns each input unit
//! into one output unit per port, so units stay aligned through the graph
//! (a merge joins its inputs' unit `k`, as the sync engine queues them).

use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use garner_accum::AccumStats;
use garner_columnar::Batch;
use rayon::prelude::*;

use crate::exec::exchange::HashPartitioner;
use crate::graph::StageFactory;
use crate::telemetry::BatchLatency;
use crate::{Emitter, Millis, ObserverRef, Pressure, Result, Stage, StageContext};

/// The batches of one unit, in order.
pub(super) type Unit = Vec<Batch>;

/// Per output port, per unit.
pub(super) type PortUnits = Vec<Vec<Unit>>;

/// The stage a call is for: its id and the run's observer.
#[derive(Clone, Copy)]
pub(super) struct Site<'a> {
    /// The stage id.
    pub(super) id: &'a str,
    /// The run's observer.
    pub(super) observer: Option<&'a ObserverRef>,
}

/// One instance and what it keeps between calls.
struct Instance {
    stage: Box<dyn Stage>,
    out: Emitter,
    latency: BatchLatency,
    /// After a `finish` step: more remains to emit.
    finishing: bool,
}

/// How a wave's units reach the instances.
enum Spread {
    /// Contiguous runs of units, one run per instance (stateless stages):
    /// joining the runs' outputs in instance order keeps the order.
    Runs,
    /// Every batch split by the hash of its key columns, one part per
    /// shard (accumulators), each part stamped with the watermark of all
    /// rows so far when the stage keeps event time.
    Hash {
        partitioner: HashPartitioner,
        /// The event-time column, by index.
        time: Option<usize>,
        /// The highest event time seen so far, over all waves.
        mark: Option<i64>,
    },
}

/// How many instances a stage gets and how its input is spread.
#[derive(Debug, Clone)]
pub(super) enum Layout<'a> {
    /// `n` instances, each mapping a contiguous run of units.
    Runs(usize),
    /// One shard per partition of a hash exchange on `keys` of `schema`.
    Hash { shards: usize, schema: &'a Schema, keys: &'a [String] },
}

/// The instances of one stage.
pub(super) struct Group {
    instances: Vec<Instance>,
    spread: Spread,
    ports: usize,
    /// `finish` was called once on every instance.
    finish_started: bool,
}

impl Group {
    /// Creates and opens the instances of a stage with `ports` output
    /// ports; `context(p, n)` is instance `p`'s context.
    pub(super) fn open(
        factory: &dyn StageFactory,
        layout: Layout<'_>,
        ports: usize,
        context: impl Fn(usize, usize) -> StageContext,
        site: Site<'_>,
    ) -> Result<Self> {
        let n = match layout {
            Layout::Runs(n) => n.max(1),
            Layout::Hash { shards, .. } => shards.max(1),
        };
        let mut instances = Vec::with_capacity(n);
        for p in 0..n {
            let mut stage = factory.create(p);
            let ctx = context(p, n);
            stage.open(&ctx)?;
            if let Some(o) = site.observer {
                o.on_stage_start(
                    site.id,
                    &crate::StageStart { partition: p, partitions: n, engine: "rayon" },
                );
            }
            let out = Emitter::new(ctx.start_time);
            instances.push(Instance { stage, out, latency: BatchLatency::default(), finishing: false });
        }
        let spread = match layout {
            Layout::Runs(_) => Spread::Runs,
            Layout::Hash { schema, keys, .. } => Spread::Hash {
                partitioner: HashPartitioner::new(schema, keys, n)?,
                time: instances[0].stage.event_time_column().and_then(|c| schema.index_of(&c).ok()),
                mark: None,
            },
        };
        Ok(Self { instances, spread, ports, finish_started: false })
    }

    /// Instances.
    pub(super) fn len(&self) -> usize {
        self.instances.len()
    }

    /// Output ports.
    pub(super) fn ports(&self) -> usize {
        self.ports
    }

    /// Processes a wave's `units` at processing time `now`: one output unit
    /// per input unit, per port.
    pub(super) fn process(&mut self, units: Vec<Unit>, now: Millis, site: Site<'_>) -> Result<PortUnits> {
        let count = units.len();
        let ports = self.ports;
        match &mut self.spread {
            Spread::Runs => {
                let n = self.instances.len().min(count).max(1);
                let per = count.div_ceil(n);
                let mut rest = units.into_iter();
                let runs: Vec<Vec<Unit>> = (0..n).map(|_| rest.by_ref().take(per).collect()).collect();
                let outs: Vec<PortUnits> = self.instances[..n]
                    .par_iter_mut()
                    .zip(runs)
                    .map(|(instance, run)| instance.process(run, now, ports, site))
                    .collect::<Result<_>>()?;
                let mut joined: PortUnits = vec![Vec::with_capacity(count); ports];
                for out in outs {
                    for (to, units) in joined.iter_mut().zip(out) {
                        to.extend(units);
                    }
                }
                Ok(joined)
            }
            Spread::Hash { partitioner, time, mark } => {
                let parts = split(partitioner, *time, mark, units, self.instances.len())?;
                let outs: Vec<PortUnits> = self
                    .instances
                    .par_iter_mut()
                    .zip(parts)
                    .map(|(instance, units)| instance.process(units, now, ports, site))
                    .collect::<Result<_>>()?;
                let mut joined: PortUnits = vec![vec![Vec::new(); count]; ports];
                for out in outs {
                    for (to, units) in joined.iter_mut().zip(out) {
                        for (to, mut unit) in to.iter_mut().zip(units) {
                            to.append(&mut unit);
                        }
                    }
                }
                Ok(joined)
            }
        }
    }

    /// Processing time moved to `now`: every instance emits what is due;
    /// one unit per port, instances in order.
    pub(super) fn on_time(&mut self, now: Millis) -> Result<Vec<Unit>> {
        let ports = self.ports;
        let outs: Vec<Vec<Unit>> = self
            .instances
            .par_iter_mut()
            .map(|i| {
                i.out.set_now(now);
                i.stage.on_time(now, &mut i.out)?;
                let mut by_port = vec![Vec::new(); ports];
                drain_into(&mut i.out, &mut by_port);
                Ok(by_port)
            })
            .collect::<Result<_>>()?;
        Ok(join_ports(outs, ports))
    }

    /// One `finish` step: the first call finishes every instance, later
    /// calls those still [`finishing`](Self::finishing). One unit per port.
    pub(super) fn finish_step(&mut self, now: Millis) -> Result<Vec<Unit>> {
        let (ports, all) = (self.ports, !self.finish_started);
        self.finish_started = true;
        let outs: Vec<Vec<Unit>> = self
            .instances
            .par_iter_mut()
            .filter(|i| all || i.finishing)
            .map(|i| {
                i.out.set_now(now);
                i.stage.finish(&mut i.out)?;
                i.finishing = i.stage.finish_pending();
                let mut by_port = vec![Vec::new(); ports];
                drain_into(&mut i.out, &mut by_port);
                Ok(by_port)
            })
            .collect::<Result<_>>()?;
        Ok(join_ports(outs, ports))
    }

    /// After [`finish_step`](Self::finish_step): whether an instance has
    /// more to emit.
    pub(super) fn finishing(&self) -> bool {
        self.instances.iter().any(|i| i.finishing)
    }

    /// The instances' pressure: sums, and the worst circuit state.
    pub(super) fn pressure(&self) -> Pressure {
        self.instances.iter().fold(Pressure::default(), |mut sum, i| {
            let p = i.stage.pressure();
            sum.latent_bytes += p.latent_bytes;
            sum.active_spills += p.active_spills;
            sum.resident_keys += p.resident_keys;
            sum.spilled_keys += p.spilled_keys;
            sum.circuit_state = sum.circuit_state.max(p.circuit_state);
            sum
        })
    }

    /// The instances' accumulator statistics, merged (none for a stage
    /// that keeps no keyed state).
    pub(super) fn accum_stats(&self) -> Option<AccumStats> {
        let mut stats: Option<AccumStats> = None;
        for s in self.instances.iter().filter_map(|i| i.stage.accum_stats()) {
            stats.get_or_insert_with(Default::default).merge(&s);
        }
        stats
    }

    /// Rows the instances discarded by design.
    pub(super) fn dropped_rows(&self) -> u64 {
        self.instances.iter().map(|i| i.stage.dropped_rows()).sum()
    }

    /// Every batch the instances processed, timed.
    pub(super) fn latency(&self) -> BatchLatency {
        let mut all = BatchLatency::default();
        for i in &self.instances {
            all.merge(&i.latency);
        }
        all
    }
}

impl Instance {
    /// Processes `units` in order: one output unit per input unit, per port.
    fn process(&mut self, units: Vec<Unit>, now: Millis, ports: usize, site: Site<'_>) -> Result<PortUnits> {
        self.out.set_now(now);
        let mut by_port: PortUnits = vec![Vec::with_capacity(units.len()); ports];
        for unit in units {
            let mut outputs: Vec<Unit> = vec![Vec::new(); ports];
            for batch in unit {
                process_one(self.stage.as_mut(), batch, &mut self.out, site, &mut self.latency)?;
                drain_into(&mut self.out, &mut outputs);
            }
            for (to, unit) in by_port.iter_mut().zip(outputs) {
                to.push(unit);
            }
        }
        Ok(by_port)
    }
}

/// Moves what `out` holds to `by_port` (batches for a port the stage does
/// not have are dropped, as the other engines do).
fn drain_into(out: &mut Emitter, by_port: &mut [Unit]) {
    for (p, b) in out.drain() {
        if let Some(unit) = by_port.get_mut(p) {
            unit.push(b);
        }
    }
}

/// One unit per port from several instances' units, instances in order.
fn join_ports(outs: Vec<Vec<Unit>>, ports: usize) -> Vec<Unit> {
    let mut joined: Vec<Unit> = vec![Vec::new(); ports];
    for out in outs {
        for (to, mut unit) in joined.iter_mut().zip(out) {
            to.append(&mut unit);
        }
    }
    joined
}

/// Splits every batch of `units` over `shards` (in parallel), keeping the
/// units: per shard, per unit, its parts in order. An empty part still
/// goes out when it carries a watermark.
fn split(
    partitioner: &HashPartitioner,
    time: Option<usize>,
    mark: &mut Option<i64>,
    units: Vec<Unit>,
    shards: usize,
) -> Result<Vec<Vec<Unit>>> {
    let count = units.len();
    let batches: Vec<(usize, Batch)> =
        units.into_iter().enumerate().flat_map(|(k, unit)| unit.into_iter().map(move |b| (k, b))).collect();
    type Split = (usize, Batch, Vec<RecordBatch>, Option<i64>);
    let split: Vec<Split> = batches
        .into_par_iter()
        .map(|(k, b)| {
            let parts = partitioner.split(&b.data)?;
            let m = match time {
                Some(c) => garner_accum::max_event_time(b.data.column(c))?,
                None => None,
            };
            Ok((k, b, parts, m))
        })
        .collect::<Result<_>>()?;
    let mut out: Vec<Vec<Unit>> = (0..shards).map(|_| vec![Vec::new(); count]).collect();
    for (k, b, parts, m) in split {
        *mark = (*mark).max(m);
        for (shard, data) in out.iter_mut().zip(parts) {
            if data.num_rows() > 0 || mark.is_some() {
                let mut part = b.with_data(data);
                part.meta.watermark = *mark;
                shard[k].push(part);
            }
        }
    }
    Ok(out)
}

/// Processes one batch: its `stage.process` span, its latency, and the
/// observer's batch and error hooks.
fn process_one(
    stage: &mut dyn Stage,
    batch: Batch,
    out: &mut Emitter,
    site: Site<'_>,
    latency: &mut BatchLatency,
) -> Result<()> {
    let t = Instant::now();
    let rows_in = batch.num_rows() as u64;
    let span = tracing::trace_span!(
        "stage.process",
        stage = site.id,
        engine = "rayon",
        batch_size = batch.num_rows(),
        queue_depth_in = 0usize,
        queue_depth_out = 0usize,
    );
    let _entered = span.enter();
    if let Err(e) = stage.process(batch, out) {
        if let Some(o) = site.observer {
            o.on_error(site.id, &e);
        }
        return Err(e);
    }
    latency.record(t.elapsed());
    if let Some(o) = site.observer {
        let b = crate::BatchProcessed {
            rows_in,
            rows_out: out.pending_rows(),
            batches_in: 1,
            latency: Some(t.elapsed()),
        };
        o.on_batch_processed(site.id, &b);
    }
    Ok(())
}
