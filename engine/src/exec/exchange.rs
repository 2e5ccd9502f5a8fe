//! The hash exchange: splits a batch by the hash of its key columns so that
//! every key always goes to the same partition (the same accumulator
//! instance), vectorized: hash the whole key column at once, bucket row
//! indices per partition, then one Arrow `take` per partition.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Schema};

use crate::{Error, Result};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
const NULL_HASH: u64 = 0x2545_f491_4f6c_dd1d;

#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[inline]
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = SEED ^ (bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h ^ u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(tail));
    }
    h
}

/// Folds the hash of every row of `array` into `hashes`.
fn hash_into(array: &dyn Array, hashes: &mut [u64]) -> Result<()> {
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            match a.nulls() {
                None => {
                    for (h, v) in hashes.iter_mut().zip(a.values().iter()) {
                        *h = mix(*h ^ mix(*v as u64 ^ SEED));
                    }
                }
                Some(valid) => {
                    for ((h, v), ok) in hashes.iter_mut().zip(a.values().iter()).zip(valid.iter()) {
                        *h = mix(*h ^ if ok { mix(*v as u64 ^ SEED) } else { NULL_HASH });
                    }
                }
            }
        }};
    }
    match array.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Utf8 => {
            for (h, v) in hashes.iter_mut().zip(array.as_string::<i32>().iter()) {
                *h = mix(*h ^ v.map_or(NULL_HASH, |s| hash_bytes(s.as_bytes())));
            }
        }
        DataType::LargeUtf8 => {
            for (h, v) in hashes.iter_mut().zip(array.as_string::<i64>().iter()) {
                *h = mix(*h ^ v.map_or(NULL_HASH, |s| hash_bytes(s.as_bytes())));
            }
        }
        DataType::Utf8View => {
            for (h, v) in hashes.iter_mut().zip(array.as_string_view().iter()) {
                *h = mix(*h ^ v.map_or(NULL_HASH, |s| hash_bytes(s.as_bytes())));
            }
        }
        DataType::Dictionary(_, _) => {
            // Hash the dictionary's values once, then look them up per row.
            let dict = array.as_any_dictionary();
            let mut value_hashes = vec![0u64; dict.values().len()];
            hash_into(dict.values().as_ref(), &mut value_hashes)?;
            let keys = arrow_cast::cast(dict.keys(), &DataType::UInt64)
                .map_err(|e| Error::arrow("hashing dictionary keys", e))?;
            for (h, k) in hashes.iter_mut().zip(keys.as_primitive::<UInt64Type>().iter()) {
                *h = mix(*h ^ k.map_or(NULL_HASH, |k| value_hashes[k as usize]));
            }
            return Ok(());
        }
        other => {
            return Err(Error::Internal(format!("hash exchange on a column of type {other}")));
        }
    }
    Ok(())
}

/// Splits batches into `partitions` parts by the hash of key columns.
#[derive(Debug, Clone)]
pub(crate) struct HashPartitioner {
    columns: Vec<usize>,
    partitions: usize,
}

impl HashPartitioner {
    /// A partitioner over `columns` of `schema`.
    pub(crate) fn new(schema: &Schema, columns: &[String], partitions: usize) -> Result<Self> {
        let columns = columns
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| Error::UnknownColumn {
                    stage: String::new(),
                    column: c.clone(),
                    available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { columns, partitions: partitions.max(1) })
    }

    /// The partition of every row.
    pub(crate) fn assign(&self, batch: &RecordBatch) -> Result<Vec<u32>> {
        let mut hashes = vec![SEED; batch.num_rows()];
        for &c in &self.columns {
            hash_into(batch.column(c).as_ref(), &mut hashes)?;
        }
        let p = self.partitions as u128;
        Ok(hashes.into_iter().map(|h| ((mix(h) as u128 * p) >> 64) as u32).collect())
    }

    /// One batch per partition (empty where no row goes).
    pub(crate) fn split(&self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        if self.partitions == 1 {
            return Ok(vec![batch.clone()]);
        }
        let assignment = self.assign(batch)?;
        let mut indices: Vec<Vec<u32>> =
            vec![Vec::with_capacity(batch.num_rows() / self.partitions + 16); self.partitions];
        for (row, &p) in assignment.iter().enumerate() {
            indices[p as usize].push(row as u32);
        }
        indices
            .into_iter()
            .map(|idx| {
                if idx.len() == batch.num_rows() {
                    return Ok(batch.clone());
                }
                let idx = UInt32Array::from(idx);
                let columns: Vec<ArrayRef> = batch
                    .columns()
                    .iter()
                    .map(|c| arrow_select::take::take(c.as_ref(), &idx, None))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::arrow("hash exchange", e))?;
                RecordBatch::try_new(batch.schema(), columns).map_err(|e| Error::arrow("hash exchange", e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray, UInt64Array};
    use std::collections::HashMap;

    fn batch(keys: Vec<Option<i64>>, names: Vec<&str>) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(keys)) as ArrayRef),
            ("s", Arc::new(StringArray::from(names)) as ArrayRef),
        ])
        .unwrap()
    }

    use std::sync::Arc;

    #[test]
    fn a_key_always_lands_in_the_same_partition_across_batches() {
        let p = HashPartitioner::new(&batch(vec![], vec![]).schema(), &["k".into(), "s".into()], 4).unwrap();
        let a = batch(vec![Some(1), Some(2), Some(3), None], vec!["x", "y", "z", "x"]);
        let b = batch(vec![Some(3), None, Some(1)], vec!["z", "x", "x"]);
        let (pa, pb) = (p.assign(&a).unwrap(), p.assign(&b).unwrap());
        assert_eq!(pa[2], pb[0]);
        assert_eq!(pa[3], pb[1], "null keys hash alike, whatever the slot holds");
        assert_eq!(pa[0], pb[2]);
    }

    #[test]
    fn split_keeps_every_row_once_and_spreads_keys() {
        let keys = UInt64Array::from_iter_values(0..10_000);
        let data = RecordBatch::try_from_iter([("k", Arc::new(keys) as ArrayRef)]).unwrap();
        let p = HashPartitioner::new(&data.schema(), &["k".into()], 3).unwrap();
        let parts = p.split(&data).unwrap();
        assert_eq!(parts.len(), 3);
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (i, part) in parts.iter().enumerate() {
            assert!(part.num_rows() > 3000, "balanced: {}", part.num_rows());
            for k in part.column(0).as_primitive::<UInt64Type>().values() {
                assert!(seen.insert(*k, i).is_none());
            }
        }
        assert_eq!(seen.len(), 10_000);
    }

    #[test]
    fn one_partition_is_zero_copy() {
        let data = batch(vec![Some(1)], vec!["a"]);
        let p = HashPartitioner::new(&data.schema(), &["k".into()], 1).unwrap();
        assert_eq!(
            p.split(&data).unwrap()[0].column(0).to_data().buffers()[0].as_ptr(),
            data.column(0).to_data().buffers()[0].as_ptr()
        );
    }
}
