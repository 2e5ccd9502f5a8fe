//! Generation deadlines in time order: a min-heap with lazy deletion.
//!
//! Every generation opened while a TTL or max latency is configured pushes
//! one entry `(deadline, arrival, slot)`; `arrival` is the generation's
//! unique, increasing number, so ties on the deadline pop in arrival order.
//! A generation that ends another way (complete, closed by a late fragment,
//! flushed at the end of input) leaves its entry behind: the owner calls
//! [`Deadlines::forget_one`], and [`Deadlines::pop_due`] skips an entry whose
//! slot no longer holds that arrival. When stale entries pass a quarter of them
//! the heap is rebuilt without them, so it stays proportional to the live
//! generations even if time stops moving.

use std::{cmp::Reverse, collections::BinaryHeap};

use crate::time::Millis;

/// Stale entries tolerated before a rebuild is considered.
const MIN_STALE: usize = 4096;

/// One generation's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Due {
    pub(crate) deadline: Millis,
    pub(crate) arrival: u64,
    pub(crate) slot: u32,
}

/// The pending deadlines.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<Due>>,
    stale: usize,
}

impl Deadlines {
    /// Registers a generation's deadline.
    #[inline]
    pub(crate) fn push(&mut self, due: Due) {
        self.heap.push(Reverse(due));
    }

    /// The earliest deadline held (possibly of a stale entry): a cheap
    /// "is anything due?" test.
    #[inline(always)]
    pub(crate) fn earliest(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse(d)| d.deadline)
    }

    /// Pops the earliest live entry with `deadline < watermark`; `is_live`
    /// tells whether a slot still holds a generation.
    pub(crate) fn pop_due(&mut self, watermark: Millis, is_live: impl Fn(&Due) -> bool) -> Option<Due> {
        while let Some(&Reverse(due)) = self.heap.peek() {
            if due.deadline >= watermark {
                return None;
            }
            self.heap.pop();
            if is_live(&due) {
                return Some(due);
            }
            self.stale = self.stale.saturating_sub(1);
        }
        None
    }

    /// A generation with an entry ended before its deadline; rebuilds the
    /// heap when stale entries pass a quarter of it, and gives back the
    /// capacity a rebuild leaves unused (so the heap follows the live
    /// generations down, e.g. after a spill, instead of keeping its peak).
    pub(crate) fn forget_one(&mut self, is_live: impl Fn(&Due) -> bool) {
        self.stale += 1;
        if self.stale >= MIN_STALE && self.stale * 4 > self.heap.len() {
            self.heap.retain(|Reverse(d)| is_live(d));
            self.stale = 0;
            if self.heap.capacity() > 2 * self.heap.len().max(MIN_STALE) {
                self.heap.shrink_to(self.heap.len().max(MIN_STALE) * 3 / 2);
            }
        }
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        self.stale = 0;
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Approximate bytes held.
    pub(crate) fn bytes_held(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Reverse<Due>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(deadline: Millis, arrival: u64, slot: u32) -> Due {
        Due { deadline, arrival, slot }
    }

    #[test]
    fn due_entries_pop_by_deadline_then_arrival_skipping_stale_ones() {
        let mut d = Deadlines::default();
        d.push(due(20, 2, 0));
        d.push(due(10, 3, 1));
        d.push(due(10, 1, 2));
        d.push(due(5, 0, 3));
        assert_eq!(d.earliest(), Some(5));
        let live = |x: &Due| x.slot != 3;
        assert_eq!(d.pop_due(15, live), Some(due(10, 1, 2)));
        assert_eq!(d.pop_due(15, live), Some(due(10, 3, 1)));
        assert_eq!(d.pop_due(15, live), None);
        assert_eq!(d.len(), 1);
        assert_eq!(d.pop_due(20, live), None, "a deadline is due only once the watermark is past it");
        assert_eq!(d.pop_due(21, live), Some(due(20, 2, 0)));
    }

    #[test]
    fn stale_entries_are_dropped_when_they_dominate() {
        let mut d = Deadlines::default();
        for i in 0..MIN_STALE as u64 + 10 {
            d.push(due(i as Millis, i, i as u32));
        }
        let live = |x: &Due| x.slot < 10;
        for _ in 0..MIN_STALE {
            d.forget_one(live);
        }
        assert_eq!(d.len(), 10);
    }

    #[test]
    fn a_rebuild_gives_back_what_the_live_entries_no_longer_need() {
        let mut d = Deadlines::default();
        let n = 64 * MIN_STALE as u64;
        for i in 0..n {
            d.push(due(i as Millis, i, i as u32));
        }
        let peak = d.heap.capacity();
        // Three quarters of the generations end (as a spill of most keys would).
        let live = |x: &Due| x.slot % 4 == 0;
        for _ in 0..n / 4 + 1 {
            d.forget_one(live);
        }
        assert_eq!(d.len(), n as usize / 4);
        assert!(d.heap.capacity() <= d.len() * 2 && d.heap.capacity() < peak / 2, "{}", d.heap.capacity());
        // The live ones still pop in order.
        assert_eq!(d.pop_due(5, live), Some(due(0, 0, 0)));
        assert_eq!(d.pop_due(5, live), Some(due(4, 4, 4)));
    }
}
