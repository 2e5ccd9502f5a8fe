//! Memory held by batches, with Arrow buffers shared between batches (a
//! batch and its slices, a coalescer's inputs) counted once.

use std::collections::HashSet;

use arrow_array::RecordBatch;
use arrow_data::ArrayData;

/// Bytes of the distinct Arrow allocations behind `batches`: every buffer is
/// counted by the allocation it points into, once, however many batches,
/// slices or columns share it.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::distinct_buffer_bytes;
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..1000)) as _)]).unwrap();
/// let whole = distinct_buffer_bytes([&batch]);
/// let (a, b) = (batch.slice(0, 500), batch.slice(500, 500));
/// assert_eq!(distinct_buffer_bytes([&a, &b]), whole, "slices share the allocation");
/// assert!(whole >= 8000);
/// ```
pub fn distinct_buffer_bytes<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> usize {
    let mut seen = HashSet::new();
    let mut total = 0;
    for batch in batches {
        for column in batch.columns() {
            add(&column.to_data(), &mut seen, &mut total);
        }
    }
    total
}

fn add(data: &ArrayData, seen: &mut HashSet<usize>, total: &mut usize) {
    let nulls = data.nulls().map(|n| n.buffer());
    for buffer in data.buffers().iter().chain(nulls) {
        if seen.insert(buffer.data_ptr().as_ptr() as usize) {
            *total += buffer.capacity();
        }
    }
    for child in data.child_data() {
        add(child, seen, total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, StringArray};
    use std::sync::Arc;

    #[test]
    fn shared_and_nested_buffers_count_once() {
        let strings: ArrayRef = Arc::new(StringArray::from_iter([Some("a"), None, Some("ccc")]));
        let one = RecordBatch::try_from_iter([("s", strings.clone())]).unwrap();
        let two = RecordBatch::try_from_iter([("s", strings), ("t", one.column(0).clone())]).unwrap();
        let single = distinct_buffer_bytes([&one]);
        assert!(single > 0);
        assert_eq!(distinct_buffer_bytes([&one, &two]), single, "the same arrays twice and thrice");
        let other =
            RecordBatch::try_from_iter([("s", Arc::new(StringArray::from(vec!["x"])) as ArrayRef)]).unwrap();
        assert!(distinct_buffer_bytes([&one, &other]) > single);
        assert_eq!(distinct_buffer_bytes(std::iter::empty()), 0);
    }
}
