//! A link: the bounded FIFO of units from one actor instance to another.
//!
//! The bound is a soft one checked before a step: a producer runs only
//! while every link its next unit goes to has room, and a step pushes at
//! most one unit per link per unit it consumes (plus one at the end), so a
//! link never holds more than `capacity + 1` units. A producer that finds a
//! link full sets `producer_waiting` and parks; the consumer's pop that
//! makes room wakes it.
//!
//! A target stage may set its mailbox's policy
//! ([`Pipeline::mailbox`](crate::Pipeline::mailbox)): with `DropNewest` or
//! `DropOldest` a full link never makes its producer wait; the arriving or
//! the oldest unit is dropped and its rows counted (`dropped_rows`), and
//! `Fail` ends the run with an error naming the stage. `End` is never dropped.
//!
//! With a run memory budget, a link also reserves the bytes of the units it
//! holds (Arrow buffers shared within a unit counted once). When the budget
//! refuses a unit, the unit is still taken (nothing is lost) but the link
//! counts as full until it has drained empty: a link always has room for
//! one unit, so a producer cannot wait on memory only another stage could
//! free.

use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst},
    Mutex,
};

use crossbeam_queue::SegQueue;
use garner_columnar::Batch;

use crate::resilience::DropPolicy;

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
    /// Units with the bytes reserved for each.
    queue: SegQueue<(Msg, u64)>,
    len: AtomicUsize,
    capacity: usize,
    producer_waiting: AtomicBool,
    memory: Option<Mutex<garner_pools::Reservation>>,
    /// The budget refused a unit: full until drained.
    over_budget: AtomicBool,
    /// Units taken past the budget (telemetry).
    pub(crate) over_budget_units: AtomicU64,
    on_full: DropPolicy,
    /// Count the receiver's state as queued units (effective queue).
    pub(crate) pressure: Option<crate::flow::EffectiveQueue>,
    /// Rows of units dropped by the policy.
    pub(crate) dropped_rows: AtomicU64,
    pub(crate) from: usize,
    pub(crate) to: usize,
}

impl Link {
    pub(crate) fn new(
        from: usize,
        to: usize,
        capacity: usize,
        on_full: DropPolicy,
        budget: Option<&garner_pools::MemoryBudget>,
        pressure: Option<crate::flow::EffectiveQueue>,
    ) -> Self {
        Self {
            queue: SegQueue::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            on_full,
            pressure,
            dropped_rows: AtomicU64::new(0),
            producer_waiting: AtomicBool::new(false),
            memory: budget.map(|b| Mutex::new(b.reservation(format!("mailbox {from}->{to}")))),
            over_budget: AtomicBool::new(false),
            over_budget_units: AtomicU64::new(0),
            from,
            to,
        }
    }

    /// Queues `msg`, or applies the drop policy when the link is full:
    /// `Err` (with the rows refused) only under `Fail`.
    pub(crate) fn push(&self, msg: Msg) -> Result<(), u64> {
        if let (Msg::Unit(batches), true) = (&msg, self.len.load(SeqCst) >= self.capacity) {
            let rows = |b: &[Batch]| b.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            match self.on_full {
                DropPolicy::Block => {}
                DropPolicy::Fail => return Err(rows(batches)),
                DropPolicy::DropNewest => {
                    self.dropped_rows.fetch_add(rows(batches), SeqCst);
                    return Ok(());
                }
                DropPolicy::DropOldest => {
                    if let Some((Msg::Unit(old), _)) = self.take_front() {
                        self.dropped_rows.fetch_add(rows(&old), SeqCst);
                    }
                }
            }
        }
        self.enqueue(msg);
        Ok(())
    }

    /// Pops the oldest unit (to drop it), giving back its reservation.
    fn take_front(&self) -> Option<(Msg, u64)> {
        let (msg, reserved) = self.queue.pop()?;
        if let Some(memory) = &self.memory {
            memory.lock().unwrap_or_else(|p| p.into_inner()).shrink(reserved);
        }
        self.len.fetch_sub(1, SeqCst);
        Some((msg, reserved))
    }

    fn enqueue(&self, msg: Msg) {
        let mut reserved = 0;
        if let (Some(memory), Msg::Unit(batches)) = (&self.memory, &msg) {
            let bytes = garner_columnar::distinct_buffer_bytes(batches.iter().map(|b| &b.data)) as u64;
            let mut r = memory.lock().unwrap_or_else(|p| p.into_inner());
            if r.try_grow(bytes).is_ok() {
                reserved = bytes;
            } else {
                self.over_budget.store(true, SeqCst);
                self.over_budget_units.fetch_add(1, SeqCst);
            }
        }
        // Count first: `len` never undercounts what a pop can take.
        self.len.fetch_add(1, SeqCst);
        self.queue.push((msg, reserved));
    }

    /// Whether a full link makes its producer wait (else it drops or fails).
    pub(crate) fn blocks(&self) -> bool {
        self.on_full == DropPolicy::Block
    }

    /// The next unit, and whether the producer waits for the room this made.
    pub(crate) fn pop(&self) -> Option<(Msg, bool)> {
        let (msg, reserved) = self.queue.pop()?;
        if let Some(memory) = &self.memory {
            memory.lock().unwrap_or_else(|p| p.into_inner()).shrink(reserved);
        }
        let before = self.len.fetch_sub(1, SeqCst);
        if before == 1 {
            self.over_budget.store(false, SeqCst);
        }
        let wake = before <= self.capacity && self.producer_waiting.swap(false, SeqCst);
        Some((msg, wake))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(SeqCst) == 0
    }

    /// Units the link can take before it is full: the credit its
    /// receiver grants now.
    pub(crate) fn credits(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(SeqCst)
    }

    /// Whether a producer may push one more unit now; if not, records that
    /// it waits (and checks again, so a pop in between is not missed).
    /// `extra`: the receiver's state and spills, in units (effective queue).
    pub(crate) fn has_room_or_wait(&self, extra: usize) -> bool {
        if self.has_room(extra) {
            return true;
        }
        self.producer_waiting.store(true, SeqCst);
        if self.has_room(extra) {
            self.producer_waiting.store(false, SeqCst);
            return true;
        }
        false
    }

    pub(crate) fn waiting(&self) -> bool {
        self.producer_waiting.load(SeqCst)
    }

    /// Room for one more unit: always on an empty link (so the receiver is
    /// never starved), else while the queue plus `extra` is under capacity
    /// and the budget took the last unit.
    pub(crate) fn has_room(&self, extra: usize) -> bool {
        if !self.blocks() {
            return true;
        }
        let len = self.len.load(SeqCst);
        len == 0 || (len.saturating_add(extra) < self.capacity && !self.over_budget.load(SeqCst))
    }
}
