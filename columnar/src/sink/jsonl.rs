//! JSON lines sink.

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_json::LineDelimitedWriter;
use arrow_schema::{ArrowError, SchemaRef};

use super::file::{forward_sink, FileFormat, FileSink, Output};
use crate::Result;

/// Writes one JSON object per row and line. Null values are left out of
/// the object; lists become arrays, dictionaries their values.
#[derive(Debug)]
pub struct JsonlSink(FileSink<Jsonl>);

impl JsonlSink {
    /// Prepares to write `path`; fails if its directory does not exist.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        FileSink::create(Jsonl, path.as_ref()).map(Self)
    }
}

forward_sink!(JsonlSink);

#[derive(Debug)]
pub(crate) struct Jsonl;

impl FileFormat for Jsonl {
    type Encoder = LineDelimitedWriter<Output>;
    const KIND: &'static str = "jsonl";

    fn start(&self, out: Output, _schema: &SchemaRef) -> Result<Self::Encoder, ArrowError> {
        Ok(LineDelimitedWriter::new(out))
    }

    fn write(encoder: &mut Self::Encoder, batch: &RecordBatch) -> Result<(), ArrowError> {
        encoder.write(batch)
    }

    fn finish(mut encoder: Self::Encoder) -> Result<Output, ArrowError> {
        encoder.finish()?;
        Ok(encoder.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{JsonlOptions, JsonlSource};
    use crate::testdata::{project, samples, schema_of};
    use crate::{BatchSink, BatchSource};

    const COLUMNS: [&str; 6] = ["id", "count", "score", "flag", "name", "tags"];

    #[test]
    fn a_jsonl_file_round_trips_with_its_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let batches: Vec<_> = samples().iter().map(|b| project(b, &COLUMNS)).collect();
        let mut sink = JsonlSink::create(&path).unwrap();
        sink.open(batches[0].schema()).unwrap();
        for batch in &batches {
            sink.write(batch).unwrap();
        }
        let summary = sink.finish().unwrap();
        sink.commit().unwrap();
        assert_eq!((summary.rows, summary.batches), (13, 3));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 13);

        let options = JsonlOptions { schema: Some(schema_of(&COLUMNS)), batch_size: 5, ..Default::default() };
        let mut source = JsonlSource::open(&path, options).unwrap();
        let back: Vec<RecordBatch> =
            std::iter::from_fn(|| source.next_batch().transpose()).collect::<crate::Result<_>>().unwrap();
        let schema = batches[0].schema();
        let written = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
        let read = arrow_select::concat::concat_batches(&schema, &back).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn nulls_are_left_out_and_lists_are_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let batch = project(&samples()[0], &["id", "flag", "tags"]);
        let mut sink = JsonlSink::create(&path).unwrap();
        sink.open(batch.schema()).unwrap();
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        sink.commit().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"id":0}"#);
        assert_eq!(lines[2], r#"{"id":2,"flag":true,"tags":["b","c"]}"#);
    }
}
