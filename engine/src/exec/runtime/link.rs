//! A link: the bounded FIFO of units from one actor instance to another.
//!
//! The bound is a soft one checked before a step: a producer runs only
//! while every link its next unit goes to has room, and a step pushes at
//! most one unit per link per unit it consumes (plus one at the end), so a
//! link never holds more than `capacity + 1` units. A producer that finds a
//! link full sets `producer_waiting` and parks; the consumer's pop that
//! makes room wakes it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use crossbeam_queue::SegQueue;
use garner_columnar::Batch;

/// What travels on a link.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The batches one input unit produced (possibly none).
    Unit(Vec<Batch>),
    /// The producer has ended: nothing follows.
    End,
}

#[derive(Debug)]
pub(crate) struct Link {
    queue: SegQueue<Msg>,
    len: AtomicUsize,
    capacity: usize,
    producer_waiting: AtomicBool,
    pub(crate) from: usize,
    pub(crate) to: usize,
}

impl Link {
    pub(crate) fn new(from: usize, to: usize, capacity: usize) -> Self {
        Self {
            queue: SegQueue::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            producer_waiting: AtomicBool::new(false),
            from,
            to,
        }
    }

    pub(crate) fn push(&self, msg: Msg) {
        // Count first: `len` never undercounts what a pop can take.
        self.len.fetch_add(1, SeqCst);
        self.queue.push(msg);
    }

    /// The next unit, and whether the producer waits for the room this made.
    pub(crate) fn pop(&self) -> Option<(Msg, bool)> {
        let msg = self.queue.pop()?;
        let before = self.len.fetch_sub(1, SeqCst);
        let wake = before <= self.capacity && self.producer_waiting.swap(false, SeqCst);
        Some((msg, wake))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(SeqCst) == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(SeqCst)
    }

    /// Whether a producer may push one more unit now; if not, records that
    /// it waits (and checks again, so a pop in between is not missed).
    pub(crate) fn has_room_or_wait(&self) -> bool {
        if self.len.load(SeqCst) < self.capacity {
            return true;
        }
        self.producer_waiting.store(true, SeqCst);
        if self.len.load(SeqCst) < self.capacity {
            self.producer_waiting.store(false, SeqCst);
            return true;
        }
        false
    }

    pub(crate) fn waiting(&self) -> bool {
        self.producer_waiting.load(SeqCst)
    }

    pub(crate) fn has_room(&self) -> bool {
        self.len.load(SeqCst) < self.capacity
    }
}
