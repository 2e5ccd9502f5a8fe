//! [`SpillConfig`]: the bounds of the three spill tiers and where their files go.

use std::fmt;
use std::path::PathBuf;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Bounds and placement of a [`SpillStore`](crate::SpillStore).
///
/// Every bound counts *stored* bytes: the lz4-compressed (and, with a key,
/// encrypted) record plus its 12-byte frame header, as reported by
/// [`SpillHandle::stored_bytes`](crate::SpillHandle::stored_bytes).
///
/// Build it with struct-update syntax so code keeps compiling whether or not
/// the `encrypt` feature (which adds a `key` field) is on:
///
/// ```
/// use garner_pools::SpillConfig;
/// let config = SpillConfig { memory_bytes: 1 << 20, ..SpillConfig::default() };
/// assert_eq!(config.segment_bytes, 64 << 20);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SpillConfig {
    /// Bound of the in-memory tier: compressed bytes held in owned buffers.
    pub memory_bytes: u64,
    /// Bound of the memory-mapped tier: total size of its segment files.
    pub mapped_bytes: u64,
    /// Bound of the plain-file tier: bytes written to its files and not yet
    /// reclaimed (live records plus the garbage of freed ones; a file is
    /// reclaimed only when every record in it is freed — there is no compaction).
    pub file_bytes: u64,
    /// Size of one segment file of the mapped tier, and the size at which the
    /// file tier starts a new file. The mapped tier uses
    /// `min(segment_bytes, mapped_bytes)`, so a small mapped bound still gets
    /// one segment. A record larger than a segment goes to the file tier.
    pub segment_bytes: u64,
    /// Parent of the run-scoped spill directory (`garner-spill-*`), created on
    /// the first record that needs the mapped or file tier. `None` means
    /// [`std::env::temp_dir`].
    pub dir: Option<PathBuf>,
    /// AES-256-GCM key. When set, every record is encrypted and authenticated;
    /// reading it back with another key (or none) gives
    /// [`SpillError::Corrupted`](crate::SpillError::Corrupted).
    #[cfg(feature = "encrypt")]
    pub key: Option<[u8; 32]>,
}

impl Default for SpillConfig {
    /// Memory 64 MiB, mapped 1 GiB, file 16 GiB, segments of 64 MiB, the
    /// system temp directory, no key.
    fn default() -> Self {
        Self {
            memory_bytes: 64 * MIB,
            mapped_bytes: GIB,
            file_bytes: 16 * GIB,
            segment_bytes: 64 * MIB,
            dir: None,
            #[cfg(feature = "encrypt")]
            key: None,
        }
    }
}

impl SpillConfig {
    /// A store that keeps everything in memory, up to `memory_bytes`, and never
    /// touches the file system.
    pub fn memory_only(memory_bytes: u64) -> Self {
        Self { memory_bytes, mapped_bytes: 0, file_bytes: 0, ..Self::default() }
    }

    /// The given tier bounds and segment size; everything else default.
    pub fn with_bounds(memory_bytes: u64, mapped_bytes: u64, file_bytes: u64, segment_bytes: u64) -> Self {
        Self { memory_bytes, mapped_bytes, file_bytes, segment_bytes, ..Self::default() }
    }
}

impl fmt::Debug for SpillConfig {
    /// Prints the bounds; a key is shown only as `Some(<redacted>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SpillConfig");
        d.field("memory_bytes", &self.memory_bytes)
            .field("mapped_bytes", &self.mapped_bytes)
            .field("file_bytes", &self.file_bytes)
            .field("segment_bytes", &self.segment_bytes)
            .field("dir", &self.dir);
        #[cfg(feature = "encrypt")]
        d.field("key", &self.key.map(|_| "<redacted>"));
        d.finish()
    }
}
