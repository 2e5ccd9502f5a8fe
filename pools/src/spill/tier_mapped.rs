//! The mapped tier: records appended bump-style into memory-mapped segment
//! files, bounded by the total size of the segments.
//!
//! 1. A record goes into the last (active) segment if it has room; otherwise a
//!    new segment is created when the bound allows one more.
//! 2. Each segment counts its live records and bytes. When a segment's last
//!    record is freed, the active segment is reset (bump pointer back to 0,
//!    mapping kept) and any other segment is unmapped and deleted.
//! 3. Segment ids are never reused, so a handle into a deleted segment finds
//!    nothing; one into a reset segment fails its checksum (which covers the
//!    record's sequence number).
//!
//! # The mapping
//! Each segment is a file this store created with `create_new` in its private
//! run directory (mode 0700), sized once with `set_len` before it is mapped,
//! and never truncated, resized or handed to anyone while mapped; it is
//! unmapped before it is deleted. If another process of the same user changed
//! the file anyway, reads would see the changed bytes — which the record
//! checksum reports as [`SpillError::Corrupted`] — and truncating it would make
//! the next access fault (SIGBUS), as with any memory-mapped file.

use std::path::PathBuf;

use memmap2::MmapMut;

use super::run_dir::RunDir;
use super::{SpillError, SpillHandle, Tier};

struct Segment {
    id: u32,
    map: MmapMut,
    /// The mapped file: records are read back through it, not the map, so a
    /// read (and the kernel's fault-around of its neighbours) does not grow
    /// the resident set.
    file: std::fs::File,
    path: PathBuf,
    /// Bump pointer: bytes handed out since creation or the last reset.
    used: u64,
    live_bytes: u64,
    live_records: u64,
}

/// Written pages are handed back to the kernel in chunks of this many bytes.
const RELEASE_CHUNK: u64 = 1 << 20;

impl Segment {
    /// Once the write cursor has passed a chunk boundary (the previous write
    /// ended at `before`), drops the whole chunks behind it from this
    /// process's page tables: they stay in the page cache (and the file),
    /// and a later read faults them back in. Spilled bytes so leave the
    /// process's resident set instead of growing it.
    fn release_written(&mut self, before: u64) {
        let (from, to) = (before / RELEASE_CHUNK * RELEASE_CHUNK, self.used / RELEASE_CHUNK * RELEASE_CHUNK);
        if to > from {
            // SAFETY: `MADV_DONTNEED` is unchecked because on anonymous or
            // private memory it discards contents. This is a *shared* mapping
            // of a file of this store's own: the kernel keeps the written
            // bytes in the page cache (and writes them back to the file), and
            // the next access to a released page faults the same bytes back
            // in. No reference into the map outlives a call of this tier, and
            // the range lies inside the map (`to <= used <= len`).
            #[cfg(unix)]
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    from as usize,
                    (to - from) as usize,
                )
            };
        }
    }
}

impl Segment {
    /// Drops the pages holding `len` bytes at `offset` (a freed record, or a
    /// segment no longer written) from this process's page tables. Pages
    /// shared with live records go too: their bytes stay in the file, and
    /// records are read back through the file anyway.
    fn release(&mut self, offset: u64, len: u64) {
        let from = offset / PAGE * PAGE;
        let to = (offset + len).div_ceil(PAGE).saturating_mul(PAGE).min(self.map.len() as u64);
        if to > from {
            // SAFETY: as in `release_written`: a shared mapping of this
            // store's own file, whose bytes the page cache keeps (a live
            // neighbour's bytes on a shared page included); the range lies
            // inside the map, and no reference into the map outlives a call
            // of this tier.
            #[cfg(unix)]
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    from as usize,
                    (to - from) as usize,
                )
            };
        }
    }
}

/// The page size assumed when releasing freed records (a larger real page
/// only means fewer whole pages are released).
const PAGE: u64 = 4096;

/// Segment files mapped into memory, oldest first; the last one is active.
pub(crate) struct MappedTier {
    bound: u64,
    segment_bytes: u64,
    segments: Vec<Segment>,
    next_id: u32,
    live_bytes: u64,
    live_records: u64,
}

impl MappedTier {
    /// A tier of `segment_bytes` segments (capped at `bound`) up to `bound` bytes.
    pub(crate) fn new(bound: u64, segment_bytes: u64) -> Self {
        let segment_bytes = segment_bytes.min(bound).min(usize::MAX as u64);
        Self { bound, segment_bytes, segments: Vec::new(), next_id: 0, live_bytes: 0, live_records: 0 }
    }

    fn active_room(&self) -> u64 {
        self.segments.last().map_or(0, |s| self.segment_bytes - s.used)
    }

    fn can_add_segment(&self) -> bool {
        (self.segments.len() as u64 + 1).saturating_mul(self.segment_bytes) <= self.bound
    }

    /// Bytes a record could still use: room in the active segment plus the
    /// segments not yet created.
    pub(crate) fn free_bytes(&self) -> u64 {
        let unclaimed = self.bound.saturating_sub(self.segments.len() as u64 * self.segment_bytes);
        let whole = unclaimed.checked_div(self.segment_bytes).map_or(0, |n| n * self.segment_bytes);
        self.active_room() + whole
    }

    pub(crate) fn records(&self) -> u64 {
        self.live_records
    }

    pub(crate) fn used_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub(crate) fn files(&self) -> u64 {
        self.segments.len() as u64
    }

    /// Appends `frame` if the tier has room; returns `(segment id, offset)`.
    pub(crate) fn put(
        &mut self,
        frame: &[u8],
        run_dir: &mut RunDir,
    ) -> Result<Option<(u32, u64)>, SpillError> {
        let len = frame.len() as u64;
        if len > self.segment_bytes {
            return Ok(None);
        }
        if len > self.active_room() {
            if !self.can_add_segment() {
                return Ok(None);
            }
            self.add_segment(run_dir)?;
        }
        let segment = self.segments.last_mut().expect("a segment with room exists");
        let offset = segment.used;
        segment.map[offset as usize..(offset + len) as usize].copy_from_slice(frame);
        segment.used += len;
        segment.release_written(offset);
        segment.live_bytes += len;
        segment.live_records += 1;
        self.live_bytes += len;
        self.live_records += 1;
        Ok(Some((segment.id, offset)))
    }

    fn add_segment(&mut self, run_dir: &mut RunDir) -> Result<(), SpillError> {
        if let Some(full) = self.segments.last_mut() {
            // No longer written: its last chunk leaves the resident set too.
            full.release(0, full.used);
        }
        let (file, path) = run_dir.create_file("segment", "mmap")?;
        let sized = file.set_len(self.segment_bytes);
        // SAFETY: `file` was just created by this store (`create_new`) in its
        // private run directory and sized above; the store never truncates,
        // resizes or shares it while the mapping lives, and unmaps it before
        // deleting it. See the module docs for what a foreign writer could do.
        let map = sized.and_then(|()| unsafe { MmapMut::map_mut(&file) });
        let map = match map {
            Ok(map) => map,
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(&path);
                return Err(SpillError::io(path, e));
            }
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.segments.push(Segment { id, map, file, path, used: 0, live_bytes: 0, live_records: 0 });
        Ok(())
    }

    fn index_of(&self, id: u32) -> Option<usize> {
        self.segments.binary_search_by_key(&id, |s| s.id).ok()
    }

    /// Reads the record's frame into `buf` through the segment's file (the
    /// page cache the map writes to), without touching the map.
    pub(crate) fn read_into(&self, h: SpillHandle, buf: &mut Vec<u8>) -> Result<(), SpillError> {
        let segment = self
            .index_of(h.id)
            .map(|i| &self.segments[i])
            .filter(|s| h.offset.checked_add(h.stored_bytes()).is_some_and(|end| end <= s.used))
            .ok_or_else(|| SpillError::corrupted(Tier::Mapped, "no live record for this handle"))?;
        buf.clear();
        buf.resize(h.len_usize(), 0);
        super::tier_file::read_at(&segment.file, h.offset, buf).map_err(|e| SpillError::io(&segment.path, e))
    }

    /// Frees the record; a handle into a deleted segment is ignored.
    pub(crate) fn free(&mut self, h: SpillHandle) {
        let Some(i) = self.index_of(h.id) else { return };
        let len = h.stored_bytes();
        let is_active = i + 1 == self.segments.len();
        let segment = &mut self.segments[i];
        debug_assert!(
            segment.live_records > 0 && segment.live_bytes >= len,
            "double free of a mapped record"
        );
        segment.live_bytes = segment.live_bytes.saturating_sub(len);
        segment.live_records = segment.live_records.saturating_sub(1);
        self.live_bytes = self.live_bytes.saturating_sub(len);
        self.live_records = self.live_records.saturating_sub(1);
        if segment.live_records > 0 || is_active {
            segment.release(h.offset, len);
        }
        if segment.live_records == 0 {
            if is_active {
                segment.used = 0;
                segment.live_bytes = 0;
            } else {
                let Segment { map, path, .. } = self.segments.remove(i);
                drop(map);
                // A failed delete leaves the file to the run directory's cleanup.
                let _ = std::fs::remove_file(path);
            }
        }
    }

    pub(crate) fn flip_byte(&mut self, h: SpillHandle, at: usize) {
        if let Some(i) = self.index_of(h.id) {
            let offset = h.offset as usize + at;
            if let Some(byte) = self.segments[i].map.get_mut(offset) {
                *byte ^= 0xFF;
            }
        }
    }
}
