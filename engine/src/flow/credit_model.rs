//! An exhaustive interleaving check of the credit gate's protocol.
//!
//! [`CreditGate`](super::CreditGate) is a mutex around a [`Ledger`] plus two
//! condition variables. Each of its methods is one critical section: a
//! ledger step, the notifications that step asks for, and, for the blocking
//! methods, "wait on the condition variable" in the same critical section
//! (a condvar wait releases the lock and sleeps atomically). So an
//! execution of the gate is an interleaving of whole ledger steps, and this
//! module enumerates all of them for small programs, with the real
//! [`Ledger`] code doing the steps:
//!
//! - the **sender** sends `units` units, calling `try_acquire(remaining)`
//!   and waiting for credit when there is none (what `acquire_blocking`
//!   does), then closes the gate;
//! - the **receiver** polls the demand, waiting when it is 0 (what
//!   `wait_demand` does), and grants any amount from 1 to the demand it
//!   read (optionally one more: a proactive grant), until the gate closes;
//! - optionally a **closer** closes the gate at any moment (shutdown);
//! - optionally a waiting thread may wake spuriously at any moment.
//!
//! Notifications are `notify_all`: they make every waiter on that condvar
//! runnable. Checked in every reachable state:
//!
//! 1. `granted == consumed + available` (no credit lost or made up) and
//!    `consumed == units sent`;
//! 2. a waiting sender has announced a backlog of at least 1 and there is no
//!    credit and the gate is open (otherwise it missed a wake-up);
//! 3. a waiting receiver sees no demand and an open gate;
//! 4. never both waiting: "sender waits for credit while receiver waits for
//!    backlog" is unreachable;
//! 5. no deadlock: a state where nobody can move has every thread finished,
//!    and then every unit was sent unless the closer closed the gate early.
//!
//! Two deliberately broken variants (a sender that withdraws its backlog
//! before waiting, a grant that does not notify) must be caught, which
//! shows the check has teeth.

use std::collections::{HashMap, HashSet};

use super::credit::{Acquire, Ledger, Wake};

/// A deliberate bug, to check that the checker finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutant {
    /// The protocol as implemented.
    None,
    /// The sender waits with a backlog of 0 (announces only after waking).
    WaitWithoutBacklog,
    /// `grant` does not wake the sender.
    SilentGrant,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    initial: u64,
    units: u64,
    /// The receiver may grant one more than the demand it read.
    over_grant: bool,
    /// A third thread closes the gate at an arbitrary point.
    closer: bool,
    /// Waiting threads may wake without a notification.
    spurious: bool,
    mutant: Mutant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SenderPc {
    /// Acquire a credit for the next unit; `remaining` units are queued.
    Acquire {
        remaining: u64,
    },
    /// All sent: close the gate.
    Finish,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ReceiverPc {
    /// Read the demand; wait if it is 0.
    Poll,
    /// Grant some of the `demand` read.
    Grant {
        demand: u64,
    },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CloserPc {
    Close,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct World {
    ledger: Ledger,
    sender: SenderPc,
    sender_waiting: bool,
    receiver: ReceiverPc,
    receiver_waiting: bool,
    closer: CloserPc,
    sent: u64,
}

impl World {
    fn start(config: &Config) -> Self {
        World {
            ledger: Ledger::new(config.initial),
            sender: SenderPc::Acquire { remaining: config.units },
            sender_waiting: false,
            receiver: ReceiverPc::Poll,
            receiver_waiting: false,
            closer: if config.closer { CloserPc::Close } else { CloserPc::Done },
            sent: 0,
        }
    }

    /// `notify_all` on the condvars a step asked for.
    fn notify(&mut self, wake: Wake) {
        if wake.senders {
            self.sender_waiting = false;
        }
        if wake.receivers {
            self.receiver_waiting = false;
        }
    }

    fn finished(&self) -> bool {
        self.sender == SenderPc::Done && self.receiver == ReceiverPc::Done && self.closer == CloserPc::Done
    }
}

/// Every state reachable from `world` in one step, with what the step was.
fn successors(world: &World, config: &Config) -> Vec<(String, World)> {
    let mut next = Vec::new();
    if !world.sender_waiting {
        match world.sender {
            SenderPc::Acquire { remaining } => {
                let mut w = world.clone();
                let (outcome, wake) = w.ledger.try_acquire(remaining);
                w.notify(wake);
                match outcome {
                    Acquire::Acquired => {
                        w.sent += 1;
                        w.sender = if remaining == 1 {
                            SenderPc::Finish
                        } else {
                            SenderPc::Acquire { remaining: remaining - 1 }
                        };
                    }
                    Acquire::NoCredit => {
                        if config.mutant == Mutant::WaitWithoutBacklog {
                            let wake = w.ledger.announce(0);
                            w.notify(wake);
                        }
                        w.sender_waiting = true;
                    }
                    Acquire::Closed => w.sender = SenderPc::Done,
                }
                next.push((format!("sender: acquire({remaining}) -> {outcome:?}"), w));
            }
            SenderPc::Finish => {
                let mut w = world.clone();
                let wake = w.ledger.close();
                w.notify(wake);
                w.sender = SenderPc::Done;
                next.push(("sender: close".to_owned(), w));
            }
            SenderPc::Done => {}
        }
    }
    if !world.receiver_waiting {
        match world.receiver {
            ReceiverPc::Poll => {
                let mut w = world.clone();
                match w.ledger.poll_demand() {
                    Err(_) => w.receiver = ReceiverPc::Done,
                    Ok(Some(demand)) => w.receiver = ReceiverPc::Grant { demand },
                    Ok(None) => w.receiver_waiting = true,
                }
                next.push(("receiver: poll demand".to_owned(), w));
            }
            ReceiverPc::Grant { demand } => {
                let most = demand + u64::from(config.over_grant);
                for n in 1..=most {
                    let mut w = world.clone();
                    match w.ledger.grant(n) {
                        Err(_) => w.receiver = ReceiverPc::Done,
                        Ok(mut wake) => {
                            if config.mutant == Mutant::SilentGrant {
                                wake.senders = false;
                            }
                            w.notify(wake);
                            w.receiver = ReceiverPc::Poll;
                        }
                    }
                    next.push((format!("receiver: grant({n})"), w));
                }
            }
            ReceiverPc::Done => {}
        }
    }
    if world.closer == CloserPc::Close {
        let mut w = world.clone();
        let wake = w.ledger.close();
        w.notify(wake);
        w.closer = CloserPc::Done;
        next.push(("closer: close".to_owned(), w));
    }
    if config.spurious {
        if world.sender_waiting {
            let mut w = world.clone();
            w.sender_waiting = false;
            next.push(("sender: spurious wake-up".to_owned(), w));
        }
        if world.receiver_waiting {
            let mut w = world.clone();
            w.receiver_waiting = false;
            next.push(("receiver: spurious wake-up".to_owned(), w));
        }
    }
    next
}

/// The invariants every reachable state must hold (items 1–4 of the module doc).
fn check_state(w: &World) -> Result<(), String> {
    let l = &w.ledger;
    if l.granted != l.consumed + l.available {
        return Err(format!("credit not conserved: {l:?}"));
    }
    if w.sent != l.consumed {
        return Err(format!("sent {} units but consumed {} credits", w.sent, l.consumed));
    }
    if w.sender_waiting && (l.available > 0 || l.closed || l.backlog == 0) {
        return Err(format!("sender waits with credit, on a closed gate, or without backlog: {l:?}"));
    }
    if w.receiver_waiting && (l.demand() > 0 || l.closed) {
        return Err(format!("receiver waits despite demand or a closed gate: {l:?}"));
    }
    if w.sender_waiting && w.receiver_waiting {
        return Err("sender waits for credit while receiver waits for backlog".to_owned());
    }
    Ok(())
}

/// What an exploration saw.
#[derive(Debug, Default)]
struct Explored {
    states: usize,
    /// Finished states where the closer cut the run short.
    cut_short: usize,
}

/// A violation and the steps that lead to it.
#[derive(Debug)]
struct Violation {
    message: String,
    trace: Vec<String>,
}

/// Explores every interleaving of `config`'s threads.
fn explore(config: Config) -> Result<Explored, Violation> {
    let start = World::start(&config);
    // Each state's first-found parent and step, to print a trace.
    let mut parent: HashMap<World, (World, String)> = HashMap::new();
    let mut seen: HashSet<World> = HashSet::from([start.clone()]);
    let mut stack = vec![start];
    let mut explored = Explored::default();
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
        explored.states += 1;
        check_state(&world).map_err(|m| fail(m, &world, &parent))?;
        let next = successors(&world, &config);
        if next.is_empty() {
            if !world.finished() {
                return Err(fail(format!("deadlock: {world:?}"), &world, &parent));
            }
            if world.sent < config.units {
                if !config.closer {
                    return Err(fail(
                        format!("finished with {} of {} units", world.sent, config.units),
                        &world,
                        &parent,
                    ));
                }
                explored.cut_short += 1;
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
    Ok(explored)
}

fn configs(mutant: Mutant) -> impl Iterator<Item = Config> {
    (0..=3).flat_map(move |initial| {
        (1..=5).flat_map(move |units| {
            [false, true].into_iter().flat_map(move |over_grant| {
                [false, true].into_iter().flat_map(move |closer| {
                    [false, true].into_iter().map(move |spurious| Config {
                        initial,
                        units,
                        over_grant,
                        closer,
                        spurious,
                        mutant,
                    })
                })
            })
        })
    })
}

#[test]
fn every_interleaving_conserves_credit_and_never_deadlocks() {
    let mut total = 0;
    for config in configs(Mutant::None) {
        match explore(config) {
            Ok(explored) => {
                total += explored.states;
                if config.closer {
                    assert!(explored.cut_short > 0, "{config:?}: the closer never cut a run short");
                }
            }
            Err(v) => panic!("{config:?}: {}\n  {}", v.message, v.trace.join("\n  ")),
        }
    }
    // 160 small programs, 7776 states as written; the number depends on the
    // step granularity, the bound only guards against exploring nothing.
    assert!(total > 5_000, "explored only {total} states");
}

#[test]
fn a_sender_waiting_without_announcing_its_backlog_is_caught() {
    // The "sender waits for credit, receiver waits for backlog" deadlock:
    // what the protocol's announce-before-wait rule prevents.
    let config = Config {
        initial: 0,
        units: 1,
        over_grant: false,
        closer: false,
        spurious: false,
        mutant: Mutant::WaitWithoutBacklog,
    };
    let v = explore(config).unwrap_err();
    assert!(v.message.contains("without backlog"), "{}", v.message);
    // Caught in every program where the sender runs out of credit.
    assert!(configs(Mutant::WaitWithoutBacklog).filter(|c| c.initial < c.units).all(|c| explore(c).is_err()));
}

#[test]
fn a_grant_that_wakes_nobody_is_caught() {
    let config = Config {
        initial: 0,
        units: 2,
        over_grant: false,
        closer: false,
        spurious: false,
        mutant: Mutant::SilentGrant,
    };
    let v = explore(config).unwrap_err();
    assert!(v.message.contains("sender waits with credit"), "{}", v.message);
    assert!(v.trace.iter().any(|s| s.starts_with("receiver: grant")), "{:?}", v.trace);
}
