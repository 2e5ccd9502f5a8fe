//! Backpressure: a sink ten times slower than its source keeps the
//! process's peak RSS flat as the input grows 4x, on every engine; with a
//! drop policy on the sink's mailbox, every row is accounted for: rows in =
//! rows out + dropped, per stage (on the engines with mailboxes: the sync
//! and rayon engines have none to drop from).
//!
//! Each measured run happens in a child process (this test binary run again
//! with `GARNER_BACKPRESSURE_CHILD` set), so its peak RSS (`VmHWM`) is its
//! own. The input is generated while it is read, so it never sits in memory.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use garner::columnar::sink::SinkSummary;
use garner::columnar::source::IterSource;
use garner::columnar::BatchSink;
use garner::engine::resilience::{DropPolicy, MailboxPolicy};
use garner::engine::Engine;
use garner::prelude::*;

const CHILD: &str = "GARNER_BACKPRESSURE_CHILD";
const ROWS_PER_BATCH: i64 = 4096;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("s", DataType::Utf8, false),
    ]))
}

/// `batches` batches of 4096 rows (~100 KiB each), made as they are read.
fn source(batches: i64) -> IterSource {
    let mut at = 0;
    let iter = std::iter::from_fn(move || {
        (at < batches).then(|| {
            let from = at * ROWS_PER_BATCH;
            at += 1;
            let x: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + ROWS_PER_BATCH));
            let s: ArrayRef = Arc::new(StringArray::from_iter_values(
                (from..from + ROWS_PER_BATCH).map(|i| format!("row {i:012}")),
            ));
            Ok::<_, ArrowError>(RecordBatch::try_new(schema(), vec![x, s]).unwrap())
        })
    });
    IterSource::new(schema(), iter)
}

/// A sink that takes 4 ms a batch (the source makes one in ~0.4 ms) and
/// keeps nothing.
struct SlowSink(Arc<AtomicU64>);

impl BatchSink for SlowSink {
    fn open(&mut self, _schema: SchemaRef) -> garner::columnar::Result<()> {
        Ok(())
    }
    fn write(&mut self, batch: &RecordBatch) -> garner::columnar::Result<()> {
        std::thread::sleep(Duration::from_millis(4));
        self.0.fetch_add(batch.num_rows() as u64, Relaxed);
        Ok(())
    }
    fn finish(&mut self) -> garner::columnar::Result<SinkSummary> {
        Ok(SinkSummary::default())
    }
    fn abort(&mut self) {}
    fn describe(&self) -> String {
        "slow sink".into()
    }
}

fn engine(name: &str) -> Box<dyn Engine> {
    match name {
        "sync" => Box::new(SyncEngine::new()),
        "steal" => Box::new(StealEngine::with_threads(2)),
        "dataflow" => Box::new(DataflowEngine::with_threads(2)),
        "hybrid" => Box::new(HybridEngine::with_threads(2)),
        "rayon" => Box::new(RayonEngine::with_threads(2)),
        other => panic!("no engine {other}"),
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// In the child: runs source → pass → slow sink and prints
/// `rows_in rows_out dropped peak_kib`.
fn child(spec: &str) {
    let mut parts = spec.split(',');
    let (name, batches, policy) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let on_full = match policy {
        "block" => DropPolicy::Block,
        "drop_oldest" => DropPolicy::DropOldest,
        _ => DropPolicy::DropNewest,
    };
    let written = Arc::new(AtomicU64::new(0));
    let graph = Pipeline::new("backpressure")
        .source("read", source(batches.parse().unwrap()))
        .transform("pass", MapBatches::new(Ok))
        .sink("slow", SlowSink(written.clone()))
        .mailbox(MailboxPolicy { capacity: 4, on_full })
        .build()
        .unwrap();
    let report = engine(name).run(graph, RunOptions::default().with_mailbox_capacity(4)).unwrap();
    let sink = report.stage("slow").unwrap();
    assert_eq!(sink.rows_in, written.load(Relaxed));
    println!(
        "RESULT {} {} {} {}",
        report.stage("read").unwrap().rows_out,
        sink.rows_in,
        sink.mailbox_dropped + report.stage("pass").unwrap().mailbox_dropped,
        peak_rss_kib()
    );
}

/// Runs one measured child: (rows in, rows out, dropped, peak KiB).
fn measure(engine: &str, batches: i64, policy: &str) -> (u64, u64, u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "backpressure_child", "--nocapture", "--test-threads", "1"])
        .env(CHILD, format!("{engine},{batches},{policy}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split("RESULT ").nth(1))
        .unwrap_or_else(|| panic!("{engine}: no result\n{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let v: Vec<u64> = line.split_whitespace().map(|n| n.parse().unwrap()).collect();
    (v[0], v[1], v[2], v[3])
}

/// Not a test of its own: the body of the child processes.
#[test]
fn backpressure_child() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
    }
}

#[test]
fn a_slow_sink_keeps_memory_flat_as_the_input_grows() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    for name in ["sync", "steal", "dataflow", "hybrid", "rayon"] {
        let (in1, out1, dropped1, peak1) = measure(name, 150, "block");
        let (in4, out4, dropped4, peak4) = measure(name, 600, "block");
        assert_eq!((in1, out1, dropped1), (150 * 4096, 150 * 4096, 0), "{name}");
        assert_eq!((in4, out4, dropped4), (600 * 4096, 600 * 4096, 0), "{name}");
        println!("{name}: peak {peak1} KiB at 1x, {peak4} KiB at 4x");
        // Flat: within 10% (plus 2 MiB of allocator noise for these small processes).
        assert!(peak4 <= peak1 + peak1 / 10 + 2048, "{name}: peak {peak1} KiB at 1x, {peak4} KiB at 4x");
    }
}

#[test]
fn a_dropping_mailbox_accounts_for_every_row() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    for name in ["steal", "dataflow", "hybrid"] {
        for policy in ["drop_newest", "drop_oldest"] {
            let (rows_in, rows_out, dropped, _) = measure(name, 300, policy);
            assert_eq!(rows_in, 300 * 4096, "{name} {policy}");
            assert_eq!(rows_in, rows_out + dropped, "{name} {policy}: rows in = rows out + dropped");
            assert!(dropped > 0, "{name} {policy}: a sink this slow must make the mailbox drop");
        }
    }
}

/// With the effective queue on, an accumulator holding state slows its
/// producer down (the producer meets backpressure although the mailbox has
/// room), and the output is the same.
#[test]
fn an_accumulator_holding_state_slows_its_producer_with_the_effective_queue() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    use garner::accum::VarSet;
    use garner::columnar::sink::CollectSink;
    use garner::engine::flow::EffectiveQueue;
    let fragments = |b: i64| {
        // Every key is new and waits for a second variable that never comes.
        let k: ArrayRef = Arc::new(Int64Array::from_iter_values(b * 1000..(b + 1) * 1000));
        let var: ArrayRef = Arc::new(StringArray::from(vec!["a"; 1000]));
        RecordBatch::try_from_iter([("k", k), ("var", var.clone()), ("value", var)]).unwrap()
    };
    let run = |queue: Option<EffectiveQueue>| {
        let input: Vec<RecordBatch> = (0..200).map(fragments).collect();
        let (sink, out) = CollectSink::new();
        let graph = Pipeline::new("state")
            .source("read", garner::columnar::source::MemorySource::try_from_batches(input).unwrap())
            .accumulate(
                "assemble",
                VarSet::keyed("k").require(["a", "b"]).time(garner::accum::TimeMode::Processing),
            )
            .sink("out", sink)
            .build()
            .unwrap();
        let mut opts = RunOptions::default().with_mailbox_capacity(8);
        if let Some(q) = queue {
            opts = opts.with_effective_queue(q);
        }
        let report = StealEngine::with_threads(2).run(graph, opts).unwrap();
        (report.stage("read").unwrap().backpressure_events, out.concat().unwrap().num_rows())
    };
    let (_, rows) = run(None);
    let (blocked, rows_gated) = run(Some(EffectiveQueue { bytes_unit: 1024, spill_penalty: 4.0 }));
    assert_eq!((rows, rows_gated), (200_000, 200_000));
    assert!(blocked > 0, "the producer met the accumulator's state as backpressure");
}
