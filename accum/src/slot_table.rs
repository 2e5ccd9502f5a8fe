//! The key → slot hash table: open addressing with linear probing over one
//! flat array of `(hash, slot)` entries, so the bucket of a key is a plain
//! index that can be [prefetched](crate::prefetch) rows ahead of its lookup.
//!
//! - Integer keys are hashed with a *bijective* mixer, so equal hashes mean
//!   equal keys: a lookup compares the stored hash and never touches the key
//!   storage.
//! - Other keys compare their bytes (through the caller's `eq`) only when
//!   the full 64-bit hashes match.
//! - Deletion shifts the following entries back (no tombstones), so probe
//!   sequences stay short however many keys come and go.
//! - The table doubles at 3/4 load (entries of 16 bytes: at most ~21 bytes
//!   per resident key) and halves under 1/8 (once past [`SHRINK_FROM`]
//!   buckets), so after a spill has taken most keys out it gives the memory
//!   back instead of keeping its peak.

use crate::error::{Error, Result};

const EMPTY: u32 = u32::MAX;
const MIN_CAPACITY: usize = 64;

/// Buckets below which the table does not shrink (64 KiB): small tables
/// are not worth rebuilding.
const SHRINK_FROM: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    hash: u64,
    slot: u32,
}

const VACANT: Bucket = Bucket { hash: 0, slot: EMPTY };

/// Open-addressing table from key hashes to slots.
#[derive(Debug)]
pub(crate) struct SlotTable {
    buckets: Vec<Bucket>,
    mask: usize,
    len: usize,
}

impl SlotTable {
    pub(crate) fn new() -> Self {
        SlotTable { buckets: vec![VACANT; MIN_CAPACITY], mask: MIN_CAPACITY - 1, len: 0 }
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        // The mixers spread entropy over all bits; the high ones are the
        // best-mixed of a multiply, so take the bucket from there.
        ((hash >> 32) ^ hash) as usize & self.mask
    }

    /// Hints that the bucket of `hash` will be probed soon.
    #[inline(always)]
    pub(crate) fn prefetch(&self, hash: u64) {
        crate::prefetch::prefetch(&self.buckets, self.home(hash));
    }

    /// The slot of the key with `hash` for which `eq(slot)` holds; if none,
    /// inserts `new_slot()` for it.
    #[inline]
    pub(crate) fn find_or_insert(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(u32) -> bool,
        new_slot: impl FnOnce() -> Result<u32>,
    ) -> Result<u32> {
        let mut i = self.home(hash);
        loop {
            let b = self.buckets[i];
            if b.slot == EMPTY {
                break;
            }
            if b.hash == hash && eq(b.slot) {
                return Ok(b.slot);
            }
            i = (i + 1) & self.mask;
        }
        let slot = new_slot()?;
        self.buckets[i] = Bucket { hash, slot };
        self.len += 1;
        if self.len * 4 > self.buckets.len() * 3 {
            self.grow()?;
        }
        Ok(slot)
    }

    /// Removes the entry of `slot` (whose key hashes to `hash`).
    pub(crate) fn remove(&mut self, hash: u64, slot: u32) -> Result<()> {
        let mut i = self.home(hash);
        loop {
            let b = self.buckets[i];
            if b.slot == EMPTY {
                return Err(Error::Internal(format!("key slot {slot} is not in the key table")));
            }
            if b.slot == slot {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: move later entries of the run into the hole when
        // their home is not between the hole and them.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let b = self.buckets[j];
            if b.slot == EMPTY {
                break;
            }
            let home = self.home(b.hash);
            let dist_hole = hole.wrapping_sub(home) & self.mask;
            let dist_here = j.wrapping_sub(home) & self.mask;
            if dist_hole < dist_here {
                self.buckets[hole] = b;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.buckets[hole] = VACANT;
        self.len -= 1;
        if self.len * 8 < self.buckets.len() && self.buckets.len() > SHRINK_FROM {
            self.rebuild(self.buckets.len() / 2);
        }
        Ok(())
    }

    fn grow(&mut self) -> Result<()> {
        let capacity = self
            .buckets
            .len()
            .checked_mul(2)
            .ok_or(Error::StateTooLarge { what: "the key table", limit: usize::MAX as u64 })?;
        self.rebuild(capacity);
        Ok(())
    }

    /// Moves every entry into a new array of `capacity` buckets (a power of
    /// two above the entries).
    fn rebuild(&mut self, capacity: usize) {
        let old = std::mem::replace(&mut self.buckets, vec![VACANT; capacity]);
        self.mask = capacity - 1;
        for b in old.into_iter().filter(|b| b.slot != EMPTY) {
            let mut i = self.home(b.hash);
            while self.buckets[i].slot != EMPTY {
                i = (i + 1) & self.mask;
            }
            self.buckets[i] = b;
        }
    }

    /// Empties the table (and gives its memory back).
    pub(crate) fn clear(&mut self) {
        *self = SlotTable::new();
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model check: random inserts and removes against a `HashMap`, with
    /// deliberately colliding homes (hash = key * 2^32 + small), which makes
    /// the backward-shift deletion work hard.
    #[test]
    fn inserts_and_removes_agree_with_a_map() {
        use std::collections::HashMap;
        let mut t = SlotTable::new();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut next = 0u32;
        let mut x = 12345u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 3000;
            let hash = ((key % 97) << 32) | key;
            if x % 3 == 0 {
                if let Some(slot) = model.remove(&key) {
                    t.remove(hash, slot).unwrap();
                }
            } else {
                let slot = t
                    .find_or_insert(
                        hash,
                        |_| true,
                        || {
                            next += 1;
                            Ok(next)
                        },
                    )
                    .unwrap();
                assert_eq!(*model.entry(key).or_insert(slot), slot, "key {key}");
            }
            assert_eq!(t.len, model.len());
        }
        for (key, slot) in model {
            let found = t.find_or_insert(((key % 97) << 32) | key, |_| true, || Ok(u32::MAX - 1)).unwrap();
            assert_eq!(found, slot);
        }
        assert!(t.remove(1, 999_999).is_err());
    }

    #[test]
    fn the_table_halves_when_most_keys_leave_and_still_finds_the_rest() {
        let mut t = SlotTable::new();
        let hash = |k: u64| crate::hash::hash_u64(k);
        for k in 0..100_000u64 {
            t.find_or_insert(hash(k), |_| false, || Ok(k as u32)).unwrap();
        }
        let peak = t.buckets.len();
        // A spill takes all keys but every 64th out.
        for k in (0..100_000u64).filter(|k| k % 64 != 0) {
            t.remove(hash(k), k as u32).unwrap();
        }
        assert!(t.buckets.len() <= peak / 8, "{} of {peak} buckets", t.buckets.len());
        assert!(t.len * 4 <= t.buckets.len() * 3);
        for k in (0..100_000u64).step_by(64) {
            let found = t.find_or_insert(hash(k), |_| true, || Ok(u32::MAX - 1)).unwrap();
            assert_eq!(found, k as u32);
        }
        // It grows again as keys come back.
        for k in (0..100_000u64).filter(|k| k % 64 != 0) {
            t.find_or_insert(hash(k), |_| false, || Ok(k as u32)).unwrap();
        }
        assert_eq!((t.len, t.buckets.len()), (100_000, peak));
    }
}
