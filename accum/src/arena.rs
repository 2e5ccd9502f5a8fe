//! A byte arena addressed by 32-bit `(offset, length)` references.
//!
//! Values (and string keys) are copied out of the input batches into one
//! growing `Vec<u8>`, so held state never pins input buffers and costs no
//! allocation per row. A reference is 8 bytes: `off: u32, len: u32`, with two
//! length sentinels, [`ValueRef::ABSENT`] (nothing arrived) and
//! [`ValueRef::NULL`] (a null value arrived), that own no bytes.
//!
//! Bytes whose reference is dropped become garbage; the owner calls
//! [`ByteArena::release`] so the arena knows how many bytes are still live,
//! and when [`ByteArena::wants_compaction`] it calls [`ByteArena::compact`]
//! with every live reference: the live bytes move into a fresh buffer and the
//! references are rewritten. Offsets are `u32`, so the arena holds at most
//! 4 GiB; [`ByteArena::try_push`] returns `None` instead of wrapping, and the
//! owner compacts or reports [`StateTooLarge`](crate::Error::StateTooLarge).

/// Garbage below this many bytes is never worth a compaction.
const MIN_GARBAGE: usize = 1 << 20;

/// Where one value's bytes are in a [`ByteArena`], or a sentinel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValueRef {
    off: u32,
    len: u32,
}

impl ValueRef {
    /// Nothing arrived (the variable is missing).
    pub(crate) const ABSENT: ValueRef = ValueRef { off: 0, len: u32::MAX };
    /// A null value arrived (the variable is present, its value is null).
    pub(crate) const NULL: ValueRef = ValueRef { off: 0, len: u32::MAX - 1 };
    /// The longest value an arena stores.
    pub(crate) const MAX_LEN: usize = u32::MAX as usize - 2;

    /// Whether this is [`ValueRef::ABSENT`].
    #[inline(always)]
    pub(crate) fn is_absent(self) -> bool {
        self.len == u32::MAX
    }

    /// Whether this refers to bytes (not a sentinel).
    #[inline(always)]
    pub(crate) fn is_stored(self) -> bool {
        self.len < u32::MAX - 1
    }

    /// The length in bytes (0 for sentinels).
    #[inline(always)]
    pub(crate) fn len(self) -> usize {
        if self.is_stored() {
            self.len as usize
        } else {
            0
        }
    }
}

/// Whether `len` bytes appended at `off` stay addressable.
#[inline(always)]
fn fits(off: usize, len: usize) -> bool {
    len <= ValueRef::MAX_LEN && off + len <= u32::MAX as usize
}

/// Append-only bytes with live-byte accounting and compaction.
#[derive(Debug, Default)]
pub(crate) struct ByteArena {
    bytes: Vec<u8>,
    live: usize,
}

impl ByteArena {
    /// Copies `value` in; `None` when the arena would pass 4 GiB (or the value
    /// is longer than [`ValueRef::MAX_LEN`]).
    #[inline]
    pub(crate) fn try_push(&mut self, value: &[u8]) -> Option<ValueRef> {
        let off = self.bytes.len();
        if !fits(off, value.len()) {
            return None;
        }
        self.bytes.extend_from_slice(value);
        self.live += value.len();
        Some(ValueRef { off: off as u32, len: value.len() as u32 })
    }

    /// The bytes of `r` (empty for a sentinel).
    #[inline(always)]
    pub(crate) fn get(&self, r: ValueRef) -> &[u8] {
        if r.is_stored() {
            &self.bytes[r.off as usize..r.off as usize + r.len as usize]
        } else {
            &[]
        }
    }

    /// Hints that `r`'s bytes will be read soon.
    #[inline(always)]
    pub(crate) fn prefetch(&self, r: ValueRef) {
        if r.is_stored() {
            crate::prefetch::prefetch(&self.bytes, r.off as usize);
        }
    }

    /// `r` is no longer referenced: its bytes are garbage.
    #[inline(always)]
    pub(crate) fn release(&mut self, r: ValueRef) {
        self.live -= r.len();
    }

    /// Bytes in use by live references.
    #[cfg(test)]
    pub(crate) fn live_bytes(&self) -> usize {
        self.live
    }

    /// Bytes allocated (for `bytes_held`).
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// Whether garbage outweighs live bytes (and is big enough to bother).
    pub(crate) fn wants_compaction(&self) -> bool {
        let garbage = self.bytes.len() - self.live;
        garbage >= MIN_GARBAGE && garbage > self.live
    }

    /// Whether compacting would free anything at all.
    pub(crate) fn has_garbage(&self) -> bool {
        self.bytes.len() > self.live
    }

    /// Moves the bytes of `live` (every live reference, each exactly once)
    /// into a fresh buffer and rewrites them. Sentinels are left alone.
    pub(crate) fn compact<'a>(&mut self, live: impl IntoIterator<Item = &'a mut ValueRef>) {
        let mut fresh = Vec::with_capacity(self.live + self.live / 4);
        for r in live {
            if r.is_stored() {
                let start = r.off as usize;
                r.off = fresh.len() as u32;
                fresh.extend_from_slice(&self.bytes[start..start + r.len as usize]);
            }
        }
        debug_assert_eq!(fresh.len(), self.live, "live byte accounting is off");
        self.live = fresh.len();
        self.bytes = fresh;
    }

    /// Drops every byte (all references must be gone).
    pub(crate) fn clear(&mut self) {
        self.bytes = Vec::new();
        self.live = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_hold_no_bytes() {
        let arena = ByteArena::default();
        assert!(ValueRef::ABSENT.is_absent() && !ValueRef::ABSENT.is_stored());
        assert!(!ValueRef::NULL.is_absent() && !ValueRef::NULL.is_stored());
        assert_eq!(arena.get(ValueRef::NULL), b"");
        assert_eq!(ValueRef::ABSENT.len(), 0);
    }

    #[test]
    fn compaction_keeps_live_values_and_drops_garbage() {
        let mut arena = ByteArena::default();
        let big = vec![7u8; MIN_GARBAGE];
        let dead = arena.try_push(&big).unwrap();
        let mut a = arena.try_push(b"alpha").unwrap();
        let mut empty = arena.try_push(b"").unwrap();
        let mut null = ValueRef::NULL;
        assert!(!arena.wants_compaction());
        arena.release(dead);
        assert!(arena.wants_compaction());
        arena.compact([&mut a, &mut empty, &mut null]);
        assert_eq!((arena.get(a), arena.get(empty), null), (&b"alpha"[..], &b""[..], ValueRef::NULL));
        assert_eq!(arena.live_bytes(), 5);
        assert!(!arena.has_garbage());
    }

    #[test]
    fn values_past_the_32_bit_offsets_are_refused() {
        let end = u32::MAX as usize;
        assert!(fits(end - 3, 3));
        assert!(!fits(end - 3, 4));
        assert!(!fits(0, ValueRef::MAX_LEN + 1));
        assert!(fits(0, ValueRef::MAX_LEN));
    }
}
