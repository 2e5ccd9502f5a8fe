//! `garner simulate`: a discrete-event simulation of a chain of stages with
//! given per-batch costs, worker counts, mailbox sizes and full-mailbox
//! strategies, to size buffers before deploying. No sleeping, no threads:
//! simulated time jumps from event to event, so a run is deterministic and
//! instant.
//!
//! ```toml
//! [simulation]
//! batches = 1000            # batches the source emits
//! batch_bytes = "1MiB"      # memory one batch holds while in the pipeline
//! memory_capacity = "64MiB" # what the peak is compared against
//! source_interval_us = 100  # one batch every 100 µs (0: as fast as allowed)
//!
//! [[stage]]
//! id = "parse"
//! cost_us = 200             # time one worker spends on one batch
//! workers = 2               # batches processed at once
//! mailbox = 16              # input mailbox, in batches
//! strategy = "block"        # block | drop_newest | drop_oldest | fail
//! ```
//!
//! The model, per stage: a bounded input queue, `workers` servers, and a
//! worker that finished a batch holds it until the next stage's mailbox
//! takes it (under `block`), so a slow stage backs up into its
//! predecessors and finally the source. The last stage is the sink.
//! Memory is every batch queued, in service or held, times `batch_bytes`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use garner::pools::ByteSize;
use serde::Deserialize;

/// `garner simulate` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    /// The simulation spec (TOML).
    spec: PathBuf,
}

/// `[simulation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimSection {
    batches: u64,
    batch_bytes: ByteSize,
    memory_capacity: Option<ByteSize>,
    #[serde(default)]
    source_interval_us: u64,
}

/// What a producer does when a stage's mailbox is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Strategy {
    #[default]
    Block,
    DropNewest,
    DropOldest,
    Fail,
}

/// `[[stage]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimStage {
    id: String,
    cost_us: u64,
    #[serde(default = "one")]
    workers: usize,
    #[serde(default = "sixteen")]
    mailbox: usize,
    #[serde(default)]
    strategy: Strategy,
}

fn one() -> usize {
    1
}

fn sixteen() -> usize {
    16
}

/// A whole simulation spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimSpec {
    simulation: SimSection,
    stage: Vec<SimStage>,
}

/// Parses and checks a simulation spec; errors name the key path.
pub(crate) fn parse(text: &str) -> Result<SimSpec> {
    let value: toml::Value = text.parse().context("not valid TOML")?;
    let spec: SimSpec = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{path}: {}", e.into_inner())
    })?;
    if spec.stage.is_empty() {
        bail!("stage: name at least one [[stage]] (the last one is the sink)");
    }
    for (i, s) in spec.stage.iter().enumerate() {
        if s.workers == 0 {
            bail!("stage[{i}].workers: must be at least 1");
        }
        if s.mailbox == 0 {
            bail!("stage[{i}].mailbox: must be at least 1");
        }
    }
    Ok(spec)
}

/// One stage's figures at the end of a simulation.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StageResult {
    pub(crate) id: String,
    /// Batches that entered the mailbox.
    pub(crate) accepted: u64,
    /// Batches processed.
    pub(crate) processed: u64,
    /// Batches dropped at this stage's mailbox.
    pub(crate) dropped: u64,
    /// Share of worker time spent processing.
    pub(crate) utilization: f64,
    /// Share of worker time spent holding a finished batch (blocked downstream).
    pub(crate) blocked: f64,
    /// The most batches in the mailbox at once.
    pub(crate) queue_peak: usize,
    pub(crate) mailbox: usize,
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimResult {
    /// Simulated time until the last batch left the sink, µs.
    pub(crate) elapsed_us: u64,
    pub(crate) emitted: u64,
    /// Batches out of the sink.
    pub(crate) completed: u64,
    /// Simulated time the source spent waiting for room, µs.
    pub(crate) source_blocked_us: u64,
    pub(crate) peak_batches: u64,
    pub(crate) peak_bytes: u64,
    pub(crate) memory_capacity: Option<u64>,
    /// A `fail` mailbox overflowed: the stage and when.
    pub(crate) failed: Option<(String, u64)>,
    pub(crate) stages: Vec<StageResult>,
}

impl SimResult {
    /// Batches per simulated second.
    pub(crate) fn throughput(&self) -> f64 {
        if self.elapsed_us == 0 {
            0.0
        } else {
            self.completed as f64 * 1e6 / self.elapsed_us as f64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The source emits its next batch.
    Emit,
    /// A worker of stage `i` finished a batch.
    Done(usize),
}

#[derive(Debug, Default)]
struct StageState {
    queue: usize,
    busy: usize,
    /// Workers holding a finished batch the next mailbox did not take yet.
    held: usize,
    busy_us: u64,
    held_us: u64,
    out: StageResult,
}

/// The simulation's moving parts.
struct Sim<'a> {
    spec: &'a SimSpec,
    now: u64,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    stages: Vec<StageState>,
    emitted: u64,
    completed: u64,
    /// The source holds a batch the first mailbox did not take.
    source_held: bool,
    source_blocked_since: u64,
    source_blocked_us: u64,
    peak_batches: u64,
    failed: Option<(String, u64)>,
}

/// The outcome of offering a batch to a mailbox.
enum Offer {
    Taken,
    Dropped,
    Full,
    Failed,
}

impl<'a> Sim<'a> {
    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    /// Advances time, charging busy and held workers for the interval.
    fn advance(&mut self, to: u64) {
        let dt = to - self.now;
        for s in &mut self.stages {
            s.busy_us += dt * s.busy as u64;
            s.held_us += dt * s.held as u64;
        }
        self.now = to;
    }

    fn in_flight(&self) -> u64 {
        let held_by_source = u64::from(self.source_held);
        held_by_source + self.stages.iter().map(|s| (s.queue + s.busy + s.held) as u64).sum::<u64>()
    }

    fn offer(&mut self, i: usize) -> Offer {
        let config = &self.spec.stage[i];
        let s = &mut self.stages[i];
        if s.queue < config.mailbox {
            s.queue += 1;
            s.out.accepted += 1;
            s.out.queue_peak = s.out.queue_peak.max(s.queue);
            return Offer::Taken;
        }
        match config.strategy {
            Strategy::Block => Offer::Full,
            Strategy::DropNewest => {
                s.out.dropped += 1;
                Offer::Dropped
            }
            Strategy::DropOldest => {
                // One queued batch leaves, the new one takes its place.
                s.out.dropped += 1;
                s.out.accepted += 1;
                Offer::Taken
            }
            Strategy::Fail => Offer::Failed,
        }
    }

    /// Starts work at stage `i` while it has idle workers and queued
    /// batches; each batch leaving the queue makes room upstream.
    fn start(&mut self, i: usize) {
        let (workers, cost) = (self.spec.stage[i].workers, self.spec.stage[i].cost_us);
        while self.stages[i].busy + self.stages[i].held < workers && self.stages[i].queue > 0 {
            self.stages[i].queue -= 1;
            self.stages[i].busy += 1;
            self.schedule(self.now + cost, Event::Done(i));
            self.room(i);
        }
    }

    /// Stage `i`'s mailbox has room: the upstream holder hands its batch in.
    fn room(&mut self, i: usize) {
        if i == 0 {
            if self.source_held {
                self.source_held = false;
                self.source_blocked_us += self.now - self.source_blocked_since;
                self.deliver_from_source();
            }
        } else if self.stages[i - 1].held > 0 {
            // Room was just made, so this is taken.
            if let Offer::Taken = self.offer(i) {
                self.stages[i - 1].held -= 1;
                self.start(i);
                self.start(i - 1);
            }
        }
    }

    /// The source offers its current batch to the first stage.
    fn deliver_from_source(&mut self) {
        match self.offer(0) {
            Offer::Taken | Offer::Dropped => {
                self.start(0);
                self.next_emit();
            }
            Offer::Full => {
                self.source_held = true;
                self.source_blocked_since = self.now;
            }
            Offer::Failed => self.fail(0),
        }
    }

    fn next_emit(&mut self) {
        if self.emitted < self.spec.simulation.batches {
            self.schedule(self.now + self.spec.simulation.source_interval_us, Event::Emit);
        }
    }

    fn fail(&mut self, i: usize) {
        if self.failed.is_none() {
            self.failed = Some((self.spec.stage[i].id.clone(), self.now));
        }
    }

    fn done(&mut self, i: usize) {
        self.stages[i].busy -= 1;
        self.stages[i].out.processed += 1;
        if i + 1 == self.stages.len() {
            self.completed += 1;
            self.start(i);
            return;
        }
        match self.offer(i + 1) {
            Offer::Taken => self.start(i + 1),
            Offer::Dropped => {}
            Offer::Full => self.stages[i].held += 1,
            Offer::Failed => self.fail(i + 1),
        }
        self.start(i);
    }

    fn run(mut self) -> SimResult {
        self.schedule(0, Event::Emit);
        while let Some(Reverse((at, _, event))) = self.events.pop() {
            if self.failed.is_some() {
                break;
            }
            self.advance(at);
            match event {
                Event::Emit => {
                    self.emitted += 1;
                    self.deliver_from_source();
                }
                Event::Done(i) => self.done(i),
            }
            self.peak_batches = self.peak_batches.max(self.in_flight());
        }
        let elapsed = self.now;
        let batch_bytes = self.spec.simulation.batch_bytes.0;
        let stages = self
            .stages
            .into_iter()
            .zip(&self.spec.stage)
            .map(|(s, config)| {
                let capacity = (elapsed * config.workers as u64).max(1) as f64;
                StageResult {
                    id: config.id.clone(),
                    utilization: s.busy_us as f64 / capacity,
                    blocked: s.held_us as f64 / capacity,
                    mailbox: config.mailbox,
                    ..s.out
                }
            })
            .collect();
        SimResult {
            elapsed_us: elapsed,
            emitted: self.emitted,
            completed: self.completed,
            source_blocked_us: self.source_blocked_us,
            peak_batches: self.peak_batches,
            peak_bytes: self.peak_batches.saturating_mul(batch_bytes),
            memory_capacity: self.spec.simulation.memory_capacity.map(|c| c.0),
            failed: self.failed,
            stages,
        }
    }
}

/// Runs the simulation of `spec`: deterministic, no sleeping.
pub(crate) fn simulate(spec: &SimSpec) -> SimResult {
    let stages = spec.stage.iter().map(|_| StageState::default()).collect();
    let sim = Sim {
        spec,
        now: 0,
        events: BinaryHeap::new(),
        seq: 0,
        stages,
        emitted: 0,
        completed: 0,
        source_held: false,
        source_blocked_since: 0,
        source_blocked_us: 0,
        peak_batches: 0,
        failed: None,
    };
    sim.run()
}

/// The report `garner simulate` prints.
pub(crate) fn render(result: &SimResult) -> String {
    let mut out = String::new();
    let secs = result.elapsed_us as f64 / 1e6;
    let _ = writeln!(
        out,
        "{} of {} batches through in {secs:.3} s simulated: {:.1} batches/s",
        result.completed,
        result.emitted,
        result.throughput()
    );
    if result.source_blocked_us > 0 {
        let share = result.source_blocked_us as f64 / result.elapsed_us.max(1) as f64;
        let _ = writeln!(out, "source blocked by backpressure {:.0}% of the time", share * 100.0);
    }
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>9} {:>8} {:>8} {:>14}",
        "stage", "processed", "dropped", "busy", "blocked", "queue peak/cap"
    );
    for s in &result.stages {
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>7.1}% {:>7.1}% {:>14}",
            s.id,
            s.processed,
            s.dropped,
            s.utilization * 100.0,
            s.blocked * 100.0,
            format!("{}/{}", s.queue_peak, s.mailbox)
        );
    }
    let peak = ByteSize(result.peak_bytes);
    match result.memory_capacity {
        Some(capacity) => {
            let share = result.peak_bytes as f64 / capacity.max(1) as f64 * 100.0;
            let verdict = if result.peak_bytes > capacity { "OVER capacity" } else { "within capacity" };
            let _ = writeln!(
                out,
                "peak memory {peak} ({} batches) of {} capacity: {share:.0}%, {verdict}",
                result.peak_batches,
                ByteSize(capacity)
            );
        }
        None => {
            let _ = writeln!(out, "peak memory {peak} ({} batches)", result.peak_batches);
        }
    }
    if let Some((stage, at)) = &result.failed {
        let _ = writeln!(out, "FAILED: the mailbox of `{stage}` overflowed at {at} µs (strategy fail)");
    }
    out
}

/// `garner simulate SPEC`.
pub(crate) fn run(args: SimulateArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("cannot read {}", args.spec.display()))?;
    let spec = parse(&text).with_context(|| format!("in {}", args.spec.display()))?;
    let result = simulate(&spec);
    print!("{}", render(&result));
    if let Some((stage, _)) = result.failed {
        bail!("simulation failed: the mailbox of `{stage}` overflowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(batches: u64, interval_us: u64, stages: &str) -> SimSpec {
        let text = format!(
            "[simulation]\nbatches = {batches}\nbatch_bytes = \"1MiB\"\nmemory_capacity = \"64MiB\"\n\
             source_interval_us = {interval_us}\n{stages}"
        );
        parse(&text).unwrap()
    }

    fn stage(id: &str, cost_us: u64, workers: usize, mailbox: usize, strategy: &str) -> String {
        format!(
            "[[stage]]\nid = \"{id}\"\ncost_us = {cost_us}\nworkers = {workers}\nmailbox = {mailbox}\n\
             strategy = \"{strategy}\"\n"
        )
    }

    #[test]
    fn a_slow_sink_sets_the_pace_and_memory_stays_within_the_mailboxes() {
        // Source as fast as allowed, a fast transform, a sink 10x slower.
        let stages = stage("map", 100, 1, 8, "block") + &stage("sink", 1_000, 1, 4, "block");
        let result = simulate(&spec(1_000, 0, &stages));
        assert_eq!((result.emitted, result.completed), (1_000, 1_000));
        // The sink is the bottleneck: about 1000 batches/s, nearly always busy.
        assert!((result.throughput() - 1_000.0).abs() < 5.0, "{}", result.throughput());
        assert!(result.stages[1].utilization > 0.99, "{:?}", result.stages[1]);
        // Bounded: both mailboxes, one batch per worker, one held by the source.
        assert!(result.peak_batches <= 8 + 4 + 1 + 1 + 1 + 1, "{}", result.peak_batches);
        assert!(result.source_blocked_us > 0);
        // Memory does not grow with the input.
        let longer = simulate(&spec(4_000, 0, &stages));
        assert_eq!(longer.peak_batches, result.peak_batches);
    }

    #[test]
    fn drops_are_counted_and_every_batch_is_accounted_for() {
        for strategy in ["drop_newest", "drop_oldest"] {
            let stages = stage("map", 10, 1, 4, "block") + &stage("sink", 500, 1, 2, strategy);
            let result = simulate(&spec(500, 20, &stages));
            let dropped: u64 = result.stages.iter().map(|s| s.dropped).sum();
            assert!(dropped > 0, "{strategy}");
            assert_eq!(result.completed + dropped, result.emitted, "{strategy}: in = out + dropped");
            assert_eq!(result.stages[1].processed, result.completed);
        }
    }

    #[test]
    fn a_fail_mailbox_stops_the_simulation_naming_the_stage() {
        let stages = stage("sink", 1_000, 1, 2, "fail");
        let result = simulate(&spec(100, 10, &stages));
        assert_eq!(result.failed.as_ref().map(|f| f.0.as_str()), Some("sink"));
        assert!(render(&result).contains("FAILED: the mailbox of `sink` overflowed"));
    }

    #[test]
    fn workers_multiply_a_stages_throughput_and_the_result_is_deterministic() {
        let one = simulate(&spec(400, 0, &stage("work", 1_000, 1, 16, "block")));
        let four = simulate(&spec(400, 0, &stage("work", 1_000, 4, 16, "block")));
        assert!((four.throughput() / one.throughput() - 4.0).abs() < 0.05);
        assert_eq!(four, simulate(&spec(400, 0, &stage("work", 1_000, 4, 16, "block"))));
        let report = render(&four);
        assert!(report.contains("400 of 400 batches"), "{report}");
        assert!(report.contains("within capacity"), "{report}");
    }

    #[test]
    fn spec_errors_name_the_key() {
        let e = parse("[simulation]\nbatches = 1\nbatch_bytes = \"1MiB\"\n[[stage]]\nid = \"a\"\ncost_us = 1\nstrategy = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("stage[0].strategy: unknown variant `maybe`"), "{e}");
        let e = parse("[simulation]\nbatches = 1\nbatch_bytes = \"1MiB\"\n[[stage]]\nid = \"a\"\ncost_us = 1\nworkers = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "stage[0].workers: must be at least 1");
        let e =
            parse("stage = []\n[simulation]\nbatches = 1\nbatch_bytes = \"1MiB\"\n").unwrap_err().to_string();
        assert!(e.starts_with("stage: name at least one"), "{e}");
    }
}
