//! [`SpillStats`]: counters of a spill store, read by telemetry and tests.

/// Counters of one [`SpillStore`](crate::SpillStore).
///
/// `records`, `bytes_stored`, the per-tier arrays and `files` describe what is
/// live now; `bytes_in`, `puts`, `gets` and `frees` count since creation.
/// Per-tier arrays are indexed by [`Tier::index`](crate::Tier::index).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Records stored now.
    pub records: u64,
    /// Payload bytes passed to successful `put`s, in total.
    pub bytes_in: u64,
    /// Stored bytes of the live records (framing included).
    pub bytes_stored: u64,
    /// Live records per tier.
    pub per_tier_records: [u64; 3],
    /// Live stored bytes per tier.
    pub per_tier_bytes: [u64; 3],
    /// Successful `put`s.
    pub puts: u64,
    /// Reads (`get` and `take`), successful or not.
    pub gets: u64,
    /// Records freed (`free` and `take`).
    pub frees: u64,
    /// Spill files (segments and plain files) that exist now.
    pub files: u64,
}
