//! Hash-partitioned spilling: the bookkeeping of partitions whose keys are
//! out of memory, and the byte form of their buffered fragments.
//!
//! Spilling a generation's values alone leaves its key, slot and per-slot
//! fields in memory (~100 bytes a key), too much when millions of keys are
//! open under a small budget. So, unless a policy needs every key resident
//! (`max_keys`), the driver spills whole **partitions** of the key space
//! ([`PARTS`] of them, by key hash):
//!
//! - **Spill.** Every generation of the partition (key, driver fields,
//!   the accumulator's state; completed-key marks too) is written in runs
//!   of up to [`RUN_GENERATIONS`] generations, two records per run (the keys,
//!   then the states, so a damaged state record still names its keys), and
//!   its slots are freed. Memory keeps a few words per partition and per run.
//! - **Sub-partitions.** Within a partition, keys fall in one of [`SUBS`]
//!   sub-partitions (by an independent hash). Runs are written per
//!   sub-partition; a record of buffered fragments spans an aligned group
//!   of them ([`record_width`]: all while the partition is small, fewer as
//!   it grows), so a large partition can come back a few sub-partitions at
//!   a time with little read twice.
//! - **Buffer.** While a partition is spilled, its fragments are not applied:
//!   the rows are copied out (with their sub-partition, the watermark they
//!   arrived under and their time) into pieces, in arrival order, and once a
//!   partition's pieces pass [`PIECE_BYTES`] (or all pieces pass
//!   [`PIECES_CAP`]) each group's rows go to the store as one Arrow IPC
//!   record.
//! - **Reload.** When the watermark passes the earliest deadline the partition
//!   could hold, and at the end of input (one partition at a time, a slice of
//!   its sub-partitions per step), its generations are restored and its
//!   fragments replayed in arrival order, a unit of sub-partitions (as many
//!   as its narrowest record spans) at a time, each fragment under the
//!   watermark it arrived under: every key sees exactly the fragments, times
//!   and deadlines it would have seen in memory, so the output is the same
//!   (rows of a spilled partition come out later, and with
//!   `acc_spilled = true`).

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt8Array};
use arrow_buffer::Buffer;
use arrow_ipc::{reader::StreamDecoder, writer::StreamWriter};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use garner_pools::SpillHandle;

use crate::{
    error::{Error, Result},
    time::Millis,
};

/// Partitions of the key space: enough that one partition's state is
/// small next to a budget (it is what memory holds while it comes back).
pub(crate) const PARTS: usize = 256;

/// Generations per run (two records).
pub(crate) const RUN_GENERATIONS: usize = 2048;

/// Buffered bytes after which a partition's pieces go to the store.
pub(crate) const PIECE_BYTES: usize = 64 << 10;

/// Buffered bytes, over all partitions, past which every partition a call
/// adds to sends its pieces to the store.
pub(crate) const PIECES_CAP: usize = 4 << 20;

/// Sub-partitions of a partition: the grain at which a partition comes
/// back at the end of input.
pub(crate) const SUBS: usize = 8;

/// Generations a partition brings back at a time at the end of input (its
/// spilled ones plus a quarter of its buffered fragments, counted per
/// sub-partition): a larger partition comes back a slice of its
/// sub-partitions at a time.
pub(crate) const FINISH_SLICE: u64 = 12_288;

/// Rows a partition buffers in records spanning all its sub-partitions;
/// past this (and each doubling) its records span half as many (see
/// [`record_width`]).
pub(crate) const WIDE_ROWS: u64 = 32_768;

/// How many sub-partitions a record of a partition that has buffered
/// `rows` spans: all of them while the partition is small (few, larger
/// records: cheap to write and read), halving as it doubles past
/// [`WIDE_ROWS`], down to one (a large partition comes back a few
/// sub-partitions at a time, and a wide record is read by every slice it
/// spans, so wide records hold only the partition's first rows).
pub(crate) fn record_width(rows: u64, wide_rows: u64) -> usize {
    let (mut width, mut limit) = (SUBS, wide_rows.max(1));
    while width > 1 && rows > limit {
        width /= 2;
        limit *= 2;
    }
    width
}

/// Stored-piece entries per index block.
pub(crate) const INDEX_BLOCK: usize = 128;

/// A record of buffered fragments in the store (one Arrow IPC batch, rows
/// in arrival order): its handle, its rows, and the sub-partitions
/// `lo..hi` they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) handle: SpillHandle,
    pub(crate) rows: u32,
    pub(crate) lo: u8,
    pub(crate) hi: u8,
}

impl Stored {
    /// Whether the record holds rows of sub-partition `s`.
    pub(crate) fn spans(&self, s: usize) -> bool {
        (self.lo as usize..self.hi as usize).contains(&s)
    }
}

/// Bytes of one [`Stored`] entry in an index block.
const ENTRY_BYTES: usize = SpillHandle::BYTES + 6;

/// An index block: [`Stored`] entries as bytes.
pub(crate) fn encode_index(entries: &[Stored]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries {
        out.extend_from_slice(&e.handle.to_bytes());
        out.extend_from_slice(&e.rows.to_le_bytes());
        out.extend_from_slice(&[e.lo, e.hi]);
    }
    out
}

/// What [`encode_index`] wrote.
pub(crate) fn decode_index(bytes: &[u8]) -> Result<Vec<Stored>> {
    if bytes.len() % ENTRY_BYTES != 0 {
        return Err(Error::Internal("a spill index block of a partial entry".into()));
    }
    bytes
        .chunks(ENTRY_BYTES)
        .map(|e| {
            let (h, rest) = e.split_at(SpillHandle::BYTES);
            let handle = SpillHandle::from_bytes(h)
                .ok_or_else(|| Error::Internal("a spill index block names no record".into()))?;
            let rows = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            let (lo, hi) = (rest[4], rest[5]);
            if lo >= hi || hi as usize > SUBS {
                return Err(Error::Internal("a spill index block names no sub-partition".into()));
            }
            Ok(Stored { handle, rows, lo, hi })
        })
        .collect()
}

/// Column of a piece: its row's sub-partition.
const SUB_COLUMN: &str = "_garner_sub";
/// Column of a piece: the watermark its row arrived under.
const WATERMARK_COLUMN: &str = "_garner_watermark";
/// Column of a piece: the row's time (null when it had none).
const TIME_COLUMN: &str = "_garner_time";

/// The partition of a key hash (its top bits after a multiply, so the
/// partitioning is independent of an engine's sharding by the same hash).
#[inline(always)]
pub(crate) fn part_of(hash: u64) -> usize {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// The sub-partition of a key hash (independent of [`part_of`]).
#[inline(always)]
pub(crate) fn sub_of(hash: u64) -> usize {
    (hash.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 32) as usize % SUBS
}

/// A spilled partition being finished a slice at a time.
#[derive(Debug)]
pub(crate) struct Finishing {
    pub(crate) p: usize,
    pub(crate) part: Part,
    /// Its slices: ranges of sub-partitions.
    pub(crate) slices: Vec<std::ops::Range<usize>>,
    pub(crate) slice: usize,
}

/// The two records of one run of spilled generations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) keys: SpillHandle,
    pub(crate) states: SpillHandle,
    /// Generations in the run.
    pub(crate) count: u32,
    /// Of which open ones (the rest are completed-key marks).
    pub(crate) open: u32,
    /// The sub-partition of its keys.
    pub(crate) sub: u8,
}

/// What one sub-partition of a spilled partition holds (to size slices).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sub {
    /// Rows buffered (stored or in memory).
    pub(crate) rows: u64,
    /// Open generations spilled.
    pub(crate) open: u64,
}

/// One partition.
#[derive(Debug, Default)]
pub(crate) struct Part {
    pub(crate) spilled: bool,
    pub(crate) runs: Vec<Run>,
    /// Blocks of [`INDEX_BLOCK`] stored-record entries, themselves in the
    /// store (handle, entries), oldest first: what memory keeps of a
    /// partition's buffered fragments stays small however long the input.
    pub(crate) index: Vec<(SpillHandle, u32)>,
    /// Records of fragments in the store, after those the index names.
    pub(crate) stored: Vec<Stored>,
    /// Its sub-partitions' sizes.
    pub(crate) subs: [Sub; SUBS],
    /// Pieces in memory (rows in arrival order), after the stored ones.
    pub(crate) pieces: Vec<RecordBatch>,
    pub(crate) piece_bytes: usize,
    /// No generation of the partition (spilled or buffered) can expire before this.
    pub(crate) min_deadline: Millis,
    /// Open generations spilled.
    pub(crate) open: u64,
    /// Rows buffered.
    pub(crate) rows: u64,
}

impl Part {
    /// Its sub-partitions in slices of about `per_slice` generations (the
    /// spilled ones plus a quarter of the buffered fragments), at least one
    /// sub-partition a slice.
    pub(crate) fn slices(&self, per_slice: u64) -> Vec<std::ops::Range<usize>> {
        let mut slices = Vec::new();
        let (mut start, mut size) = (0, 0u64);
        for (s, sub) in self.subs.iter().enumerate() {
            let this = sub.open + sub.rows / 4;
            if s > start && size + this > per_slice {
                slices.push(start..s);
                (start, size) = (s, 0);
            }
            size += this;
        }
        slices.push(start..SUBS);
        slices
    }
}

/// The driver's partition state.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) parts: Vec<Part>,
    /// Which partitions are spilled (copied into the row loop).
    pub(crate) mask: [bool; PARTS],
    pub(crate) any_spilled: bool,
    /// Open generations out of memory, over all partitions.
    pub(crate) open: u64,
    /// Bytes of pieces in memory, over all partitions.
    pub(crate) piece_bytes: usize,
    /// The most generations ever resident: the state's capacity is sized
    /// for them (and not given back when they leave).
    pub(crate) high_water: u64,
    /// Reloading: generations opened now were buffered (`acc_spilled`).
    pub(crate) replaying: bool,
    /// Rows of the current call for spilled partitions: (row, watermark before it, its time).
    pub(crate) rows: Vec<(u32, Millis, Option<Millis>)>,
    /// Pieces that could not be stored (kept in memory; nothing is lost).
    pub(crate) piece_failures: u64,
    /// The schema of pieces of the last input schema seen.
    pub(crate) piece_schema: Option<(SchemaRef, SchemaRef)>,
    /// The partition the end of input is bringing back, a slice at a time.
    pub(crate) finishing: Option<Finishing>,
    /// Slots interned while reloading (the keys a finishing slice brought back).
    pub(crate) reloaded: Vec<u32>,
    /// Generations and fragments per slice at the end of input.
    pub(crate) finish_slice: u64,
    /// Buffered bytes after which a partition's pieces go to the store.
    pub(crate) piece_limit: usize,
    /// Stored-piece entries per index block.
    pub(crate) index_block: usize,
    /// Rows a partition buffers in records spanning all its sub-partitions.
    pub(crate) wide_rows: u64,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            parts: (0..PARTS).map(|_| Part { min_deadline: Millis::MAX, ..Part::default() }).collect(),
            mask: [false; PARTS],
            any_spilled: false,
            open: 0,
            piece_bytes: 0,
            high_water: 0,
            replaying: false,
            rows: Vec::new(),
            piece_failures: 0,
            piece_schema: None,
            finishing: None,
            reloaded: Vec::new(),
            finish_slice: FINISH_SLICE,
            piece_limit: PIECE_BYTES,
            index_block: INDEX_BLOCK,
            wide_rows: WIDE_ROWS,
        }
    }
}

impl Parts {
    /// Marks `p` spilled or resident.
    pub(crate) fn set_spilled(&mut self, p: usize, spilled: bool) {
        self.parts[p].spilled = spilled;
        self.mask[p] = spilled;
        self.any_spilled = self.mask.iter().any(|&m| m);
    }

    /// Takes partition `p`'s spilled content out, leaving it resident and empty.
    pub(crate) fn take(&mut self, p: usize) -> Part {
        let part =
            std::mem::replace(&mut self.parts[p], Part { min_deadline: Millis::MAX, ..Part::default() });
        self.open -= part.open;
        self.piece_bytes -= part.piece_bytes;
        self.set_spilled(p, false);
        part
    }

    /// Handles of every record held, to free them all: the records, and
    /// the index blocks (whose entries the caller frees too).
    pub(crate) fn drain_handles(&mut self) -> (Vec<SpillHandle>, Vec<SpillHandle>) {
        let (mut handles, mut index) = (Vec::new(), Vec::new());
        let finishing = self.finishing.take().map(|f| f.part);
        for part in (0..PARTS).map(|p| self.take(p)).chain(finishing) {
            handles.extend(part.runs.iter().flat_map(|r| [r.keys, r.states]));
            handles.extend(part.stored.iter().map(|e| e.handle));
            index.extend(part.index.iter().map(|&(h, _)| h));
        }
        (handles, index)
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.piece_bytes
            + self.rows.capacity() * 24
            + self.reloaded.capacity() * 4
            + self
                .parts
                .iter()
                .map(|p| {
                    p.runs.capacity() * std::mem::size_of::<Run>()
                        + p.pieces.capacity() * std::mem::size_of::<RecordBatch>()
                        + p.stored.capacity() * std::mem::size_of::<Stored>()
                        + p.index.capacity() * 32
                })
                .sum::<usize>()
    }
}

/// The schema of pieces of batches of schema `input` (cached in `cache`).
pub(crate) fn piece_schema(cache: &mut Option<(SchemaRef, SchemaRef)>, input: &SchemaRef) -> SchemaRef {
    match cache {
        Some((seen, piece)) if Arc::ptr_eq(seen, input) || seen == input => piece.clone(),
        _ => {
            let mut fields: Vec<_> = input.fields().iter().cloned().collect();
            fields.push(Arc::new(Field::new(SUB_COLUMN, DataType::UInt8, false)));
            fields.push(Arc::new(Field::new(WATERMARK_COLUMN, DataType::Int64, false)));
            fields.push(Arc::new(Field::new(TIME_COLUMN, DataType::Int64, true)));
            let piece = Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()));
            *cache = Some((input.clone(), piece.clone()));
            piece
        }
    }
}

/// A piece: `rows` of `batch` with the sub-partition of each (`subs`), the
/// watermark each arrived under and its time, of `schema` (from
/// [`piece_schema`]).
pub(crate) fn piece(
    batch: &RecordBatch,
    rows: &[(u32, Millis, Option<Millis>)],
    subs: &[u8],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let indices = arrow_array::UInt32Array::from_iter_values(rows.iter().map(|r| r.0));
    let taken = arrow_select::take::take_record_batch(batch, &indices)
        .map_err(Error::arrow("copying fragments of a spilled partition"))?;
    let mut columns = taken.columns().to_vec();
    columns.push(Arc::new(UInt8Array::from(subs.to_vec())) as ArrayRef);
    columns.push(Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef);
    columns.push(Arc::new(rows.iter().map(|r| r.2).collect::<Int64Array>()) as ArrayRef);
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(Error::arrow("copying fragments of a spilled partition"))
}

/// The rows of `piece` in sub-partitions `subs` (the piece itself when
/// all are), `None` when none is.
pub(crate) fn rows_of(piece: &RecordBatch, subs: std::ops::Range<usize>) -> Result<Option<RecordBatch>> {
    let n = piece.num_columns();
    let bad = || Error::Internal("a buffered piece lost its sub-partition column".into());
    if n < 3 || piece.schema().field(n - 3).name() != SUB_COLUMN {
        return Err(bad());
    }
    let column = piece.column(n - 3).as_any().downcast_ref::<UInt8Array>().ok_or_else(bad)?;
    let keep: BooleanArray = column.values().iter().map(|&s| Some(subs.contains(&(s as usize)))).collect();
    match keep.true_count() {
        0 => Ok(None),
        k if k == piece.num_rows() => Ok(Some(piece.clone())),
        _ => arrow_select::filter::filter_record_batch(piece, &keep)
            .map(Some)
            .map_err(Error::arrow("selecting fragments of sub-partitions")),
    }
}

/// A piece split back into the input rows, their watermarks and their times.
pub(crate) fn split(piece: &RecordBatch) -> Result<(RecordBatch, Vec<Millis>, ArrayRef)> {
    let n = piece.num_columns();
    let bad = || Error::Internal("a buffered piece lost its watermark and time columns".into());
    if n < 3 || piece.schema().field(n - 2).name() != WATERMARK_COLUMN {
        return Err(bad());
    }
    let input = piece.project(&(0..n - 3).collect::<Vec<_>>()).map_err(Error::arrow("reading a piece"))?;
    let watermarks =
        piece.column(n - 2).as_any().downcast_ref::<Int64Array>().ok_or_else(bad)?.values().to_vec();
    Ok((input, watermarks, piece.column(n - 1).clone()))
}

/// Pieces as one Arrow IPC stream.
pub(crate) fn encode(pieces: &[RecordBatch]) -> Result<Vec<u8>> {
    let err = || Error::arrow("encoding fragments of a spilled partition");
    let Some(first) = pieces.first() else { return Ok(Vec::new()) };
    // Sized once (the buffers, their padding and the messages' headers):
    // grown by doubling it would be copied and faulted in at every step.
    let size: usize = pieces.iter().map(|p| p.get_array_memory_size() + 64 * (p.num_columns() + 4)).sum();
    let mut out = Vec::with_capacity(size + 1024);
    let mut writer = StreamWriter::try_new(&mut out, first.schema_ref()).map_err(err())?;
    for piece in pieces {
        writer.write(piece).map_err(err())?;
    }
    writer.finish().map_err(err())?;
    drop(writer);
    Ok(out)
}

/// What [`encode`] wrote. The batches use `bytes` in place (no copy of
/// their buffers).
pub(crate) fn decode(bytes: Vec<u8>) -> Result<Vec<RecordBatch>> {
    let err = || Error::arrow("decoding buffered fragments");
    let mut buffer = Buffer::from_vec(bytes);
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer).map_err(err())? {
            batches.push(batch);
        }
    }
    decoder.finish().map_err(err())?;
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{cast::AsArray, types::Int64Type, Array, StringArray};

    #[test]
    fn pieces_round_trip_through_ipc_with_their_watermarks_and_times() {
        let batch = RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("v", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
        ])
        .unwrap();
        let schema = piece_schema(&mut None, batch.schema_ref());
        let p = piece(&batch, &[(2, 10, Some(12)), (0, 11, None)], &[3, 5], &schema).unwrap();
        let back = decode(encode(&[p.clone(), p.clone()]).unwrap()).unwrap();
        assert_eq!(rows_of(&p, 0..SUBS).unwrap().unwrap(), p);
        assert!(rows_of(&p, 0..3).unwrap().is_none());
        assert_eq!(split(&rows_of(&p, 4..6).unwrap().unwrap()).unwrap().1, [11]);
        assert!(rows_of(&batch, 0..1).is_err());
        assert_eq!(back.len(), 2);
        let (input, watermarks, times) = split(&back[1]).unwrap();
        assert_eq!(input.schema(), batch.schema());
        assert_eq!(input.column(0).as_primitive::<Int64Type>().values(), &[3, 1]);
        assert_eq!(watermarks, [10, 11]);
        let times = times.as_primitive::<Int64Type>();
        assert_eq!((times.value(0), times.is_null(1)), (12, true));
        assert!(split(&batch).is_err(), "a batch without the columns is refused");
        assert!(decode(b"not ipc".to_vec()).is_err());
        // A stream cut short (no end marker, a batch cut) is an error too.
        let whole = encode(std::slice::from_ref(&p)).unwrap();
        assert!(decode(whole[..whole.len() - 20].to_vec()).is_err());
    }

    #[test]
    fn index_blocks_round_trip_and_bad_ones_are_errors() {
        let mut store =
            garner_pools::SpillStore::new(garner_pools::SpillConfig::memory_only(1 << 20)).unwrap();
        let entries: Vec<Stored> = (0..5)
            .map(|i| Stored {
                handle: store.put(&[i as u8; 10]).unwrap(),
                rows: i * 100,
                lo: i as u8,
                hi: i as u8 + 1,
            })
            .collect();
        let back = decode_index(&encode_index(&entries)).unwrap();
        assert_eq!(back, entries);
        assert!(decode_index(&[0; 7]).is_err());
        let mut bad = encode_index(&entries[..1]);
        *bad.last_mut().unwrap() = SUBS as u8 + 1;
        assert!(decode_index(&bad).is_err(), "a sub-partition out of range is refused");
    }

    #[test]
    fn partitions_spread_consecutive_hashes() {
        let mut seen = [0u32; PARTS];
        for h in 0..64_000u64 {
            seen[part_of(crate::hash::hash_u64(h))] += 1;
        }
        assert!(seen.iter().all(|&n| (150..350).contains(&n)), "{seen:?}");
    }

    #[test]
    fn sub_partitions_spread_the_keys_of_one_partition() {
        let mut seen = [0u32; SUBS];
        let mut n = 0;
        for h in (0..2_000_000u64).map(crate::hash::hash_u64).filter(|&h| part_of(h) == 7) {
            seen[sub_of(h)] += 1;
            n += 1;
        }
        let even = n / SUBS as u32;
        assert!(seen.iter().all(|&k| k > even * 8 / 10 && k < even * 12 / 10), "{seen:?}");
    }

    #[test]
    fn a_partition_comes_back_in_slices_of_whole_sub_partitions() {
        let mut part = Part::default();
        for (s, sub) in part.subs.iter_mut().enumerate() {
            sub.open = 100 * s as u64;
            sub.rows = 400;
        }
        // Sizes 100, 200, ..., 800: slices of at most 1000 where they can be.
        assert_eq!(part.slices(1000), vec![0..4, 4..5, 5..6, 6..7, 7..8]);
        // A sub-partition larger than a slice still comes back whole.
        assert_eq!(part.slices(1), (0..SUBS).map(|s| s..s + 1).collect::<Vec<_>>());
        assert_eq!(part.slices(u64::MAX), vec![0..SUBS]);
    }

    #[test]
    fn wide_records_narrow_as_a_partition_grows() {
        assert_eq!(record_width(0, WIDE_ROWS), SUBS);
        assert_eq!(record_width(WIDE_ROWS, WIDE_ROWS), SUBS);
        assert_eq!(record_width(WIDE_ROWS + 1, WIDE_ROWS), SUBS / 2);
        assert_eq!(record_width(u64::MAX, WIDE_ROWS), 1);
    }
}
