//! Key extraction and interning: every distinct resident key gets a dense
//! `u32` slot, the index into the assembler's per-slot vectors.
//!
//! 1. [`KeyTable::load_batch`] extracts the keys of a whole batch at once: a
//!    single integer column becomes a `Vec<u64>` (signed values keep their
//!    bits); anything else (strings, several columns) becomes `arrow-row`
//!    rows. Dictionary columns are unpacked first. All keys are hashed into
//!    a `Vec<u64>` in the same pass, and the key columns' nulls are merged.
//! 2. [`KeyTable::intern`] maps one row's key to its slot through a
//!    [`SlotTable`] of `(hash, slot)` entries, prefetching the bucket of the
//!    row [`AHEAD`] rows later so the table's cache misses overlap. Integer
//!    hashes are bijective, so an integer key is found by its hash alone;
//!    other keys compare their row bytes (in a [`ByteArena`]) when the
//!    hashes match. A new key takes a slot from the free list, or a new one.
//! 3. [`KeyTable::free`] removes a slot's key from the table and puts the slot
//!    on the free list; string key bytes become arena garbage, reclaimed by
//!    [`KeyTable::maybe_compact`].
//! 4. [`KeyTable::key_columns`] rebuilds the output key columns for a list of
//!    slots (integers cast back to their input type with `arrow-cast`, rows
//!    decoded by the `RowConverter`).

use arrow_array::{cast::AsArray, types::*, Array, ArrayRef, Int64Array, UInt64Array};
use arrow_buffer::NullBuffer;
use arrow_cast::cast;
use arrow_row::{RowConverter, RowParser, Rows, SortField};
use arrow_schema::DataType;

use crate::{
    arena::{ByteArena, ValueRef},
    columns::KeyKind,
    error::{Error, Result},
    hash::{hash_bytes, hash_u64},
    slot_table::SlotTable,
    spill_codec,
    values::{build_column, ColumnValues, ValueKind},
};

/// How many rows ahead [`KeyTable::intern`] prefetches a bucket.
pub(crate) const AHEAD: usize = 16;

/// A key as [`KeyTable::write_key`] wrote it, read back with its hash.
pub(crate) struct WrittenKey<'a> {
    pub(crate) hash: u64,
    int: u64,
    bytes: &'a [u8],
}

/// Integer keys, widened to `u64`.
#[derive(Debug)]
struct IntKeys {
    output_type: DataType,
    slot_keys: Vec<u64>,
    batch: Vec<u64>,
}

/// Variable-length keys of resident slots: bytes in an arena.
#[derive(Debug, Default)]
struct StoredKeys {
    arena: ByteArena,
    slot_keys: Vec<ValueRef>,
}

impl StoredKeys {
    fn get(&self, slot: u32) -> &[u8] {
        self.arena.get(self.slot_keys[slot as usize])
    }

    /// Copies `bytes` in as `slot`'s key.
    fn store(&mut self, slot: u32, bytes: &[u8]) -> Result<()> {
        let r = match self.arena.try_push(bytes) {
            Some(r) => r,
            None => {
                self.arena.compact(self.slot_keys.iter_mut());
                self.arena
                    .try_push(bytes)
                    .ok_or(Error::StateTooLarge { what: "the key arena", limit: u64::from(u32::MAX) })?
            }
        };
        set(&mut self.slot_keys, slot, r, ValueRef::ABSENT);
        Ok(())
    }

    fn release(&mut self, slot: u32) {
        let s = slot as usize;
        self.arena.release(self.slot_keys[s]);
        self.slot_keys[s] = ValueRef::ABSENT;
    }

    fn clear(&mut self) {
        self.slot_keys.clear();
        self.arena.clear();
    }

    fn maybe_compact(&mut self) {
        if self.arena.wants_compaction() {
            self.arena.compact(self.slot_keys.iter_mut());
        }
    }

    fn bytes_held(&self) -> usize {
        self.slot_keys.capacity() * 8 + self.arena.capacity_bytes()
    }
}

/// Encoded rows (several columns), bytes in an arena.
#[derive(Debug)]
struct RowKeys {
    output_types: Vec<DataType>,
    converter: RowConverter,
    parser: RowParser,
    stored: StoredKeys,
    batch: Rows,
}

/// One string or binary column: its own bytes, no row encoding.
#[derive(Debug)]
struct ByteKeys {
    output_type: DataType,
    kind: ValueKind,
    stored: StoredKeys,
    batch: Option<ColumnValues>,
}

#[derive(Debug)]
enum KeyStore {
    Int(IntKeys),
    Rows(RowKeys),
    Bytes(ByteKeys),
}

/// The key → slot table and the keys of the current batch.
#[derive(Debug)]
pub(crate) struct KeyTable {
    table: SlotTable,
    slot_hashes: Vec<u64>,
    in_use: Vec<bool>,
    free: Vec<u32>,
    store: KeyStore,
    batch_hashes: Vec<u64>,
    batch_nulls: Option<NullBuffer>,
}

impl KeyTable {
    /// An empty table for keys of `kind`.
    pub(crate) fn new(kind: &KeyKind) -> Result<Self> {
        let store = match kind {
            KeyKind::Int { output_type } => KeyStore::Int(IntKeys {
                output_type: output_type.clone(),
                slot_keys: Vec::new(),
                batch: Vec::new(),
            }),
            KeyKind::Rows { output_types } => {
                let fields = output_types.iter().map(|t| SortField::new(t.clone())).collect();
                let converter =
                    RowConverter::new(fields).map_err(Error::arrow("creating the key row converter"))?;
                KeyStore::Rows(RowKeys {
                    output_types: output_types.clone(),
                    parser: converter.parser(),
                    batch: converter.empty_rows(0, 0),
                    converter,
                    stored: StoredKeys::default(),
                })
            }
            KeyKind::Bytes { output_type } => KeyStore::Bytes(ByteKeys {
                kind: ValueKind::of(output_type)
                    .ok_or_else(|| Error::Internal(format!("byte key of type {output_type}")))?,
                output_type: output_type.clone(),
                stored: StoredKeys::default(),
                batch: None,
            }),
        };
        Ok(KeyTable {
            table: SlotTable::new(),
            slot_hashes: Vec::new(),
            in_use: Vec::new(),
            free: Vec::new(),
            store,
            batch_hashes: Vec::new(),
            batch_nulls: None,
        })
    }

    /// Extracts and hashes the keys of one batch (`columns` in key order, of
    /// the types validated at build time).
    pub(crate) fn load_batch(&mut self, columns: &[&ArrayRef]) -> Result<()> {
        self.batch_hashes.clear();
        match &mut self.store {
            KeyStore::Int(k) => {
                let column = unpack(columns[0], &k.output_type)?;
                self.batch_nulls = column.logical_nulls();
                widen(&column, &mut k.batch)?;
                self.batch_hashes.extend(k.batch.iter().map(|&v| hash_u64(v)));
            }
            KeyStore::Rows(k) => {
                let mut unpacked = Vec::with_capacity(columns.len());
                let mut nulls: Option<NullBuffer> = None;
                for (column, output_type) in columns.iter().zip(&k.output_types) {
                    let column = unpack(column, output_type)?;
                    nulls = NullBuffer::union(nulls.as_ref(), column.logical_nulls().as_ref());
                    unpacked.push(column);
                }
                self.batch_nulls = nulls;
                k.batch.clear();
                k.converter.append(&mut k.batch, &unpacked).map_err(Error::arrow("encoding key rows"))?;
                self.batch_hashes.extend(k.batch.iter().map(|row| hash_bytes(row.data())));
            }
            KeyStore::Bytes(k) => {
                let column = unpack(columns[0], &k.output_type)?;
                self.batch_nulls = column.logical_nulls();
                let values = ColumnValues::new(&column, k.kind, &k.output_type)?;
                self.batch_hashes
                    .extend((0..column.len()).map(|r| hash_bytes(values.get(r).unwrap_or_default())));
                k.batch = Some(values);
            }
        }
        Ok(())
    }

    /// Whether the key of `row` (of the loaded batch) has a null.
    #[inline(always)]
    pub(crate) fn is_null(&self, row: usize) -> bool {
        self.batch_nulls.as_ref().is_some_and(|n| n.is_null(row))
    }

    /// The slot of the key of `row` (of the loaded batch), allocated if new.
    /// Call it for rows in increasing order: it prefetches ahead.
    #[inline]
    pub(crate) fn intern(&mut self, row: usize) -> Result<u32> {
        if let Some(&ahead) = self.batch_hashes.get(row + AHEAD) {
            self.table.prefetch(ahead);
        }
        let hash = self.batch_hashes[row];
        let KeyTable { table, slot_hashes, in_use, free, store, .. } = self;
        match store {
            KeyStore::Int(k) => {
                let key = k.batch[row];
                let slot_keys = &mut k.slot_keys;
                // The hash is bijective: equal hashes are equal keys.
                table.find_or_insert(
                    hash,
                    |_| true,
                    || {
                        let slot = alloc(slot_hashes, in_use, free, hash)?;
                        set(slot_keys, slot, key, 0);
                        Ok(slot)
                    },
                )
            }
            KeyStore::Rows(k) => {
                let bytes = k.batch.row(row).data();
                intern_bytes(table, &mut k.stored, hash, bytes, || alloc(slot_hashes, in_use, free, hash))
            }
            KeyStore::Bytes(k) => {
                let bytes = k.batch.as_ref().and_then(|b| b.get(row)).unwrap_or_default();
                intern_bytes(table, &mut k.stored, hash, bytes, || alloc(slot_hashes, in_use, free, hash))
            }
        }
    }

    /// The hash of `row`'s key (of the loaded batch), as [`intern`](Self::intern) uses it.
    #[inline(always)]
    pub(crate) fn row_hash(&self, row: usize) -> u64 {
        self.batch_hashes[row]
    }

    /// The hash of `slot`'s key.
    #[inline(always)]
    pub(crate) fn slot_hash(&self, slot: u32) -> u64 {
        self.slot_hashes[slot as usize]
    }

    /// Appends `slot`'s key to `out` in the form [`intern_written`](Self::intern_written) reads.
    pub(crate) fn write_key(&self, slot: u32, out: &mut Vec<u8>) {
        match &self.store {
            KeyStore::Int(k) => spill_codec::put_u64(out, k.slot_keys[slot as usize]),
            KeyStore::Rows(RowKeys { stored, .. }) | KeyStore::Bytes(ByteKeys { stored, .. }) => {
                let bytes = stored.get(slot);
                spill_codec::put_u32(out, bytes.len() as u32);
                out.extend_from_slice(bytes);
            }
        }
    }

    /// Reads the next key [`write_key`](Self::write_key) wrote into `r`,
    /// with its hash (the one [`intern`](Self::intern) uses), without
    /// interning it.
    pub(crate) fn read_written<'a>(&self, r: &mut spill_codec::Reader<'a>) -> Result<WrittenKey<'a>> {
        match &self.store {
            KeyStore::Int(_) => {
                let key = r.u64()?;
                Ok(WrittenKey { hash: hash_u64(key), int: key, bytes: &[] })
            }
            KeyStore::Rows(_) | KeyStore::Bytes(_) => {
                let len = r.u32()? as usize;
                let bytes = r.bytes(len)?;
                Ok(WrittenKey { hash: hash_bytes(bytes), int: 0, bytes })
            }
        }
    }

    /// The slot of a key [`read_written`](Self::read_written) read (a new
    /// one if it is not resident).
    pub(crate) fn intern_written(&mut self, key: &WrittenKey<'_>) -> Result<u32> {
        let KeyTable { table, slot_hashes, in_use, free, store, .. } = self;
        let hash = key.hash;
        match store {
            KeyStore::Int(k) => {
                let slot_keys = &mut k.slot_keys;
                table.find_or_insert(
                    hash,
                    |_| true,
                    || {
                        let slot = alloc(slot_hashes, in_use, free, hash)?;
                        set(slot_keys, slot, key.int, 0);
                        Ok(slot)
                    },
                )
            }
            KeyStore::Rows(RowKeys { stored, .. }) | KeyStore::Bytes(ByteKeys { stored, .. }) => {
                intern_bytes(table, stored, hash, key.bytes, || alloc(slot_hashes, in_use, free, hash))
            }
        }
    }

    /// Removes the keys of `slots` (each in use, each once); the slots will
    /// be reused. Prefetches the table ahead like [`intern`](Self::intern).
    pub(crate) fn free_all(&mut self, slots: &[u32]) -> Result<()> {
        for (i, &slot) in slots.iter().enumerate() {
            if let Some(&ahead) = slots.get(i + AHEAD) {
                self.table.prefetch(self.slot_hashes[ahead as usize]);
            }
            if let Some(&further) = slots.get(i + 2 * AHEAD) {
                crate::prefetch::prefetch(&self.slot_hashes, further as usize);
            }
            self.free(slot)?;
        }
        Ok(())
    }

    /// Removes `slot`'s key; the slot will be reused.
    pub(crate) fn free(&mut self, slot: u32) -> Result<()> {
        let s = slot as usize;
        if !self.in_use[s] {
            return Err(Error::Internal(format!("freeing key slot {slot} twice")));
        }
        self.table.remove(self.slot_hashes[s], slot)?;
        self.in_use[s] = false;
        self.free.push(slot);
        match &mut self.store {
            KeyStore::Int(_) => {}
            KeyStore::Rows(k) => k.stored.release(slot),
            KeyStore::Bytes(k) => k.stored.release(slot),
        }
        Ok(())
    }

    /// Frees every slot at once.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.slot_hashes.clear();
        self.in_use.clear();
        self.free.clear();
        match &mut self.store {
            KeyStore::Int(k) => k.slot_keys.clear(),
            KeyStore::Rows(k) => k.stored.clear(),
            KeyStore::Bytes(k) => k.stored.clear(),
        }
    }

    /// Whether `slot` holds a key.
    #[inline(always)]
    pub(crate) fn in_use(&self, slot: u32) -> bool {
        self.in_use[slot as usize]
    }

    /// One past the highest slot ever allocated (the per-slot vectors' length).
    pub(crate) fn slot_count(&self) -> usize {
        self.slot_hashes.len()
    }

    /// Compacts the key arena when garbage outweighs live key bytes.
    pub(crate) fn maybe_compact(&mut self) {
        match &mut self.store {
            KeyStore::Int(_) => {}
            KeyStore::Rows(k) => k.stored.maybe_compact(),
            KeyStore::Bytes(k) => k.stored.maybe_compact(),
        }
    }

    /// The output key columns for `slots`, in order.
    pub(crate) fn key_columns(&self, slots: &[u32]) -> Result<Vec<ArrayRef>> {
        match &self.store {
            KeyStore::Int(k) => {
                let keys = slots.iter().map(|&s| k.slot_keys[s as usize]);
                let wide: ArrayRef = if k.output_type.is_signed_integer() {
                    std::sync::Arc::new(Int64Array::from_iter_values(keys.map(|v| v as i64)))
                } else {
                    std::sync::Arc::new(UInt64Array::from_iter_values(keys))
                };
                Ok(vec![cast(&wide, &k.output_type).map_err(Error::arrow("casting integer keys back"))?])
            }
            KeyStore::Rows(k) => {
                let rows = slots.iter().map(|&s| k.parser.parse(k.stored.get(s)));
                k.converter.convert_rows(rows).map_err(Error::arrow("decoding key rows"))
            }
            KeyStore::Bytes(k) => {
                let refs: Vec<ValueRef> = slots.iter().map(|&s| k.stored.slot_keys[s as usize]).collect();
                Ok(vec![build_column(k.kind, &k.output_type, &k.stored.arena, &refs)?])
            }
        }
    }

    /// Approximate bytes held.
    pub(crate) fn bytes_held(&self) -> usize {
        let per_slot = self.slot_hashes.capacity() * 8 + self.in_use.capacity() + self.free.capacity() * 4;
        let store = match &self.store {
            KeyStore::Int(k) => k.slot_keys.capacity() * 8 + k.batch.capacity() * 8,
            KeyStore::Rows(k) => k.stored.bytes_held() + k.batch.size() + k.converter.size(),
            KeyStore::Bytes(k) => k.stored.bytes_held(),
        };
        self.table.bytes_held() + per_slot + store + self.batch_hashes.capacity() * 8
    }
}

/// The slot of a variable-length key: probes `table`, comparing stored
/// bytes when the hashes match; a new key gets `alloc()` and its bytes stored.
#[inline]
fn intern_bytes(
    table: &mut SlotTable,
    stored: &mut StoredKeys,
    hash: u64,
    bytes: &[u8],
    alloc: impl FnOnce() -> Result<u32>,
) -> Result<u32> {
    let mut inserted = false;
    let slot = table.find_or_insert(
        hash,
        |s| stored.get(s) == bytes,
        || {
            inserted = true;
            alloc()
        },
    )?;
    if inserted {
        stored.store(slot, bytes)?;
    }
    Ok(slot)
}

/// Takes a slot from the free list, or a new one.
fn alloc(slot_hashes: &mut Vec<u64>, in_use: &mut Vec<bool>, free: &mut Vec<u32>, hash: u64) -> Result<u32> {
    if let Some(slot) = free.pop() {
        slot_hashes[slot as usize] = hash;
        in_use[slot as usize] = true;
        return Ok(slot);
    }
    let slot = u32::try_from(slot_hashes.len())
        .ok()
        .filter(|&s| s < u32::MAX)
        .ok_or(Error::StateTooLarge { what: "the key slots", limit: u64::from(u32::MAX) })?;
    slot_hashes.push(hash);
    in_use.push(true);
    Ok(slot)
}

/// Stores `value` at `slot`, growing `v` with `fill` when the slot is new.
#[inline(always)]
fn set<T: Copy>(v: &mut Vec<T>, slot: u32, value: T, fill: T) {
    let s = slot as usize;
    if s >= v.len() {
        v.resize(s + 1, fill);
    }
    v[s] = value;
}

/// A dictionary column cast to its value type; other columns as they are.
fn unpack(column: &ArrayRef, output_type: &DataType) -> Result<ArrayRef> {
    if column.data_type() == output_type {
        Ok(column.clone())
    } else {
        cast(column, output_type).map_err(Error::arrow("unpacking a dictionary key column"))
    }
}

/// Integer keys as `u64`: signed values keep their two's-complement bits.
fn widen(column: &ArrayRef, out: &mut Vec<u64>) -> Result<()> {
    fn fill<T: Copy>(out: &mut Vec<u64>, values: &[T], f: impl Fn(T) -> u64) {
        out.clear();
        out.extend(values.iter().map(|&v| f(v)));
    }
    match column.data_type() {
        DataType::Int8 => fill(out, column.as_primitive::<Int8Type>().values(), |v| v as i64 as u64),
        DataType::Int16 => fill(out, column.as_primitive::<Int16Type>().values(), |v| v as i64 as u64),
        DataType::Int32 => fill(out, column.as_primitive::<Int32Type>().values(), |v| v as i64 as u64),
        DataType::Int64 => fill(out, column.as_primitive::<Int64Type>().values(), |v| v as u64),
        DataType::UInt8 => fill(out, column.as_primitive::<UInt8Type>().values(), u64::from),
        DataType::UInt16 => fill(out, column.as_primitive::<UInt16Type>().values(), u64::from),
        DataType::UInt32 => fill(out, column.as_primitive::<UInt32Type>().values(), u64::from),
        DataType::UInt64 => fill(out, column.as_primitive::<UInt64Type>().values(), |v| v),
        other => return Err(Error::Internal(format!("integer key of type {other}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int32Array, Int8Array, StringArray};

    use super::*;

    #[test]
    fn integer_keys_intern_to_dense_reused_slots() {
        let mut t = KeyTable::new(&KeyKind::Int { output_type: DataType::Int8 }).unwrap();
        let col: ArrayRef = Arc::new(Int8Array::from(vec![Some(-1), Some(5), Some(-1), None]));
        t.load_batch(&[&col]).unwrap();
        let slots: Vec<u32> = (0..3).map(|r| t.intern(r).unwrap()).collect();
        assert_eq!(slots, [0, 1, 0]);
        assert!(t.is_null(3) && !t.is_null(0));
        let keys = t.key_columns(&[1, 0]).unwrap();
        assert_eq!(keys[0].as_primitive::<Int8Type>().values(), &[5, -1]);
        t.free(0).unwrap();
        assert!(t.free(0).is_err());
        assert_eq!(t.intern(1).unwrap(), 1);
        assert_eq!(t.intern(0).unwrap(), 0, "the freed slot is reused");
        assert_eq!(t.slot_count(), 2);
    }

    #[test]
    fn string_keys_of_any_layout_intern_by_their_bytes() {
        use arrow_array::{DictionaryArray, StringViewArray};
        let mut t = KeyTable::new(&KeyKind::Bytes { output_type: DataType::Utf8View }).unwrap();
        let iri = "http://example.org/subject/with/a/long/path/0001";
        let col: ArrayRef =
            Arc::new(StringViewArray::from(vec![Some(iri), Some("b"), None, Some(iri), Some("")]));
        t.load_batch(&[&col]).unwrap();
        assert!(t.is_null(2));
        let slots: Vec<u32> = [0, 1, 3, 4].iter().map(|&r| t.intern(r).unwrap()).collect();
        assert_eq!(slots, [0, 1, 0, 2]);
        let keys = t.key_columns(&[2, 0]).unwrap();
        assert_eq!(keys[0].as_string_view().value(1), iri);
        assert_eq!(keys[0].as_string_view().value(0), "");
        t.free_all(&[0, 2]).unwrap();
        assert_eq!(t.intern(1).unwrap(), 1, "a live key keeps its slot");

        let mut t = KeyTable::new(&KeyKind::Bytes { output_type: DataType::Utf8 }).unwrap();
        let dict: DictionaryArray<Int8Type> = vec!["x", "y", "x"].into_iter().collect();
        let col: ArrayRef = Arc::new(dict);
        t.load_batch(&[&col]).unwrap();
        let slots: Vec<u32> = (0..3).map(|r| t.intern(r).unwrap()).collect();
        assert_eq!(slots, [0, 1, 0]);
        assert_eq!(t.key_columns(&[1]).unwrap()[0].as_string::<i32>().value(0), "y");
    }

    #[test]
    fn multi_column_keys_go_through_rows() {
        let kind = KeyKind::Rows { output_types: vec![DataType::Utf8, DataType::Int32] };
        let mut t = KeyTable::new(&kind).unwrap();
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("x"), Some("x"), Some("y"), Some("x")]));
        let b: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(1), None]));
        t.load_batch(&[&a, &b]).unwrap();
        let slots: Vec<u32> = (0..3).map(|r| t.intern(r).unwrap()).collect();
        assert_eq!(slots, [0, 1, 2]);
        assert!(t.is_null(3));
        t.load_batch(&[&a, &b]).unwrap();
        assert_eq!(t.intern(2).unwrap(), 2);
        let cols = t.key_columns(&[2, 1]).unwrap();
        assert_eq!(cols[0].as_string::<i32>().value(0), "y");
        assert_eq!(cols[1].as_primitive::<Int32Type>().values(), &[1, 2]);
    }
}
