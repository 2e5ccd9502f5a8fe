//! The segment pool and the leak check through their public API: classes,
//! capacity, the cache bound, stats, cross-thread returns, and a model-based
//! proptest of random rent/drop sequences.

use garner_pools::testing::LeakCheck;
use garner_pools::{MemoryBudget, PooledBuffer, SegmentPool, SegmentPoolStats};
use proptest::prelude::*;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

#[test]
fn buffers_are_rented_and_returned_across_classes() {
    let pool = SegmentPool::new(u64::MAX);
    let sizes = [0, 1, 4 * KIB, 4 * KIB + 1, 100 * KIB, MIB, 3 * MIB];
    let bufs: Vec<PooledBuffer> = sizes.iter().map(|&n| pool.rent(n)).collect();
    let caps: Vec<usize> = bufs.iter().map(|b| b.capacity()).collect();
    assert_eq!(caps, [4 * KIB, 4 * KIB, 4 * KIB, 8 * KIB, 128 * KIB, MIB, 4 * MIB]);
    let total: u64 = caps.iter().map(|&c| c as u64).sum();
    assert_eq!(pool.stats().bytes_outstanding, total);
    drop(bufs);

    let stats = pool.stats();
    assert_eq!((stats.rents, stats.returns, stats.bytes_outstanding), (7, 7, 0));
    assert_eq!(stats.bytes_cached, total, "every buffer is cached in its class");
    // Each class serves its own buffer back, without allocating.
    let again: Vec<PooledBuffer> = sizes.iter().map(|&n| pool.rent(n)).collect();
    assert_eq!(again.iter().map(|b| b.capacity()).collect::<Vec<_>>(), caps);
    assert_eq!(pool.stats().hits, 7);
    assert_eq!(pool.stats().bytes_cached, 0);
}

#[test]
fn a_rented_buffer_is_empty_and_large_enough() {
    let pool = SegmentPool::new(u64::MAX);
    for n in [0, 1, 4095, 4096, 4097, 65_535, 65_536, 1_000_000] {
        let mut buf = pool.rent(n);
        assert!(buf.is_empty(), "rent({n}) is empty");
        assert!(buf.capacity() >= n, "rent({n}) has capacity {}", buf.capacity());
        assert!(buf.capacity().is_power_of_two());
        buf.resize(n, 0xAB); // dirty it for the next renter
    }
    for n in [4097, 65_536, 1_000_000] {
        assert!(pool.rent(n).is_empty(), "a reused rent({n}) comes back cleared");
    }
}

#[test]
fn requests_past_the_largest_class_are_unpooled_but_counted() {
    let pool = SegmentPool::new(u64::MAX);
    let n = SegmentPool::MAX_CLASS_BYTES + 1;
    let buf = pool.rent(n);
    assert!(buf.capacity() >= n);
    assert_eq!(buf.rented_capacity(), buf.capacity() as u64);
    assert_eq!(pool.stats().bytes_outstanding, buf.capacity() as u64);
    drop(buf);
    let stats = pool.stats();
    assert_eq!(
        stats,
        SegmentPoolStats {
            rents: 1,
            returns: 1,
            bytes_outstanding: 0,
            bytes_cached: 0,
            hits: 0,
            misses: 1,
            discards: 1,
        }
    );
}

#[test]
fn returns_past_max_cached_bytes_are_freed() {
    let pool = SegmentPool::new(20 * KIB as u64);
    let bufs: Vec<PooledBuffer> = (0..4).map(|_| pool.rent(8 * KIB)).collect();
    drop(bufs);
    let stats = pool.stats();
    assert_eq!(stats.bytes_cached, 16 * KIB as u64, "two 8 KiB buffers fit in 20 KiB, a third does not");
    assert_eq!(stats.discards, 2);
    // A smaller buffer still fits in what is left.
    drop(pool.rent(4 * KIB));
    assert_eq!(pool.stats().bytes_cached, 20 * KIB as u64);
    assert_eq!(pool.stats().discards, 2);
}

#[test]
fn a_pool_that_caches_nothing_always_allocates() {
    let pool = SegmentPool::new(0);
    for _ in 0..3 {
        drop(pool.rent(KIB));
    }
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses, stats.discards, stats.bytes_cached), (0, 3, 3, 0));
}

#[test]
fn stats_balance_after_reuse() {
    let pool = SegmentPool::new(u64::MAX);
    let first = pool.rent(10 * KIB);
    let second = pool.rent(10 * KIB);
    assert_eq!(pool.stats().misses, 2, "nothing to reuse yet");
    drop(first);
    let third = pool.rent(9 * KIB);
    assert_eq!(pool.stats().hits, 1, "the 16 KiB class had one cached");
    drop((second, third));
    let stats = pool.stats();
    assert_eq!(stats.rents, stats.returns);
    assert_eq!(stats.rents, stats.hits + stats.misses);
    assert_eq!((stats.bytes_outstanding, stats.bytes_cached), (0, 32 * KIB as u64));
}

#[test]
fn clones_share_one_pool() {
    let pool = SegmentPool::new(u64::MAX);
    let other = pool.clone();
    drop(other.rent(KIB));
    assert_eq!(pool.stats().bytes_cached, 4 * KIB as u64);
    assert_eq!(other.max_cached_bytes(), u64::MAX);
}

#[test]
fn buffers_rented_on_one_thread_return_on_another() {
    let pool = SegmentPool::new(u64::MAX);
    let _leaks = LeakCheck::new(&MemoryBudget::unbounded(), &pool);
    let (tx, rx) = std::sync::mpsc::channel::<PooledBuffer>();
    std::thread::scope(|s| {
        let renter = pool.clone();
        s.spawn(move || {
            for i in 0..100 {
                let mut buf = renter.rent(KIB << (i % 5));
                buf.push(i as u8);
                tx.send(buf).unwrap();
            }
        });
        s.spawn(move || {
            for (i, buf) in rx.iter().enumerate() {
                assert_eq!(buf[..], [i as u8]);
                drop(buf);
            }
        });
    });
    let stats = pool.stats();
    assert_eq!((stats.rents, stats.returns, stats.bytes_outstanding), (100, 100, 0));
}

#[test]
fn concurrent_returns_respect_the_cache_bound() {
    let limit = 64 * KIB as u64;
    let pool = SegmentPool::new(limit);
    std::thread::scope(|s| {
        for t in 0..4 {
            let pool = pool.clone();
            s.spawn(move || {
                for i in 0..500 {
                    let bufs: Vec<_> = (0..3).map(|j| pool.rent(KIB << ((i + j + t) % 4))).collect();
                    assert!(pool.stats().bytes_cached <= limit);
                    drop(bufs);
                }
            });
        }
    });
    let stats = pool.stats();
    assert!(stats.bytes_cached <= limit);
    assert_eq!((stats.rents, stats.returns, stats.bytes_outstanding), (6000, 6000, 0));
}

#[test]
fn leak_check_passes_when_everything_is_returned() {
    let budget = MemoryBudget::unbounded();
    let pool = SegmentPool::new(MIB as u64);
    let leaks = LeakCheck::new(&budget, &pool);
    {
        let mut r = budget.reservation("accumulator");
        r.try_grow(5000).unwrap();
        let _a = pool.rent(5000);
        let _b = pool.rent(50);
    }
    assert_eq!(leaks.check(), Ok(()));
}

#[test]
fn leak_check_reports_a_leaked_guard() {
    let budget = MemoryBudget::unbounded();
    let pool = SegmentPool::new(MIB as u64);
    let leaks = LeakCheck::new(&budget, &pool);
    let kept = pool.rent(5000);
    let report = leaks.check().unwrap_err();
    assert!(report.contains("1 rents but 0 returns"), "{report}");
    assert!(report.contains("8192 bytes outstanding"), "{report}");
    assert!(!report.contains("memory budget"), "{report}");
    drop(kept);
}

#[test]
fn leak_check_reports_a_live_reservation() {
    let budget = MemoryBudget::unbounded();
    let pool = SegmentPool::new(MIB as u64);
    let leaks = LeakCheck::new(&budget, &pool);
    let mut r = budget.reservation("forgotten");
    r.try_grow(123).unwrap();
    let report = leaks.check().unwrap_err();
    assert_eq!(report, "memory budget: 123 bytes still reserved (1 live reservations)");
    drop(r);
    assert_eq!(leaks.check(), Ok(()));
}

#[derive(Debug, Clone)]
enum Op {
    Rent(usize),
    /// Drops the live guard at this index (modulo how many are live).
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..300 * KIB).prop_map(Op::Rent),
        2 => any::<usize>().prop_map(Op::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model (the list of live guards): `bytes_outstanding` is the
    /// sum of their capacities, the cache never passes its bound, and every
    /// rent is a hit or a miss.
    #[test]
    fn outstanding_bytes_track_live_guards(
        max_cached_kib in 0u64..512,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let max_cached = max_cached_kib * KIB as u64;
        let pool = SegmentPool::new(max_cached);
        let budget = MemoryBudget::unbounded();
        let leaks = LeakCheck::new(&budget, &pool);
        let mut live: Vec<PooledBuffer> = Vec::new();
        for op in ops {
            match op {
                Op::Rent(n) => {
                    let buf = pool.rent(n);
                    prop_assert!(buf.is_empty() && buf.capacity() >= n);
                    live.push(buf);
                }
                Op::Drop(i) if !live.is_empty() => {
                    let i = i % live.len();
                    drop(live.swap_remove(i));
                }
                Op::Drop(_) => {}
            }
            let stats = pool.stats();
            let model: u64 = live.iter().map(|b| b.capacity() as u64).sum();
            prop_assert_eq!(stats.bytes_outstanding, model);
            prop_assert_eq!(stats.rents - stats.returns, live.len() as u64);
            prop_assert_eq!(stats.rents, stats.hits + stats.misses);
            prop_assert!(stats.bytes_cached <= max_cached);
        }
        drop(live);
        prop_assert_eq!(leaks.check(), Ok(()));
    }
}
