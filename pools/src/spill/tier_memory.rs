//! The memory tier: framed records in owned buffers, bounded in stored bytes.

use super::{SpillError, SpillHandle, Tier};

struct Slot {
    /// Sequence number of the record that last used the slot.
    seq: u32,
    frame: Option<Box<[u8]>>,
}

/// A slab of boxed frames with a free list of slots.
pub(crate) struct MemoryTier {
    bound: u64,
    used: u64,
    records: u64,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
}

impl MemoryTier {
    pub(crate) fn new(bound: u64) -> Self {
        Self { bound, used: 0, records: 0, slots: Vec::new(), free_slots: Vec::new() }
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
        self.slots[slot as usize] = Slot { seq, frame: Some(frame.into()) };
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
