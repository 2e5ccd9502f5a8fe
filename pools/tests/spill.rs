//! The spill store through its public API: tier placement, bounds, reclaiming,
//! corruption, cleanup of the spill directory, and a model-based proptest.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use garner_pools::{SpillConfig, SpillError, SpillHandle, SpillStore, Tier};
use proptest::prelude::*;

/// Incompressible bytes, the same for the same seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn store_in(parent: &Path, memory: u64, mapped: u64, file: u64, segment: u64) -> SpillStore {
    let config = SpillConfig {
        dir: Some(parent.to_path_buf()),
        ..SpillConfig::with_bounds(memory, mapped, file, segment)
    };
    SpillStore::new(config).unwrap()
}

/// Stored size of a 1000-byte incompressible payload.
fn frame_of_1000() -> u64 {
    let mut probe = SpillStore::new(SpillConfig::memory_only(1 << 20)).unwrap();
    probe.put(&noise(1000, 0)).unwrap().stored_bytes()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn records_round_trip_through_all_three_tiers_in_order_until_full() {
    let parent = tempfile::tempdir().unwrap();
    let len = frame_of_1000();
    // Room for 2 records in memory, 2 segments of 1 record, 3 in files.
    let mut store = store_in(parent.path(), 2 * len + 10, 2 * len + 20, 3 * len + 30, len + 10);
    let mut placed = Vec::new();
    let full = loop {
        let payload = noise(1000, placed.len() as u64);
        match store.put(&payload) {
            Ok(h) => placed.push((h, payload)),
            Err(e) => break e,
        }
    };
    let tiers: Vec<Tier> = placed.iter().map(|(h, _)| h.tier()).collect();
    use Tier::{File, Mapped, Memory};
    assert_eq!(tiers, [Memory, Memory, Mapped, Mapped, File, File, File]);
    match full {
        SpillError::Full { requested, memory_free, mapped_free, file_free } => {
            assert_eq!((requested, memory_free, mapped_free, file_free), (len, 10, 10, 30));
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(full.to_string().starts_with(&format!("spill store full: {len} bytes fit in no tier")));
    let stats = store.stats();
    assert_eq!((stats.records, stats.per_tier_records), (7, [2, 2, 3]));
    assert_eq!(stats.per_tier_bytes, [2 * len, 2 * len, 3 * len]);
    assert_eq!(stats.files, 5, "two segments, three plain files (they roll at the segment size)");
    for (h, payload) in &placed {
        assert_eq!(&store.get(*h).unwrap(), payload, "{} tier", h.tier());
    }
    for (h, payload) in placed {
        assert_eq!(store.take(h).unwrap(), payload);
    }
}

#[test]
fn freeing_a_record_makes_room_in_its_tier_again() {
    let parent = tempfile::tempdir().unwrap();
    let len = frame_of_1000();
    let mut store = store_in(parent.path(), len, len, len, len);
    let handles: Vec<SpillHandle> = (0..3).map(|i| store.put(&noise(1000, i)).unwrap()).collect();
    assert!(matches!(store.put(&noise(1000, 3)), Err(SpillError::Full { .. })));
    for h in handles {
        store.free(h);
        let again = store.put(&noise(1000, 4)).unwrap();
        assert_eq!(again.tier(), h.tier(), "the freed room is reused first");
        assert!(matches!(store.put(&noise(1000, 5)), Err(SpillError::Full { .. })));
    }
}

#[test]
fn a_record_larger_than_a_segment_goes_to_the_file_tier() {
    let parent = tempfile::tempdir().unwrap();
    let mut store = store_in(parent.path(), 0, 1 << 20, 1 << 20, 512);
    assert_eq!(store.put(&noise(400, 1)).unwrap().tier(), Tier::Mapped);
    let big = noise(1000, 2);
    let h = store.put(&big).unwrap();
    assert_eq!(h.tier(), Tier::File);
    assert_eq!(store.take(h).unwrap(), big);
}

#[test]
fn an_emptied_segment_is_deleted_and_the_active_one_is_reset() {
    let parent = tempfile::tempdir().unwrap();
    let len = frame_of_1000();
    // Segments of two records each, three of them; nothing else.
    let mut store = store_in(parent.path(), 0, 6 * len, 0, 2 * len);
    let handles: Vec<SpillHandle> = (0..6).map(|i| store.put(&noise(1000, i)).unwrap()).collect();
    let dir = store.dir().unwrap().to_path_buf();
    assert_eq!((store.stats().files, files_in(&dir)), (3, 3));

    store.free(handles[0]);
    assert_eq!(store.stats().files, 3, "the first segment still holds a record");
    store.free(handles[1]);
    assert_eq!((store.stats().files, files_in(&dir)), (2, 2), "the emptied first segment is deleted");
    assert_eq!(store.get(handles[2]).unwrap(), noise(1000, 2), "other segments are untouched");

    store.free(handles[4]);
    store.free(handles[5]);
    assert_eq!(store.stats().files, 2, "the active segment is reset, not deleted");
    let reused = store.put(&noise(1000, 9)).unwrap();
    assert_eq!(reused.tier(), Tier::Mapped);
    assert!(matches!(store.get(handles[4]), Err(SpillError::Corrupted { tier: Tier::Mapped, .. })));
    assert_eq!(store.take(reused).unwrap(), noise(1000, 9));
}

#[test]
fn an_emptied_plain_file_is_deleted_and_its_bytes_count_until_then() {
    let parent = tempfile::tempdir().unwrap();
    let len = frame_of_1000();
    // Files roll every two records; four records fill the tier.
    let mut store = store_in(parent.path(), 0, 0, 4 * len, 2 * len);
    let handles: Vec<SpillHandle> = (0..4).map(|i| store.put(&noise(1000, i)).unwrap()).collect();
    assert!(handles.iter().all(|h| h.tier() == Tier::File));
    assert_eq!(store.stats().files, 2);

    store.free(handles[0]);
    assert!(
        matches!(store.put(&noise(1000, 8)), Err(SpillError::Full { file_free: 0, .. })),
        "garbage counts"
    );
    store.free(handles[1]);
    assert_eq!(store.stats().files, 1, "the emptied first file is deleted");
    assert_eq!(files_in(store.dir().unwrap()), 1);
    let h = store.put(&noise(1000, 8)).unwrap();
    assert_eq!(store.take(h).unwrap(), noise(1000, 8));
}

#[test]
fn the_test_hook_corrupts_a_record_in_each_tier() {
    let parent = tempfile::tempdir().unwrap();
    let len = frame_of_1000();
    let mut store = store_in(parent.path(), len, len, len, len);
    let handles: Vec<SpillHandle> = (0..3).map(|seed| store.put(&noise(1000, seed)).unwrap()).collect();
    for (h, tier) in handles.into_iter().zip(Tier::ALL) {
        assert_eq!(h.tier(), tier);
        store.corrupt_for_test(h);
        let err = store.get(h).unwrap_err();
        assert!(matches!(err, SpillError::Corrupted { tier, .. } if tier == h.tier()), "{err}");
        assert!(err.to_string().starts_with(&format!("spilled record corrupted in the {tier} tier")));
        assert!(store.take(h).is_err());
    }
    let stats = store.stats();
    assert_eq!(
        (stats.records, stats.bytes_stored, stats.frees),
        (0, 0, 3),
        "take frees a corrupted record too"
    );
}

#[test]
fn stats_count_puts_gets_frees_and_return_to_zero() {
    let parent = tempfile::tempdir().unwrap();
    let len = frame_of_1000();
    let mut store = store_in(parent.path(), 2 * len, 2 * len, 4 * len, len);
    let payloads: Vec<Vec<u8>> = (0..6).map(|i| noise(1000, i)).collect();
    let handles: Vec<SpillHandle> = payloads.iter().map(|p| store.put(p).unwrap()).collect();
    let stats = store.stats();
    assert_eq!((stats.records, stats.puts, stats.bytes_in), (6, 6, 6000));
    assert_eq!(stats.bytes_stored, handles.iter().map(SpillHandle::stored_bytes).sum::<u64>());
    assert_eq!(stats.per_tier_records.iter().sum::<u64>(), stats.records);
    assert_eq!(stats.per_tier_bytes.iter().sum::<u64>(), stats.bytes_stored);

    store.get(handles[0]).unwrap();
    for h in handles {
        store.take(h).unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.records, stats.bytes_stored), (0, 0));
    assert_eq!((stats.per_tier_records, stats.per_tier_bytes), ([0; 3], [0; 3]));
    assert_eq!((stats.gets, stats.frees, stats.bytes_in), (7, 6, 6000));
}

#[test]
fn a_memory_only_store_never_touches_disk() {
    let mut store = SpillStore::new(SpillConfig::memory_only(4096)).unwrap();
    let h = store.put(&vec![b'a'; 100_000]).unwrap();
    assert!(h.stored_bytes() < 1000, "repetitive payloads compress");
    assert!(matches!(store.put(&noise(5000, 1)), Err(SpillError::Full { .. })));
    assert_eq!(store.dir(), None);
    assert_eq!(store.stats().files, 0);
    assert_eq!(store.take(h).unwrap(), vec![b'a'; 100_000]);
}

#[test]
fn the_spill_dir_is_created_lazily_and_removed_on_drop() {
    let parent = tempfile::tempdir().unwrap();
    let mut store = store_in(parent.path(), 0, 4096, 1 << 20, 4096);
    assert_eq!(store.dir(), None);
    store.put(&noise(1000, 1)).unwrap();
    store.put(&noise(10_000, 2)).unwrap();
    let dir = store.dir().unwrap().to_path_buf();
    assert!(dir.starts_with(parent.path()));
    assert!(dir.file_name().unwrap().to_str().unwrap().starts_with("garner-spill-"));
    assert_eq!(files_in(&dir), 2);
    drop(store);
    assert!(!dir.exists());
    assert_eq!(files_in(parent.path()), 0);
}

#[test]
fn the_spill_dir_is_removed_when_a_panic_unwinds_through_its_owner() {
    let parent = tempfile::tempdir().unwrap();
    let seen: Mutex<Option<PathBuf>> = Mutex::new(None);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut store = store_in(parent.path(), 0, 4096, 1 << 20, 4096);
        store.put(&noise(1000, 1)).unwrap();
        store.put(&noise(10_000, 2)).unwrap();
        *seen.lock().unwrap() = store.dir().map(Path::to_path_buf);
        // resume_unwind unwinds like a panic without printing a panic message.
        std::panic::resume_unwind(Box::new("injected failure"));
    }));
    assert!(outcome.is_err());
    let dir = seen.into_inner().unwrap().expect("the store had created its dir");
    assert!(!dir.exists());
    assert_eq!(files_in(parent.path()), 0);
}

#[test]
fn the_spill_dir_is_removed_when_its_owner_returns_an_error() {
    fn spill_until_full(parent: &Path, seen: &mut Option<PathBuf>) -> Result<(), SpillError> {
        let mut store = store_in(parent, 0, 0, 4096, 4096);
        for seed in 0.. {
            store.put(&noise(1000, seed))?;
            *seen = store.dir().map(Path::to_path_buf);
        }
        Ok(())
    }
    let parent = tempfile::tempdir().unwrap();
    let mut seen = None;
    assert!(matches!(spill_until_full(parent.path(), &mut seen), Err(SpillError::Full { .. })));
    assert!(!seen.unwrap().exists());
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>),
    Get(usize),
    Take(usize),
    Free(usize),
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..1500, any::<u64>()).prop_map(|(len, seed)| noise(len, seed)),
        (any::<u8>(), 0usize..6000).prop_map(|(byte, len)| vec![byte; len]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => payload().prop_map(Op::Put),
        2 => any::<usize>().prop_map(Op::Get),
        2 => any::<usize>().prop_map(Op::Take),
        1 => any::<usize>().prop_map(Op::Free),
    ]
}

const MEMORY: u64 = 3000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random put/get/take/free sequences against a HashMap of live payloads.
    #[test]
    fn random_operations_match_a_hashmap_model(ops in prop::collection::vec(op(), 1..60)) {
        let parent = tempfile::tempdir().unwrap();
        let mut store = store_in(parent.path(), MEMORY, 6000, 8000, 2000);
        let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut live: Vec<(u64, SpillHandle)> = Vec::new();
        for (key, op) in (0u64..).zip(ops) {
            let pick = |i: usize| (!live.is_empty()).then(|| i % live.len());
            match op {
                Op::Put(payload) => {
                    let memory_used = store.stats().per_tier_bytes[0];
                    match store.put(&payload) {
                        Ok(h) => {
                            if h.tier() != Tier::Memory {
                                prop_assert!(memory_used + h.stored_bytes() > MEMORY, "memory had room");
                            }
                            model.insert(key, payload);
                            live.push((key, h));
                        }
                        Err(SpillError::Full { requested, memory_free, file_free, .. }) => {
                            prop_assert!(memory_free < requested && file_free < requested);
                        }
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                Op::Get(i) => if let Some(i) = pick(i) {
                    let (k, h) = live[i];
                    prop_assert_eq!(&store.get(h).unwrap(), &model[&k]);
                },
                Op::Take(i) => if let Some(i) = pick(i) {
                    let (k, h) = live.swap_remove(i);
                    prop_assert_eq!(store.take(h).unwrap(), model.remove(&k).unwrap());
                },
                Op::Free(i) => if let Some(i) = pick(i) {
                    let (k, h) = live.swap_remove(i);
                    store.free(h);
                    model.remove(&k);
                },
            }
            let stats = store.stats();
            prop_assert_eq!(stats.records, model.len() as u64);
            prop_assert_eq!(stats.bytes_stored, live.iter().map(|(_, h)| h.stored_bytes()).sum::<u64>());
            prop_assert_eq!(stats.per_tier_records.iter().sum::<u64>(), stats.records);
        }
        for (k, h) in live {
            prop_assert_eq!(store.take(h).unwrap(), model.remove(&k).unwrap());
        }
        let stats = store.stats();
        prop_assert_eq!((stats.records, stats.bytes_stored, stats.per_tier_bytes), (0, 0, [0; 3]));
        prop_assert!(stats.files <= 2, "at most the reset active segment and file remain");
        let dir = store.dir().map(Path::to_path_buf);
        drop(store);
        prop_assert!(dir.is_none_or(|d| !d.exists()));
    }
}

#[test]
fn written_segment_pages_leave_the_resident_set_and_read_back_intact() {
    // Memory tier off: 4 MiB of records go to one 8 MiB segment.
    let config = SpillConfig::with_bounds(0, 8 << 20, 0, 8 << 20);
    let mut store = SpillStore::new(config).unwrap();
    let payload: Vec<u8> = (0..64 * 1024u32).flat_map(|i| i.to_le_bytes()).collect(); // incompressible enough
    let handles: Vec<_> = (0..16).map(|_| store.put(&payload).unwrap()).collect();
    assert!(handles.iter().all(|h| h.tier() == garner_pools::Tier::Mapped));
    #[cfg(target_os = "linux")]
    {
        let rss_kib = segment_rss_kib(&store);
        assert!(rss_kib <= 2048, "{rss_kib} KiB of the segment stayed resident");
    }
    for h in &handles {
        assert_eq!(store.get(*h).unwrap(), payload, "released pages read back from the file");
    }
    #[cfg(target_os = "linux")]
    {
        // Reads go through the file, not the map: nothing came back in.
        let rss_kib = segment_rss_kib(&store);
        assert!(rss_kib <= 2048, "{rss_kib} KiB of the segment came back with reads");
        // Freeing releases a record's pages (and those it shares with a
        // neighbour, which still reads back intact).
        for h in &handles[..15] {
            assert_eq!(store.take(*h).unwrap(), payload);
        }
        let rss_kib = segment_rss_kib(&store);
        assert!(rss_kib <= 512, "{rss_kib} KiB of freed records stayed resident");
        assert_eq!(store.take(handles[15]).unwrap(), payload);
    }
}

/// Resident KiB of the store's mapped segment files (from /proc/self/smaps).
#[cfg(target_os = "linux")]
fn segment_rss_kib(store: &SpillStore) -> u64 {
    let dir = store.dir().unwrap().to_string_lossy().into_owned();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut in_segment = false;
    let mut rss_kib = 0u64;
    for line in smaps.lines() {
        if line.contains(" /") || line.ends_with("]") || line.split_whitespace().count() == 5 {
            in_segment = line.contains(&dir);
        } else if in_segment && line.starts_with("Rss:") {
            rss_kib += line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
        }
    }
    rss_kib
}

#[test]
fn memory_records_rent_pooled_buffers_and_return_them_when_freed() {
    let pool = garner_pools::SegmentPool::new(1 << 20);
    let mut store = SpillStore::with_pool(SpillConfig::memory_only(1 << 20), pool.clone()).unwrap();
    let budget = garner_pools::MemoryBudget::unbounded();
    let leaks = garner_pools::testing::LeakCheck::new(&budget, &pool);
    let big: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let handles: Vec<_> = (0..4).map(|_| store.put(&big).unwrap()).collect();
    let small = store.put(b"tiny").unwrap();
    assert_eq!(pool.stats().rents, 4, "only frames of a size class or more are pooled");
    assert!(leaks.check().is_err(), "the records hold their buffers");
    for h in handles {
        assert_eq!(store.take(h).unwrap(), big);
    }
    assert_eq!(store.take(small).unwrap(), b"tiny");
    assert_eq!(leaks.check(), Ok(()));
    // A second round reuses the cached buffers.
    let h = store.put(&big).unwrap();
    store.free(h);
    assert!(pool.stats().hits >= 1);
    assert_eq!(leaks.check(), Ok(()));
}
