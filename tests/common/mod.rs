//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use garner::engine::Engine;
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
