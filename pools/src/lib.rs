//! garner-pools: the bottom layer of garner.
//!
//! It knows nothing of Arrow or stages. It holds:
//! - [`ByteSize`], a byte count parsed from and printed as `"512MiB"`;
//! - [`MemoryBudget`] and its RAII [`Reservation`]s: the sum of live
//!   reservations never exceeds the budget's limit;
//! - [`PoolStats`], the plain stats struct the engine's telemetry reads.

mod budget;
mod size;

pub use budget::{MemoryBudget, PoolStats, Reservation, ResourcesExhausted};
pub use size::{ByteSize, ParseByteSizeError};
