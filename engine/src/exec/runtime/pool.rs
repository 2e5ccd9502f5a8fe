//! The work-stealing pool: N workers over `crossbeam-deque`.
//!
//! 1. A task is an actor id. `submit` pushes it on the submitting worker's
//!    own deque (LIFO: the consumer of what was just produced runs next,
//!    while the data is in cache) or, from outside the pool, on the global
//!    injector; then it wakes one sleeping worker, if any.
//! 2. A worker pops its own deque, then takes a batch from the injector,
//!    then steals from the others.
//! 3. A worker that finds nothing registers as a sleeper, looks once more
//!    (so a task submitted in between is not missed), and parks. Idle
//!    workers use no CPU; a timeout of 50 ms bounds any wake-up the
//!    protocol might miss.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::thread::{self, Thread};
use std::time::Duration;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use super::super::plan::ActorId;

thread_local! {
    /// The deque of the pool worker running on this thread: (pool id, deque).
    static LOCAL: RefCell<Option<(usize, Worker<ActorId>)>> = const { RefCell::new(None) };
}

pub(crate) struct Pool {
    id: usize,
    injector: Injector<ActorId>,
    stealers: Vec<Stealer<ActorId>>,
    sleepers: Mutex<Vec<Thread>>,
    sleeping: AtomicUsize,
}

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

impl Pool {
    /// A pool of `threads` deques; the workers are handed to threads by `take_workers`.
    pub(crate) fn new(threads: usize) -> (Pool, Vec<Worker<ActorId>>) {
        let workers: Vec<Worker<ActorId>> = (0..threads.max(1)).map(|_| Worker::new_lifo()).collect();
        let stealers = workers.iter().map(Worker::stealer).collect();
        let pool = Pool {
            id: NEXT_POOL_ID.fetch_add(1, SeqCst),
            injector: Injector::new(),
            stealers,
            sleepers: Mutex::new(Vec::new()),
            sleeping: AtomicUsize::new(0),
        };
        (pool, workers)
    }

    pub(crate) fn submit(&self, task: ActorId) {
        let local = LOCAL.with(|l| match &*l.borrow() {
            Some((id, w)) if *id == self.id => {
                w.push(task);
                true
            }
            _ => false,
        });
        if !local {
            self.injector.push(task);
        }
        self.wake_one();
    }

    /// Submits a task that used up its budget: it goes to the back of the
    /// global queue, so the tasks it fed run first.
    pub(crate) fn submit_yielded(&self, task: ActorId) {
        self.injector.push(task);
        self.wake_one();
    }

    fn wake_one(&self) {
        if self.sleeping.load(SeqCst) > 0 {
            if let Some(t) = self.sleepers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                self.sleeping.fetch_sub(1, SeqCst);
                t.unpark();
            }
        }
    }

    /// Wakes every sleeper (shutdown).
    pub(crate) fn wake_all(&self) {
        let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        for t in s.drain(..) {
            t.unpark();
        }
        self.sleeping.store(0, SeqCst);
    }

    fn find(&self, local: &Worker<ActorId>) -> Option<ActorId> {
        if let Some(t) = local.pop() {
            return Some(t);
        }
        loop {
            let mut retry = false;
            match self.injector.steal_batch_and_pop(local) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            for s in &self.stealers {
                match s.steal() {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    fn anything_queued(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// The worker loop: runs tasks with `run` until `stop()` says so.
    pub(crate) fn work(&self, worker: Worker<ActorId>, run: impl Fn(ActorId), stop: impl Fn() -> bool) {
        LOCAL.with(|l| *l.borrow_mut() = Some((self.id, worker)));
        while !stop() {
            let task = LOCAL.with(|l| l.borrow().as_ref().and_then(|(_, w)| self.find(w)));
            match task {
                Some(t) => run(t),
                None => self.sleep(&stop),
            }
        }
        LOCAL.with(|l| *l.borrow_mut() = None);
    }

    fn sleep(&self, stop: &impl Fn() -> bool) {
        let me = thread::current();
        {
            let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            s.push(me.clone());
            self.sleeping.fetch_add(1, SeqCst);
        }
        if !self.anything_queued() && !stop() {
            thread::park_timeout(Duration::from_millis(50));
        }
        let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = s.iter().position(|t| t.id() == me.id()) {
            s.swap_remove(i);
            self.sleeping.fetch_sub(1, SeqCst);
        }
    }
}
