//! A link: the credit-based FIFO of units from one actor instance to
//! another (Flink's network stack, DESIGN §7).
//!
//! # Credit
//!
//! Each link holds a [`Ledger`](crate::flow::Ledger), the state machine of
//! [`CreditGate`](crate::flow::CreditGate), under the link's lock:
//!
//! 1. the receiver starts the link with `capacity` credits (exclusive
//!    credit);
//! 2. before a step, the sender takes one credit for every link its next
//!    unit goes to ([`acquire`](Link::acquire)), announcing its *backlog*
//!    (the units waiting in its own input links, plus this one). Without
//!    credit it records that it waits (`producer_waiting`, in the same
//!    critical section as the announcement) and parks; a step pushes one
//!    unit per credit taken, so a link never holds more units than credit
//!    was granted for;
//! 3. the receiver grants by [`GrantRule`]: as it takes units
//!    ([`pop`](Link::pop)) it grants their slots back, *withholding* what
//!    its state and spills count for when the effective queue is on; when
//!    a sender's announcement finds no credit it wakes the receiver, which
//!    grants in [`replenish`](Link::replenish) at the start of its next
//!    step (or in its post-step check): *floating* credit beyond the
//!    capacity if it is idle on the link, and always at least one credit
//!    on an empty link (no deadlock); a grant wakes a parked sender.
//!
//! The two sides never both wait: the announcement and the sender's
//! "waiting" flag are set under the lock the grant takes, and the receiver
//! re-checks its links after every step that ended idle. The exhaustive
//! model in `flow/link_model.rs` checks exactly this protocol,
//! scheduling hand-shake included.
//!
//! # Drop policies
//!
//! A target stage may set its mailbox's policy
//! ([`Pipeline::mailbox`](crate::Pipeline::mailbox)): with `DropNewest` or
//! `DropOldest` a sender never waits for credit; a unit that finds no
//! credit on a non-empty link drops the arriving or the oldest unit (rows
//! counted in `dropped_rows`), and `Fail` ends the run with an error naming
//! the stage. An empty link always takes the unit. `End` needs no credit
//! and is never dropped.
//!
//! # Memory
//!
//! With a run memory budget, a link also reserves the bytes of the units it
//! holds (Arrow buffers shared within a unit counted once). When the budget
//! refuses a unit, the unit is still taken (nothing is lost) but the link
//! is *paused* until it has drained empty: its sender may not push and its
//! receiver grants nothing, so a link always has room for one unit and a
//! producer cannot wait on memory only another stage could free.

use std::collections::VecDeque;
use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst},
    Mutex, MutexGuard,
};

use garner_columnar::Batch;

use crate::flow::{Acquire, GrantRule, Ledger, ReceiverView};
use crate::resilience::DropPolicy;

/// What travels on a link.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The batches one input unit produced (possibly none).
    Unit(Vec<Batch>),
    /// The producer has ended: nothing follows.
    End,
}

/// The state behind a link's lock.
#[derive(Debug)]
struct State {
    /// Units with the bytes reserved for each.
    queue: VecDeque<(Msg, u64)>,
    ledger: Ledger,
    /// The sender took a credit for its next unit and has not pushed it.
    held: bool,
    /// The sender is parked until a grant (or the link unpauses).
    producer_waiting: bool,
    /// The budget refused a unit: paused until drained.
    over_budget: bool,
    memory: Option<garner_pools::Reservation>,
}

impl State {
    fn view(&self, load: u64) -> ReceiverView {
        ReceiverView {
            queued: self.queue.len() as u64 + u64::from(self.held),
            load,
            paused: self.over_budget,
        }
    }
}

/// A sender's attempt to take credit for its next unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credit {
    /// It may push one unit.
    Granted,
    /// No credit: it waits (registered), and the receiver should be woken
    /// if `notify_receiver` (it announced a demand the receiver may grant).
    Wait { notify_receiver: bool },
}

#[derive(Debug)]
pub(crate) struct Link {
    state: Mutex<State>,
    /// `state.queue.len()`, readable without the lock.
    len: AtomicUsize,
    rule: GrantRule,
    on_full: DropPolicy,
    /// Units taken past the budget (telemetry).
    pub(crate) over_budget_units: AtomicU64,
    /// Count the receiver's state as queued units (effective queue).
    pub(crate) pressure: Option<crate::flow::EffectiveQueue>,
    /// Rows of units dropped by the policy.
    pub(crate) dropped_rows: AtomicU64,
    pub(crate) from: usize,
    pub(crate) to: usize,
}

fn rows(batches: &[Batch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

impl Link {
    pub(crate) fn new(
        from: usize,
        to: usize,
        rule: GrantRule,
        on_full: DropPolicy,
        budget: Option<&garner_pools::MemoryBudget>,
        pressure: Option<crate::flow::EffectiveQueue>,
    ) -> Self {
        let rule = GrantRule { capacity: rule.capacity.max(1), ..rule };
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                ledger: Ledger::new(rule.capacity),
                held: false,
                producer_waiting: false,
                over_budget: false,
                memory: budget.map(|b| b.reservation(format!("mailbox {from}->{to}"))),
            }),
            len: AtomicUsize::new(0),
            rule,
            on_full,
            pressure,
            dropped_rows: AtomicU64::new(0),
            over_budget_units: AtomicU64::new(0),
            from,
            to,
        }
    }

    /// Locks the state. Every critical section is bookkeeping that cannot
    /// panic half-way, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a full link makes its producer wait (else it drops or fails).
    pub(crate) fn blocks(&self) -> bool {
        self.on_full == DropPolicy::Block
    }

    /// Sender, before a step: takes a credit for the next unit (kept until
    /// [`push`](Self::push)), announcing `backlog` (units waiting at the
    /// sender, this one included). Without one, records that the sender
    /// waits, in the same critical section, so a grant after this wakes it.
    /// Links that drop or fail never make their sender wait.
    pub(crate) fn acquire(&self, backlog: u64) -> Credit {
        if !self.blocks() {
            return Credit::Granted;
        }
        let mut st = self.lock();
        if st.over_budget && !st.queue.is_empty() {
            st.producer_waiting = true;
            return Credit::Wait { notify_receiver: false };
        }
        if st.held {
            return Credit::Granted;
        }
        let (outcome, wake) = st.ledger.try_acquire(backlog);
        match outcome {
            Acquire::Acquired => {
                st.held = true;
                Credit::Granted
            }
            Acquire::NoCredit | Acquire::Closed => {
                st.producer_waiting = true;
                Credit::Wait { notify_receiver: wake.receivers }
            }
        }
    }

    /// Whether [`acquire`](Self::acquire) would grant now (diagnostics;
    /// changes nothing).
    pub(crate) fn has_credit(&self) -> bool {
        if !self.blocks() {
            return true;
        }
        let st = self.lock();
        let paused = st.over_budget && !st.queue.is_empty();
        !paused && (st.held || st.ledger.available > 0)
    }

    /// Sender: queues `msg`, spending the credit taken by
    /// [`acquire`](Self::acquire) (or taking one now, announcing
    /// `backlog`). A unit without credit is still queued on an empty link;
    /// on a non-empty one the drop policy decides: `Err` (with the rows
    /// refused) only under `Fail`. `End` needs no credit.
    pub(crate) fn push(&self, msg: Msg, backlog: u64) -> Result<(), u64> {
        let mut st = self.lock();
        if let Msg::Unit(batches) = &msg {
            let credited = std::mem::take(&mut st.held)
                || (!st.ledger.closed && st.ledger.try_acquire(backlog).0 == Acquire::Acquired);
            if !credited && !st.queue.is_empty() {
                match self.on_full {
                    // Not reached: a blocking sender pushes only with credit.
                    DropPolicy::Block => {}
                    DropPolicy::Fail => return Err(rows(batches)),
                    DropPolicy::DropNewest => {
                        self.dropped_rows.fetch_add(rows(batches), SeqCst);
                        return Ok(());
                    }
                    DropPolicy::DropOldest => {
                        if let Some((Msg::Unit(old), _)) = self.take_front(&mut st) {
                            self.dropped_rows.fetch_add(rows(&old), SeqCst);
                        }
                    }
                }
            }
        }
        self.enqueue(&mut st, msg);
        Ok(())
    }

    /// Pops the oldest unit (to drop it), giving back its reservation.
    fn take_front(&self, st: &mut State) -> Option<(Msg, u64)> {
        let (msg, reserved) = st.queue.pop_front()?;
        if let Some(memory) = &mut st.memory {
            memory.shrink(reserved);
        }
        self.len.store(st.queue.len(), SeqCst);
        Some((msg, reserved))
    }

    fn enqueue(&self, st: &mut State, msg: Msg) {
        let mut reserved = 0;
        if let (Some(memory), Msg::Unit(batches)) = (&mut st.memory, &msg) {
            let bytes = garner_columnar::distinct_buffer_bytes(batches.iter().map(|b| &b.data)) as u64;
            if memory.try_grow(bytes).is_ok() {
                reserved = bytes;
            } else {
                st.over_budget = true;
                self.over_budget_units.fetch_add(1, SeqCst);
            }
        }
        st.queue.push_back((msg, reserved));
        self.len.store(st.queue.len(), SeqCst);
    }

    /// Receiver: the next unit, after which the receiver grants by its
    /// rule with `load` (its state, in units); and whether the producer
    /// waits for the credit (or unpausing) this gave.
    pub(crate) fn pop(&self, load: u64) -> Option<(Msg, bool)> {
        let mut st = self.lock();
        let (msg, reserved) = st.queue.pop_front()?;
        if let Some(memory) = &mut st.memory {
            memory.shrink(reserved);
        }
        self.len.store(st.queue.len(), SeqCst);
        let unpaused = st.queue.is_empty() && std::mem::take(&mut st.over_budget);
        let granted = self.grant(&mut st, load);
        let wake = (granted || unpaused) && std::mem::take(&mut st.producer_waiting);
        Some((msg, wake))
    }

    /// Receiver, without taking a unit: grants what its rule gives now
    /// (floating credit for an announced backlog, the never-starve credit
    /// of an empty link, credit withheld earlier under a load since gone).
    /// Returns whether a parked producer should be woken.
    pub(crate) fn replenish(&self, load: u64) -> bool {
        let mut st = self.lock();
        self.grant(&mut st, load) && std::mem::take(&mut st.producer_waiting)
    }

    /// Grants by the rule; whether any credit was granted.
    fn grant(&self, st: &mut State, load: u64) -> bool {
        let view = st.view(load);
        match st.ledger.replenish(&self.rule, view) {
            Ok((n, _)) => n > 0,
            Err(_) => false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Credits granted and not yet spent (one taken for the next unit
    /// included): what `credit_tokens_available` shows.
    pub(crate) fn credits(&self) -> usize {
        let st = self.lock();
        (st.ledger.available + u64::from(st.held)) as usize
    }

    /// The link's capacity: its exclusive credit.
    pub(crate) fn capacity(&self) -> usize {
        self.rule.capacity as usize
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(SeqCst)
    }

    /// Whether the producer is parked on this link (diagnostics).
    pub(crate) fn waiting(&self) -> bool {
        self.lock().producer_waiting
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch};

    use super::*;

    fn unit(rows: i64) -> Msg {
        let data =
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..rows)) as ArrayRef)])
                .unwrap();
        Msg::Unit(vec![Batch::new(0, data)])
    }

    fn link(capacity: u64, floating: u64, on_full: DropPolicy) -> Link {
        Link::new(0, 1, GrantRule { capacity, floating }, on_full, None, None)
    }

    #[test]
    fn a_sender_spends_one_credit_per_unit_and_waits_without() {
        let l = link(2, 0, DropPolicy::Block);
        for _ in 0..2 {
            assert_eq!(l.acquire(5), Credit::Granted);
            l.push(unit(1), 5).unwrap();
        }
        assert_eq!(l.credits(), 0);
        // No credit: the backlog is announced, the sender registered.
        assert_eq!(l.acquire(3), Credit::Wait { notify_receiver: true });
        assert!(l.waiting());
        // The receiver takes a unit: its slot is granted back, the sender woken.
        let (_, wake) = l.pop(0).unwrap();
        assert!(wake);
        assert_eq!(l.acquire(3), Credit::Granted);
        assert_eq!(l.credits(), 1, "a credit taken for the next unit still counts");
    }

    #[test]
    fn a_loaded_receiver_withholds_until_its_link_is_empty() {
        let l = link(3, 0, DropPolicy::Block);
        for _ in 0..3 {
            assert_eq!(l.acquire(1), Credit::Granted);
            l.push(unit(1), 1).unwrap();
        }
        assert!(matches!(l.acquire(1), Credit::Wait { .. }));
        // Load of 5 units: nothing granted while units remain.
        assert!(!l.pop(5).unwrap().1);
        assert!(!l.pop(5).unwrap().1);
        assert_eq!(l.credits(), 0);
        // The last pop empties the link: the never-starve credit.
        assert!(l.pop(5).unwrap().1);
        assert_eq!(l.credits(), 1);
        // The load gone, a replenish gives the rest of the capacity.
        l.replenish(0);
        assert_eq!(l.credits(), 3);
    }

    #[test]
    fn an_idle_receiver_grants_floating_credit_for_a_backlog() {
        let l = link(2, 3, DropPolicy::Block);
        assert_eq!(l.acquire(10), Credit::Granted);
        l.push(unit(1), 10).unwrap();
        l.pop(0).unwrap();
        // Backlog 9 announced (10, one sent): idle, the receiver grants up
        // to capacity + floating.
        l.replenish(0);
        assert_eq!(l.credits(), 5);
        for _ in 0..5 {
            assert_eq!(l.acquire(9), Credit::Granted);
            l.push(unit(1), 9).unwrap();
        }
        assert_eq!(l.len(), 5, "capacity 2 + floating 3");
        assert!(matches!(l.acquire(4), Credit::Wait { .. }));
        // Not idle: pops grant nothing until the link is back under its capacity.
        assert!(!l.pop(0).unwrap().1);
        assert!(!l.pop(0).unwrap().1);
        assert!(!l.pop(0).unwrap().1);
        assert!(l.pop(0).unwrap().1, "1 queued + 1 granted = capacity");
    }

    #[test]
    fn drop_policies_apply_only_without_credit_on_a_non_empty_link() {
        let newest = link(1, 0, DropPolicy::DropNewest);
        newest.push(unit(1), 1).unwrap();
        newest.push(unit(2), 1).unwrap();
        assert_eq!((newest.len(), newest.dropped_rows.load(SeqCst)), (1, 2));
        let oldest = link(1, 0, DropPolicy::DropOldest);
        oldest.push(unit(1), 1).unwrap();
        oldest.push(unit(2), 1).unwrap();
        assert_eq!((oldest.len(), oldest.dropped_rows.load(SeqCst)), (1, 1));
        let fail = link(1, 0, DropPolicy::Fail);
        fail.push(unit(1), 1).unwrap();
        assert_eq!(fail.push(unit(4), 1), Err(4));
        // An empty link takes a unit even without credit (its receiver withheld).
        let l = link(1, 0, DropPolicy::DropNewest);
        l.push(unit(1), 1).unwrap();
        l.pop(9).unwrap();
        assert_eq!(l.credits(), 0);
        l.push(unit(1), 1).unwrap();
        assert_eq!(l.len(), 1);
        // End never needs credit.
        l.push(Msg::End, 0).unwrap();
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn a_unit_over_the_budget_pauses_the_link_until_it_drains() {
        let budget = garner_pools::MemoryBudget::new(garner_pools::ByteSize(16));
        let l =
            Link::new(0, 1, GrantRule { capacity: 4, floating: 0 }, DropPolicy::Block, Some(&budget), None);
        assert_eq!(l.acquire(1), Credit::Granted);
        l.push(unit(1000), 1).unwrap();
        assert_eq!(l.over_budget_units.load(SeqCst), 1);
        assert!(!l.has_credit(), "paused: credit is there but may not be spent");
        assert_eq!(l.acquire(1), Credit::Wait { notify_receiver: false });
        let (_, wake) = l.pop(0).unwrap();
        assert!(wake, "drained: unpaused, the producer woken");
        assert_eq!(l.acquire(1), Credit::Granted);
    }
}
