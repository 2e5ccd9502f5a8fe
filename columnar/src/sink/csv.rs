//! CSV sink.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, GenericListArray, OffsetSizeTrait, RecordBatch};
use arrow_csv::{Writer, WriterBuilder};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::file::{forward_sink, FileFormat, FileSink, Output};
use crate::Result;

/// The separator between the elements of a list column in CSV.
pub const CSV_LIST_SEPARATOR: char = ';';

/// Writes a CSV file with a header row (written even if no batch comes).
///
/// CSV has no lists: a `List` or `LargeList` column is written as one text
/// field, its elements cast to text and joined with
/// [`CSV_LIST_SEPARATOR`] (`["b", "c"]` becomes `b;c`; an empty list and a
/// null list both become an empty field, a null element an empty element).
/// Elements containing the separator are not escaped. Other nested types
/// (structs, maps) are an error.
#[derive(Debug)]
pub struct CsvSink(FileSink<Csv>);

impl CsvSink {
    /// Prepares to write `path`; fails if its directory does not exist.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        FileSink::create(Csv, path.as_ref()).map(Self)
    }
}

forward_sink!(CsvSink);

#[derive(Debug)]
pub(crate) struct Csv;

pub(crate) struct CsvEncoder {
    writer: Writer<Output>,
    /// The schema as written: list columns as Utf8.
    schema: SchemaRef,
}

impl FileFormat for Csv {
    type Encoder = CsvEncoder;
    const KIND: &'static str = "csv";

    fn start(&self, out: Output, schema: &SchemaRef) -> Result<Self::Encoder, ArrowError> {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::List(_) | DataType::LargeList(_) => {
                    f.as_ref().clone().with_data_type(DataType::Utf8)
                }
                _ => f.as_ref().clone(),
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let mut writer = WriterBuilder::new().with_header(true).build(out);
        // An empty batch writes just the header.
        writer.write(&RecordBatch::new_empty(schema.clone()))?;
        Ok(CsvEncoder { writer, schema })
    }

    fn write(encoder: &mut Self::Encoder, batch: &RecordBatch) -> Result<(), ArrowError> {
        let columns = batch.columns().iter().map(|c| join_lists(c)).collect::<Result<Vec<_>, _>>()?;
        encoder.writer.write(&RecordBatch::try_new(encoder.schema.clone(), columns)?)
    }

    fn finish(encoder: Self::Encoder) -> Result<Output, ArrowError> {
        // `Writer::write` flushes its own buffer, so this cannot lose data.
        Ok(encoder.writer.into_inner())
    }
}

/// A list column as text, joined with [`CSV_LIST_SEPARATOR`]; any other
/// column as it is.
fn join_lists(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match column.data_type() {
        DataType::List(_) => join(column.as_list::<i32>()),
        DataType::LargeList(_) => join(column.as_list::<i64>()),
        _ => Ok(column.clone()),
    }
}

fn join<O: OffsetSizeTrait>(list: &GenericListArray<O>) -> Result<ArrayRef, ArrowError> {
    // Cast all elements to text with one kernel call, then stitch rows.
    let elements = arrow_cast::cast(list.values(), &DataType::Utf8)?;
    let elements = elements.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(list.len(), elements.value_data().len() + list.len());
    for (row, bounds) in list.offsets().windows(2).enumerate() {
        if list.is_null(row) {
            out.append_null();
            continue;
        }
        for (k, element) in (bounds[0].as_usize()..bounds[1].as_usize()).enumerate() {
            if k > 0 {
                out.write_char(CSV_LIST_SEPARATOR).map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            }
            if elements.is_valid(element) {
                out.write_str(elements.value(element)).map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            }
        }
        out.append_value("");
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{CsvOptions, CsvSource};
    use crate::testdata::{project, samples, schema_of};
    use crate::{BatchSink, BatchSource};

    const FLAT: [&str; 6] = ["id", "count", "score", "flag", "name", "kind"];

    #[test]
    fn a_csv_file_round_trips_flat_columns_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let batches: Vec<_> = samples().iter().map(|b| project(b, &FLAT)).collect();
        let mut sink = CsvSink::create(&path).unwrap();
        sink.open(batches[0].schema()).unwrap();
        for batch in &batches {
            sink.write(batch).unwrap();
        }
        let summary = sink.finish().unwrap();
        sink.commit().unwrap();
        assert_eq!((summary.rows, summary.batches), (13, 3));

        let options = CsvOptions { schema: Some(schema_of(&FLAT)), batch_size: 5, ..Default::default() };
        let mut source = CsvSource::open(&path, options).unwrap();
        let back: Vec<RecordBatch> =
            std::iter::from_fn(|| source.next_batch().transpose()).collect::<crate::Result<_>>().unwrap();
        // Batches of 5 rows read back what was written in batches of 5, 7, 1.
        let schema = batches[0].schema();
        let written = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
        let read = arrow_select::concat::concat_batches(&schema, &back).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn list_columns_are_joined_with_the_separator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists.csv");
        let batch = project(&samples()[0], &["id", "tags"]);
        let mut sink = CsvSink::create(&path).unwrap();
        sink.open(batch.schema()).unwrap();
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        sink.commit().unwrap();
        // Rows 0..5: null, [a], [b, c], [], null.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,tags\n0,\n1,a\n2,b;c\n3,\n4,\n");
    }

    #[test]
    fn the_header_is_written_even_without_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.csv");
        let mut sink = CsvSink::create(&path).unwrap();
        sink.open(schema_of(&["id", "tags"])).unwrap();
        sink.finish().unwrap();
        sink.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,tags\n");
    }
}
