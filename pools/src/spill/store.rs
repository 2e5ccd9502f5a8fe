//! [`SpillStore`]: places framed records in the first tier with room.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::record::Codec;
use super::run_dir::RunDir;
use super::seal::Sealer;
use super::tier_file::FileTier;
use super::tier_mapped::MappedTier;
use super::tier_memory::MemoryTier;
use super::{SpillConfig, SpillError, SpillHandle, SpillStats, Tier};
use crate::SegmentPool;

/// Scratch buffers for reads through `&self`.
#[derive(Default)]
struct ReadScratch {
    /// A frame read from a file.
    frame: Vec<u8>,
    /// A decrypted body.
    plain: Vec<u8>,
}

/// A bounded, three-tier store of spilled byte records.
///
/// 1. [`put`](Self::put) compresses the payload (an lz4 block with its size
///    prepended), encrypts it when [`SpillConfig`] has a key, and frames it:
///    magic, stored length, crc32, stored bytes.
/// 2. The frame goes to the first tier with room, each bounded by
///    [`SpillConfig`]: [`Tier::Memory`] (an owned buffer), [`Tier::Mapped`]
///    (appended to a memory-mapped segment file), [`Tier::File`] (appended to
///    a plain file). With no room anywhere, `put` returns
///    [`SpillError::Full`] and stores nothing.
/// 3. [`get`](Self::get) reads the frame back and checks magic, length and
///    checksum before decrypting and decompressing: any mismatch is
///    [`SpillError::Corrupted`], never a panic or wrong bytes.
/// 4. [`free`](Self::free) (or [`take`](Self::take) = get + free) releases
///    the record: memory at once, segments and files when all their records
///    are freed.
///
/// One store per owner (an accumulator instance); it is `Send` and `Sync`, and
/// reads through `&self`. Dropping it deletes its spill directory and every
/// file in it — also when the owner returns an error or unwinds from a panic.
///
/// ```
/// use garner_pools::{SpillConfig, SpillStore, Tier};
///
/// let mut store = SpillStore::new(SpillConfig::default())?;
/// let h = store.put(b"partial state of key 42")?;
/// assert_eq!(h.tier(), Tier::Memory);
/// assert_eq!(store.get(h)?, b"partial state of key 42");
/// assert_eq!(store.take(h)?, b"partial state of key 42"); // read and free
/// assert_eq!(store.stats().records, 0);
/// assert!(store.dir().is_none()); // the memory tier never touches disk
/// # Ok::<(), garner_pools::SpillError>(())
/// ```
pub struct SpillStore {
    memory: MemoryTier,
    mapped: MappedTier,
    file: FileTier,
    /// Declared after the tiers so their maps and files close before the
    /// directory is removed.
    run_dir: RunDir,
    codec: Codec,
    scratch: Mutex<ReadScratch>,
    next_seq: u32,
    bytes_in: u64,
    puts: u64,
    frees: u64,
    gets: AtomicU64,
}

impl SpillStore {
    /// A store with `config`'s bounds. Creates no files: the spill directory
    /// appears with the first record that needs the mapped or file tier.
    ///
    /// Fails only with the `encrypt` feature and a key, when the OS random
    /// source (for the nonce base) is unavailable.
    pub fn new(config: SpillConfig) -> Result<SpillStore, SpillError> {
        let cache = (config.memory_bytes / 4).min(16 << 20);
        Self::with_pool(config, SegmentPool::new(cache))
    }

    /// As [`new`](Self::new), with the memory tier's buffers (frames of a
    /// size class or more) rented from `pool` and returned when their
    /// records are freed, so a run can share one pool and check it.
    pub fn with_pool(config: SpillConfig, pool: SegmentPool) -> Result<SpillStore, SpillError> {
        #[cfg(feature = "encrypt")]
        let sealer = config.key.as_ref().map(Sealer::new).transpose()?;
        #[cfg(not(feature = "encrypt"))]
        let sealer: Option<Sealer> = None;
        Ok(SpillStore {
            memory: MemoryTier::new(config.memory_bytes, pool),
            mapped: MappedTier::new(config.mapped_bytes, config.segment_bytes),
            file: FileTier::new(config.file_bytes, config.segment_bytes),
            run_dir: RunDir::new(config.dir),
            codec: Codec::new(sealer),
            scratch: Mutex::new(ReadScratch::default()),
            next_seq: 0,
            bytes_in: 0,
            puts: 0,
            frees: 0,
            gets: AtomicU64::new(0),
        })
    }

    /// Compresses (and with a key, encrypts) `payload`, frames it and stores it
    /// in the first tier with room: memory, then mapped, then file.
    ///
    /// # Errors
    /// [`SpillError::Full`] when no tier has room (nothing is stored);
    /// [`SpillError::Io`] when a spill file cannot be created or written.
    pub fn put(&mut self, payload: &[u8]) -> Result<SpillHandle, SpillError> {
        let seq = self.next_seq;
        let frame = match self.codec.encode(payload, seq) {
            Ok(frame) => frame,
            Err(requested) => return Err(self.full(requested)),
        };
        let len = frame.len() as u32;
        let handle = |tier, id, offset| SpillHandle { offset, id, len, seq, tier };
        let placed = if let Some(slot) = self.memory.put(frame, seq) {
            handle(Tier::Memory, slot, 0)
        } else if let Some((id, offset)) = self.mapped.put(frame, &mut self.run_dir)? {
            handle(Tier::Mapped, id, offset)
        } else if let Some((id, offset)) = self.file.put(frame, &mut self.run_dir)? {
            handle(Tier::File, id, offset)
        } else {
            return Err(self.full(u64::from(len)));
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.bytes_in += payload.len() as u64;
        self.puts += 1;
        Ok(placed)
    }

    fn full(&self, requested: u64) -> SpillError {
        SpillError::Full {
            requested,
            memory_free: self.memory.free_bytes(),
            mapped_free: self.mapped.free_bytes(),
            file_free: self.file.free_bytes(),
        }
    }

    /// Reads the record back: checks its magic, length and checksum (and with
    /// a key, decrypts it), then decompresses it into a new vector.
    ///
    /// # Errors
    /// [`SpillError::Corrupted`] when any check fails or `h` names no live
    /// record; [`SpillError::Io`] when a file read fails.
    pub fn get(&self, h: SpillHandle) -> Result<Vec<u8>, SpillError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let mut guard = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        let ReadScratch { frame, plain } = &mut *guard;
        let frame: &[u8] = match h.tier {
            Tier::Memory => self.memory.frame(h)?,
            Tier::Mapped => {
                self.mapped.read_into(h, frame)?;
                frame
            }
            Tier::File => {
                self.file.read_into(h, frame)?;
                frame
            }
        };
        self.codec.decode(frame, h.seq, h.tier, plain)
    }

    /// [`get`](Self::get), then [`free`](Self::free) — the record is freed
    /// even when the read fails.
    pub fn take(&mut self, h: SpillHandle) -> Result<Vec<u8>, SpillError> {
        let payload = self.get(h);
        self.free(h);
        payload
    }

    /// Releases the record. Its memory is returned at once; in the mapped and
    /// file tiers its bytes become garbage, reclaimed when every record of its
    /// segment or file is freed (the file is then deleted, or reset if it is
    /// the one being appended to). A handle naming no live record is ignored
    /// where the store can tell; freeing a record twice is a logic error.
    pub fn free(&mut self, h: SpillHandle) {
        match h.tier {
            Tier::Memory => self.memory.free(h),
            Tier::Mapped => self.mapped.free(h),
            Tier::File => self.file.free(h),
        }
        self.frees += 1;
    }

    /// Counters of the store now.
    pub fn stats(&self) -> SpillStats {
        let per_tier_records = [self.memory.records(), self.mapped.records(), self.file.records()];
        let per_tier_bytes = [self.memory.used_bytes(), self.mapped.used_bytes(), self.file.used_bytes()];
        SpillStats {
            records: per_tier_records.iter().sum(),
            bytes_in: self.bytes_in,
            bytes_stored: per_tier_bytes.iter().sum(),
            per_tier_records,
            per_tier_bytes,
            puts: self.puts,
            gets: self.gets.load(Ordering::Relaxed),
            frees: self.frees,
            files: self.mapped.files() + self.file.files(),
        }
    }

    /// The run-scoped spill directory, once a record has needed it.
    pub fn dir(&self) -> Option<&Path> {
        self.run_dir.path()
    }

    /// Test hook: flips one byte of the stored record (its last byte, in the
    /// compressed body) on whatever tier holds it, so that the next
    /// [`get`](Self::get) or [`take`](Self::take) returns
    /// [`SpillError::Corrupted`]. For fault-injection tests of callers; it
    /// does nothing for a handle that names no live record.
    pub fn corrupt_for_test(&mut self, h: SpillHandle) {
        self.flip_byte(h, h.len_usize() - 1);
    }

    /// Flips byte `at` of the record's frame (header included).
    pub(crate) fn flip_byte(&mut self, h: SpillHandle, at: usize) {
        match h.tier {
            Tier::Memory => self.memory.flip_byte(h, at),
            Tier::Mapped => self.mapped.flip_byte(h, at),
            Tier::File => self.file.flip_byte(h, at),
        }
    }
}

impl std::fmt::Debug for SpillStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillStore").field("dir", &self.dir()).field("stats", &self.stats()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A store whose first record fills the memory tier, second the mapped
    /// tier, and the rest go to files (for ~200-byte incompressible payloads).
    fn one_record_per_tier(parent: &Path) -> SpillStore {
        let config = SpillConfig {
            dir: Some(parent.to_path_buf()),
            ..SpillConfig::with_bounds(300, 300, 10_000, 300)
        };
        SpillStore::new(config).unwrap()
    }

    fn one_in_each_tier(store: &mut SpillStore) -> Vec<(SpillHandle, Vec<u8>)> {
        let records: Vec<_> = (0..3)
            .map(|seed| {
                let payload = noise(200, seed);
                (store.put(&payload).unwrap(), payload)
            })
            .collect();
        let tiers: Vec<_> = records.iter().map(|(h, _)| h.tier()).collect();
        assert_eq!(tiers, Tier::ALL);
        records
    }

    #[test]
    fn every_flipped_byte_in_every_tier_reads_as_corrupted_and_flipping_back_heals_it() {
        let parent = tempfile::tempdir().unwrap();
        let mut store = one_record_per_tier(parent.path());
        for (h, payload) in one_in_each_tier(&mut store) {
            for at in 0..h.len_usize() {
                store.flip_byte(h, at);
                match store.get(h) {
                    Err(SpillError::Corrupted { tier, .. }) => assert_eq!(tier, h.tier()),
                    other => panic!("{} tier, byte {at}: expected Corrupted, got {other:?}", h.tier()),
                }
                store.flip_byte(h, at);
            }
            assert_eq!(store.take(h).unwrap(), payload);
        }
    }

    #[test]
    fn a_handle_read_after_free_is_corrupted_even_when_its_place_was_reused() {
        let parent = tempfile::tempdir().unwrap();
        let mut store = one_record_per_tier(parent.path());
        let mut again = Vec::new();
        for (h, _) in one_in_each_tier(&mut store) {
            store.free(h);
            assert!(matches!(store.get(h), Err(SpillError::Corrupted { .. })), "{} tier", h.tier());
            // Same size, same tier, same place: only the sequence number differs.
            let payload = noise(200, 99 + again.len() as u64);
            let reused = store.put(&payload).unwrap();
            assert_eq!((reused.tier(), reused.id, reused.offset), (h.tier(), h.id, h.offset));
            assert!(matches!(store.get(h), Err(SpillError::Corrupted { .. })), "{} tier", h.tier());
            if h.tier() == Tier::Memory {
                store.free(h); // a stale free the memory tier can tell apart: ignored
            }
            again.push((reused, payload));
        }
        for (h, payload) in again {
            assert_eq!(store.take(h).unwrap(), payload);
        }
        assert_eq!(store.stats().records, 0);
    }

    #[test]
    fn a_handle_is_small_and_the_store_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SpillStore>();
        assert!(std::mem::size_of::<SpillHandle>() <= 24);
    }

    #[cfg(feature = "encrypt")]
    mod encrypt {
        use super::*;

        fn keyed(parent: &Path, key: [u8; 32]) -> SpillStore {
            let config = SpillConfig {
                dir: Some(parent.to_path_buf()),
                key: Some(key),
                ..SpillConfig::with_bounds(300, 300, 10_000, 300)
            };
            SpillStore::new(config).unwrap()
        }

        #[test]
        fn sealed_records_round_trip_in_every_tier_and_hide_the_payload() {
            let parent = tempfile::tempdir().unwrap();
            let mut store = keyed(parent.path(), [7; 32]);
            for (h, payload) in one_in_each_tier(&mut store) {
                let frame = match h.tier {
                    Tier::Memory => store.memory.frame(h).unwrap().to_vec(),
                    Tier::Mapped => {
                        let mut buf = Vec::new();
                        store.mapped.read_into(h, &mut buf).unwrap();
                        buf
                    }
                    Tier::File => {
                        let mut buf = Vec::new();
                        store.file.read_into(h, &mut buf).unwrap();
                        buf
                    }
                };
                assert_eq!(&frame[..4], b"GSE1");
                // lz4 keeps incompressible bytes as literals; sealed, they vanish.
                assert!(!frame.windows(16).any(|w| w == &payload[..16]), "{} tier", h.tier());
                assert_eq!(store.get(h).unwrap(), payload);
            }
        }

        #[test]
        fn every_flipped_byte_of_a_sealed_record_is_corrupted() {
            let parent = tempfile::tempdir().unwrap();
            let mut store = keyed(parent.path(), [1; 32]);
            for (h, payload) in one_in_each_tier(&mut store) {
                for at in 0..h.len_usize() {
                    store.flip_byte(h, at);
                    assert!(matches!(store.get(h), Err(SpillError::Corrupted { .. })), "byte {at}");
                    store.flip_byte(h, at);
                }
                assert_eq!(store.get(h).unwrap(), payload);
            }
        }

        #[test]
        fn a_wrong_key_or_no_key_reads_as_corrupted() {
            let parent = tempfile::tempdir().unwrap();
            let mut store = keyed(parent.path(), [1; 32]);
            let records = one_in_each_tier(&mut store);
            store.codec = Codec::new(Some(Sealer::new(&[2; 32]).unwrap()));
            for (h, _) in &records {
                let err = store.get(*h).unwrap_err();
                assert!(err.to_string().contains("decryption failed"), "{err}");
            }
            store.codec = Codec::new(None);
            for (h, _) in &records {
                let err = store.get(*h).unwrap_err();
                assert!(err.to_string().contains("encrypted but the store has no key"), "{err}");
            }
            store.codec = Codec::new(Some(Sealer::new(&[1; 32]).unwrap()));
            for (h, payload) in records {
                assert_eq!(store.take(h).unwrap(), payload);
            }
        }

        #[test]
        fn a_plain_record_read_by_a_keyed_store_is_corrupted() {
            let mut store = SpillStore::new(SpillConfig::memory_only(1 << 20)).unwrap();
            let h = store.put(b"plain").unwrap();
            store.codec = Codec::new(Some(Sealer::new(&[3; 32]).unwrap()));
            let err = store.get(h).unwrap_err();
            assert!(err.to_string().contains("not encrypted"), "{err}");
        }

        #[test]
        fn nonces_differ_between_records_and_the_key_is_not_printed() {
            let mut sealer = Sealer::new(&[5; 32]).unwrap();
            let mut a = [0u8; 12 + 4 + 16];
            let mut b = a;
            sealer.seal(0, &mut a);
            sealer.seal(0, &mut b);
            assert_ne!(a[..12], b[..12]);
            let config = SpillConfig { key: Some([0xAB; 32]), ..SpillConfig::default() };
            let shown = format!("{config:?}");
            assert!(shown.contains("<redacted>") && !shown.contains("171, 171"), "{shown}");
        }
    }
}
