//! A credit-based link gate: the receiver grants credits, the sender spends
//! one credit per unit it sends and announces its backlog, so the receiver
//! can grant before the sender runs dry (the design of Flink's network
//! stack). The protocol is on [`CreditGate`]; the state machine is
//! [`Ledger`], kept apart from the locking so `credit_model.rs` can explore
//! every interleaving of its steps. The actor runtime's links
//! (`exec/runtime/link.rs`) hold a `Ledger` too, under their own lock, and
//! decide their grants with [`GrantRule`].

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The outcome of a sender's attempt to take a credit.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acquire {
    /// A credit was taken: send one unit.
    Acquired,
    /// No credit now; the backlog was announced to the receiver.
    NoCredit,
    /// The gate is closed: send nothing more.
    Closed,
}

/// The gate was closed (shutdown, abort, or the other side finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("credit gate closed")]
pub struct GateClosed;

/// A consistent snapshot of a [`CreditGate`]'s counters.
///
/// `granted == consumed + available` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditStats {
    /// Credits granted so far, the initial ones included.
    pub granted: u64,
    /// Credits the sender has spent (units sent).
    pub consumed: u64,
    /// Credits granted and not yet spent.
    pub available: u64,
    /// The sender's latest announced backlog.
    pub backlog: u64,
    /// How many times the sender had to wait for credit.
    pub sender_waits: u64,
    /// Whether the gate is closed.
    pub closed: bool,
}

/// Who a [`Ledger`] step asks to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Wake {
    /// Senders waiting for credit.
    pub(crate) senders: bool,
    /// Receivers waiting for demand.
    pub(crate) receivers: bool,
}

/// What a receiver looks at when it decides how much credit to grant on
/// one link (see [`GrantRule::grant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiverView {
    /// Units on the link that the receiver has not taken yet, plus units
    /// in flight (a credit taken, the unit not yet queued): space already
    /// promised.
    pub queued: u64,
    /// What the receiver's state and spills count as, in queued units (the
    /// accumulator-aware part of the [`EffectiveQueue`](super::EffectiveQueue));
    /// 0 when that option is off.
    pub load: u64,
    /// The receiver grants nothing for now (the link's memory budget
    /// refused a unit and it has not drained yet), except what the
    /// never-starve rule gives.
    pub paused: bool,
}

/// How a receiver replenishes credit on one link: Flink's *exclusive*
/// credit (the link's capacity) plus *floating* credit for a backlog
/// when the receiver is idle.
///
/// [`grant`](Self::grant) computes a *target* for the credit outstanding
/// (`queued + available`: space the receiver has promised) and grants the
/// difference, never a negative amount (credit is not revoked):
///
/// 1. exclusive: `capacity − load` (0 while `paused`): the receiver keeps
///    its free space granted, less what its state counts for, so a loaded
///    receiver *withholds* credit as it consumes;
/// 2. floating: when the link is empty (`queued == 0`, the receiver is
///    idle on it), unloaded and not paused, and the sender announced a
///    backlog, up to `min(backlog, capacity + floating)`;
/// 3. never starve: an empty link with an announced backlog gets at
///    least one credit, whatever the load: a receiver that withholds can
///    never leave a sender waiting for credit while it waits for input.
///
/// ```
/// use garner_engine::flow::{GrantRule, ReceiverView};
///
/// let rule = GrantRule { capacity: 4, floating: 2 };
/// // One unit taken off a full link: its slot is granted back.
/// assert_eq!(rule.grant(0, 1, ReceiverView { queued: 3, ..Default::default() }), 1);
/// // The same under load (state worth 2 units): withheld.
/// assert_eq!(rule.grant(0, 1, ReceiverView { queued: 3, load: 2, paused: false }), 0);
/// // Idle with a backlog of 9 announced: exclusive plus floating credit.
/// assert_eq!(rule.grant(0, 9, ReceiverView::default()), 6);
/// // Loaded and idle: one credit, never none.
/// assert_eq!(rule.grant(0, 9, ReceiverView { queued: 0, load: 10, paused: false }), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRule {
    /// Exclusive credit: the units the link holds when the receiver is
    /// unloaded (at least 1 is used).
    pub capacity: u64,
    /// Floating credit: units an idle receiver may grant beyond
    /// `capacity` to a sender with a backlog.
    pub floating: u64,
}

impl GrantRule {
    /// The credit to grant now, given the link's unspent credit
    /// (`available`), the sender's announced `backlog` and what the
    /// receiver sees. Outstanding credit never exceeds
    /// `max(capacity, 1) + floating` after a grant.
    pub fn grant(&self, available: u64, backlog: u64, view: ReceiverView) -> u64 {
        let capacity = self.capacity.max(1);
        let outstanding = view.queued.saturating_add(available);
        let idle = view.queued == 0;
        let mut target = if view.paused { 0 } else { capacity.saturating_sub(view.load) };
        if idle && view.load == 0 && !view.paused {
            target = target.max(backlog.min(capacity.saturating_add(self.floating)));
        }
        if idle && backlog > 0 {
            target = target.max(1);
        }
        target.saturating_sub(outstanding)
    }
}

/// The gate's state machine, without locks: each method is one atomic step
/// (one critical section of [`CreditGate`], or of a runtime link).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Ledger {
    pub(crate) available: u64,
    pub(crate) backlog: u64,
    pub(crate) granted: u64,
    pub(crate) consumed: u64,
    pub(crate) closed: bool,
}

impl Ledger {
    pub(crate) fn new(initial: u64) -> Self {
        Ledger { available: initial, granted: initial, ..Ledger::default() }
    }

    /// Units announced and not covered by credit.
    pub(crate) fn demand(&self) -> u64 {
        self.backlog.saturating_sub(self.available)
    }

    /// Step 2–3 of the protocol: announce `backlog` (this unit included)
    /// and take a credit if there is one. A receiver is woken whenever
    /// demand is left over.
    pub(crate) fn try_acquire(&mut self, backlog: u64) -> (Acquire, Wake) {
        if self.closed {
            return (Acquire::Closed, Wake::default());
        }
        // The unit being acquired is part of the backlog, whatever was passed.
        let backlog = backlog.max(1);
        let outcome = if self.available > 0 {
            self.available -= 1;
            self.consumed += 1;
            self.backlog = backlog - 1;
            Acquire::Acquired
        } else {
            self.backlog = backlog;
            Acquire::NoCredit
        };
        (outcome, Wake { senders: false, receivers: self.demand() > 0 })
    }

    /// Announces a backlog without acquiring (e.g. 0 when the queue drained).
    pub(crate) fn announce(&mut self, backlog: u64) -> Wake {
        if self.closed {
            return Wake::default();
        }
        self.backlog = backlog;
        Wake { senders: false, receivers: self.demand() > 0 }
    }

    /// Step 4: the receiver adds `n` credits.
    pub(crate) fn grant(&mut self, n: u64) -> Result<Wake, GateClosed> {
        if self.closed {
            return Err(GateClosed);
        }
        // u64 credits do not run out in practice; saturate both counters
        // alike rather than wrap.
        let n = n.min(u64::MAX - self.granted);
        self.available += n;
        self.granted += n;
        Ok(Wake { senders: n > 0, receivers: false })
    }

    /// The receiver's check before waiting: the demand if positive.
    pub(crate) fn poll_demand(&self) -> Result<Option<u64>, GateClosed> {
        if self.closed {
            return Err(GateClosed);
        }
        Ok(Some(self.demand()).filter(|d| *d > 0))
    }

    /// Step 4 by a [`GrantRule`]: the receiver grants what the rule gives
    /// for `view`; returns the credits granted.
    pub(crate) fn replenish(
        &mut self,
        rule: &GrantRule,
        view: ReceiverView,
    ) -> Result<(u64, Wake), GateClosed> {
        let n = rule.grant(self.available, self.backlog, view);
        self.grant(n).map(|wake| (n, wake))
    }

    /// Step 5: close; every waiter wakes.
    pub(crate) fn close(&mut self) -> Wake {
        self.closed = true;
        Wake { senders: true, receivers: true }
    }
}

/// The lock-protected state: the ledger plus counters the protocol does
/// not depend on.
#[derive(Debug)]
struct Shared {
    ledger: Ledger,
    sender_waits: u64,
}

/// A credit gate on one link.
///
/// `CreditGate` is `Sync`: share it between the two sides with an `Arc`.
/// It assumes one sending side (the backlog is the latest announcement,
/// not a sum); the receiving side may be several threads.
///
/// # Protocol
///
/// One gate sits on one link, between one sending side and one receiving
/// side; a unit is whatever the link counts (a batch, a buffer, a row).
///
/// 1. The receiver starts the gate with `initial` credits: the units it can
///    take without asking (its free buffer space).
/// 2. Before sending a unit, the sender *acquires* a credit, passing its
///    backlog: the units it has queued, this one included. The announcement
///    and the check for credit happen in one critical section, so a sender
///    that finds no credit has always announced a backlog of at least one
///    before it waits: the receiver can see the demand and the two sides
///    cannot both wait (the case checked exhaustively in the tests).
/// 3. With credit, the sender takes one (`available - 1`, `consumed + 1`)
///    and its announced backlog becomes `backlog - 1`. Without, it either
///    returns [`Acquire::NoCredit`] ([`try_acquire`](CreditGate::try_acquire))
///    or waits ([`acquire_blocking`](CreditGate::acquire_blocking)).
/// 4. The receiver reads the *demand* (`backlog - available`, at least 0:
///    units announced and not yet covered by credit), directly or by
///    waiting for it to be positive ([`wait_demand`](CreditGate::wait_demand)),
///    and [`grant`](CreditGate::grant)s credits as its buffer frees up. A
///    grant wakes a waiting sender. The receiver may grant more than the
///    demand (proactively, up to its free space) or less.
/// 5. Either side, or a third party on shutdown, [`close`](CreditGate::close)s
///    the gate: every waiter wakes, and acquiring, granting and waiting for
///    demand return [`GateClosed`] from then on. A sender that finished
///    closes the gate so a receiver waiting for demand ends.
///
/// Credit is never lost or made up: at every moment `granted = consumed +
/// available` (initial credits count as granted). [`CreditStats`] shows
/// the four numbers.
///
/// The gate is a mutex and two condition variables; every step is a short
/// critical section of integer arithmetic, and the tests check the protocol
/// over every interleaving of small programs (`flow/credit_model.rs`).
///
/// ```
/// use std::sync::Arc;
/// use garner_engine::flow::{Acquire, CreditGate};
///
/// let gate = Arc::new(CreditGate::new(1));
/// // Sender: two units queued, one credit.
/// assert_eq!(gate.try_acquire(2), Acquire::Acquired);
/// assert_eq!(gate.try_acquire(1), Acquire::NoCredit);
/// assert_eq!(gate.demand(), 1); // the receiver sees the announced backlog
///
/// let sender = {
///     let gate = Arc::clone(&gate);
///     std::thread::spawn(move || gate.acquire_blocking(1))
/// };
/// // Receiver: wait for demand, grant it.
/// let demand = gate.wait_demand().unwrap();
/// gate.grant(demand).unwrap();
/// sender.join().unwrap().unwrap();
/// let stats = gate.stats();
/// assert_eq!((stats.granted, stats.consumed, stats.available), (2, 2, 0));
/// ```
#[derive(Debug)]
pub struct CreditGate {
    shared: Mutex<Shared>,
    /// Senders waiting for credit.
    credit: Condvar,
    /// Receivers waiting for demand.
    demand: Condvar,
}

impl CreditGate {
    /// A gate with `initial` credits (counted as granted).
    ///
    /// ```
    /// use garner_engine::flow::CreditGate;
    /// let gate = CreditGate::new(4);
    /// assert_eq!((gate.available(), gate.stats().granted), (4, 4));
    /// ```
    pub fn new(initial: u64) -> Self {
        CreditGate {
            shared: Mutex::new(Shared { ledger: Ledger::new(initial), sender_waits: 0 }),
            credit: Condvar::new(),
            demand: Condvar::new(),
        }
    }

    /// Sender: takes a credit if there is one, announcing `backlog` (the
    /// units queued, this one included; 0 is read as 1). Never blocks.
    ///
    /// ```
    /// use garner_engine::flow::{Acquire, CreditGate};
    /// let gate = CreditGate::new(0);
    /// assert_eq!(gate.try_acquire(3), Acquire::NoCredit);
    /// assert_eq!(gate.backlog(), 3);
    /// gate.grant(1).unwrap();
    /// assert_eq!(gate.try_acquire(3), Acquire::Acquired);
    /// assert_eq!(gate.backlog(), 2);
    /// ```
    pub fn try_acquire(&self, backlog: u64) -> Acquire {
        let mut shared = self.lock();
        let (outcome, wake) = shared.ledger.try_acquire(backlog);
        self.wake(wake);
        outcome
    }

    /// Sender: takes a credit, waiting for the receiver to grant one if
    /// there is none; `backlog` as for [`try_acquire`](Self::try_acquire).
    /// The backlog is announced before waiting, so a receiver blocked in
    /// [`wait_demand`](Self::wait_demand) wakes.
    ///
    /// # Errors
    ///
    /// [`GateClosed`] if the gate is or becomes closed (a waiting sender
    /// wakes on [`close`](Self::close)).
    pub fn acquire_blocking(&self, backlog: u64) -> Result<(), GateClosed> {
        let mut shared = self.lock();
        let mut waited = false;
        loop {
            let (outcome, wake) = shared.ledger.try_acquire(backlog);
            self.wake(wake);
            match outcome {
                Acquire::Acquired => return Ok(()),
                Acquire::Closed => return Err(GateClosed),
                Acquire::NoCredit => {
                    if !waited {
                        shared.sender_waits += 1;
                        waited = true;
                    }
                    shared = self.credit.wait(shared).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Sender: as [`acquire_blocking`](Self::acquire_blocking), giving up
    /// after `timeout` with [`Acquire::NoCredit`] (the backlog stays
    /// announced). For engines that must not block a worker indefinitely.
    ///
    /// ```
    /// use std::time::Duration;
    /// use garner_engine::flow::{Acquire, CreditGate};
    /// let gate = CreditGate::new(0);
    /// assert_eq!(gate.acquire_timeout(1, Duration::ZERO), Acquire::NoCredit);
    /// gate.close();
    /// assert_eq!(gate.acquire_timeout(1, Duration::from_secs(60)), Acquire::Closed);
    /// ```
    pub fn acquire_timeout(&self, backlog: u64, timeout: Duration) -> Acquire {
        let deadline = Instant::now().checked_add(timeout);
        let mut shared = self.lock();
        let mut waited = false;
        loop {
            let (outcome, wake) = shared.ledger.try_acquire(backlog);
            self.wake(wake);
            if outcome != Acquire::NoCredit {
                return outcome;
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Acquire::NoCredit;
            }
            if !waited {
                shared.sender_waits += 1;
                waited = true;
            }
            shared = self.credit.wait_timeout(shared, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Sender: announces `backlog` without acquiring, e.g. 0 when its queue
    /// drained, or more units queued while it holds credit. Ignored once
    /// closed.
    ///
    /// ```
    /// use garner_engine::flow::CreditGate;
    /// let gate = CreditGate::new(2);
    /// gate.announce(5);
    /// assert_eq!(gate.demand(), 3);
    /// ```
    pub fn announce(&self, backlog: u64) {
        let mut shared = self.lock();
        let wake = shared.ledger.announce(backlog);
        self.wake(wake);
    }

    /// Receiver: grants `n` more credits, waking a waiting sender.
    ///
    /// # Errors
    ///
    /// [`GateClosed`] if the gate is closed; nothing is granted then.
    ///
    /// ```
    /// use garner_engine::flow::{CreditGate, GateClosed};
    /// let gate = CreditGate::new(0);
    /// gate.grant(3).unwrap();
    /// assert_eq!(gate.available(), 3);
    /// gate.close();
    /// assert_eq!(gate.grant(1), Err(GateClosed));
    /// ```
    pub fn grant(&self, n: u64) -> Result<(), GateClosed> {
        let mut shared = self.lock();
        let wake = shared.ledger.grant(n)?;
        self.wake(wake);
        Ok(())
    }

    /// Receiver: waits until the demand (`backlog - available`) is positive
    /// and returns it.
    ///
    /// # Errors
    ///
    /// [`GateClosed`] if the gate is or becomes closed.
    pub fn wait_demand(&self) -> Result<u64, GateClosed> {
        let mut shared = self.lock();
        loop {
            if let Some(demand) = shared.ledger.poll_demand()? {
                return Ok(demand);
            }
            shared = self.demand.wait(shared).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Closes the gate: waiting senders and receivers wake and get
    /// [`GateClosed`] (or [`Acquire::Closed`]), as does every later call
    /// that acquires, grants or waits. Idempotent.
    pub fn close(&self) {
        let mut shared = self.lock();
        let wake = shared.ledger.close();
        self.wake(wake);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().ledger.closed
    }

    /// Credits granted and not yet spent.
    pub fn available(&self) -> u64 {
        self.lock().ledger.available
    }

    /// The sender's latest announced backlog.
    pub fn backlog(&self) -> u64 {
        self.lock().ledger.backlog
    }

    /// Announced units not covered by credit: `backlog - available`, at
    /// least 0. What the receiver should grant, room permitting.
    pub fn demand(&self) -> u64 {
        self.lock().ledger.demand()
    }

    /// All counters, read at one instant.
    pub fn stats(&self) -> CreditStats {
        let shared = self.lock();
        let l = &shared.ledger;
        CreditStats {
            granted: l.granted,
            consumed: l.consumed,
            available: l.available,
            backlog: l.backlog,
            sender_waits: shared.sender_waits,
            closed: l.closed,
        }
    }

    /// Locks the state. The critical sections are integer arithmetic that
    /// cannot panic half-way, so a poisoned lock still holds a consistent
    /// ledger and is used as is.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notifies the waiters a step asked for; called with the lock held, so
    /// no waiter can check and sleep between the change and the notice.
    fn wake(&self, wake: Wake) {
        if wake.senders {
            self.credit.notify_all();
        }
        if wake.receivers {
            self.demand.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;

    use super::*;

    /// splitmix64: a tiny seeded generator for the stress test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `1..=max` (`max >= 1`).
        fn upto(&mut self, max: u64) -> u64 {
            1 + self.next() % max
        }
    }

    fn conserved(stats: CreditStats) {
        assert_eq!(stats.granted, stats.consumed + stats.available, "{stats:?}");
    }

    #[test]
    fn credit_is_spent_one_unit_at_a_time() {
        let gate = CreditGate::new(2);
        assert_eq!(gate.try_acquire(5), Acquire::Acquired);
        assert_eq!(gate.try_acquire(4), Acquire::Acquired);
        assert_eq!(gate.try_acquire(3), Acquire::NoCredit);
        let stats = gate.stats();
        assert_eq!((stats.consumed, stats.available, stats.backlog), (2, 0, 3));
        assert_eq!(gate.demand(), 3);
        conserved(stats);
    }

    #[test]
    fn demand_counts_only_what_credit_does_not_cover() {
        let gate = CreditGate::new(0);
        gate.announce(4);
        assert_eq!(gate.demand(), 4);
        gate.grant(3).unwrap();
        assert_eq!(gate.demand(), 1);
        gate.grant(5).unwrap(); // proactive: more than asked
        assert_eq!((gate.demand(), gate.available()), (0, 8));
        gate.announce(0);
        assert_eq!(gate.demand(), 0);
    }

    #[test]
    fn a_backlog_of_zero_still_counts_the_unit_being_acquired() {
        let gate = CreditGate::new(0);
        assert_eq!(gate.try_acquire(0), Acquire::NoCredit);
        assert_eq!(gate.demand(), 1, "a sender asking for credit has at least one unit");
    }

    #[test]
    fn close_wakes_a_waiting_sender_and_a_waiting_receiver() {
        // The sender waits for credit; a receiver waits for demand on a
        // second gate (no backlog there); close releases both.
        let gate = Arc::new(CreditGate::new(0));
        let quiet = Arc::new(CreditGate::new(0));
        let sender = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.acquire_blocking(1))
        };
        let receiver = {
            let quiet = Arc::clone(&quiet);
            thread::spawn(move || quiet.wait_demand())
        };
        // The sender's backlog is announced before it waits.
        assert_eq!(gate.wait_demand(), Ok(1));
        gate.close();
        quiet.close();
        assert_eq!(sender.join().unwrap(), Err(GateClosed));
        assert_eq!(receiver.join().unwrap(), Err(GateClosed));
        assert_eq!(gate.try_acquire(1), Acquire::Closed);
        assert!(gate.is_closed());
        conserved(gate.stats());
    }

    #[test]
    fn a_closed_gate_keeps_its_credit_count_and_refuses_everything() {
        let gate = CreditGate::new(3);
        assert_eq!(gate.try_acquire(1), Acquire::Acquired);
        gate.close();
        gate.close(); // idempotent
        assert_eq!(gate.try_acquire(1), Acquire::Closed);
        assert_eq!(gate.grant(1), Err(GateClosed));
        assert_eq!(gate.wait_demand(), Err(GateClosed));
        gate.announce(9); // ignored
        let stats = gate.stats();
        assert_eq!((stats.granted, stats.consumed, stats.available, stats.backlog), (3, 1, 2, 0));
    }

    #[test]
    fn timeout_returns_no_credit_and_leaves_the_backlog_announced() {
        let gate = CreditGate::new(0);
        assert_eq!(gate.acquire_timeout(2, Duration::from_millis(1)), Acquire::NoCredit);
        assert_eq!(gate.demand(), 2);
        gate.grant(1).unwrap();
        assert_eq!(gate.acquire_timeout(2, Duration::ZERO), Acquire::Acquired);
    }

    #[test]
    fn grants_saturate_instead_of_wrapping() {
        let gate = CreditGate::new(u64::MAX - 1);
        gate.grant(10).unwrap();
        let stats = gate.stats();
        assert_eq!(stats.available, u64::MAX);
        conserved(stats);
    }

    /// One run of the stress test: a sender pushes `units` units through a
    /// channel, acquiring a credit for each; the receiver waits for demand
    /// and grants a random amount up to its free space (`capacity` minus
    /// what is queued and granted), draining the channel as it goes.
    fn stress(seed: u64, units: u64, capacity: u64) {
        let gate = Arc::new(CreditGate::new(seed % (capacity + 1)));
        let (tx, rx) = mpsc::channel::<u64>();
        let sender = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                for i in 0..units {
                    gate.acquire_blocking(units - i).expect("the receiver never closes first");
                    tx.send(i).unwrap();
                }
                gate.announce(0);
                gate.close();
            })
        };
        let mut rng = Rng(seed);
        let mut received = Vec::with_capacity(units as usize);
        let mut queued_peak = 0;
        loop {
            // Units sent but not yet taken are buffered: they use space.
            let before = received.len();
            received.extend(rx.try_iter());
            queued_peak = queued_peak.max(received.len() - before);
            let Ok(demand) = gate.wait_demand() else { break };
            // Free space: capacity less credit outstanding and units in
            // flight (sent, not yet taken). Only this thread grants, so the
            // sum cannot grow between this read and the grant.
            let stats = gate.stats();
            let in_flight = stats.consumed - received.len() as u64;
            let room = capacity.saturating_sub(stats.available + in_flight);
            if room > 0 {
                let _ = gate.grant(rng.upto(demand.min(room)));
            } else {
                thread::yield_now();
            }
        }
        sender.join().unwrap();
        received.extend(rx.try_iter());
        assert_eq!(received, (0..units).collect::<Vec<_>>(), "seed {seed}: every unit, in order");
        let stats = gate.stats();
        conserved(stats);
        assert_eq!(stats.consumed, units, "seed {seed}");
        assert!(stats.available <= capacity, "seed {seed}: {stats:?}");
        assert!(queued_peak as u64 <= capacity, "seed {seed}: queued {queued_peak} > {capacity}");
    }

    #[test]
    fn stress_random_credit_sizes_finishes_and_conserves_units() {
        let mut rng = Rng(7);
        for seed in 0..40 {
            let units = 200 + rng.next() % 800;
            let capacity = rng.upto(16);
            stress(seed, units, capacity);
        }
    }

    #[test]
    fn stress_many_receivers_granting_concurrently() {
        // One sender, three threads granting on the receiving side.
        let units = 5_000;
        let gate = Arc::new(CreditGate::new(0));
        let receivers: Vec<_> = (0..3)
            .map(|r| {
                let gate = Arc::clone(&gate);
                thread::spawn(move || {
                    let mut rng = Rng(r);
                    while let Ok(demand) = gate.wait_demand() {
                        let _ = gate.grant(rng.upto(demand.min(4)));
                    }
                })
            })
            .collect();
        for i in 0..units {
            gate.acquire_blocking(units - i).unwrap();
        }
        gate.close();
        for r in receivers {
            r.join().unwrap();
        }
        let stats = gate.stats();
        conserved(stats);
        assert_eq!(stats.consumed, units);
    }
}
