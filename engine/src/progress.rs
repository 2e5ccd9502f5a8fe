//! Live run counters, shared between an engine and whoever displays them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters an engine updates once per batch (never per row) while it runs;
/// a progress bar or a monitor thread reads them. Share it as an `Arc`.
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows read by all sources.
    pub rows_in: AtomicU64,
    /// Rows written by all sinks.
    pub rows_out: AtomicU64,
    /// Keys resident in accumulators.
    pub keys_resident: AtomicU64,
    /// Keys spilled by accumulators.
    pub keys_spilled: AtomicU64,
    /// Rows the sources announced up front, 0 when unknown.
    pub rows_expected: AtomicU64,
}

impl Progress {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
    }
}
