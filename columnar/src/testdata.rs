//! Small generated batches for the IO tests: every column type the formats
//! must carry, with nulls.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Column names of [`sample`], in order.
pub(crate) const COLUMNS: [&str; 7] = ["id", "count", "score", "flag", "name", "kind", "tags"];

/// One batch of `rows` rows starting at id `from`: Int64, UInt64, Float64,
/// Boolean and Utf8 columns with nulls, a `Dictionary<Int32, Utf8>` and a
/// `List<Utf8>`. Strings are never empty (CSV reads an empty field as null).
pub(crate) fn sample(from: i64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (from..from + rows as i64).collect();
    let count = UInt64Array::from_iter(ids.iter().map(|&i| (i % 4 != 1).then_some(u64::MAX - i as u64)));
    let score = Float64Array::from_iter(ids.iter().map(|&i| (i % 5 != 2).then_some(i as f64 * 0.25 - 3.0)));
    let flag = BooleanArray::from_iter(ids.iter().map(|&i| (i % 3 != 0).then_some(i % 2 == 0)));
    let name = StringArray::from_iter(ids.iter().map(|&i| (i % 6 != 4).then(|| format!("n-{i} \"q\", x"))));
    let mut tags = ListBuilder::new(StringBuilder::new());
    for &i in &ids {
        match i % 4 {
            0 => tags.append_null(),
            1 => tags.append_value([Some("a")]),
            2 => tags.append_value([Some("b"), Some("c")]),
            _ => tags.append_value(Vec::<Option<&str>>::new()),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(count),
        Arc::new(score),
        Arc::new(flag),
        Arc::new(name),
        Arc::new(kinds(&ids)),
        Arc::new(tags.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("sample columns agree")
}

/// The schema of [`sample`]: `id` is required, the rest nullable. Declared,
/// not inferred, so it does not depend on which rows a batch holds.
fn schema() -> SchemaRef {
    let fields = COLUMNS.into_iter().map(|name| {
        let data_type = match name {
            "id" => DataType::Int64,
            "count" => DataType::UInt64,
            "score" => DataType::Float64,
            "flag" => DataType::Boolean,
            "kind" => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            "tags" => DataType::new_list(DataType::Utf8, true),
            _ => DataType::Utf8,
        };
        Field::new(name, data_type, name != "id")
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// A dictionary column whose values array is the same `Arc` in every
/// sample batch, as an IPC file requires (it cannot replace a dictionary).
fn kinds(ids: &[i64]) -> DictionaryArray<Int32Type> {
    static VALUES: std::sync::OnceLock<ArrayRef> = std::sync::OnceLock::new();
    let values = VALUES.get_or_init(|| Arc::new(StringArray::from(vec!["red", "green", "blue"])));
    let keys = ids.iter().map(|&i| (i % 7 != 3).then_some((i % 3) as i32)).collect();
    DictionaryArray::try_new(keys, values.clone()).expect("keys in range")
}

/// The sample batches `[0, 5)`, `[5, 12)`, `[12, 13)`.
pub(crate) fn samples() -> Vec<RecordBatch> {
    vec![sample(0, 5), sample(5, 7), sample(12, 1)]
}

/// `batch` with only the named columns.
pub(crate) fn project(batch: &RecordBatch, names: &[&str]) -> RecordBatch {
    let schema = batch.schema();
    let indices: Vec<usize> = names.iter().map(|n| schema.index_of(n).expect("known column")).collect();
    batch.project(&indices).expect("valid projection")
}

/// The schema of [`sample`] projected to `names`.
pub(crate) fn schema_of(names: &[&str]) -> SchemaRef {
    project(&sample(0, 0), names).schema()
}

/// Writes [`samples`] with `sink` and returns the bytes of the file at
/// `path` it wrote.
pub(crate) fn write_samples(mut sink: impl crate::BatchSink, path: &std::path::Path) -> Vec<u8> {
    let batches = samples();
    sink.open(batches[0].schema()).expect("open");
    for batch in &batches {
        sink.write(batch).expect("write");
    }
    sink.finish().expect("finish");
    sink.commit().expect("commit");
    std::fs::read(path).expect("written file")
}
