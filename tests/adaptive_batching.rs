//! Per-stage batching (`Pipeline::batching`): the engines that drive it
//! (sync, steal, dataflow, hybrid) cut a stage's input batches to the
//! current size, and outputs stay those of the `SyncEngine` without
//! batching — in order through chains, as a multiset through accumulators.
//! The adaptive size moves as the seed's rule says: a stage slower than its
//! target shrinks it, a fast stage with input waiting grows it. Directions
//! and counts are asserted, never times: a stage that sleeps 2 ms per call
//! is always over a 1 ms target, and any call is under 0.7 × 60 s.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use garner::engine::flow::{AdaptiveConfig, Batching};
use garner::engine::{Emitter, Engine};
use garner::prelude::*;
use proptest::prelude::*;

mod common;

use common::Row;

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    common::fragment_rows(40, 600)
}

fn batches(rows: &[Row], size: usize) -> Vec<RecordBatch> {
    common::fragment_batches(rows, size)
}

fn batching_strategy() -> impl Strategy<Value = Option<Batching>> {
    prop_oneof![
        Just(None),
        (1usize..64).prop_map(|n| Some(Batching::Fixed(n))),
        // A tiny target shrinks on every call; a huge one grows while input waits.
        (1usize..16, 0usize..64, 0usize..256, any::<bool>()).prop_map(|(min, up, span, slow)| {
            let initial = min + up.min(span);
            Some(Batching::Adaptive(AdaptiveConfig {
                min,
                max: min + span,
                initial,
                target_latency_ms: if slow { 1e-6 } else { 60_000.0 },
                alpha: 0.5,
            }))
        }),
    ]
}

#[derive(Debug, Clone)]
enum Shape {
    /// source -> filter -> select -> sink: ordered.
    Chain { cut: i64 },
    /// source -> filter -> accumulate (partitions) -> sink: multiset.
    Accumulate { cut: i64, partitions: usize, ttl: Option<u64> },
}

fn with(p: Pipeline, batching: Option<Batching>) -> Pipeline {
    match batching {
        Some(b) => p.batching(b),
        None => p,
    }
}

/// The graph, with `first` and `second` as the two stages' batching.
fn build(
    shape: &Shape,
    input: &[RecordBatch],
    first: Option<Batching>,
    second: Option<Batching>,
) -> (PipelineGraph, Collected) {
    let source = MemorySource::try_from_batches(input.to_vec()).unwrap();
    let (sink, out) = CollectSink::new();
    let p = Pipeline::new("adaptive").source("read", source);
    let p = match shape {
        Shape::Chain { cut } => {
            let p = with(p.transform("filter", Filter::new(col("x").gt(*cut))), first);
            with(p.transform("select", Select::columns(["ts", "x", "value", "k"])), second)
        }
        Shape::Accumulate { cut, partitions, ttl } => {
            let p = with(p.transform("filter", DropNulls::on(["x"])), first);
            let p = with(p.transform("cut", Filter::new(col("x").gt(*cut))), None);
            let mut v = VarSet::keyed("k")
                .require(["a", "b", "c", "d"])
                .time(TimeMode::Event { column: "ts".into() });
            if let Some(t) = ttl {
                v = v.partial_flush_after(Duration::from_millis(*t));
            }
            with(p.accumulate("assemble", v).parallelism(*partitions), second)
        }
    };
    (p.sink("out", sink).build().unwrap(), out)
}

fn run(
    engine: &dyn Engine,
    graph: PipelineGraph,
    out: &Collected,
    what: &dyn std::fmt::Debug,
) -> (Vec<String>, RunReport) {
    let opts = RunOptions::default().with_mailbox_capacity(2);
    let report = common::run_watched(engine, graph, opts, common::HANG_TIMEOUT, what)
        .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
    (common::rows_of(out), report)
}

fn engines() -> Vec<(&'static str, Box<dyn Engine>)> {
    vec![
        ("sync", Box::new(SyncEngine::new())),
        ("steal", Box::new(StealEngine::with_threads(2))),
        ("steal-unfused", Box::new(StealEngine::with_threads(2).fusion(false))),
        ("dataflow", Box::new(DataflowEngine::with_threads(2))),
        ("hybrid", Box::new(HybridEngine::with_threads(2))),
        // Ignores batching; the output is the same all the same.
        ("rayon", Box::new(RayonEngine::with_threads(2))),
    ]
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (-30i64..30).prop_map(|cut| Shape::Chain { cut }),
        (-30i64..30, 1usize..=3, prop::option::of(0u64..20))
            .prop_map(|(cut, partitions, ttl)| Shape::Accumulate { cut, partitions, ttl }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_engine_with_batching_matches_the_sync_engine_without(
        shape in shape_strategy(),
        rows in rows_strategy(),
        size in prop_oneof![1usize..=8, 9usize..=700],
        first in batching_strategy(),
        second in batching_strategy(),
    ) {
        let input = batches(&rows, size);
        let what = (&shape, size, first, second);
        let (graph, out) = build(&shape, &input, None, None);
        let (mut want, reference) = run(&SyncEngine::new(), graph, &out, &what);
        let ordered = matches!(shape, Shape::Chain { .. });
        if !ordered {
            want.sort();
        }
        for (name, engine) in engines() {
            let (graph, out) = build(&shape, &input, first, second);
            let (mut got, report) = run(engine.as_ref(), graph, &out, &what);
            if !ordered {
                got.sort();
            }
            prop_assert_eq!(&got, &want, "engine {} on {:?}", name, what);
            for (r, s) in reference.stages.iter().zip(&report.stages) {
                prop_assert_eq!((r.rows_in, r.rows_out), (s.rows_in, s.rows_out), "engine {} stage {}", name, &s.id);
            }
        }
    }
}

/// A transform that sleeps `ms` per call and counts its calls.
#[derive(Clone)]
struct Slow {
    ms: u64,
    calls: Arc<AtomicU64>,
}

impl Stage for Slow {
    fn output_schema(
        &self,
        input: &arrow_schema::SchemaRef,
    ) -> garner::engine::Result<arrow_schema::SchemaRef> {
        Ok(input.clone())
    }
    fn process(&mut self, batch: Batch, out: &mut Emitter) -> garner::engine::Result<()> {
        std::thread::sleep(Duration::from_millis(self.ms));
        self.calls.fetch_add(1, Relaxed);
        out.emit(batch);
        Ok(())
    }
}

fn one_batch(rows: usize) -> RecordBatch {
    let r: Vec<Row> = (0..rows).map(|i| Row { k: i as u64, var: "a", x: Some(i as i64), ts: 1000 }).collect();
    batches(&r, rows).remove(0)
}

/// Runs source (one batch of `rows`) -> slow (with `config`) -> sink on
/// `engine`; returns the report and the rows out, in order.
fn run_slow(engine: &dyn Engine, rows: usize, ms: u64, config: AdaptiveConfig) -> (RunReport, Vec<String>) {
    let calls = Arc::new(AtomicU64::new(0));
    let (sink, out) = CollectSink::new();
    let graph = Pipeline::new("slow")
        .source("read", MemorySource::try_from_batches(vec![one_batch(rows)]).unwrap())
        .transform("slow", Slow { ms, calls: calls.clone() })
        .parallelism(1)
        .batching(Batching::Adaptive(config))
        .sink("out", sink)
        .build()
        .unwrap();
    let report =
        common::run_watched(engine, graph, RunOptions::default(), common::HANG_TIMEOUT, &"slow").unwrap();
    let slow = report.stage("slow").unwrap();
    assert_eq!(slow.batches_in, calls.load(Relaxed), "{}: one call per slice", engine.name());
    (report, common::rows_of(&out))
}

#[test]
fn a_stage_slower_than_its_target_halves_its_batches_down_to_min() {
    // Every call sleeps 2 ms > the 1 ms target: the size halves after every
    // call, 256 -> 128 -> 64 -> 32 -> 16, then stays at min (not counted).
    let config = AdaptiveConfig { min: 16, max: 4096, initial: 256, target_latency_ms: 1.0, alpha: 1.0 };
    let want: Vec<String> = {
        let (sink, out) = CollectSink::new();
        let graph = Pipeline::new("plain")
            .source("read", MemorySource::try_from_batches(vec![one_batch(600)]).unwrap())
            .sink("out", sink)
            .build()
            .unwrap();
        SyncEngine::new().run(graph, RunOptions::default()).unwrap();
        common::rows_of(&out)
    };
    for (name, engine) in engines().into_iter().filter(|(n, _)| *n != "rayon") {
        let (report, got) = run_slow(engine.as_ref(), 600, 2, config);
        assert_eq!(got, want, "{name}: same rows, same order");
        let slow = report.stage("slow").unwrap();
        let adj = slow.batch_adjustments;
        assert_eq!((adj.increment, adj.decrement), (0, 4), "{name}");
        // 256 + 128 + 64 + 32 + 16·8 = 608 ≥ 600: 4 + 8 slices.
        assert_eq!(slow.batches_in, 12, "{name}");
        let m = report.metrics();
        let flow = &m.stage("slow").unwrap().flow;
        assert_eq!(flow.adaptive_batch_adjustments, adj, "{name}: the final snapshot shows them");
        assert!(m.stage("slow").unwrap().stage_batch_size < 256.0, "{name}");
    }
}

#[test]
fn a_fast_stage_with_input_waiting_grows_its_batches() {
    // Any call is far under 0.7 × 60 s, and while the rest of the cut batch
    // waits the input counts as backed up: the size grows ×1.5 per call,
    // 10, 15, 23, 35, 53, 80, 120, 180, 270 (786 rows), then the last 214
    // rows fit whole and nothing waits: halve once.
    let config = AdaptiveConfig { min: 10, max: 1000, initial: 10, target_latency_ms: 60_000.0, alpha: 1.0 };
    for (name, engine) in engines().into_iter().filter(|(n, _)| *n != "rayon") {
        let (report, got) = run_slow(engine.as_ref(), 1000, 0, config);
        assert_eq!(got.len(), 1000, "{name}");
        let slow = report.stage("slow").unwrap();
        assert_eq!(slow.batch_adjustments.increment, 9, "{name}");
        assert_eq!(slow.batch_adjustments.decrement, 1, "{name}");
        assert_eq!(slow.batches_in, 10, "{name}");
    }
}

#[test]
fn the_rayon_engine_ignores_batching() {
    let config = AdaptiveConfig { min: 16, max: 4096, initial: 256, target_latency_ms: 1.0, alpha: 1.0 };
    let (report, got) = run_slow(&RayonEngine::with_threads(2), 600, 0, config);
    assert_eq!(got.len(), 600);
    let slow = report.stage("slow").unwrap();
    assert_eq!((slow.batches_in, slow.batch_adjustments.decrement), (1, 0));
}

#[test]
fn bad_batching_parameters_fail_the_build_naming_the_stage() {
    let bad = AdaptiveConfig { min: 10, max: 5, initial: 8, target_latency_ms: 1.0, alpha: 0.5 };
    let err = Pipeline::new("bad")
        .source("read", MemorySource::try_from_batches(vec![one_batch(3)]).unwrap())
        .transform("pass", MapBatches::new(Ok))
        .batching(Batching::Adaptive(bad))
        .sink("out", CollectSink::new().0)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("stage `pass`") && text.contains("batching"), "{text}");
    let err = Pipeline::new("bad")
        .source("read", MemorySource::try_from_batches(vec![one_batch(3)]).unwrap())
        .transform("pass", MapBatches::new(Ok))
        .batching(Batching::Fixed(0))
        .sink("out", CollectSink::new().0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("stage `pass`"), "{err}");
}
