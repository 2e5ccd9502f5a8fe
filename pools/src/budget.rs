//! A shared memory budget handing out RAII reservations.
//!
//! The protocol, as in DataFusion's memory pool:
//! 1. A consumer asks the budget for a [`Reservation`] (empty at first).
//! 2. It calls [`Reservation::try_grow`] before holding more bytes; an
//!    `Err(ResourcesExhausted)` tells it to spill or shed load instead.
//! 3. It calls [`Reservation::shrink`] when it lets bytes go; dropping the
//!    reservation gives back whatever it still holds.
//!
//! The sum of live reservations never exceeds the limit: growth is a single
//! compare-and-swap on the shared counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ByteSize;

/// The budget said no: granting `requested` more bytes would pass the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("memory budget exhausted: {consumer} asked for {requested} more bytes, {used} of {limit} in use")]
pub struct ResourcesExhausted {
    /// Name of the reservation that asked.
    pub consumer: String,
    /// Bytes asked for.
    pub requested: u64,
    /// Bytes reserved at the time.
    pub used: u64,
    /// The budget's limit.
    pub limit: u64,
}

#[derive(Debug)]
struct Shared {
    limit: u64,
    buffers: crate::SegmentPool,
    /// Bytes taken off the limit for growth the reservations do not see
    /// (set by an [`RssMonitor`](crate::RssMonitor)).
    squeeze: AtomicU64,
    used: AtomicU64,
    peak: AtomicU64,
    live: AtomicU64,
}

/// A memory budget shared by every consumer of a run. Cheap to clone.
///
/// ```
/// use garner_pools::{ByteSize, MemoryBudget};
/// let budget = MemoryBudget::new(ByteSize::kib(1));
/// let mut r = budget.reservation("accumulator");
/// r.try_grow(1000).unwrap();
/// assert!(r.try_grow(100).is_err()); // would pass 1 KiB
/// drop(r);
/// assert_eq!(budget.stats().reserved_bytes, 0);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    shared: Arc<Shared>,
}

/// Plain statistics of a budget or pool, read by the engine's telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The limit in bytes (`u64::MAX` when unbounded).
    pub limit_bytes: u64,
    /// Bytes currently reserved.
    pub reserved_bytes: u64,
    /// The highest `reserved_bytes` seen.
    pub peak_bytes: u64,
    /// Reservations alive now.
    pub live_reservations: u64,
    /// Bytes taken off the limit now (see [`MemoryBudget::set_squeeze`]).
    pub squeezed_bytes: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: ByteSize) -> Self {
        Self {
            shared: Arc::new(Shared {
                limit: limit.bytes(),
                buffers: crate::SegmentPool::new(16 << 20),
                squeeze: AtomicU64::new(0),
                used: AtomicU64::new(0),
                peak: AtomicU64::new(0),
                live: AtomicU64::new(0),
            }),
        }
    }

    /// A budget that never says no (it still counts).
    pub fn unbounded() -> Self {
        Self::new(ByteSize(u64::MAX))
    }

    /// A new, empty reservation named for its consumer.
    pub fn reservation(&self, consumer: impl Into<String>) -> Reservation {
        self.shared.live.fetch_add(1, Ordering::Relaxed);
        Reservation { budget: self.clone(), consumer: consumer.into(), size: 0 }
    }

    /// The run's buffer pool, shared by the consumers of this budget (spill
    /// stores rent their in-memory records from it); check it with
    /// [`LeakCheck`](crate::testing::LeakCheck).
    pub fn buffers(&self) -> &crate::SegmentPool {
        &self.shared.buffers
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.shared.limit
    }

    /// The limit growth is measured against now: the limit less the squeeze.
    pub fn effective_limit(&self) -> u64 {
        self.shared.limit.saturating_sub(self.shared.squeeze.load(Ordering::Relaxed))
    }

    /// Takes `bytes` off the limit for new growth (reservations already
    /// held are kept; they are refused growth until they fit again). Used
    /// when the process holds memory the reservations do not see.
    pub fn set_squeeze(&self, bytes: u64) {
        self.shared.squeeze.store(bytes, Ordering::Relaxed);
    }

    /// Current figures.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            limit_bytes: self.shared.limit,
            reserved_bytes: self.shared.used.load(Ordering::Relaxed),
            peak_bytes: self.shared.peak.load(Ordering::Relaxed),
            live_reservations: self.shared.live.load(Ordering::Relaxed),
            squeezed_bytes: self.shared.squeeze.load(Ordering::Relaxed),
        }
    }

    fn try_add(&self, consumer: &str, bytes: u64) -> Result<(), ResourcesExhausted> {
        let s = &self.shared;
        let mut used = s.used.load(Ordering::Relaxed);
        let limit = self.effective_limit();
        loop {
            let next = used.checked_add(bytes).filter(|&n| n <= limit).ok_or_else(|| ResourcesExhausted {
                consumer: consumer.to_owned(),
                requested: bytes,
                used,
                limit,
            })?;
            match s.used.compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    s.peak.fetch_max(next, Ordering::Relaxed);
                    return Ok(());
                }
                Err(actual) => used = actual,
            }
        }
    }

    fn sub(&self, bytes: u64) {
        self.shared.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes held against a [`MemoryBudget`]; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    consumer: String,
    size: u64,
}

impl Reservation {
    /// Bytes this reservation holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Grows by `bytes`, or says why not. On `Err` nothing changed.
    pub fn try_grow(&mut self, bytes: u64) -> Result<(), ResourcesExhausted> {
        self.budget.try_add(&self.consumer, bytes)?;
        self.size += bytes;
        Ok(())
    }

    /// Shrinks by `bytes`.
    ///
    /// # Panics
    /// If `bytes` is more than the reservation holds (a broken invariant).
    pub fn shrink(&mut self, bytes: u64) {
        assert!(bytes <= self.size, "shrink of {bytes} bytes past reservation size {}", self.size);
        self.budget.sub(bytes);
        self.size -= bytes;
    }

    /// Grows or shrinks to exactly `bytes`.
    pub fn try_resize(&mut self, bytes: u64) -> Result<(), ResourcesExhausted> {
        if bytes > self.size {
            self.try_grow(bytes - self.size)
        } else {
            self.shrink(self.size - bytes);
            Ok(())
        }
    }

    /// Gives everything back; the reservation stays usable.
    pub fn free(&mut self) {
        self.shrink(self.size);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.free();
        self.budget.shared.live.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_sum_past_the_limit() {
        let budget = MemoryBudget::new(ByteSize(100));
        let mut a = budget.reservation("a");
        let mut b = budget.reservation("b");
        a.try_grow(60).unwrap();
        let err = b.try_grow(50).unwrap_err();
        assert_eq!((err.used, err.limit, err.requested), (60, 100, 50));
        assert_eq!(b.size(), 0, "a refused grow changes nothing");
        b.try_grow(40).unwrap();
        a.shrink(10);
        b.try_resize(50).unwrap();
        assert_eq!(budget.stats().reserved_bytes, 100);
        assert_eq!(budget.stats().peak_bytes, 100);
        drop(a);
        assert_eq!(budget.stats().reserved_bytes, 50);
        drop(b);
        assert_eq!(
            budget.stats(),
            PoolStats {
                limit_bytes: 100,
                reserved_bytes: 0,
                peak_bytes: 100,
                live_reservations: 0,
                squeezed_bytes: 0
            }
        );
    }

    #[test]
    fn a_squeeze_refuses_growth_but_keeps_what_is_held() {
        let budget = MemoryBudget::new(ByteSize(100));
        let mut a = budget.reservation("a");
        a.try_grow(60).unwrap();
        budget.set_squeeze(50);
        assert_eq!(budget.effective_limit(), 50);
        assert_eq!(a.size(), 60, "held bytes stay");
        let err = a.try_grow(1).unwrap_err();
        assert_eq!(err.limit, 50);
        a.shrink(20);
        a.try_grow(10).unwrap();
        budget.set_squeeze(0);
        a.try_grow(50).unwrap();
        assert_eq!(budget.stats().reserved_bytes, 100);
    }

    #[test]
    fn concurrent_growth_respects_the_limit() {
        let budget = MemoryBudget::new(ByteSize(1000));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let budget = budget.clone();
                s.spawn(move || {
                    let mut r = budget.reservation("t");
                    for _ in 0..1000 {
                        if r.try_grow(7).is_ok() {
                            assert!(budget.stats().reserved_bytes <= 1000);
                            r.shrink(7);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.stats().reserved_bytes, 0);
        assert!(budget.stats().peak_bytes <= 1000);
    }
}
