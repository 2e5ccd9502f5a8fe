//! An exhaustive interleaving check of the credit protocol as the actor
//! runtime's links use it (`exec/runtime/link.rs`, `actor.rs`, `mod.rs`).
//!
//! `credit_model.rs` checks the [`CreditGate`](super::CreditGate), whose
//! waiters sleep on condition variables. The runtime's use adds steps that
//! model lacks:
//!
//! - the *receiver withholds*: it grants by a [`GrantRule`] with a load (the
//!   effective queue), so it may take a unit and grant nothing back, and it
//!   grants floating credit beyond the capacity when idle;
//! - the *link is paused* when the memory budget refuses a unit, until it
//!   drains;
//! - the sender takes a credit in one critical section (its room check)
//!   and pushes the unit in a later one, and even its last step (sending
//!   `End`) starts with a room check;
//! - nobody sleeps on a condvar: a waiting actor is *descheduled* (the
//!   `scheduled` flag of `runtime/mod.rs`), and is woken by `notify` (swap
//!   the flag to true and submit it to the pool), which the other side
//!   calls *after* its critical section. After a step that could not go
//!   on, an actor clears its flag, checks once more whether it could run
//!   (the receiver grants in that check, the sender retries its credit),
//!   and reschedules itself if so.
//!
//! Each step below is one critical section of the link's lock, or one
//! atomic flag operation, with the real [`Ledger`] and [`GrantRule`] code.
//! Every reachable state must have conserved credit, a bounded queue and
//! in-order delivery; a state where nobody can move must have every unit
//! and `End` received — in particular "the sender waits for credit while
//! the receiver waits for backlog" is unreachable. Three deliberately
//! broken variants must be caught.

use std::collections::{HashMap, HashSet};

use super::credit::{Acquire, GrantRule, Ledger, ReceiverView};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutant {
    None,
    /// A loaded receiver grants nothing, even on an empty link.
    NoStarvationGuard,
    /// The receiver grants only when it takes a unit, not when woken.
    GrantOnlyOnPop,
    /// A grant does not wake the parked sender.
    SilentGrant,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    capacity: u64,
    floating: u64,
    units: u64,
    /// The receiver's load may be high at any grant.
    loaded: bool,
    /// The budget may refuse any unit (pausing the link).
    budget: bool,
    mutant: Mutant,
}

impl Config {
    fn rule(&self) -> GrantRule {
        GrantRule { capacity: self.capacity, floating: self.floating }
    }

    /// The loads the receiver may see at a grant.
    fn loads(&self) -> &'static [u64] {
        if self.loaded {
            &[0, 9]
        } else {
            &[0]
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SenderPc {
    /// Top of a step: take credit (`acquire`) for the next unit, or for
    /// the `End` step once `remaining == 0`.
    Room,
    /// Push the unit (credit held).
    Push,
    /// Notify the receiver after the push.
    NotifyPushed,
    /// Push `End`, then notify.
    End,
    NotifyEnd,
    /// No credit: notify the receiver (the announcement asked for it).
    NotifyDemand,
    /// Step over (blocked): clear `scheduled`.
    Deschedule,
    /// `wants_to_run`: retry the credit.
    Recheck,
    NotifyRecheck,
    /// It could run: `scheduled.swap(true)`.
    Reschedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ReceiverPc {
    /// Top of a step: `replenish_inputs`.
    Start,
    /// Take the next unit (granting), or end the step if none.
    Loop,
    /// Notify the sender after a grant that woke it, then go on at `then`.
    NotifySender(Then),
    Deschedule,
    /// `wants_to_run`: replenish…
    Recheck,
    /// …then check for input.
    RecheckInput,
    Reschedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Then {
    Loop,
    RecheckInput,
}

/// An actor's execution: running a program counter, off (descheduled, or
/// submitted to the pool if `scheduled`), or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Exec<P> {
    Running(P),
    Off,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct World {
    // The link (behind its lock).
    ledger: Ledger,
    /// Unit numbers queued; `None` is `End`.
    queue: Vec<Option<u64>>,
    held: bool,
    producer_waiting: bool,
    over_budget: bool,
    // The sender (the number of units it still has follows from `next_unit`).
    sender: Exec<SenderPc>,
    sender_scheduled: bool,
    next_unit: u64,
    // The receiver.
    receiver: Exec<ReceiverPc>,
    receiver_scheduled: bool,
    received: u64,
}

impl World {
    fn start() -> Self {
        World {
            ledger: Ledger::default(),
            queue: Vec::new(),
            held: false,
            producer_waiting: false,
            over_budget: false,
            sender: Exec::Off,
            sender_scheduled: true,
            next_unit: 0,
            receiver: Exec::Off,
            receiver_scheduled: true,
            received: 0,
        }
    }

    fn notify_sender(&mut self) {
        if self.sender != Exec::Done && !self.sender_scheduled {
            self.sender_scheduled = true;
        }
    }

    fn notify_receiver(&mut self) {
        if self.receiver != Exec::Done && !self.receiver_scheduled {
            self.receiver_scheduled = true;
        }
    }

    fn view(&self, load: u64) -> ReceiverView {
        ReceiverView {
            queued: self.queue.len() as u64 + u64::from(self.held),
            load,
            paused: self.over_budget,
        }
    }

    /// The receiver grants with `load`; whether it granted anything.
    fn grant(&mut self, config: &Config, load: u64) -> bool {
        if config.mutant == Mutant::NoStarvationGuard && load > 0 {
            return false;
        }
        let view = self.view(load);
        match self.ledger.replenish(&config.rule(), view) {
            Ok((n, _)) => n > 0,
            Err(_) => false,
        }
    }

    /// The sender's room check (`Link::acquire`): whether it has credit,
    /// and whether the receiver should be notified.
    fn acquire(&mut self, backlog: u64) -> (bool, bool) {
        if self.over_budget && !self.queue.is_empty() {
            self.producer_waiting = true;
            return (false, false);
        }
        if self.held {
            return (true, false);
        }
        match self.ledger.try_acquire(backlog) {
            (Acquire::Acquired, _) => {
                self.held = true;
                (true, false)
            }
            (_, wake) => {
                self.producer_waiting = true;
                (false, wake.receivers)
            }
        }
    }

    /// The sender's units not yet pushed, for the backlog (this one included).
    fn remaining(&self, config: &Config) -> u64 {
        config.units - self.next_unit
    }

    fn finished(&self) -> bool {
        self.sender == Exec::Done && self.receiver == Exec::Done
    }
}

/// Every state reachable from `w` in one step, with what the step was.
fn successors(w: &World, config: &Config) -> Vec<(String, World)> {
    let mut next = Vec::new();
    let mut push = |step: String, world: World| next.push((step, world));

    // The pool picks up a submitted actor.
    if w.sender == Exec::Off && w.sender_scheduled {
        let mut n = w.clone();
        n.sender = Exec::Running(SenderPc::Room);
        push("sender: scheduled".into(), n);
    }
    if w.receiver == Exec::Off && w.receiver_scheduled {
        let mut n = w.clone();
        n.receiver = Exec::Running(ReceiverPc::Start);
        push("receiver: scheduled".into(), n);
    }

    if let Exec::Running(pc) = w.sender {
        let mut n = w.clone();
        let remaining = w.remaining(config);
        let go = |n: &mut World, pc| n.sender = Exec::Running(pc);
        match pc {
            SenderPc::Room | SenderPc::Recheck => {
                // The backlog announced: this unit plus the sender's queued
                // input, which may be empty now although more comes later.
                let mut backlogs = vec![1, remaining + 1];
                backlogs.dedup();
                for backlog in backlogs {
                    let mut n = w.clone();
                    let (credit, notify) = n.acquire(backlog);
                    n.sender = match (pc, credit, notify) {
                        (SenderPc::Room, true, _) if remaining == 0 => Exec::Running(SenderPc::End),
                        (SenderPc::Room, true, _) => Exec::Running(SenderPc::Push),
                        (SenderPc::Room, false, true) => Exec::Running(SenderPc::NotifyDemand),
                        (SenderPc::Room, false, false) => Exec::Running(SenderPc::Deschedule),
                        (_, true, _) => Exec::Running(SenderPc::Reschedule),
                        (_, false, true) => Exec::Running(SenderPc::NotifyRecheck),
                        (_, false, false) => Exec::Off,
                    };
                    push(format!("sender: {pc:?} acquire(backlog {backlog}) -> {credit}"), n);
                }
            }
            SenderPc::Push => {
                n.held = false;
                n.queue.push(Some(n.next_unit));
                n.next_unit += 1;
                go(&mut n, SenderPc::NotifyPushed);
                if config.budget {
                    let mut refused = n.clone();
                    refused.over_budget = true;
                    push("sender: push (budget refused)".into(), refused);
                }
                push("sender: push".into(), n);
            }
            SenderPc::NotifyPushed => {
                n.notify_receiver();
                go(&mut n, SenderPc::Room);
                push("sender: notify receiver (unit)".into(), n);
            }
            SenderPc::End => {
                n.queue.push(None);
                go(&mut n, SenderPc::NotifyEnd);
                push("sender: push End".into(), n);
            }
            SenderPc::NotifyEnd => {
                n.notify_receiver();
                n.sender = Exec::Done;
                push("sender: notify receiver (End), done".into(), n);
            }
            SenderPc::NotifyDemand => {
                n.notify_receiver();
                go(&mut n, SenderPc::Deschedule);
                push("sender: notify receiver (demand)".into(), n);
            }
            SenderPc::Deschedule => {
                n.sender_scheduled = false;
                go(&mut n, SenderPc::Recheck);
                push("sender: deschedule".into(), n);
            }
            SenderPc::NotifyRecheck => {
                n.notify_receiver();
                n.sender = Exec::Off;
                push("sender: notify receiver (recheck), off".into(), n);
            }
            SenderPc::Reschedule => {
                if std::mem::replace(&mut n.sender_scheduled, true) {
                    n.sender = Exec::Off; // already submitted by a notify
                } else {
                    go(&mut n, SenderPc::Room);
                }
                push("sender: reschedule".into(), n);
            }
        }
    }

    if let Exec::Running(pc) = w.receiver {
        let go = |n: &mut World, pc| n.receiver = Exec::Running(pc);
        match pc {
            ReceiverPc::Start | ReceiverPc::Recheck => {
                let then = if pc == ReceiverPc::Start { Then::Loop } else { Then::RecheckInput };
                for &load in config.loads() {
                    let mut n = w.clone();
                    let granted = config.mutant != Mutant::GrantOnlyOnPop && n.grant(config, load);
                    let wake = granted && std::mem::take(&mut n.producer_waiting);
                    let wake = wake && config.mutant != Mutant::SilentGrant;
                    let after = match then {
                        Then::Loop => ReceiverPc::Loop,
                        Then::RecheckInput => ReceiverPc::RecheckInput,
                    };
                    go(&mut n, if wake { ReceiverPc::NotifySender(then) } else { after });
                    push(format!("receiver: {pc:?} replenish(load {load}) -> {granted}"), n);
                }
            }
            ReceiverPc::Loop => {
                if w.queue.is_empty() {
                    let mut n = w.clone();
                    go(&mut n, ReceiverPc::Deschedule);
                    push("receiver: no input, step over".into(), n);
                } else {
                    for &load in config.loads() {
                        let mut n = w.clone();
                        let msg = n.queue.remove(0);
                        let unpaused = n.queue.is_empty() && std::mem::take(&mut n.over_budget);
                        let granted = n.grant(config, load);
                        let wake = (granted || unpaused) && std::mem::take(&mut n.producer_waiting);
                        let wake = wake && config.mutant != Mutant::SilentGrant;
                        match msg {
                            Some(unit) => {
                                if unit != n.received {
                                    n.received = u64::MAX; // out of order: flagged by the check
                                } else {
                                    n.received += 1;
                                }
                                go(
                                    &mut n,
                                    if wake {
                                        ReceiverPc::NotifySender(Then::Loop)
                                    } else {
                                        ReceiverPc::Loop
                                    },
                                );
                            }
                            None => n.receiver = Exec::Done,
                        }
                        push(format!("receiver: pop {msg:?} (load {load}) -> granted {granted}"), n);
                    }
                }
            }
            ReceiverPc::NotifySender(then) => {
                let mut n = w.clone();
                n.notify_sender();
                go(
                    &mut n,
                    match then {
                        Then::Loop => ReceiverPc::Loop,
                        Then::RecheckInput => ReceiverPc::RecheckInput,
                    },
                );
                push("receiver: notify sender".into(), n);
            }
            ReceiverPc::Deschedule => {
                let mut n = w.clone();
                n.receiver_scheduled = false;
                go(&mut n, ReceiverPc::Recheck);
                push("receiver: deschedule".into(), n);
            }
            ReceiverPc::RecheckInput => {
                let mut n = w.clone();
                if n.queue.is_empty() {
                    n.receiver = Exec::Off;
                } else {
                    go(&mut n, ReceiverPc::Reschedule);
                }
                push("receiver: recheck input".into(), n);
            }
            ReceiverPc::Reschedule => {
                let mut n = w.clone();
                if std::mem::replace(&mut n.receiver_scheduled, true) {
                    n.receiver = Exec::Off;
                } else {
                    go(&mut n, ReceiverPc::Start);
                }
                push("receiver: reschedule".into(), n);
            }
        }
    }
    next
}

fn check_state(w: &World, config: &Config) -> Result<(), String> {
    let l = &w.ledger;
    if l.granted != l.consumed + l.available {
        return Err(format!("credit not conserved: {l:?}"));
    }
    let pushed = w.next_unit;
    if l.consumed != pushed + u64::from(w.held) {
        return Err(format!("consumed {} credits for {pushed} units pushed (+held {})", l.consumed, w.held));
    }
    let units = w.queue.iter().filter(|m| m.is_some()).count() as u64;
    if units > config.capacity.max(1) + config.floating {
        return Err(format!(
            "queue of {units} over capacity {} + floating {}",
            config.capacity, config.floating
        ));
    }
    if w.received == u64::MAX {
        return Err("units received out of order".into());
    }
    let sender_parked = w.sender == Exec::Off && !w.sender_scheduled;
    let receiver_parked = w.receiver == Exec::Off && !w.receiver_scheduled;
    if sender_parked && receiver_parked {
        return Err(format!("sender waits for credit while receiver waits for backlog: {w:?}"));
    }
    Ok(())
}

#[derive(Debug)]
struct Violation {
    message: String,
    trace: Vec<String>,
}

/// Explores every interleaving; returns the number of states.
fn explore(config: Config) -> Result<usize, Violation> {
    let mut start = World::start();
    start.ledger = Ledger::new(config.capacity.max(1));
    let mut parent: HashMap<World, (World, String)> = HashMap::new();
    let mut seen: HashSet<World> = HashSet::from([start.clone()]);
    let mut stack = vec![start];
    let mut states = 0;
    let fail = |message: String, at: &World, parent: &HashMap<World, (World, String)>| {
        let mut trace = Vec::new();
        let mut cur = at;
        while let Some((prev, step)) = parent.get(cur) {
            trace.push(step.clone());
            cur = prev;
        }
        trace.reverse();
        Violation { message, trace }
    };
    while let Some(world) = stack.pop() {
        states += 1;
        check_state(&world, &config).map_err(|m| fail(m, &world, &parent))?;
        let next = successors(&world, &config);
        if next.is_empty() {
            if !world.finished() || world.received != config.units {
                return Err(fail(format!("deadlock: {world:?}"), &world, &parent));
            }
            continue;
        }
        for (step, w) in next {
            if seen.insert(w.clone()) {
                parent.insert(w.clone(), (world.clone(), step));
                stack.push(w);
            }
        }
    }
    Ok(states)
}

fn configs(mutant: Mutant) -> impl Iterator<Item = Config> {
    (1..=2).flat_map(move |capacity| {
        (0..=1).flat_map(move |floating| {
            (1..=3).flat_map(move |units| {
                [false, true].into_iter().flat_map(move |loaded| {
                    [false, true].into_iter().map(move |budget| Config {
                        capacity,
                        floating,
                        units,
                        loaded,
                        budget,
                        mutant,
                    })
                })
            })
        })
    })
}

#[test]
fn every_interleaving_of_the_runtime_link_delivers_everything_without_deadlock() {
    let mut total = 0;
    for config in configs(Mutant::None) {
        match explore(config) {
            Ok(states) => total += states,
            Err(v) => panic!("{config:?}: {}\n  {}", v.message, v.trace.join("\n  ")),
        }
    }
    assert!(total > 10_000, "explored only {total} states");
}

#[test]
fn a_loaded_receiver_that_never_grants_on_an_empty_link_is_caught() {
    let config = Config {
        capacity: 1,
        floating: 0,
        units: 2,
        loaded: true,
        budget: false,
        mutant: Mutant::NoStarvationGuard,
    };
    let v = explore(config).unwrap_err();
    assert!(v.message.contains("sender waits for credit while receiver waits for backlog"), "{}", v.message);
}

#[test]
fn a_receiver_that_grants_only_when_it_takes_a_unit_is_caught() {
    // The sender announces its backlog after the receiver took the last
    // unit under load: only a grant on wake-up can answer it.
    assert!(configs(Mutant::GrantOnlyOnPop).filter(|c| c.loaded).any(|c| explore(c).is_err()));
}

#[test]
fn a_grant_that_does_not_wake_the_sender_is_caught() {
    let config = Config {
        capacity: 1,
        floating: 0,
        units: 2,
        loaded: false,
        budget: false,
        mutant: Mutant::SilentGrant,
    };
    let v = explore(config).unwrap_err();
    assert!(v.message.contains("sender waits") || v.message.contains("deadlock"), "{}", v.message);
}
