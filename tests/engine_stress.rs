//! Stress: every engine under the tightest flow control (mailboxes of
//! capacity 1), with more threads than the machine has cores, on graphs
//! that fan out, merge and repartition; drain and abort while saturated.
//! (`engine_idle.rs`, a process of its own, checks that idle workers park.)
//!
//! Nothing here asserts on speed. A run that makes no progress for
//! [`common::HANG_TIMEOUT`] fails with the engine's scheduler state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::ArrowError;
use garner::columnar::source::IterSource;
use garner::engine::{Engine, Error, ParallelismHint, RunHandle};
use garner::prelude::*;

mod common;

/// More threads than the 2-core machine has.
const THREADS: usize = 6;
const VARS: [&str; 4] = ["a", "b", "c", "d"];

/// Rows `from..to` of an endless fragment stream: key `i / 4`, one
/// variable each, every 13th subject misses "d".
fn fragments(from: u64, to: u64) -> RecordBatch {
    let rows: Vec<u64> = (from..to).filter(|i| !(i / 4 % 13 == 0 && i % 4 == 3)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|i| i / 4))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|i| VARS[(i % 4) as usize]))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|i| format!("v{i}")))),
        Arc::new(Int64Array::from_iter(rows.iter().map(|&i| (i % 7 != 0).then_some(i as i64 % 100)))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|&i| 1_000 + i as i64))),
    ];
    RecordBatch::try_new(common::fragment_schema(), columns).expect("valid fragments")
}

/// `rows` rows in batches of 1 to 7 rows.
fn small_batches(rows: u64) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut size = 1;
    while at < rows {
        let end = (at + size).min(rows);
        out.push(fragments(at, end));
        at = end;
        size = size % 7 + 1;
    }
    out
}

fn varset() -> VarSet {
    VarSet::keyed("k")
        .require(VARS)
        .time(TimeMode::Event { column: "ts".into() })
        .partial_flush_after(Duration::from_millis(40))
}

/// source -> 4 replicated transforms (6, 3, 5 and 6 instances) -> branch
/// -> (hi, lo transforms) -> merge -> accumulate (4 shards) -> transform -> sink.
fn wide(input: Vec<RecordBatch>) -> (PipelineGraph, Collected) {
    let (sink, out) = CollectSink::new();
    let graph = Pipeline::new("stress-wide")
        .source("read", MemorySource::try_from_batches(input).unwrap())
        .transform("keep", Filter::new(col("k").gt_eq(0)))
        .transform("reorder", Select::columns(["ts", "x", "value", "var", "k"]))
        .parallelism(3)
        .transform("back", Select::columns(["k", "var", "value", "x", "ts"]))
        .parallelism(5)
        .transform("slice", MapBatches::new(|b: RecordBatch| Ok(b)))
        .branch("split", Branch::new().route("hi", col("x").gt(50)).otherwise("lo"))
        .from("split.hi")
        .transform("hi-t", DropNulls::on(["x"]))
        .from("split.lo")
        .transform("lo-t", Filter::new(col("x").lt(1_000).or(col("x").is_null())))
        .merge("union", ["hi-t", "lo-t"])
        .hint(ParallelismHint::CpuBound)
        .accumulate("assemble", varset())
        .parallelism(4)
        .transform("after", Filter::new(col("acc_completeness").gt_eq(0.0)))
        .sink("out", sink)
        .build()
        .unwrap();
    (graph, out)
}

/// source -> 8 stateless stages -> sink: the longest fusable chain.
fn chain(input: Vec<RecordBatch>) -> (PipelineGraph, Collected) {
    let (sink, out) = CollectSink::new();
    let mut p = Pipeline::new("stress-chain").source("read", MemorySource::try_from_batches(input).unwrap());
    for i in 0..4 {
        p = p
            .transform(format!("fwd{i}"), Select::columns(["ts", "x", "value", "var", "k"]))
            .transform(format!("back{i}"), Select::columns(["k", "var", "value", "x", "ts"]));
    }
    let graph = p.sink("out", sink).build().unwrap();
    (graph, out)
}

fn engines() -> Vec<Box<dyn Engine>> {
    vec![
        Box::new(StealEngine::with_threads(THREADS)),
        Box::new(StealEngine::with_threads(THREADS).fusion(false)),
        Box::new(DataflowEngine::with_threads(THREADS)),
        Box::new(HybridEngine::with_threads(THREADS)),
        Box::new(RayonEngine::with_threads(THREADS)),
    ]
}

fn capacity_one(build: fn(Vec<RecordBatch>) -> (PipelineGraph, Collected), ordered: bool) {
    let input = small_batches(3_000);
    let (graph, out) = build(input.clone());
    SyncEngine::new().run(graph, RunOptions::default()).unwrap();
    let mut want = common::rows_of(&out);
    if !ordered {
        want.sort();
    }
    assert!(!want.is_empty());
    for round in 0..3 {
        for engine in engines() {
            let (graph, out) = build(input.clone());
            let opts = RunOptions::default().with_mailbox_capacity(1).with_tick(Duration::from_millis(1));
            let what = format!("{} round {round}", graph.name());
            common::run_watched(engine.as_ref(), graph, opts, common::HANG_TIMEOUT, &what)
                .unwrap_or_else(|e| panic!("{} on {what}: {e}", engine.name()));
            let mut got = common::rows_of(&out);
            if !ordered {
                got.sort();
            }
            assert_eq!(got.len(), want.len(), "{} on {what}", engine.name());
            assert!(got == want, "{} on {what}: output differs from the SyncEngine's", engine.name());
        }
    }
}

#[test]
fn a_wide_graph_finishes_with_mailboxes_of_one_and_more_threads_than_cores() {
    capacity_one(wide, false);
}

#[test]
fn a_long_chain_finishes_with_mailboxes_of_one_and_more_threads_than_cores() {
    capacity_one(chain, true);
}

/// An endless source of small batches, counting what it handed out.
fn endless() -> (IterSource, Arc<std::sync::atomic::AtomicU64>) {
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = produced.clone();
    let mut at = 0u64;
    let iter = std::iter::from_fn(move || {
        let b = fragments(at, at + 5);
        at += 5;
        counter.fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
        Some(Ok::<_, ArrowError>(b))
    });
    (IterSource::new(common::fragment_schema(), iter), produced)
}

fn endless_graph() -> (PipelineGraph, Collected, Arc<std::sync::atomic::AtomicU64>) {
    let (source, produced) = endless();
    let (sink, out) = CollectSink::new();
    let graph = Pipeline::new("endless")
        .source("read", source)
        .transform("keep", DropNulls::on(["x"]))
        .accumulate("assemble", varset())
        .parallelism(3)
        .sink("out", sink)
        .build()
        .unwrap();
    (graph, out, produced)
}

/// Waits (with a hang guard) until the stage has received `rows`.
fn wait_for_rows(handle: &RunHandle, stage: &str, rows: u64) {
    let start = Instant::now();
    while handle.inspect(stage).map_or(0, |s| s.rows_in) < rows {
        assert!(start.elapsed() < common::HANG_TIMEOUT, "no progress: {}", handle.diagnostics());
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn stop_drains_a_saturated_pipeline_and_loses_nothing() {
    for engine in [
        Box::new(StealEngine::with_threads(THREADS)) as Box<dyn Engine>,
        Box::new(DataflowEngine::with_threads(THREADS)),
        Box::new(HybridEngine::with_threads(THREADS)),
        Box::new(RayonEngine::with_threads(THREADS)),
    ] {
        let (graph, out, _) = endless_graph();
        let opts = RunOptions::default().with_mailbox_capacity(1);
        let handle = engine.spawn(graph, opts).unwrap();
        wait_for_rows(&handle, "assemble", 2_000);
        handle.stop();
        common::wait_finished(&handle, "stop");
        let report = handle.join().unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
        // Everything read reached the accumulator, and every fragment it
        // took is in an emitted row: the drain flushed the state.
        let read = report.stage("read").unwrap().rows_out;
        let kept = report.stage("keep").unwrap().rows_out;
        let assemble = report.stage("assemble").unwrap();
        assert!(read >= 2_000, "{}", engine.name());
        assert_eq!(assemble.rows_in, kept, "{}", engine.name());
        let stats = assemble.accum.as_ref().expect("accumulator stats");
        assert_eq!(stats.fragments_in, kept, "{}", engine.name());
        assert_eq!(out.num_rows() as u64, assemble.rows_out, "{}", engine.name());
        assert!(out.num_rows() > 0);
    }
}

#[test]
fn abort_stops_a_saturated_pipeline() {
    for engine in [
        Box::new(StealEngine::with_threads(THREADS)) as Box<dyn Engine>,
        Box::new(DataflowEngine::with_threads(THREADS)),
        Box::new(HybridEngine::with_threads(THREADS)),
        Box::new(RayonEngine::with_threads(THREADS)),
    ] {
        let (graph, _out, _) = endless_graph();
        let handle = engine.spawn(graph, RunOptions::default().with_mailbox_capacity(1)).unwrap();
        wait_for_rows(&handle, "assemble", 1_000);
        handle.abort();
        common::wait_finished(&handle, "abort");
        assert!(matches!(handle.join(), Err(Error::Aborted)), "{}", engine.name());
    }
}

/// Mailboxes hold their units against the run's budget: with a slow
/// consumer the links fill, their reservations show in the budget (never
/// past its limit), every row arrives, and everything is given back.
#[test]
fn mailboxes_reserve_what_they_hold_against_the_budget() {
    for engine in engines() {
        let name = engine.name().to_owned();
        let input: Vec<RecordBatch> = (0..200u64).map(|i| fragments(i * 500, (i + 1) * 500)).collect();
        let rows: usize = input.iter().map(RecordBatch::num_rows).sum();
        let (sink, out) = CollectSink::new();
        let graph = Pipeline::new("mailboxes")
            .source("read", MemorySource::try_from_batches(input).unwrap())
            .transform(
                "slow",
                MapBatches::new(|b: RecordBatch| {
                    std::thread::sleep(Duration::from_micros(300));
                    Ok(b)
                }),
            )
            .sink("out", sink)
            .build()
            .unwrap();
        let opts = RunOptions::default()
            .with_mailbox_capacity(4)
            .with_memory_budget(garner::pools::ByteSize::mib(1));
        let budget = opts.memory_budget.clone().unwrap();
        let leaks = garner::pools::testing::LeakCheck::of(&budget);
        common::run_watched(engine.as_ref(), graph, opts, common::HANG_TIMEOUT, &name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.concat().unwrap().num_rows(), rows, "{name}");
        let stats = budget.stats();
        assert!(stats.peak_bytes <= stats.limit_bytes, "{name}: {stats:?}");
        if !matches!(name.as_str(), "sync" | "rayon") {
            assert!(stats.peak_bytes > 0, "{name}: the mailboxes reserved nothing: {stats:?}");
        }
        leaks.check().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
