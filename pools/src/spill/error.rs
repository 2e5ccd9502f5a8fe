//! [`SpillError`]: why a spill operation failed.

use std::path::PathBuf;

use super::Tier;

/// Why a [`SpillStore`](crate::SpillStore) operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// No tier has room for the record; the caller may free records or fail the
    /// run. `requested` is the framed record size
    /// ([`SpillHandle::stored_bytes`](crate::SpillHandle::stored_bytes) it
    /// would have had); the `*_free` fields are the room each tier had.
    #[error(
        "spill store full: {requested} bytes fit in no tier (memory {memory_free}, mapped {mapped_free}, file {file_free} bytes free)"
    )]
    Full {
        /// Bytes the framed record needs.
        requested: u64,
        /// Bytes still free in the memory tier.
        memory_free: u64,
        /// Bytes a record could still use in the mapped tier (room in the
        /// current segment plus segments not yet created).
        mapped_free: u64,
        /// Bytes still free in the file tier.
        file_free: u64,
    },
    /// A record failed verification when read back: bad magic, length or
    /// checksum, failed decryption, undecodable lz4 — or a handle that no
    /// longer names a live record. Never returned with wrong data.
    #[error("spilled record corrupted in the {tier} tier: {reason}")]
    Corrupted {
        /// The tier holding the record.
        tier: Tier,
        /// What check failed.
        reason: String,
    },
    /// Creating, writing, reading or mapping a spill file failed.
    #[error("spill I/O on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SpillError {
    pub(crate) fn corrupted(tier: Tier, reason: impl Into<String>) -> Self {
        Self::Corrupted { tier, reason: reason.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
