//! garner-pools: the bottom layer of garner.
//!
//! It knows nothing of Arrow or stages. It holds:
//! - [`ByteSize`], a byte count parsed from and printed as `"512MiB"`;
//! - [`MemoryBudget`] and its RAII [`Reservation`]s: the sum of live
//!   reservations never exceeds the budget's limit;
//! - [`PoolStats`], the plain stats struct the engine's telemetry reads;
//! - [`SegmentPool`], byte buffers by power-of-two size class, rented as RAII
//!   [`PooledBuffer`]s and counted in [`SegmentPoolStats`];
//! - [`SpillStore`], bounded three-tier storage (lz4 in memory → mmap'd
//!   segments → plain files) of checksummed spill records, configured by
//!   [`SpillConfig`]; the optional `encrypt` feature seals records with
//!   AES-256-GCM;
//! - [`testing::LeakCheck`], which fails a test that ends with buffers or
//!   reserved bytes outstanding.

mod budget;
mod pool;
mod rss;
mod size;
mod spill;
pub mod testing;

pub use budget::{MemoryBudget, PoolStats, Reservation, ResourcesExhausted};
pub use pool::{PooledBuffer, SegmentPool, SegmentPoolStats};
pub use rss::{resident_bytes, RssMonitor};
pub use size::{ByteSize, ParseByteSizeError};
pub use spill::{SpillConfig, SpillError, SpillHandle, SpillStats, SpillStore, Tier};
