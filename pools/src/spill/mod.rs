//! The spill store: bounded, checksummed, three-tier storage of byte records.
//!
//! An accumulator that must give memory back serialises a victim's state and
//! [`put`](SpillStore::put)s it; it keeps the small [`SpillHandle`] and later
//! [`take`](SpillStore::take)s the bytes back. The protocol:
//!
//! 1. `put` compresses the payload into a reused scratch buffer (an lz4 block
//!    with its size prepended), encrypts it when the store has a key, and
//!    frames it: magic, stored length, crc32 ([`record`] shows the layout).
//! 2. The frame goes to the first tier with room, each bounded by
//!    [`SpillConfig`]: [`Tier::Memory`] (an owned buffer), [`Tier::Mapped`]
//!    (appended to a memory-mapped segment file), [`Tier::File`] (appended to
//!    a plain file). With no room anywhere, `put` returns [`SpillError::Full`]
//!    and stores nothing.
//! 3. `get` reads the frame, checks magic, length and checksum, decrypts,
//!    decompresses. Any mismatch is [`SpillError::Corrupted`] — never a panic,
//!    never wrong bytes.
//! 4. `free` (or `take` = `get` + `free`) releases the record. Memory is
//!    returned at once; segments and files are reclaimed when all their
//!    records are freed.
//! 5. The mapped and file tiers live in one run-scoped `garner-spill-*`
//!    directory, created on first need and deleted with everything in it when
//!    the store is dropped — on success, error or panic.

mod config;
mod error;
mod handle;
mod record;
mod run_dir;
mod seal;
mod stats;
mod store;
mod tier_file;
mod tier_mapped;
mod tier_memory;

pub use config::SpillConfig;
pub use error::SpillError;
pub use handle::{SpillHandle, Tier};
pub use stats::SpillStats;
pub use store::SpillStore;
