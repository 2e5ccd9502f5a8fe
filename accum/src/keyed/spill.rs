//! Spilling key generations out of memory and back.
//!
//! With [`KeyedAccumulator::with_spill`](super::KeyedAccumulator::with_spill)
//! the driver watches the bytes its state holds after every call. Above the
//! limit, it spills until the state is under the low-water mark (hysteresis:
//! a batch of victims, not one key per call), into a [`SpillStore`] (lz4 in
//! memory, then memory-mapped segment files, then plain files). Rows of
//! generations that were spilled have `acc_spilled = true`. Two ways:
//!
//! - **Partitions** (the default): whole hash partitions of the key space
//!   leave memory — keys, slots and state — the ones holding the most
//!   generations first; their fragments are buffered (in the store too) and
//!   replayed when the partition comes back: when the watermark passes the
//!   earliest deadline it may hold, and at the end of input, a partition at
//!   a time. See [`spill_parts`](super::spill_parts). Memory keeps a few words
//!   per partition, so millions of keys fit a small budget.
//! - **Per key** (with `max_keys`, whose least-recently-touched eviction needs
//!   every key resident): open generations — lowest completeness first, then
//!   the oldest — spill their accumulator state only; the key, arrival and
//!   deadline stay. The next fragment of the key, or its closing (deadline,
//!   eviction, end of input), brings it back first.

use garner_pools::{SegmentPool, SpillConfig, SpillError, SpillHandle, SpillStats, SpillStore};

use super::spill_parts::Parts;
use crate::error::{Error, Result};

/// How an accumulator instance spills.
#[derive(Debug, Clone)]
pub struct SpillOptions {
    /// Spill when the state holds more than this many bytes.
    pub limit_bytes: u64,
    /// Spill down to this share of the limit (default 0.75).
    pub low_water: f64,
    /// The store's tiers.
    pub store: SpillConfig,
    /// Where the store's in-memory records rent their buffers (a private
    /// pool when `None`).
    pub buffers: Option<SegmentPool>,
}

impl SpillOptions {
    /// Spill above `limit_bytes`, down to 75% of it, into a default store.
    pub fn limit(limit_bytes: u64) -> Self {
        SpillOptions { limit_bytes, low_water: 0.75, store: SpillConfig::default(), buffers: None }
    }
}

/// Per-slot spill state.
pub(crate) const IN_MEMORY: u8 = 0;
pub(crate) const SPILLED: u8 = 1;
pub(crate) const RESTORED: u8 = 2;

/// The driver's spill state.
#[derive(Debug)]
pub(crate) struct Spill {
    pub(crate) options: SpillOptions,
    pub(crate) store: SpillStore,
    /// `IN_MEMORY`, `SPILLED` or `RESTORED` (was spilled, back in memory), per slot.
    pub(crate) state: Vec<u8>,
    pub(crate) handles: hashbrown::HashMap<u32, SpillHandle>,
    /// Whole partitions out of memory (see [`spill_parts`](super::spill_parts));
    /// `None` when a policy needs every key resident (`max_keys`): then only
    /// generations' values spill, per key, through `handles`.
    pub(crate) parts: Option<Parts>,
    pub(crate) buf: Vec<u8>,
    pub(crate) writes: u64,
    pub(crate) reads: u64,
    pub(crate) corrupted: u64,
    pub(crate) failures: u64,
    /// Unreadable records since the last call: slot, tier, what was wrong.
    pub(crate) errors: Vec<(u32, String, String)>,
}

impl Spill {
    pub(crate) fn new(options: SpillOptions, partitioned: bool) -> Result<Self> {
        if !(0.0..=1.0).contains(&options.low_water) {
            return Err(Error::BadPolicy {
                policy: "spill low_water",
                reason: "must be between 0 and 1".into(),
            });
        }
        let store = match &options.buffers {
            Some(pool) => SpillStore::with_pool(options.store.clone(), pool.clone()),
            None => SpillStore::new(options.store.clone()),
        }
        .map_err(spill_error)?;
        Ok(Spill {
            options,
            store,
            state: Vec::new(),
            handles: hashbrown::HashMap::new(),
            parts: partitioned.then(Parts::default),
            buf: Vec::new(),
            writes: 0,
            reads: 0,
            corrupted: 0,
            failures: 0,
            errors: Vec::new(),
        })
    }

    pub(crate) fn low_water(&self) -> u64 {
        (self.options.limit_bytes as f64 * self.options.low_water) as u64
    }

    pub(crate) fn stats(&self) -> SpillStats {
        self.store.stats()
    }

    /// Open generations out of memory (per key and in spilled partitions).
    pub(crate) fn spilled_generations(&self) -> u64 {
        self.handles.len() as u64 + self.parts.as_ref().map_or(0, |p| p.open)
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.state.capacity()
            + self.handles.capacity() * 16
            + self.buf.capacity()
            + self.parts.as_ref().map_or(0, Parts::bytes_held)
    }
}

/// A store error as an accumulator error.
pub(crate) fn spill_error(e: SpillError) -> Error {
    Error::Spill(e.to_string())
}
