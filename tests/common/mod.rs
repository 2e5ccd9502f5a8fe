//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

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
