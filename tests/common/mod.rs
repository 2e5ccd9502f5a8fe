//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use garner::engine::{Engine, RunHandle};
use garner::prelude::*;

/// How long a run may take before the test calls it a hang. Generous on
/// purpose: it only trips when a run makes no progress, never on speed.
pub(crate) const HANG_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `graph` on `engine` like `Engine::run`, but panics with the
/// engine's scheduler state when the run has not ended after `timeout`.
pub(crate) fn run_watched(
    engine: &dyn Engine,
    graph: PipelineGraph,
    opts: RunOptions,
    timeout: Duration,
    what: &dyn std::fmt::Debug,
) -> garner::engine::Result<RunReport> {
    let handle = engine.spawn(graph, opts)?;
    let start = Instant::now();
    while !handle.is_finished() {
        if start.elapsed() > timeout {
            let state = handle.diagnostics();
            eprintln!("HANG: engine {} on {what:?} (pid {})\n{state}", engine.name(), std::process::id());
            if let Some(secs) = std::env::var("GARNER_HANG_PAUSE").ok().and_then(|s| s.parse().ok()) {
                // Time to attach a debugger.
                std::thread::sleep(Duration::from_secs(secs));
            }
            // Leak the handle: dropping it would abort and join, which may
            // itself hang on the very bug being reported.
            std::mem::forget(handle);
            panic!("engine {} made no progress for {timeout:?} on {what:?}:\n{state}", engine.name());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    handle.join()
}

/// The fragments the engine tests feed: `k` (key), `var`, `value`, `x`
/// (nullable, for filters) and `ts` (event time, ms).
pub(crate) fn fragment_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::UInt64, false),
        Field::new("var", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("x", DataType::Int64, true),
        Field::new("ts", DataType::Int64, false),
    ]))
}

/// Every collected row as text (`|`-separated, nulls as `∅`), in order.
pub(crate) fn rows_of(collected: &Collected) -> Vec<String> {
    let options = FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for b in collected.batches() {
        let formatters: Vec<ArrayFormatter> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for r in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    rows
}

/// Waits for a run that was told to stop or abort to end; fails with the
/// scheduler state when it has not after [`HANG_TIMEOUT`].
pub(crate) fn wait_finished(handle: &RunHandle, what: &str) {
    let start = Instant::now();
    while !handle.is_finished() {
        assert!(start.elapsed() < HANG_TIMEOUT, "{what} hangs: {}", handle.diagnostics());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One fragment row of the generated inputs (see [`fragment_rows`]).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) k: u64,
    pub(crate) var: &'static str,
    pub(crate) x: Option<i64>,
    pub(crate) ts: i64,
}

/// The variables fragments name: four required ones and one no accumulator asks for.
pub(crate) const VARS: [&str; 5] = ["a", "b", "c", "d", "junk"];

/// Up to `max_rows` fragments of fewer than `max_keys` keys; event time
/// never decreases along the input.
pub(crate) fn fragment_rows(
    max_keys: u64,
    max_rows: usize,
) -> impl proptest::strategy::Strategy<Value = Vec<Row>> {
    use proptest::prelude::*;
    (1u64..max_keys, 0usize..max_rows).prop_flat_map(|(keys, n)| {
        prop::collection::vec((0..keys, 0usize..5, prop::option::weighted(0.9, -50i64..50), 0i64..4), n)
            .prop_map(|raw| {
                let mut ts = 1_000;
                raw.into_iter()
                    .map(|(k, v, x, dt)| {
                        ts += dt;
                        Row { k, var: VARS[v], x, ts }
                    })
                    .collect()
            })
    })
}

/// `rows` as batches of [`fragment_schema`] of `size` rows (one empty
/// batch for no rows); the value column names the variable and the row.
pub(crate) fn fragment_batches(rows: &[Row], size: usize) -> Vec<RecordBatch> {
    let schema = fragment_schema();
    let make = |rows: &[Row]| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.k))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.var))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().enumerate().map(|(i, r)| format!("{}-{i}", r.var)),
            )),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.x))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.ts))),
        ];
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    };
    if rows.is_empty() {
        return vec![make(&[])];
    }
    rows.chunks(size).map(make).collect()
}
