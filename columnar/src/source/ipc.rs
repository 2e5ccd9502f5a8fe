//! Arrow IPC file source, read through a memory map without copying.
//!
//! Reading an IPC file takes four steps:
//!
//! 1. Map the file and wrap the mapping in an Arrow [`Buffer`]; every array
//!    decoded later is a slice of that buffer, so no column data is copied
//!    (the writer aligns buffers to 64 bytes and the map is page-aligned).
//! 2. Check the frame before trusting it: the leading magic, the trailer
//!    (footer length + magic), the footer's place in the file.
//! 3. Parse the footer (a verified flatbuffer) and check every block it lists
//!    against the file: offset, lengths, and each message's body buffers
//!    against the body. arrow-ipc slices these without bounds checks, so a
//!    lie in a malformed file would otherwise panic. The record batch
//!    messages also give the row count for [`BatchSource::rows_hint`].
//! 4. Decode dictionaries up front, then one record batch per `next_batch`
//!    with [`FileDecoder`], under [`decode_guarded`]: a few lies (an offsets
//!    buffer whose length is not a whole number of offsets) still reach an
//!    assertion inside arrow, and the byte-flip tests below find them.
//!
//! A mapped file's pages count in the process's resident memory once they
//! are touched, so reading a large file would make the RSS grow to the file's
//! size even when each batch is dropped right after use. Each record batch
//! is therefore decoded from a buffer of its own block ([`MappedBlock`]):
//! when the last array viewing the block is dropped, the block's whole pages
//! are handed back to the kernel (`MADV_DONTNEED`). Reading such a page
//! again would only fault it back in from the file, unchanged.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::{root_as_footer, root_as_message, Block, MessageHeader};
use arrow_schema::SchemaRef;
use memmap2::Mmap;

use super::{decode_guarded, input_error, BatchSource};
use crate::{Error, Result};

const FORMAT: &str = "ipc";
/// `ARROW1` and two bytes of padding.
const HEADER_LEN: usize = 8;
/// Footer length (4 bytes) and `ARROW1`.
const TRAILER_LEN: usize = 10;
const MAGIC: &[u8] = b"ARROW1";
/// The least metadata a block can hold: the 4-byte length (after an
/// optional continuation marker) and a 4-byte flatbuffer root offset.
const MIN_METADATA_LEN: usize = 8;

/// An Arrow IPC file, memory-mapped: batches are decoded as views into the
/// mapping, without copying column data.
///
/// Everything the footer promises is checked in [`open`](Self::open), so a
/// truncated file or a malformed footer is an [`Error::BadInput`] there
/// (naming the byte or block); corrupt column data is one from `next_batch`
/// (naming the block). Neither panics.
#[derive(Debug)]
pub struct IpcFileSource {
    path: PathBuf,
    data: Buffer,
    /// The mapping, when reading a file through one: batches then get
    /// buffers of their own block, released once dropped.
    map: Option<Arc<Mmap>>,
    decoder: FileDecoder,
    schema: SchemaRef,
    blocks: Vec<Block>,
    next: usize,
    rows: u64,
}

impl IpcFileSource {
    /// Maps the file at `path` and reads its footer and dictionaries.
    ///
    /// The file must not change while this source or any batch read from it
    /// is alive. If another process truncates it, touching the lost pages
    /// raises `SIGBUS` and the process dies. If it rewrites it in place, the
    /// batches see the new bytes although arrow validated the old ones:
    /// values change, and the offsets of a string or list column may then
    /// point outside their buffer, which is undefined behaviour. This is the
    /// usual bargain of memory-mapped reading (ripgrep makes it too); for a
    /// file that may be written while read, read it into memory and use
    /// [`from_buffer`](Self::from_buffer).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < (HEADER_LEN + TRAILER_LEN) as u64 {
            // Also spares mapping an empty file, which some platforms refuse.
            return Err(too_short(path, len));
        }
        // SAFETY: `Mmap::map` is unsafe because the bytes behind the returned
        // `&[u8]` change or vanish if the file is modified while mapped. We
        // never write through the map; soundness rests on the documented
        // requirement that nobody else modifies the file while it is mapped
        // (see the doc comment above for what happens otherwise). Every other
        // step reads the map as ordinary immutable bytes.
        let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
        // Read-ahead helps; a platform that refuses the advice reads anyway.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        let whole = MappedBlock { map: map.clone(), start: 0, len: map.len(), release: false };
        let mut source = Self::from_buffer(path, Buffer::from(bytes::Bytes::from_owner(whole)))?;
        // Checking the layout read every block's metadata, and each of those
        // reads mapped the pages around it: one fault-around window per
        // block, resident until the block is consumed, so the peak grew with
        // the file. Hand them all back now; reading faults them in again.
        drop(MappedBlock { map: map.clone(), start: 0, len: map.len(), release: true });
        source.map = Some(map);
        Ok(source)
    }

    /// Reads an IPC file already in memory; `name` is used in errors. The
    /// safe twin of [`open`](Self::open): batches are views into `data`.
    pub fn from_buffer(name: impl Into<PathBuf>, data: Buffer) -> Result<Self> {
        let path = name.into();
        let layout = Layout::read(&path, &data)?;
        let Layout { schema, version, dictionaries, blocks, rows } = layout;
        let mut decoder = FileDecoder::new(schema.clone(), version);
        for (k, block) in dictionaries.iter().enumerate() {
            let bytes = data.slice_with_length(block.offset() as usize, block_len(block));
            decode_guarded(|| decoder.read_dictionary(block, &bytes)).map_err(|e| {
                input_error(&path, FORMAT, Some(block_position("dictionary block", k, block)), e)
            })?;
        }
        Ok(Self { path, data, map: None, decoder, schema, blocks, next: 0, rows })
    }
}

impl BatchSource for IpcFileSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while let Some(block) = self.blocks.get(self.next) {
            let k = self.next;
            self.next += 1;
            let (start, len) = (block.offset() as usize, block_len(block));
            let bytes = match &self.map {
                Some(map) => Buffer::from(bytes::Bytes::from_owner(MappedBlock {
                    map: map.clone(),
                    start,
                    len,
                    release: true,
                })),
                None => self.data.slice_with_length(start, len),
            };
            // `read_record_batch` takes `&self`: a panic leaves the decoder as
            // it was, so later blocks can still be read.
            let decoded = decode_guarded(|| self.decoder.read_record_batch(block, &bytes))
                .map_err(|e| input_error(&self.path, FORMAT, Some(block_position("block", k, block)), e))?;
            if decoded.is_some() {
                return Ok(decoded);
            }
        }
        Ok(None)
    }

    fn rows_hint(&self) -> Option<u64> {
        Some(self.rows)
    }

    fn describe(&self) -> String {
        format!("ipc file {}", self.path.display())
    }
}

/// A range of the mapped file, as the owner of an Arrow buffer. With
/// `release`, the range's whole pages are handed back to the kernel when
/// the last buffer viewing it is dropped.
struct MappedBlock {
    map: Arc<Mmap>,
    start: usize,
    len: usize,
    release: bool,
}

/// The granularity of page release. Where pages are larger, `madvise`
/// refuses ranges that do not start on one, which only means less is
/// released.
const PAGE: usize = 4096;
/// Linux maps up to this much around a faulting address (`fault_around_bytes`).
const FAULT_AROUND: usize = 64 * 1024;

impl AsRef<[u8]> for MappedBlock {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }
}

impl Drop for MappedBlock {
    fn drop(&mut self) {
        if !self.release {
            return;
        }
        // From the fault-around window before the block: touching a block's
        // first page maps the cached pages around it too, among them the
        // previous block's tail, released already; left alone, such pages
        // stay resident for good, a few KiB per block. Up to the last page
        // wholly inside the block: the next one may be in use. (Releasing a
        // page in use would only cost a fault, see below.)
        let first = self.start / FAULT_AROUND * FAULT_AROUND;
        let end = (self.start + self.len) / PAGE * PAGE;
        if end > first {
            // SAFETY: `MADV_DONTNEED` is unchecked because on anonymous or
            // written private memory it discards contents. This is a
            // read-only mapping of a file that we never write and that, by
            // the contract of `IpcFileSource::open`, nobody modifies: a
            // later access to a released page faults the same bytes back in
            // from the file. So no live reference (the whole-file buffer,
            // a neighbouring block sharing a page) can observe a change;
            // releasing costs at most a page fault. The range lies within
            // the map: `Layout::read` checked every block against it, and
            // `first` only rounds its start down.
            #[cfg(unix)]
            let _ = unsafe {
                self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first)
            };
        }
    }
}

/// What the footer of a checked file says.
struct Layout {
    schema: SchemaRef,
    version: arrow_ipc::MetadataVersion,
    dictionaries: Vec<Block>,
    blocks: Vec<Block>,
    rows: u64,
}

impl Layout {
    /// Steps 2 and 3 of the module doc: every offset the decoder will slice
    /// at is checked here.
    fn read(path: &Path, data: &[u8]) -> Result<Self> {
        let bad =
            |at: usize, message: String| Error::bad_input(path, FORMAT, Some(format!("byte {at}")), message);
        let len = data.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(too_short(path, len as u64));
        }
        if &data[..MAGIC.len()] != MAGIC {
            return Err(bad(
                0,
                "no ARROW1 magic: not an Arrow IPC file (an IPC stream is read as ipc-stream)".into(),
            ));
        }
        let trailer_at = len - TRAILER_LEN;
        let mut trailer = [0; TRAILER_LEN];
        trailer.copy_from_slice(&data[trailer_at..]);
        let footer_len = read_footer_length(trailer)
            .map_err(|e| bad(trailer_at, format!("{e} (is the file truncated?)")))?;
        let footer_at =
            trailer_at.checked_sub(footer_len).filter(|&at| at >= HEADER_LEN).ok_or_else(|| {
                bad(trailer_at, format!("footer length {footer_len} exceeds the file ({len} bytes)"))
            })?;
        let footer = root_as_footer(&data[footer_at..trailer_at])
            .map_err(|e| bad(footer_at, format!("invalid footer: {e}")))?;
        let fb_schema = footer.schema().ok_or_else(|| bad(footer_at, "footer has no schema".into()))?;
        if !fb_schema.endianness().equals_to_target_endianness() {
            return Err(bad(footer_at, "file was written with the other byte order".into()));
        }
        let schema = arrow_ipc::convert::try_fb_to_schema(fb_schema)
            .map_err(|e| bad(footer_at, format!("invalid schema: {e}")))?;

        let dictionaries: Vec<Block> = footer.dictionaries().into_iter().flatten().copied().collect();
        let blocks: Vec<Block> = footer
            .recordBatches()
            .ok_or_else(|| bad(footer_at, "footer has no list of record batches".into()))?
            .iter()
            .copied()
            .collect();
        for (k, block) in dictionaries.iter().enumerate() {
            check_block(data, footer_at, block, MessageHeader::DictionaryBatch).map_err(|m| {
                Error::bad_input(path, FORMAT, Some(block_position("dictionary block", k, block)), m)
            })?;
        }
        let mut rows = 0u64;
        for (k, block) in blocks.iter().enumerate() {
            let block_rows = check_block(data, footer_at, block, MessageHeader::RecordBatch)
                .map_err(|m| Error::bad_input(path, FORMAT, Some(block_position("block", k, block)), m))?;
            rows = rows.saturating_add(block_rows);
        }
        Ok(Layout { schema: schema.into(), version: footer.version(), dictionaries, blocks, rows })
    }
}

/// Checks that `block` lies within the data region (before the footer at
/// `data_end`), that its metadata is a message of kind `expected`, and that
/// every body buffer the message names lies within the body. Returns the
/// message's row count.
fn check_block(data: &[u8], data_end: usize, block: &Block, expected: MessageHeader) -> Result<u64, String> {
    let (offset, meta_len, body_len) = (block.offset(), block.metaDataLength(), block.bodyLength());
    let range =
        usize::try_from(offset).ok().zip(usize::try_from(meta_len).ok()).zip(usize::try_from(body_len).ok());
    let Some(((start, meta), body)) =
        range.filter(|&((start, meta), _)| start >= HEADER_LEN && meta >= MIN_METADATA_LEN)
    else {
        return Err(format!(
            "invalid block: offset {offset}, metadata length {meta_len}, body length {body_len}"
        ));
    };
    let end = start.checked_add(meta).and_then(|m| m.checked_add(body));
    if end.is_none_or(|end| end > data_end) {
        return Err(format!(
            "block of {} bytes at byte {start} runs past the data region, which ends at byte {data_end}",
            meta as u128 + body as u128
        ));
    }

    // The same framing arrow-ipc's reader skips: an optional 0xFFFFFFFF
    // continuation marker, then the 4-byte metadata length.
    let metadata = &data[start..start + meta];
    let prefix = if metadata[..4] == [0xff; 4] { 8 } else { 4 };
    let message = root_as_message(&metadata[prefix..]).map_err(|e| format!("invalid message: {e}"))?;
    if message.header_type() != expected {
        return Err(format!("expected a {:?} message, found {:?}", expected, message.header_type()));
    }
    let batch = match expected {
        MessageHeader::DictionaryBatch => message.header_as_dictionary_batch().and_then(|d| d.data()),
        _ => message.header_as_record_batch(),
    }
    .ok_or_else(|| "message has no record batch".to_owned())?;
    for (i, buffer) in batch.buffers().into_iter().flatten().enumerate() {
        let fits = u64::try_from(buffer.offset())
            .ok()
            .zip(u64::try_from(buffer.length()).ok())
            .and_then(|(o, l)| o.checked_add(l))
            .is_some_and(|buffer_end| buffer_end <= body as u64);
        if !fits {
            return Err(format!(
                "buffer {i} (offset {}, length {}) lies outside the {body}-byte body",
                buffer.offset(),
                buffer.length()
            ));
        }
    }
    u64::try_from(batch.length()).map_err(|_| format!("negative row count {}", batch.length()))
}

/// Bytes of a block checked by [`check_block`].
fn block_len(block: &Block) -> usize {
    block.metaDataLength() as usize + block.bodyLength() as usize
}

fn block_position(kind: &str, k: usize, block: &Block) -> String {
    format!("{kind} {k} (byte {})", block.offset())
}

fn too_short(path: &Path, len: u64) -> Error {
    let message = format!(
        "file is {len} bytes, shorter than the smallest IPC file ({} bytes)",
        HEADER_LEN + TRAILER_LEN
    );
    Error::bad_input(path, FORMAT, Some(format!("byte {len}")), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{IpcFileSink, IpcStreamSink};
    use crate::testdata::{samples, write_samples};

    fn sample_file(dir: &Path) -> Vec<u8> {
        let path = dir.join("sample.arrow");
        write_samples(IpcFileSink::create(&path).unwrap(), &path)
    }

    /// Reads an IPC file to the end, in memory.
    fn read_file(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
        let mut source = IpcFileSource::from_buffer("<test>", Buffer::from(bytes))?;
        std::iter::from_fn(|| source.next_batch().transpose()).collect()
    }

    fn assert_bad_input(result: Result<Vec<RecordBatch>>, what: &str) {
        match result {
            Err(Error::BadInput { format: "ipc", position: Some(_), .. }) => {}
            Err(other) => panic!("{what}: expected bad ipc input with a position, got {other}"),
            Ok(batches) => panic!("{what}: read {} batches from bad input", batches.len()),
        }
    }

    #[test]
    fn batches_are_views_into_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        sample_file(dir.path());
        let mut source = IpcFileSource::open(dir.path().join("sample.arrow")).unwrap();
        let mapped = source.data.as_ptr_range();
        let batch = source.next_batch().unwrap().unwrap();
        for (column, name) in batch.columns().iter().zip(crate::testdata::COLUMNS) {
            for buffer in column.to_data().buffers() {
                assert!(mapped.contains(&buffer.as_ptr()), "column {name} was copied out of the map");
            }
        }
        assert_eq!(batch, samples()[0]);
    }

    /// Resident bytes of the mapping of `path` in this process, from
    /// `/proc/self/smaps` (Linux); `None` elsewhere.
    fn mapped_rss(path: &Path) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let name = path.to_str()?;
        let mut lines = smaps.lines();
        let mut total = None;
        while let Some(line) = lines.next() {
            if line.ends_with(name) {
                for l in lines.by_ref() {
                    if let Some(kb) = l.strip_prefix("Rss:") {
                        let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
                        *total.get_or_insert(0) += kb * 1024;
                        break;
                    }
                }
            }
        }
        total
    }

    #[test]
    fn pages_of_dropped_batches_leave_memory_and_kept_batches_stay_intact() {
        use arrow_array::Int64Array;
        use arrow_schema::{DataType, Field, Schema};

        // 16 blocks of 256 KiB of Int64, so most pages lie wholly in a block.
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batches: Vec<RecordBatch> = (0..16)
            .map(|b| {
                let values = Int64Array::from_iter_values((0..32_768).map(|i| b * 1_000_000 + i));
                RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.arrow");
        let mut sink = IpcFileSink::create(&path).unwrap();
        {
            use crate::sink::BatchSink;
            sink.open(schema.clone()).unwrap();
            for b in &batches {
                sink.write(b).unwrap();
            }
            sink.finish().unwrap();
            sink.commit().unwrap();
        }

        let mut source = IpcFileSource::open(&path).unwrap();
        if let Some(opened) = mapped_rss(&path) {
            // Checking the layout touched every block; those pages are back.
            let file = std::fs::metadata(&path).unwrap().len();
            assert!(opened < file / 8, "{opened} bytes of a {file}-byte file resident after open");
        }
        let mut kept = Vec::new();
        for (k, want) in batches.iter().enumerate() {
            let batch = source.next_batch().unwrap().unwrap();
            // Touch every value, as a stage would.
            assert_eq!(&batch, want, "batch {k}");
            // Keep every fourth batch alive; drop the others (released here).
            if k % 4 == 0 {
                kept.push((k, batch));
            }
        }
        assert!(source.next_batch().unwrap().is_none());
        // The batches still alive read exactly what was written, although
        // pages around them were released.
        for (k, batch) in &kept {
            assert_eq!(batch, &batches[*k], "kept batch {k}");
        }
        if let Some(after) = mapped_rss(&path) {
            let file = std::fs::metadata(&path).unwrap().len();
            // Four kept blocks of sixteen, plus partial pages at block edges.
            assert!(after < file / 2, "{after} bytes of a {file}-byte file still resident");
        }
        drop(kept);
        // A fresh source over the same file reads it whole and unchanged.
        let mut again = IpcFileSource::open(&path).unwrap();
        for (k, want) in batches.iter().enumerate() {
            assert_eq!(&again.next_batch().unwrap().unwrap(), want, "batch {k} re-read");
        }
    }

    #[test]
    fn a_truncated_file_is_bad_input_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let len = bytes.len();
        for cut in [0, 1, 10, 17, len / 2, len - 10, len - 1] {
            assert_bad_input(read_file(&bytes[..cut]), &format!("cut at {cut} of {len}"));
            let path = dir.path().join("cut.arrow");
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = IpcFileSource::open(&path).unwrap_err();
            assert!(matches!(&err, Error::BadInput { path: p, .. } if p == &path), "cut at {cut}: {err}");
        }
    }

    #[test]
    fn a_garbage_file_is_bad_input() {
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert_bad_input(read_file(&garbage), "garbage");
        // Right magic at both ends, nonsense between.
        let mut framed = b"ARROW1\0\0".to_vec();
        framed.extend_from_slice(&garbage);
        framed.extend_from_slice(&100i32.to_le_bytes());
        framed.extend_from_slice(b"ARROW1");
        assert_bad_input(read_file(&framed), "framed garbage");
        // A footer length larger than the file.
        let len = framed.len();
        framed[len - 10..len - 6].copy_from_slice(&i32::MAX.to_le_bytes());
        let err = read_file(&framed).unwrap_err();
        assert!(err.to_string().contains("exceeds the file"), "{err}");
    }

    #[test]
    fn an_ipc_stream_is_not_an_ipc_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.arrows");
        let err = read_file(&write_samples(IpcStreamSink::create(&path).unwrap(), &path)).unwrap_err();
        assert!(err.to_string().contains("ipc-stream"), "the error suggests the stream reader: {err}");
    }

    #[test]
    fn blocks_that_leave_the_data_region_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let block = Layout::read(Path::new("t"), &bytes).unwrap().blocks[0];
        let end = block.offset() as usize + block_len(&block);
        assert_eq!(check_block(&bytes, end, &block, MessageHeader::RecordBatch), Ok(5));

        let err = check_block(&bytes, end - 1, &block, MessageHeader::RecordBatch).unwrap_err();
        assert!(err.contains("runs past the data region"), "{err}");
        let longer = Block::new(block.offset(), block.metaDataLength(), i64::MAX);
        let err = check_block(&bytes, end, &longer, MessageHeader::RecordBatch).unwrap_err();
        assert!(err.contains("runs past the data region"), "{err}");
        let before = Block::new(-8, block.metaDataLength(), block.bodyLength());
        let err = check_block(&bytes, end, &before, MessageHeader::RecordBatch).unwrap_err();
        assert!(err.starts_with("invalid block"), "{err}");
        let err = check_block(&bytes, end, &block, MessageHeader::DictionaryBatch).unwrap_err();
        assert!(err.contains("expected a DictionaryBatch message"), "{err}");
    }

    /// Every single-byte corruption of a valid file either still reads or is
    /// bad input; none panics. The block checks catch most lies about
    /// offsets; `decode_guarded` the few that reach arrow's assertions.
    #[test]
    fn no_corrupted_byte_makes_the_file_reader_panic() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        for at in 0..bytes.len() {
            for flip in [0xff, 0x80, 0x01] {
                let mut corrupt = bytes.clone();
                corrupt[at] ^= flip;
                if let Err(err) = read_file(&corrupt) {
                    assert!(matches!(err, Error::BadInput { .. }), "byte {at} ^ {flip:#x}: {err}");
                }
            }
        }
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.arrow");
        let err = IpcFileSource::open(&path).unwrap_err();
        assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{err}");
    }
}
