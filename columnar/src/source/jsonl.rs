//! JSON lines source: one JSON object per line.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::reader::{infer_json_schema_from_seekable, Reader};
use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;

use super::{input_error, BatchSource, DEFAULT_BATCH_ROWS};
use crate::{Error, Result};

const FORMAT: &str = "jsonl";

/// How to read a JSON lines file.
#[derive(Debug, Clone)]
pub struct JsonlOptions {
    /// The columns; `None` infers them from the first `infer_rows` objects
    /// (numbers become Int64 or Float64, arrays become lists, objects
    /// structs; every column is nullable).
    pub schema: Option<SchemaRef>,
    /// Rows per batch (default [`DEFAULT_BATCH_ROWS`]).
    pub batch_size: usize,
    /// Objects read to infer the schema (default 1000, at least 1).
    pub infer_rows: usize,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        Self { schema: None, batch_size: DEFAULT_BATCH_ROWS, infer_rows: 1000 }
    }
}

/// A JSON lines file read in batches. Keys not in the schema are ignored,
/// missing keys are nulls, blank lines are skipped.
///
/// arrow-json does not report where in a batch an error lies, so a bad
/// object is an [`Error::BadInput`] whose position is the range of records
/// of the batch that holds it (`records 8193-16384`).
pub struct JsonlSource {
    path: PathBuf,
    reader: Reader<BufReader<File>>,
    batch_size: usize,
    rows_read: u64,
}

impl JsonlSource {
    /// Opens `path`, inferring the schema first if `options` has none.
    pub fn open(path: impl AsRef<Path>, options: JsonlOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut input = BufReader::new(file);
        let schema = match options.schema {
            Some(schema) => schema,
            None => {
                let (schema, _) =
                    infer_json_schema_from_seekable(&mut input, Some(options.infer_rows.max(1)))
                        .map_err(|e| input_error(path, FORMAT, Some("schema inference".into()), e))?;
                Arc::new(schema)
            }
        };
        let batch_size = options.batch_size.max(1);
        let reader = ReaderBuilder::new(schema)
            .with_batch_size(batch_size)
            .build(input)
            .map_err(|e| input_error(path, FORMAT, None, e))?;
        Ok(Self { path: path.to_owned(), reader, batch_size, rows_read: 0 })
    }
}

impl std::fmt::Debug for JsonlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSource").field("path", &self.path).field("rows_read", &self.rows_read).finish()
    }
}

impl BatchSource for JsonlSource {
    fn schema(&self) -> SchemaRef {
        arrow_array::RecordBatchReader::schema(&self.reader)
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self.reader.next().transpose() {
            Ok(batch) => {
                self.rows_read += batch.as_ref().map_or(0, |b| b.num_rows() as u64);
                Ok(batch)
            }
            Err(e) => {
                let first = self.rows_read + 1;
                let position = format!("records {first}-{}", self.rows_read + self.batch_size as u64);
                Err(input_error(&self.path, FORMAT, Some(position), e))
            }
        }
    }

    fn describe(&self) -> String {
        format!("jsonl file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::DataType;

    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("input.jsonl");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_schema_is_inferred_and_missing_keys_are_null() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "{\"a\": 1, \"b\": \"x\"}\n\n{\"a\": 2}\n{\"b\": \"y\", \"c\": [1.5]}\n");
        let mut source = JsonlSource::open(&path, JsonlOptions::default()).unwrap();
        let schema = source.schema();
        assert_eq!(schema.field_with_name("a").unwrap().data_type(), &DataType::Int64);
        assert!(matches!(schema.field_with_name("c").unwrap().data_type(), DataType::List(_)));
        let batch = source.next_batch().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 3);
        let a = batch.column_by_name("a").unwrap().as_primitive::<Int64Type>();
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some(1), Some(2), None]);
        assert!(source.next_batch().unwrap().is_none());
    }

    #[test]
    fn a_malformed_object_is_bad_input_naming_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n{\"a\": [}\n";
        let path = write(&dir, text);
        let schema =
            Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new("a", DataType::Int64, true)]));
        let options = JsonlOptions { schema: Some(schema), batch_size: 2, ..Default::default() };
        let mut source = JsonlSource::open(&path, options).unwrap();
        assert_eq!(source.next_batch().unwrap().unwrap().num_rows(), 2);
        let err = source.next_batch().unwrap_err();
        match &err {
            Error::BadInput { format: "jsonl", position, path: p, .. } => {
                assert_eq!(position.as_deref(), Some("records 3-4"));
                assert_eq!(p, &path);
            }
            other => panic!("expected bad input, got {other}"),
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "{\"a\": 1}\n{\"a\": \"one\"}\n");
        let schema =
            Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new("a", DataType::Int64, true)]));
        let mut source =
            JsonlSource::open(&path, JsonlOptions { schema: Some(schema), ..Default::default() }).unwrap();
        let err = source.next_batch().unwrap_err();
        assert!(matches!(err, Error::BadInput { format: "jsonl", .. }), "{err}");
    }

    #[test]
    fn garbage_met_while_inferring_is_bad_input_from_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "this is not json\n");
        let err = JsonlSource::open(&path, JsonlOptions::default()).unwrap_err();
        assert!(matches!(err, Error::BadInput { format: "jsonl", .. }), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.jsonl");
        let err = JsonlSource::open(&path, JsonlOptions::default()).unwrap_err();
        assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{err}");
    }
}
