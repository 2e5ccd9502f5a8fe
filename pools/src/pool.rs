//! A pool of byte buffers by power-of-two size class.
//!
//! The protocol:
//! 1. A caller asks [`SegmentPool::rent`] for a buffer of at least
//!    `min_capacity` bytes. The request is rounded up to its size class
//!    (a power of two from [`SegmentPool::MIN_CLASS_BYTES`] to
//!    [`SegmentPool::MAX_CLASS_BYTES`]); a cached buffer of that class is
//!    reused (a *hit*), else a new one is allocated (a *miss*). Requests past
//!    the largest class are allocated to size, unpooled, and still counted.
//! 2. The caller gets a [`PooledBuffer`], an RAII guard that derefs to an empty
//!    `Vec<u8>` whose capacity is at least `min_capacity`.
//! 3. Dropping the guard clears the buffer and caches it in the class its
//!    capacity now fills, unless the cache already holds `max_cached_bytes`
//!    (or the buffer is unpooled), in which case the buffer is freed.
//!
//! ```text
//!   rent(5000) ──► class 8 KiB ──► [buf, buf, …] ──pop──► PooledBuffer
//!                                        ▲                    │ drop
//!                                        └── push if cache ───┘
//!                                            has room, else free
//! ```
//!
//! Each class has its own `Mutex`, held only to push or pop one buffer; the
//! counters are atomics. `bytes_outstanding` counts each guard's capacity at
//! the moment it was rented, so a caller that grows the `Vec` past it does not
//! unbalance the figures.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// log2 of the smallest class (4 KiB).
const MIN_CLASS_SHIFT: u32 = 12;
/// log2 of the largest class (64 MiB).
const MAX_CLASS_SHIFT: u32 = 26;
/// Number of size classes.
const CLASSES: usize = (MAX_CLASS_SHIFT - MIN_CLASS_SHIFT + 1) as usize;

/// Plain statistics of a [`SegmentPool`], read by tests and telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentPoolStats {
    /// Buffers handed out by [`SegmentPool::rent`].
    pub rents: u64,
    /// Guards dropped (the buffer cached or freed).
    pub returns: u64,
    /// Sum of the capacities, at rent time, of the guards alive now.
    pub bytes_outstanding: u64,
    /// Sum of the capacities of the buffers cached now; never more than the
    /// pool's `max_cached_bytes`.
    pub bytes_cached: u64,
    /// Rents served from the cache.
    pub hits: u64,
    /// Rents that allocated (including every unpooled rent).
    pub misses: u64,
    /// Returns that freed the buffer instead of caching it: the cache was
    /// full, the buffer was unpooled, or its capacity fits no class.
    pub discards: u64,
}

/// A pool of `Vec<u8>` buffers by power-of-two size class, bounded by the
/// bytes it keeps cached. Cheap to clone: clones share one pool. Thread-safe;
/// a guard may be dropped on any thread.
///
/// ```
/// use garner_pools::SegmentPool;
/// let pool = SegmentPool::new(1 << 20);
/// let mut buf = pool.rent(5000);
/// assert!(buf.is_empty() && buf.capacity() >= 5000);
/// buf.extend_from_slice(b"segment bytes");
/// drop(buf); // back to the 8 KiB class, cleared
///
/// let again = pool.rent(6000); // the same class: reused
/// assert!(again.is_empty());
/// let stats = pool.stats();
/// assert_eq!((stats.rents, stats.hits, stats.misses), (2, 1, 1));
/// drop(again);
/// assert_eq!(pool.stats().bytes_outstanding, 0);
/// ```
#[derive(Clone)]
pub struct SegmentPool {
    shared: Arc<Shared>,
}

struct Shared {
    max_cached_bytes: u64,
    /// `classes[i]` holds cleared buffers of capacity in
    /// `[2^(MIN_CLASS_SHIFT + i), 2^(MIN_CLASS_SHIFT + i + 1))`.
    classes: [Mutex<Vec<Vec<u8>>>; CLASSES],
    rents: AtomicU64,
    returns: AtomicU64,
    bytes_outstanding: AtomicU64,
    bytes_cached: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    discards: AtomicU64,
}

impl SegmentPool {
    /// Capacity of the smallest size class: smaller requests get this much.
    pub const MIN_CLASS_BYTES: usize = 1 << MIN_CLASS_SHIFT;
    /// Capacity of the largest size class: larger requests are unpooled.
    pub const MAX_CLASS_BYTES: usize = 1 << MAX_CLASS_SHIFT;

    /// An empty pool that keeps at most `max_cached_bytes` of returned
    /// buffers (0 caches nothing; every return frees).
    pub fn new(max_cached_bytes: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_cached_bytes,
                classes: std::array::from_fn(|_| Mutex::new(Vec::new())),
                rents: AtomicU64::new(0),
                returns: AtomicU64::new(0),
                bytes_outstanding: AtomicU64::new(0),
                bytes_cached: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                discards: AtomicU64::new(0),
            }),
        }
    }

    /// The most bytes this pool keeps cached.
    pub fn max_cached_bytes(&self) -> u64 {
        self.shared.max_cached_bytes
    }

    /// An empty buffer of capacity at least `min_capacity`, reused from its
    /// size class when one is cached. It goes back to the pool when the guard
    /// drops.
    pub fn rent(&self, min_capacity: usize) -> PooledBuffer {
        let s = &self.shared;
        let (buf, origin) = match rent_class(min_capacity) {
            Some(class) => {
                let cached = s.lock(class).pop();
                let buf = match cached {
                    Some(buf) => {
                        s.bytes_cached.fetch_sub(buf.capacity() as u64, Ordering::Relaxed);
                        s.hits.fetch_add(1, Ordering::Relaxed);
                        buf
                    }
                    None => {
                        s.misses.fetch_add(1, Ordering::Relaxed);
                        Vec::with_capacity(Self::MIN_CLASS_BYTES << class)
                    }
                };
                (buf, Origin::Pooled)
            }
            None => {
                s.misses.fetch_add(1, Ordering::Relaxed);
                (Vec::with_capacity(min_capacity), Origin::Unpooled)
            }
        };
        debug_assert!(buf.is_empty() && buf.capacity() >= min_capacity);
        let rented_capacity = buf.capacity() as u64;
        s.rents.fetch_add(1, Ordering::Relaxed);
        s.bytes_outstanding.fetch_add(rented_capacity, Ordering::Relaxed);
        PooledBuffer { pool: self.clone(), buf, rented_capacity, origin }
    }

    /// Current figures. Each counter is read on its own, so a snapshot taken
    /// while other threads rent and return may be momentarily inconsistent.
    pub fn stats(&self) -> SegmentPoolStats {
        let s = &self.shared;
        SegmentPoolStats {
            rents: s.rents.load(Ordering::Relaxed),
            returns: s.returns.load(Ordering::Relaxed),
            bytes_outstanding: s.bytes_outstanding.load(Ordering::Relaxed),
            bytes_cached: s.bytes_cached.load(Ordering::Relaxed),
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            discards: s.discards.load(Ordering::Relaxed),
        }
    }

    /// Takes back a guard's buffer: caches it if it fits a class and the
    /// cache has room, frees it otherwise.
    fn give_back(&self, mut buf: Vec<u8>, rented_capacity: u64, origin: Origin) {
        let s = &self.shared;
        s.bytes_outstanding.fetch_sub(rented_capacity, Ordering::Relaxed);
        s.returns.fetch_add(1, Ordering::Relaxed);
        let class = match origin {
            Origin::Pooled => return_class(buf.capacity()),
            Origin::Unpooled => None,
        };
        let cached = class.is_some_and(|class| {
            let capacity = buf.capacity() as u64;
            // Claim room in the cache before pushing, so the bound holds even
            // when many threads return at once.
            let claimed = s
                .bytes_cached
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cached| {
                    cached.checked_add(capacity).filter(|&next| next <= s.max_cached_bytes)
                })
                .is_ok();
            if claimed {
                buf.clear();
                s.lock(class).push(std::mem::take(&mut buf));
            }
            claimed
        });
        if !cached {
            s.discards.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Shared {
    /// The buffers of one class. A poisoned lock still guards a valid
    /// `Vec` of cleared buffers (push and pop do not panic midway), so poison
    /// is ignored.
    fn lock(&self, class: usize) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.classes[class].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SegmentPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentPool")
            .field("max_cached_bytes", &self.shared.max_cached_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The class a request of `min_capacity` bytes is served from, or `None` when
/// it is past the largest class.
fn rent_class(min_capacity: usize) -> Option<usize> {
    if min_capacity > SegmentPool::MAX_CLASS_BYTES {
        return None;
    }
    let size = min_capacity.max(SegmentPool::MIN_CLASS_BYTES).next_power_of_two();
    Some((size.trailing_zeros() - MIN_CLASS_SHIFT) as usize)
}

/// The class a returned buffer of `capacity` bytes fills (the largest class
/// not above it), or `None` when it is below the smallest class or at least
/// twice the largest.
fn return_class(capacity: usize) -> Option<usize> {
    if capacity < SegmentPool::MIN_CLASS_BYTES {
        return None;
    }
    let shift = usize::BITS - 1 - capacity.leading_zeros();
    (shift <= MAX_CLASS_SHIFT).then(|| (shift - MIN_CLASS_SHIFT) as usize)
}

/// Where a rented buffer goes when its guard drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// From a size class: cached again if there is room.
    Pooled,
    /// Larger than every class: always freed.
    Unpooled,
}

/// A buffer rented from a [`SegmentPool`]; derefs to `Vec<u8>` and goes back
/// to the pool on drop (on whatever thread drops it).
pub struct PooledBuffer {
    pool: SegmentPool,
    buf: Vec<u8>,
    rented_capacity: u64,
    origin: Origin,
}

impl PooledBuffer {
    /// The capacity the buffer had when rented, as counted in
    /// [`SegmentPoolStats::bytes_outstanding`].
    pub fn rented_capacity(&self) -> u64 {
        self.rented_capacity
    }
}

impl Deref for PooledBuffer {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.pool.give_back(buf, self.rented_capacity, self.origin);
    }
}

impl fmt::Debug for PooledBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuffer")
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .field("rented_capacity", &self.rented_capacity)
            .field("origin", &self.origin)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;

    #[test]
    fn requests_round_up_to_their_class() {
        assert_eq!(rent_class(0), Some(0));
        assert_eq!(rent_class(1), Some(0));
        assert_eq!(rent_class(4 * KIB), Some(0));
        assert_eq!(rent_class(4 * KIB + 1), Some(1));
        assert_eq!(rent_class(64 * MIB), Some(CLASSES - 1));
        assert_eq!(rent_class(64 * MIB + 1), None, "past the largest class: unpooled");
        assert_eq!(rent_class(usize::MAX), None);
    }

    #[test]
    fn returns_go_to_the_class_they_fill() {
        assert_eq!(return_class(4 * KIB - 1), None, "too small for any class");
        assert_eq!(return_class(4 * KIB), Some(0));
        assert_eq!(return_class(8 * KIB - 1), Some(0), "fills 4 KiB, not 8 KiB");
        assert_eq!(return_class(8 * KIB), Some(1));
        assert_eq!(return_class(128 * MIB - 1), Some(CLASSES - 1));
        assert_eq!(return_class(128 * MIB), None, "too large to keep");
    }

    #[test]
    fn a_buffer_grown_past_its_class_is_cached_by_its_new_capacity() {
        let pool = SegmentPool::new(u64::MAX);
        let mut buf = pool.rent(4 * KIB);
        assert_eq!(buf.rented_capacity(), 4 * KIB as u64);
        buf.reserve_exact(40 * KIB);
        let grown = buf.capacity();
        drop(buf);
        let stats = pool.stats();
        assert_eq!(stats.bytes_outstanding, 0, "counted by the rented capacity");
        assert_eq!(stats.bytes_cached, grown as u64);
        // It now serves the class it fills (32 KiB), not the 4 KiB one.
        assert_eq!(pool.rent(4 * KIB).capacity(), 4 * KIB);
        assert_eq!(pool.rent(32 * KIB).capacity(), grown);
    }

    #[test]
    fn a_buffer_shrunk_below_every_class_is_freed() {
        let pool = SegmentPool::new(u64::MAX);
        let mut buf = pool.rent(4 * KIB);
        buf.shrink_to(16);
        drop(buf);
        let stats = pool.stats();
        assert_eq!((stats.returns, stats.discards, stats.bytes_cached), (1, 1, 0));
    }
}
