//! The file tier: records appended to plain files with `std::io::Write` and
//! read back by offset, bounded by the bytes written and not yet reclaimed.
//!
//! 1. A record is appended to the last (active) file; a new file is started
//!    when the active one would pass the roll size (a larger record gets a
//!    file of its own).
//! 2. Each file counts its live records and bytes. Freed records stay in their
//!    file as garbage and keep counting against the bound — there is no
//!    compaction — until every record in the file is freed: then the active
//!    file is truncated and reused, any other file is deleted.
//! 3. File ids are never reused, so a handle into a deleted file finds
//!    nothing; one into a truncated file fails its checksum.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::run_dir::RunDir;
use super::{SpillError, SpillHandle, Tier};

struct SpillFile {
    id: u32,
    file: File,
    path: PathBuf,
    /// Bytes written (live and garbage); the write cursor stands here.
    len: u64,
    live_bytes: u64,
    live_records: u64,
}

/// Plain spill files, oldest first; the last one is active.
pub(crate) struct FileTier {
    bound: u64,
    roll_bytes: u64,
    files: Vec<SpillFile>,
    next_id: u32,
    /// Sum of `len` over `files`: what counts against the bound.
    written: u64,
    live_bytes: u64,
    live_records: u64,
}

impl FileTier {
    pub(crate) fn new(bound: u64, roll_bytes: u64) -> Self {
        Self { bound, roll_bytes, files: Vec::new(), next_id: 0, written: 0, live_bytes: 0, live_records: 0 }
    }

    pub(crate) fn free_bytes(&self) -> u64 {
        self.bound.saturating_sub(self.written)
    }

    pub(crate) fn records(&self) -> u64 {
        self.live_records
    }

    pub(crate) fn used_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub(crate) fn files(&self) -> u64 {
        self.files.len() as u64
    }

    /// Appends `frame` if the tier has room; returns `(file id, offset)`.
    pub(crate) fn put(
        &mut self,
        frame: &[u8],
        run_dir: &mut RunDir,
    ) -> Result<Option<(u32, u64)>, SpillError> {
        let len = frame.len() as u64;
        if len > self.free_bytes() {
            return Ok(None);
        }
        let roll = self.files.last().is_none_or(|f| f.len > 0 && f.len + len > self.roll_bytes);
        if roll {
            let (file, path) = run_dir.create_file("spill", "dat")?;
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.files.push(SpillFile { id, file, path, len: 0, live_bytes: 0, live_records: 0 });
        }
        let active = self.files.last_mut().expect("an active file exists");
        let offset = active.len;
        if let Err(e) = append(&mut active.file, offset, frame) {
            // Drop what a partial write left, so the cursor stays at `len`.
            let _ = active.file.set_len(offset);
            let _ = active.file.seek(SeekFrom::Start(offset));
            return Err(SpillError::io(&active.path, e));
        }
        active.len += len;
        active.live_bytes += len;
        active.live_records += 1;
        self.written += len;
        self.live_bytes += len;
        self.live_records += 1;
        Ok(Some((active.id, offset)))
    }

    fn index_of(&self, id: u32) -> Option<usize> {
        self.files.binary_search_by_key(&id, |f| f.id).ok()
    }

    /// Reads the record's frame into `buf`.
    pub(crate) fn read_into(&self, h: SpillHandle, buf: &mut Vec<u8>) -> Result<(), SpillError> {
        let file = self
            .index_of(h.id)
            .map(|i| &self.files[i])
            .filter(|f| h.offset.checked_add(h.stored_bytes()).is_some_and(|end| end <= f.len))
            .ok_or_else(|| SpillError::corrupted(Tier::File, "no live record for this handle"))?;
        buf.clear();
        buf.resize(h.len_usize(), 0);
        read_at(&file.file, h.offset, buf).map_err(|e| SpillError::io(&file.path, e))
    }

    /// Frees the record; a handle into a deleted file is ignored.
    pub(crate) fn free(&mut self, h: SpillHandle) {
        let Some(i) = self.index_of(h.id) else { return };
        let len = h.stored_bytes();
        let is_active = i + 1 == self.files.len();
        let entry = &mut self.files[i];
        debug_assert!(entry.live_records > 0 && entry.live_bytes >= len, "double free of a file record");
        entry.live_bytes = entry.live_bytes.saturating_sub(len);
        entry.live_records = entry.live_records.saturating_sub(1);
        self.live_bytes = self.live_bytes.saturating_sub(len);
        self.live_records = self.live_records.saturating_sub(1);
        if entry.live_records > 0 {
            return;
        }
        let reclaimed = entry.len;
        if is_active && entry.file.set_len(0).is_ok() && entry.file.seek(SeekFrom::Start(0)).is_ok() {
            entry.len = 0;
            entry.live_bytes = 0;
        } else {
            let SpillFile { file, path, .. } = self.files.remove(i);
            drop(file);
            // A failed delete leaves the file to the run directory's cleanup.
            let _ = std::fs::remove_file(path);
        }
        self.written -= reclaimed;
    }

    pub(crate) fn flip_byte(&mut self, h: SpillHandle, at: usize) {
        let Some(i) = self.index_of(h.id) else { return };
        let entry = &mut self.files[i];
        let offset = h.offset + at as u64;
        if offset >= entry.len {
            return;
        }
        let mut byte = [0u8];
        if read_at(&entry.file, offset, &mut byte).is_ok() {
            byte[0] ^= 0xFF;
            let _ = write_at(&mut entry.file, offset, &byte, entry.len);
        }
    }
}

/// Appends at the cursor, which stands at `len` (the end).
fn append(file: &mut File, len: u64, frame: &[u8]) -> std::io::Result<()> {
    #[cfg(not(unix))]
    file.seek(SeekFrom::Start(len))?; // reads moved the shared cursor
    #[cfg(unix)]
    let _ = len;
    file.write_all(frame)
}

/// Overwrites bytes at `offset`, leaving the cursor at `end`.
fn write_at(file: &mut File, offset: u64, bytes: &[u8], end: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)?;
    file.seek(SeekFrom::Start(end)).map(|_| ())
}

#[cfg(unix)]
pub(super) fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
pub(super) fn read_at(mut file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}
