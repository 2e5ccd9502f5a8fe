//! Helpers for tests of code that rents from pools and reserves memory.
//!
//! DESIGN §6 asks that rented == returned at the end of every test. A
//! [`LeakCheck`] created at the top of a test checks exactly that when it
//! drops, after everything declared later in the test has dropped.

use crate::{MemoryBudget, SegmentPool};

/// Asserts, when dropped, that a [`SegmentPool`] got back every buffer it
/// rented and that a [`MemoryBudget`] has no bytes still reserved.
///
/// Create it first in a test, so it drops last (locals drop in reverse
/// order). When the thread is already panicking the drop checks nothing, so
/// the first failure is the one reported.
///
/// ```
/// use garner_pools::testing::LeakCheck;
/// use garner_pools::{MemoryBudget, SegmentPool};
///
/// let budget = MemoryBudget::unbounded();
/// let pool = SegmentPool::new(1 << 20);
/// let leaks = LeakCheck::new(&budget, &pool);
///
/// let buf = pool.rent(100);
/// assert!(leaks.check().is_err(), "the buffer is still out");
/// drop(buf);
/// assert_eq!(leaks.check(), Ok(()));
/// ```
#[derive(Debug)]
pub struct LeakCheck {
    budget: MemoryBudget,
    pool: SegmentPool,
}

impl LeakCheck {
    /// Watches `budget` and `pool` (both cheap clones of the shared state).
    pub fn new(budget: &MemoryBudget, pool: &SegmentPool) -> Self {
        Self { budget: budget.clone(), pool: pool.clone() }
    }

    /// Watches `budget` and its buffer pool ([`MemoryBudget::buffers`]).
    pub fn of(budget: &MemoryBudget) -> Self {
        Self::new(budget, budget.buffers())
    }

    /// `Ok` when nothing is outstanding; otherwise what leaked, one clause per
    /// problem.
    pub fn check(&self) -> Result<(), String> {
        let pool = self.pool.stats();
        let budget = self.budget.stats();
        let mut leaks = Vec::new();
        if pool.rents != pool.returns {
            leaks.push(format!(
                "segment pool: {} rents but {} returns ({} buffers not returned)",
                pool.rents,
                pool.returns,
                pool.rents.abs_diff(pool.returns)
            ));
        }
        if pool.bytes_outstanding != 0 {
            leaks.push(format!("segment pool: {} bytes outstanding", pool.bytes_outstanding));
        }
        if budget.reserved_bytes != 0 {
            leaks.push(format!(
                "memory budget: {} bytes still reserved ({} live reservations)",
                budget.reserved_bytes, budget.live_reservations
            ));
        }
        if leaks.is_empty() {
            Ok(())
        } else {
            Err(leaks.join("; "))
        }
    }
}

impl Drop for LeakCheck {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Err(leaks) = self.check() {
            panic!("leak check failed: {leaks}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_test_passes() {
        let budget = MemoryBudget::unbounded();
        let pool = SegmentPool::new(0);
        let leaks = LeakCheck::new(&budget, &pool);
        {
            let mut r = budget.reservation("r");
            r.try_grow(10).unwrap();
            let _buf = pool.rent(10);
        }
        assert_eq!(leaks.check(), Ok(()));
    }

    #[test]
    fn every_leak_is_named() {
        let budget = MemoryBudget::unbounded();
        let pool = SegmentPool::new(0);
        let leaks = LeakCheck::new(&budget, &pool);
        let buf = pool.rent(1);
        let mut r = budget.reservation("r");
        r.try_grow(10).unwrap();
        let report = leaks.check().unwrap_err();
        assert_eq!(
            report,
            "segment pool: 1 rents but 0 returns (1 buffers not returned); \
             segment pool: 4096 bytes outstanding; \
             memory budget: 10 bytes still reserved (1 live reservations)"
        );
        drop((buf, r));
        assert_eq!(leaks.check(), Ok(()));
    }

    #[test]
    #[should_panic(expected = "leak check failed: segment pool: 1 rents but 0 returns")]
    fn drop_panics_on_a_leak() {
        let budget = MemoryBudget::unbounded();
        let pool = SegmentPool::new(0);
        let buf = pool.rent(1);
        let leaks = LeakCheck::new(&budget, &pool);
        drop(leaks);
        drop(buf);
    }

    #[test]
    fn drop_stays_quiet_while_unwinding() {
        let budget = MemoryBudget::unbounded();
        let pool = SegmentPool::new(0);
        let result = std::panic::catch_unwind(|| {
            let _leaks = LeakCheck::new(&budget, &pool);
            std::mem::forget(pool.rent(1));
            panic!("the test's own failure");
        });
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the test's own failure"));
    }
}
