//! Value bytes in and out: reading the value column of a batch as raw bytes,
//! and rebuilding output columns from arena bytes.
//!
//! Every supported value type has a byte form, so the state stores only
//! [`ValueRef`]s into one [`ByteArena`]:
//!
//! | type | bytes |
//! |---|---|
//! | `Utf8`, `LargeUtf8`, `Utf8View`, binary of any layout | the string / binary bytes |
//! | fixed-width primitives (ints, floats, dates, times, timestamps, durations, intervals, decimals), `FixedSizeBinary` | the native little-endian bytes |
//! | `Boolean` | one byte, 0 or 1 |
//!
//! A dictionary value column is cast to its value type first. The per-row
//! readers ([`ValueSource`]) are small concrete structs over owned (Arc-shared)
//! buffers, chosen once per batch and monomorphized into the row loop: no
//! `dyn` call per row.

use std::sync::Arc;

use arrow_array::{
    builder::BinaryViewBuilder, cast::AsArray, make_array, Array, ArrayRef, BinaryViewArray, BooleanArray,
    GenericBinaryArray, GenericStringArray, OffsetSizeTrait,
};
use arrow_buffer::{
    BooleanBuffer, BooleanBufferBuilder, Buffer, MutableBuffer, NullBuffer, OffsetBuffer, ScalarBuffer,
};
use arrow_cast::cast;
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType};

use crate::arena::{ByteArena, ValueRef};
use crate::error::{Error, Result};

/// The byte layout of the value type (a dictionary unpacked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Utf8,
    LargeUtf8,
    Utf8View,
    Binary,
    LargeBinary,
    BinaryView,
    Boolean,
    /// Native bytes of this width.
    Fixed {
        width: usize,
    },
}

impl ValueKind {
    /// The layout of `data_type`, or `None` if values of that type are not
    /// supported.
    pub(crate) fn of(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => ValueKind::Utf8,
            DataType::LargeUtf8 => ValueKind::LargeUtf8,
            DataType::Utf8View => ValueKind::Utf8View,
            DataType::Binary => ValueKind::Binary,
            DataType::LargeBinary => ValueKind::LargeBinary,
            DataType::BinaryView => ValueKind::BinaryView,
            DataType::Boolean => ValueKind::Boolean,
            DataType::FixedSizeBinary(w) => ValueKind::Fixed { width: usize::try_from(*w).ok()? },
            t if t.is_primitive() => ValueKind::Fixed { width: t.primitive_width()? },
            _ => return None,
        })
    }
}

/// One row's value as bytes (the caller checks nulls first).
pub(crate) trait ValueSource {
    /// The bytes of `row`.
    fn bytes(&self, row: usize) -> &[u8];
}

/// Values of an offset-addressed string or binary column.
pub(crate) struct OffsetValues<O: OffsetSizeTrait> {
    offsets: OffsetBuffer<O>,
    data: Buffer,
}

impl<O: OffsetSizeTrait> ValueSource for OffsetValues<O> {
    #[inline(always)]
    fn bytes(&self, row: usize) -> &[u8] {
        let start = self.offsets[row].as_usize();
        let end = self.offsets[row + 1].as_usize();
        &self.data[start..end]
    }
}

/// Values of a view column (strings read as binary).
pub(crate) struct ViewValues(BinaryViewArray);

impl ValueSource for ViewValues {
    #[inline(always)]
    fn bytes(&self, row: usize) -> &[u8] {
        self.0.value(row)
    }
}

/// Values of a fixed-width column: `width` native bytes per row.
pub(crate) struct FixedValues {
    data: Buffer,
    width: usize,
}

impl ValueSource for FixedValues {
    #[inline(always)]
    fn bytes(&self, row: usize) -> &[u8] {
        &self.data[row * self.width..(row + 1) * self.width]
    }
}

/// Values of a boolean column, one byte each.
pub(crate) struct BoolValues(BooleanBuffer);

impl ValueSource for BoolValues {
    #[inline(always)]
    fn bytes(&self, row: usize) -> &[u8] {
        if self.0.value(row) {
            &[1]
        } else {
            &[0]
        }
    }
}

/// The value column of one batch, in the reader its layout needs.
pub(crate) enum BatchValues {
    Offsets32(OffsetValues<i32>),
    Offsets64(OffsetValues<i64>),
    Views(ViewValues),
    Fixed(FixedValues),
    Bool(BoolValues),
}

impl BatchValues {
    /// Reads `column` (of the validated input type) as `kind`, with its nulls.
    pub(crate) fn new(
        column: &ArrayRef,
        kind: ValueKind,
        value_type: &DataType,
    ) -> Result<(Self, Option<NullBuffer>)> {
        let column = if column.data_type() == value_type {
            column.clone()
        } else {
            cast(column, value_type).map_err(Error::arrow("unpacking a dictionary value column"))?
        };
        let values = match kind {
            ValueKind::Utf8 => {
                let a = column.as_string::<i32>();
                BatchValues::Offsets32(OffsetValues {
                    offsets: a.offsets().clone(),
                    data: a.values().clone(),
                })
            }
            ValueKind::Binary => {
                let a = column.as_binary::<i32>();
                BatchValues::Offsets32(OffsetValues {
                    offsets: a.offsets().clone(),
                    data: a.values().clone(),
                })
            }
            ValueKind::LargeUtf8 => {
                let a = column.as_string::<i64>();
                BatchValues::Offsets64(OffsetValues {
                    offsets: a.offsets().clone(),
                    data: a.values().clone(),
                })
            }
            ValueKind::LargeBinary => {
                let a = column.as_binary::<i64>();
                BatchValues::Offsets64(OffsetValues {
                    offsets: a.offsets().clone(),
                    data: a.values().clone(),
                })
            }
            ValueKind::Utf8View => {
                BatchValues::Views(ViewValues(column.as_string_view().clone().to_binary_view()))
            }
            ValueKind::BinaryView => BatchValues::Views(ViewValues(column.as_binary_view().clone())),
            ValueKind::Boolean => BatchValues::Bool(BoolValues(column.as_boolean().values().clone())),
            ValueKind::Fixed { width } => {
                let data = column.to_data();
                let buffer = data.buffers().first().ok_or_else(|| {
                    Error::Internal(format!("fixed-width column of type {value_type} without a buffer"))
                })?;
                let data = buffer.slice_with_length(data.offset() * width, data.len() * width);
                BatchValues::Fixed(FixedValues { data, width })
            }
        };
        Ok((values, column.logical_nulls()))
    }
}

/// The value column of one batch with its nulls: one row's bytes, or
/// `None` for a null, with one predictable `match` per row.
pub(crate) struct ColumnValues {
    values: BatchValues,
    nulls: Option<NullBuffer>,
}

impl std::fmt::Debug for ColumnValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnValues")
            .field("nulls", &self.nulls.as_ref().map(NullBuffer::null_count))
            .finish()
    }
}

impl ColumnValues {
    /// Reads `column` (of the validated input type) as `kind`.
    pub(crate) fn new(column: &ArrayRef, kind: ValueKind, value_type: &DataType) -> Result<Self> {
        let (values, nulls) = BatchValues::new(column, kind, value_type)?;
        Ok(ColumnValues { values, nulls })
    }

    /// The bytes of `row`, or `None` when it is null.
    #[inline(always)]
    pub(crate) fn get(&self, row: usize) -> Option<&[u8]> {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return None;
        }
        Some(match &self.values {
            BatchValues::Offsets32(v) => v.bytes(row),
            BatchValues::Offsets64(v) => v.bytes(row),
            BatchValues::Views(v) => v.bytes(row),
            BatchValues::Fixed(v) => v.bytes(row),
            BatchValues::Bool(v) => v.bytes(row),
        })
    }
}

/// Builds an output column of `data_type` (layout `kind`) from `refs`:
/// absent and null references become nulls.
pub(crate) fn build_column(
    kind: ValueKind,
    data_type: &DataType,
    arena: &ByteArena,
    refs: &[ValueRef],
) -> Result<ArrayRef> {
    let nulls = nulls_of(refs);
    let context = "building an output value column";
    let array: ArrayRef = match kind {
        ValueKind::Utf8 => {
            let (offsets, data) = concat::<i32>(arena, refs)?;
            Arc::new(GenericStringArray::<i32>::try_new(offsets, data, nulls).map_err(Error::arrow(context))?)
        }
        ValueKind::LargeUtf8 => {
            let (offsets, data) = concat::<i64>(arena, refs)?;
            Arc::new(GenericStringArray::<i64>::try_new(offsets, data, nulls).map_err(Error::arrow(context))?)
        }
        ValueKind::Binary => {
            let (offsets, data) = concat::<i32>(arena, refs)?;
            Arc::new(GenericBinaryArray::<i32>::try_new(offsets, data, nulls).map_err(Error::arrow(context))?)
        }
        ValueKind::LargeBinary => {
            let (offsets, data) = concat::<i64>(arena, refs)?;
            Arc::new(GenericBinaryArray::<i64>::try_new(offsets, data, nulls).map_err(Error::arrow(context))?)
        }
        ValueKind::Utf8View | ValueKind::BinaryView => {
            let mut b = BinaryViewBuilder::with_capacity(refs.len());
            for &r in refs {
                if r.is_stored() {
                    b.append_value(arena.get(r));
                } else {
                    b.append_null();
                }
            }
            let binary = b.finish();
            if kind == ValueKind::Utf8View {
                Arc::new(binary.to_string_view().map_err(Error::arrow(context))?)
            } else {
                Arc::new(binary)
            }
        }
        ValueKind::Boolean => {
            let mut bits = BooleanBufferBuilder::new(refs.len());
            for &r in refs {
                bits.append(arena.get(r).first().is_some_and(|&b| b != 0));
            }
            Arc::new(BooleanArray::new(bits.finish(), nulls))
        }
        ValueKind::Fixed { width } => {
            let mut data = MutableBuffer::with_capacity(refs.len() * width);
            for &r in refs {
                if r.is_stored() {
                    data.extend_from_slice(arena.get(r));
                } else {
                    data.extend_zeros(width);
                }
            }
            let data = ArrayData::builder(data_type.clone())
                .len(refs.len())
                .add_buffer(data.into())
                .nulls(nulls)
                .build()
                .map_err(Error::arrow(context))?;
            make_array(data)
        }
    };
    Ok(array)
}

/// Validity of `refs`: stored values are valid, sentinels null.
fn nulls_of(refs: &[ValueRef]) -> Option<NullBuffer> {
    if refs.iter().all(|r| r.is_stored()) {
        return None;
    }
    let mut bits = BooleanBufferBuilder::new(refs.len());
    for r in refs {
        bits.append(r.is_stored());
    }
    Some(NullBuffer::new(bits.finish()))
}

/// How far ahead [`concat`] prefetches the values it gathers.
const PREFETCH_AHEAD: usize = 8;

/// Offsets and concatenated bytes of `refs` (gathered from all over the
/// arena, so the reads are prefetched a few values ahead).
fn concat<O: OffsetSizeTrait>(arena: &ByteArena, refs: &[ValueRef]) -> Result<(OffsetBuffer<O>, Buffer)> {
    let total: usize = refs.iter().map(|r| r.len()).sum();
    if O::from_usize(total).is_none() {
        return Err(Error::Arrow {
            context: "building an output value column",
            source: ArrowError::OffsetOverflowError(total),
        });
    }
    let mut offsets = Vec::with_capacity(refs.len() + 1);
    let mut data = MutableBuffer::with_capacity(total);
    offsets.push(O::usize_as(0));
    for (i, &r) in refs.iter().enumerate() {
        if let Some(&ahead) = refs.get(i + PREFETCH_AHEAD) {
            arena.prefetch(ahead);
        }
        data.extend_from_slice(arena.get(r));
        offsets.push(O::usize_as(data.len()));
    }
    Ok((OffsetBuffer::new(ScalarBuffer::from(offsets)), data.into()))
}

#[cfg(test)]
mod tests {
    use arrow_array::{
        types::Int64Type, BinaryArray, Decimal128Array, FixedSizeBinaryArray, Float64Array, Int64Array,
        LargeStringArray, StringArray, StringViewArray, TimestampMillisecondArray,
    };

    use super::*;

    /// Reads `column` into an arena and rebuilds it with the rows reversed and
    /// a missing value appended.
    fn round_trip(column: ArrayRef) -> ArrayRef {
        let value_type = column.data_type().clone();
        let kind = ValueKind::of(&value_type).unwrap();
        let (values, nulls) = BatchValues::new(&column, kind, &value_type).unwrap();
        let mut arena = ByteArena::default();
        let mut refs: Vec<ValueRef> = (0..column.len())
            .map(|i| {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    return ValueRef::NULL;
                }
                let bytes = match &values {
                    BatchValues::Offsets32(v) => v.bytes(i),
                    BatchValues::Offsets64(v) => v.bytes(i),
                    BatchValues::Views(v) => v.bytes(i),
                    BatchValues::Fixed(v) => v.bytes(i),
                    BatchValues::Bool(v) => v.bytes(i),
                };
                arena.try_push(bytes).unwrap()
            })
            .collect();
        refs.reverse();
        refs.push(ValueRef::ABSENT);
        build_column(kind, &value_type, &arena, &refs).unwrap()
    }

    #[test]
    fn every_layout_survives_the_arena() {
        let cases: Vec<(ArrayRef, ArrayRef)> = vec![
            (
                Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])),
                Arc::new(StringArray::from(vec![Some("ccc"), None, Some("a"), None])),
            ),
            (
                Arc::new(LargeStringArray::from(vec!["x", ""])),
                Arc::new(LargeStringArray::from(vec![Some(""), Some("x"), None])),
            ),
            (
                Arc::new(StringViewArray::from(vec!["a string longer than twelve bytes", "s"])),
                Arc::new(StringViewArray::from(vec![
                    Some("s"),
                    Some("a string longer than twelve bytes"),
                    None,
                ])),
            ),
            (
                Arc::new(BinaryArray::from(vec![&b"\x00\x01"[..], b""])),
                Arc::new(BinaryArray::from(vec![Some(&b""[..]), Some(b"\x00\x01"), None])),
            ),
            (
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
                Arc::new(BooleanArray::from(vec![None, Some(false), Some(true), None])),
            ),
            (
                Arc::new(Float64Array::from(vec![1.5, -0.0])),
                Arc::new(Float64Array::from(vec![Some(-0.0), Some(1.5), None])),
            ),
            (
                Arc::new(TimestampMillisecondArray::from(vec![7, 8]).with_timezone("+01:00")),
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(8), Some(7), None]).with_timezone("+01:00"),
                ),
            ),
            (
                Arc::new(Decimal128Array::from(vec![12345, -1]).with_precision_and_scale(10, 2).unwrap()),
                Arc::new(
                    Decimal128Array::from(vec![Some(-1), Some(12345), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            (
                Arc::new(FixedSizeBinaryArray::try_from_iter([[1u8, 2], [3, 4]].into_iter()).unwrap()),
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        [Some([3u8, 4]), Some([1, 2]), None].into_iter(),
                        2,
                    )
                    .unwrap(),
                ),
            ),
        ];
        for (input, expected) in cases {
            let out = round_trip(input.clone());
            assert_eq!(out.as_ref(), expected.as_ref(), "{}", input.data_type());
        }
    }

    #[test]
    fn sliced_fixed_width_columns_read_from_their_offset() {
        let column: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4]).slice(2, 2));
        let out = round_trip(column);
        assert_eq!(out.as_primitive::<Int64Type>().values(), &[4, 3, 0]);
        assert_eq!(out.null_count(), 1);
    }

    #[test]
    fn dictionary_values_are_unpacked() {
        let dict: arrow_array::DictionaryArray<arrow_array::types::Int8Type> =
            vec!["b", "a", "b"].into_iter().collect();
        let column: ArrayRef = Arc::new(dict);
        let (values, _) = BatchValues::new(&column, ValueKind::Utf8, &DataType::Utf8).unwrap();
        let BatchValues::Offsets32(v) = values else { panic!("strings read through offsets") };
        assert_eq!([v.bytes(0), v.bytes(1), v.bytes(2)], [b"b", b"a", b"b"]);
    }

    #[test]
    fn unsupported_value_types_have_no_layout() {
        assert_eq!(ValueKind::of(&DataType::Null), None);
        assert_eq!(ValueKind::of(&DataType::new_list(DataType::Int8, true)), None);
        assert_eq!(ValueKind::of(&DataType::Decimal256(40, 2)), Some(ValueKind::Fixed { width: 32 }));
    }
}
