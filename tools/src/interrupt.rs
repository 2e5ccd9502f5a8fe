//! Ctrl-C during `garner run`: the first drains the run (sources stop,
//! accumulators flush what they hold, sinks finish and commit), the second
//! aborts it (no output is left behind).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use garner::engine::exec::RunHandle;
use garner::engine::RunReport;

/// How a watched run ended.
pub(crate) enum Ended {
    /// Ran to the end of its input.
    Completed(RunReport),
    /// Drained after a Ctrl-C: the report of what was processed.
    Drained(RunReport),
}

/// A run stopped by Ctrl-C: `main` exits with 130, as shells expect.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by Ctrl-C")]
pub(crate) struct Interrupted;

/// Counts Ctrl-C presses (SIGINT, SIGTERM) from now on.
fn install() -> Arc<AtomicU8> {
    let presses = Arc::new(AtomicU8::new(0));
    let p = presses.clone();
    // Fails only if a handler is already set (not in this binary): then
    // Ctrl-C keeps its default meaning, which is to end the process.
    let _ = ctrlc::set_handler(move || {
        p.fetch_add(1, Ordering::SeqCst);
    });
    presses
}

/// Waits for `handle`, draining on the first Ctrl-C and aborting on the
/// second (saying so on stderr unless `quiet`).
pub(crate) fn watch(handle: RunHandle, quiet: bool) -> garner::engine::Result<Ended> {
    let presses = install();
    let mut acted = 0;
    while !handle.is_finished() {
        let n = presses.load(Ordering::SeqCst);
        if n >= 1 && acted == 0 {
            if !quiet {
                eprintln!("\ninterrupted: draining (sources stop, state is flushed); Ctrl-C again to abort");
            }
            handle.stop();
            acted = 1;
        }
        if n >= 2 && acted == 1 {
            if !quiet {
                eprintln!("aborting");
            }
            handle.abort();
            acted = 2;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = handle.join()?;
    Ok(if acted == 0 { Ended::Completed(report) } else { Ended::Drained(report) })
}
