//! The memory tier: framed records in owned buffers, bounded in stored bytes.
//! Frames of a pool size class or more live in buffers rented from a
//! [`SegmentPool`] (returned when the record is freed); smaller ones are
//! boxed to size, so small records do not pay for a whole class.

use std::ops::{Deref, DerefMut};

use super::{SpillError, SpillHandle, Tier};
use crate::{PooledBuffer, SegmentPool};

/// A frame's bytes.
enum Frame {
    Boxed(Box<[u8]>),
    Pooled(PooledBuffer),
}

impl Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Frame::Boxed(b) => b,
            Frame::Pooled(p) => p,
        }
    }
}

impl DerefMut for Frame {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Frame::Boxed(b) => b,
            Frame::Pooled(p) => p,
        }
    }
}

struct Slot {
    /// Sequence number of the record that last used the slot.
    seq: u32,
    frame: Option<Frame>,
}

/// A slab of boxed frames with a free list of slots.
pub(crate) struct MemoryTier {
    bound: u64,
    used: u64,
    records: u64,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    pool: SegmentPool,
}

impl MemoryTier {
    pub(crate) fn new(bound: u64, pool: SegmentPool) -> Self {
        Self { bound, used: 0, records: 0, slots: Vec::new(), free_slots: Vec::new(), pool }
    }

    pub(crate) fn free_bytes(&self) -> u64 {
        self.bound.saturating_sub(self.used)
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    pub(crate) fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Stores `frame` if it fits; returns the slot.
    pub(crate) fn put(&mut self, frame: &[u8], seq: u32) -> Option<u32> {
        let len = frame.len() as u64;
        if len > self.free_bytes() {
            return None;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Slot { seq, frame: None });
                slot
            }
        };
        let stored = if frame.len() >= SegmentPool::MIN_CLASS_BYTES {
            let mut buffer = self.pool.rent(frame.len());
            buffer.extend_from_slice(frame);
            Frame::Pooled(buffer)
        } else {
            Frame::Boxed(frame.into())
        };
        self.slots[slot as usize] = Slot { seq, frame: Some(stored) };
        self.used += len;
        self.records += 1;
        Some(slot)
    }

    fn live(&self, h: SpillHandle) -> Option<&[u8]> {
        let slot = self.slots.get(h.id as usize)?;
        let frame = slot.frame.as_deref()?;
        (slot.seq == h.seq).then_some(frame)
    }

    pub(crate) fn frame(&self, h: SpillHandle) -> Result<&[u8], SpillError> {
        self.live(h).ok_or_else(|| SpillError::corrupted(Tier::Memory, "no live record for this handle"))
    }

    /// Frees the record; a handle naming no live record is ignored.
    pub(crate) fn free(&mut self, h: SpillHandle) {
        let Some(slot) = self.slots.get_mut(h.id as usize) else { return };
        if slot.seq != h.seq {
            return;
        }
        let Some(frame) = slot.frame.take() else { return };
        self.used -= frame.len() as u64;
        self.records -= 1;
        self.free_slots.push(h.id);
    }

    pub(crate) fn flip_byte(&mut self, h: SpillHandle, at: usize) {
        if let Some(slot) = self.slots.get_mut(h.id as usize).filter(|s| s.seq == h.seq) {
            if let Some(byte) = slot.frame.as_deref_mut().and_then(|f| f.get_mut(at)) {
                *byte ^= 0xFF;
            }
        }
    }
}
