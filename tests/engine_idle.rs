//! An idle pipeline parks its workers: no spinning at 100% CPU while the
//! source waits. A test binary of its own, so that the process's CPU time
//! is this pipeline's alone.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use garner::columnar::source::IterSource;
use garner::engine::{Engine, ParallelismHint};
use garner::prelude::*;

mod common;

const THREADS: usize = 6;

fn fragments(n: u64) -> RecordBatch {
    let vars = ["a", "b", "c", "d"];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values((0..n).map(|i| i / 4))),
        Arc::new(StringArray::from_iter_values((0..n).map(|i| vars[(i % 4) as usize]))),
        Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("v{i}")))),
        Arc::new(Int64Array::from_iter_values((0..n).map(|i| i as i64))),
        Arc::new(Int64Array::from_iter_values((0..n).map(|i| 1_000 + i as i64))),
    ];
    RecordBatch::try_new(common::fragment_schema(), columns).expect("valid fragments")
}

/// CPU time (user + system) this process has used, from /proc (Linux).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux ABI.
    Some(Duration::from_millis(ticks * 10))
}

#[test]
fn an_idle_pipeline_parks_its_workers() {
    // A source that waits on a channel: the pipeline has nothing to do.
    let (tx, rx) = mpsc::channel::<RecordBatch>();
    let source =
        IterSource::new(common::fragment_schema(), std::iter::from_fn(move || rx.recv().ok().map(Ok)));
    let (sink, out) = CollectSink::new();
    let graph = Pipeline::new("idle")
        .source("read", source)
        .hint(ParallelismHint::IoBound)
        .transform("keep", DropNulls::on(["x"]))
        .accumulate("assemble", VarSet::keyed("k").require(["a", "b", "c", "d", "e"]))
        .parallelism(4)
        .sink("out", sink)
        .build()
        .unwrap();
    let handle = HybridEngine::with_threads(THREADS).spawn(graph, RunOptions::default()).unwrap();
    tx.send(fragments(40)).unwrap();
    let start = Instant::now();
    while handle.inspect("assemble").map_or(0, |s| s.rows_in) == 0 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress: {}", handle.diagnostics());
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    let (Some(before), t0) = (cpu_time(), Instant::now()) else {
        eprintln!("no /proc/self/stat: CPU use not checked");
        return;
    };
    std::thread::sleep(Duration::from_millis(1_000));
    let used = cpu_time().unwrap() - before;
    let elapsed = t0.elapsed();
    eprintln!("idle pipeline: {used:?} CPU in {elapsed:?}");
    drop(tx); // end of input
    handle.join().unwrap();
    assert!(out.num_rows() > 0);
    // Six parked workers, a parked source thread and a driver ticking
    // every 100 ms use next to nothing; a spinning worker would use a
    // whole core. The bound is loose on purpose: CI machines are noisy.
    assert!(used < elapsed / 4, "an idle pipeline used {used:?} of CPU in {elapsed:?}: something spins");
}
