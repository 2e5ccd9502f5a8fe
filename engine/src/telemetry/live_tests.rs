//! Metrics of real runs: live snapshots while a pipeline waits on its
//! source, then the final ones, checked against the `RunReport`, on every
//! engine.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use garner_accum::VarSet;
use garner_columnar::sink::CollectSink;
use garner_columnar::source::{IterSource, MemorySource};
use garner_columnar::Batch;

use super::{prometheus, MetricsSnapshot, SEED_METRICS};
use crate::transforms::DropNulls;
use crate::{
    DataflowEngine, Emitter, Engine, Pipeline, RayonEngine, Result, RunMonitor, RunOptions, RunReport, Stage,
    StealEngine, SyncEngine,
};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::UInt64, true),
        Field::new("var", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
    ]))
}

/// Fragments `(k, var)` with value `"v"`.
fn fragments(rows: &[(u64, &str)]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "v"))),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

/// Ten complete subjects (0..10), then two that miss `d` (100, 101).
fn batches() -> Vec<RecordBatch> {
    let complete: Vec<(u64, &str)> = (0..10).flat_map(|k| ["a", "b", "c", "d"].map(|v| (k, v))).collect();
    let open: Vec<(u64, &str)> =
        [100, 101].into_iter().flat_map(|k| ["a", "b", "c"].map(|v| (k, v))).collect();
    vec![fragments(&complete), fragments(&open)]
}

fn pipeline(source: IterSource) -> (crate::PipelineGraph, garner_columnar::sink::Collected) {
    let (sink, out) = CollectSink::new();
    let graph = Pipeline::new("telemetry")
        .source("read", source)
        .transform("keep", DropNulls::on(["k"]))
        .accumulate("assemble", VarSet::keyed("k").require(["a", "b", "c", "d"]))
        .sink("out", sink)
        .build()
        .unwrap();
    (graph, out)
}

/// Polls `monitor` until `done` holds of a snapshot (or fails after a
/// minute, with the last one). Waiting, not timing: nothing is asserted
/// about how long it took.
fn wait_for(monitor: &RunMonitor, what: &str, done: impl Fn(&MetricsSnapshot) -> bool) -> MetricsSnapshot {
    let start = Instant::now();
    loop {
        let m = monitor.metrics();
        if done(&m) {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never {what}: {m:#?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A counter of `stage`, 0 before the engine published the stage.
fn counter(m: &MetricsSnapshot, stage: &str, f: fn(&super::StageMetrics) -> u64) -> u64 {
    m.stage(stage).map_or(0, f)
}

fn accum(m: &MetricsSnapshot) -> &super::AccumulatorMetrics {
    m.stage("assemble").unwrap().accumulator.as_ref().expect("accumulator metrics")
}

/// The final snapshot agrees with the report, stage by stage.
fn check_final(report: &RunReport, m: &MetricsSnapshot) {
    assert!(m.finished);
    assert_eq!(m.engine, report.engine);
    assert_eq!(m.pipeline_rows_in_total, report.rows_in());
    assert_eq!(m.pipeline_rows_out_total, report.rows_out());
    for r in &report.stages {
        let s = m.stage(&r.id).unwrap();
        assert_eq!(
            (
                s.stage_rows_in_total,
                s.stage_rows_out_total,
                s.stage_batches_in_total,
                s.stage_batches_out_total
            ),
            (r.rows_in, r.rows_out, r.batches_in, r.batches_out),
            "{}",
            r.id
        );
        assert_eq!(s.stage_latency_bucket.count(), r.latency.count(), "{}", r.id);
        assert_eq!((s.stage_input_queue_depth, s.stage_output_queue_depth), (0, 0));
        assert_eq!((s.stage_errors_total, s.stage_error_rate), (0, 0.0));
    }
    let stats = report.stage("assemble").unwrap().accum.clone().unwrap();
    let a = accum(m);
    assert_eq!((stats.complete, stats.partial), (10, 2));
    assert_eq!((a.accumulator_complete_total, a.accumulator_partial_flush_total), (10, 2));
    assert_eq!(a.accumulator_completeness_ratio.count(), 12);
    let below = a.accumulator_completeness_ratio.cumulative();
    assert_eq!((below[6], below[7], below[10]), (0, 2, 12), "3/4 is below 0.8; all are at most 1");
    assert_eq!(a.accumulator_flush_latency.count(), 12);
    assert_eq!(a.accumulator_active_keys, 0, "everything was flushed");
    let out = m.stage("out").unwrap();
    assert_eq!(out.stage_rows_in_total, 12);
    assert_eq!(out.stage_latency_bucket.count(), out.stage_batches_in_total, "a sink times every batch");
    let read = m.stage("read").unwrap();
    assert_eq!(read.stage_latency_bucket.count(), read.stage_batches_out_total, "a source times every batch");
    let text = m.to_prometheus();
    let e = prometheus::parse(&text).unwrap();
    for name in SEED_METRICS {
        assert!(e.has(name) || e.has(&format!("{name}_bucket")), "{name}");
    }
    assert_eq!(e.value("pipeline_rows_out_total", &[]), Some(report.rows_out() as f64));
}

/// Sends two batches through a channel source, checks a live snapshot
/// while the source waits for more, then ends the input and checks the
/// final one.
fn live_then_final(engine: &dyn Engine) {
    let (tx, rx) = mpsc::channel::<RecordBatch>();
    let source = IterSource::new(schema(), std::iter::from_fn(move || rx.recv().ok().map(Ok)));
    let (graph, out) = pipeline(source);
    let handle = engine.spawn(graph, RunOptions::default()).unwrap();
    // Declared after the handle, so that a failed assertion drops it first:
    // the source then ends and the handle's drop can join the run.
    let tx = tx;
    let monitor = handle.monitor();
    for b in batches() {
        tx.send(b).unwrap();
    }
    let live = wait_for(&monitor, "took in both batches", |m| {
        counter(m, "out", |s| s.stage_rows_in_total) == 10
            && counter(m, "assemble", |s| s.stage_rows_in_total) == 46
            && m.stage("assemble")
                .and_then(|s| s.accumulator.as_ref())
                .is_some_and(|a| a.accumulator_complete_total == 10)
    });
    assert!(!live.finished);
    assert_eq!(live.pipeline_rows_in_total, 46);
    let a = accum(&live);
    assert_eq!(a.accumulator_active_keys, 2, "100 and 101 wait for `d`");
    assert_eq!(a.accumulator_partial_flush_total, 0);
    assert!(a.accumulator_memory_bytes > 0);
    assert_eq!(live.stage("keep").unwrap().stage_batch_size, 23.0, "40 + 6 rows in two batches");
    let e = prometheus::parse(&live.to_prometheus()).unwrap();
    for name in SEED_METRICS {
        assert!(e.has(name) || e.has(&format!("{name}_bucket")), "{name} missing while running");
    }
    assert_eq!(e.value("accumulator_active_keys", &[("stage", "assemble")]), Some(2.0));

    drop(tx);
    let report = handle.join().unwrap();
    assert_eq!(out.num_rows(), 12);
    let last = report.metrics();
    check_final(&report, &last);
    // The monitor outlives the handle and ends on the report's figures.
    let after = monitor.metrics();
    assert!(after.finished);
    for s in &last.stages {
        let a = after.stage(&s.stage).unwrap();
        assert_eq!(
            (a.stage_rows_in_total, a.stage_rows_out_total),
            (s.stage_rows_in_total, s.stage_rows_out_total)
        );
        assert_eq!(a.stage_latency_bucket, s.stage_latency_bucket, "{}", s.stage);
        let live = live.stage(&s.stage).unwrap();
        assert!(
            live.stage_rows_in_total <= s.stage_rows_in_total
                && live.stage_latency_bucket.count() <= s.stage_latency_bucket.count()
        );
    }
    assert_eq!(accum(&after).accumulator_partial_flush_total, 2);
}

#[test]
fn sync_metrics_live_and_final_agree_with_the_report() {
    live_then_final(&SyncEngine::new());
}

#[test]
fn steal_metrics_live_and_final_agree_with_the_report() {
    live_then_final(&StealEngine::with_threads(2));
}

#[test]
fn dataflow_metrics_live_and_final_agree_with_the_report() {
    live_then_final(&DataflowEngine::with_threads(2));
}

#[test]
fn sync_and_rayon_time_every_batch() {
    for engine in [&SyncEngine::new() as &dyn Engine, &RayonEngine::with_threads(2)] {
        let source = MemorySource::try_from_batches(batches()).unwrap();
        let (sink, _out) = CollectSink::new();
        let graph = Pipeline::new("every")
            .source("read", source)
            .transform("keep", DropNulls::on(["k"]))
            .accumulate("assemble", VarSet::keyed("k").require(["a", "b", "c", "d"]))
            .sink("out", sink)
            .build()
            .unwrap();
        let report = engine.run(graph, RunOptions::default()).unwrap();
        let m = report.metrics();
        check_final(&report, &m);
        for id in ["keep", "out"] {
            let s = m.stage(id).unwrap();
            assert_eq!(s.stage_latency_bucket.count(), s.stage_batches_in_total, "{}: {id}", report.engine);
        }
        // The rayon engine splits each input batch over the accumulator's
        // shards and times every part an instance processes.
        let a = m.stage("assemble").unwrap();
        if report.engine == "sync" {
            assert_eq!(a.stage_latency_bucket.count(), a.stage_batches_in_total);
        } else {
            assert!(a.stage_latency_bucket.count() >= a.stage_batches_in_total);
        }
        assert_eq!(m.stage("keep").unwrap().stage_latency_bucket.count(), 2);
    }
}

/// Blocks every batch until opened.
#[derive(Clone)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl Stage for Gate {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }
    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let (open, cv) = &*self.0;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        out.emit(batch);
        Ok(())
    }
}

#[test]
fn a_full_link_counts_backpressure_and_shows_in_the_queue_gauges() {
    let gate = Gate(Arc::new((Mutex::new(false), Condvar::new())));
    let many: Vec<RecordBatch> = (0..20).map(|k| fragments(&[(k, "a")])).collect();
    let (sink, _out) = CollectSink::new();
    let graph = Pipeline::new("slow")
        .source("read", MemorySource::try_from_batches(many).unwrap())
        .transform("gate", gate.clone())
        .sink("out", sink)
        .build()
        .unwrap();
    let opts = RunOptions::default().with_mailbox_capacity(1);
    // A thread per stage instance: a blocked gate cannot starve the source
    // of a worker, as it could on a two-worker steal pool.
    let handle = DataflowEngine::with_threads(2).spawn(graph, opts).unwrap();
    // Dropped before the handle if an assertion fails, so the run can end.
    let _open_on_failure = OpenOnDrop(gate.clone());
    let monitor = handle.monitor();
    // Blocked once, the source may be woken again (a gate instance took
    // its first unit and granted its slot back) and send one more unit
    // before it blocks for good: wait for a snapshot taken with the link
    // full, not in that window.
    let blocked = wait_for(&monitor, "blocked the source with a full link", |m| {
        let read = m.stage("read").unwrap();
        read.flow.backpressure_events_total.block > 0
            && read.stage_output_queue_depth >= 1
            && m.stage("gate").unwrap().stage_input_queue_depth == read.stage_output_queue_depth
    });
    // The gate holds its first unit; the link into it is full and stays so.
    let read = blocked.stage("read").unwrap();
    assert!(read.stage_output_queue_depth >= 1, "{read:#?}");
    let gate_in = blocked.stage("gate").unwrap().stage_input_queue_depth;
    assert_eq!(gate_in, read.stage_output_queue_depth, "one link: the source's output is the gate's input");
    assert!(blocked.stage("gate").unwrap().flow.effective_queue_size >= 1.0);
    assert_eq!(blocked.stage("out").unwrap().stage_rows_in_total, 0);
    gate.open();
    let report = handle.join().unwrap();
    let m = report.metrics();
    assert_eq!(m.pipeline_rows_out_total, 20);
    let events = m.stage("read").unwrap().flow.backpressure_events_total.block;
    assert!(events >= read.flow.backpressure_events_total.block, "counters only grow");
    assert_eq!(report.stage("read").unwrap().backpressure_events, events);
}
