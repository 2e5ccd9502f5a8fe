//! [`Tier`] and [`SpillHandle`]: where a spilled record lives.

use std::fmt;

/// One of the three places a record can be stored, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// An lz4-compressed buffer owned by the store.
    Memory,
    /// A memory-mapped segment file in the run's spill directory.
    Mapped,
    /// A plain file in the run's spill directory.
    File,
}

impl Tier {
    /// All tiers in placement order; `Tier::ALL[t.index()] == t`.
    pub const ALL: [Tier; 3] = [Tier::Memory, Tier::Mapped, Tier::File];

    /// `"memory"`, `"mapped"` or `"file"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Mapped => "mapped",
            Tier::File => "file",
        }
    }

    /// Position in placement order (0, 1, 2): the index into
    /// [`SpillStats::per_tier_records`](crate::SpillStats::per_tier_records)
    /// and [`SpillStats::per_tier_bytes`](crate::SpillStats::per_tier_bytes).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names one record in one [`SpillStore`](crate::SpillStore): its tier,
/// location, stored length and sequence number. Small and `Copy` (24 bytes).
///
/// A handle is valid until it is passed to
/// [`take`](crate::SpillStore::take) or [`free`](crate::SpillStore::free).
/// Reading a handle after that, or one from another store, gives
/// [`SpillError::Corrupted`](crate::SpillError::Corrupted) (the record's
/// checksum covers its sequence number, so a reused location is detected);
/// freeing it twice is a logic error that may skew the store's accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpillHandle {
    /// Byte offset in the segment or file (0 in the memory tier).
    pub(crate) offset: u64,
    /// Memory slot, segment id or file id.
    pub(crate) id: u32,
    /// Framed length: header plus stored bytes.
    pub(crate) len: u32,
    /// The store's sequence number of this record, mixed into its checksum.
    pub(crate) seq: u32,
    pub(crate) tier: Tier,
}

impl SpillHandle {
    /// Bytes of [`to_bytes`](Self::to_bytes).
    pub const BYTES: usize = 21;

    /// The tier holding the record.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The handle as bytes, to keep lists of handles in the store itself.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0; Self::BYTES];
        out[0..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.id.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out[16..20].copy_from_slice(&self.seq.to_le_bytes());
        out[20] = self.tier.index() as u8;
        out
    }

    /// What [`to_bytes`](Self::to_bytes) wrote; `None` for bytes no handle
    /// gives (a wrong length or tier).
    pub fn from_bytes(bytes: &[u8]) -> Option<SpillHandle> {
        let bytes: &[u8; Self::BYTES] = bytes.try_into().ok()?;
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Some(SpillHandle {
            offset: u64::from_le_bytes(bytes[0..8].try_into().ok()?),
            id: u32_at(8),
            len: u32_at(12),
            seq: u32_at(16),
            tier: *Tier::ALL.get(usize::from(bytes[20]))?,
        })
    }

    /// Bytes the record occupies on its tier: the 12-byte frame header plus
    /// the compressed (and possibly encrypted) payload. This is what counts
    /// against the tier's bound.
    pub fn stored_bytes(&self) -> u64 {
        u64::from(self.len)
    }

    /// The framed length as a `usize` index.
    pub(crate) fn len_usize(&self) -> usize {
        self.len as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_through_bytes() {
        let h = SpillHandle { offset: 1 << 40, id: 7, len: 4096, seq: u32::MAX, tier: Tier::File };
        assert_eq!(SpillHandle::from_bytes(&h.to_bytes()), Some(h));
        let mut bad = h.to_bytes();
        bad[20] = 3;
        assert_eq!(SpillHandle::from_bytes(&bad), None);
        assert_eq!(SpillHandle::from_bytes(&[0; 5]), None);
    }
}
