//! Apache Parquet source.

use std::fs::File;
use std::path::{Path, PathBuf};

use ::parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use super::{decode_guarded, input_error, BatchSource, DEFAULT_BATCH_ROWS};
use crate::{Error, Result};

const FORMAT: &str = "parquet";

/// A Parquet file read row group by row group into batches of at most
/// `batch_size` rows. The footer is read in [`open`](Self::open), so a file
/// that is not Parquet fails there; a corrupt page fails in `next_batch`,
/// naming the row group it lies in, and ends the source.
pub struct ParquetSource {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    schema: SchemaRef,
    /// Rows in each row group, for error positions.
    row_group_rows: Vec<u64>,
    rows_read: u64,
    /// Set by an error: the reader is not used again and the source ends.
    failed: bool,
}

impl ParquetSource {
    /// Opens `path` with batches of [`DEFAULT_BATCH_ROWS`] rows.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, DEFAULT_BATCH_ROWS)
    }

    /// Opens `path` with batches of at most `batch_size` rows (at least 1).
    pub fn open_with(path: impl AsRef<Path>, batch_size: usize) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| input_error(path, FORMAT, Some("footer".into()), ArrowError::from(e)))?;
        let row_group_rows = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
            .collect();
        let schema = builder.schema().clone();
        let reader = builder
            .with_batch_size(batch_size.max(1))
            .build()
            .map_err(|e| input_error(path, FORMAT, Some("footer".into()), ArrowError::from(e)))?;
        Ok(Self { path: path.to_owned(), reader, schema, row_group_rows, rows_read: 0, failed: false })
    }

    /// The row group holding row `row` of the file, counting from 0.
    fn row_group_of(&self, row: u64) -> usize {
        let mut end = 0;
        self.row_group_rows
            .iter()
            .position(|&n| {
                end += n;
                row < end
            })
            .unwrap_or(self.row_group_rows.len().saturating_sub(1))
    }
}

impl std::fmt::Debug for ParquetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSource").field("path", &self.path).field("rows_read", &self.rows_read).finish()
    }
}

impl BatchSource for ParquetSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.failed {
            return Ok(None);
        }
        match decode_guarded(|| self.reader.next().transpose()) {
            Ok(batch) => {
                self.rows_read += batch.as_ref().map_or(0, |b| b.num_rows() as u64);
                Ok(batch)
            }
            Err(e) => {
                self.failed = true;
                let position = format!("row group {}", self.row_group_of(self.rows_read));
                Err(input_error(&self.path, FORMAT, Some(position), e))
            }
        }
    }

    fn rows_hint(&self) -> Option<u64> {
        Some(self.row_group_rows.iter().sum())
    }

    fn describe(&self) -> String {
        format!("parquet file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.parquet");
        let err = ParquetSource::open(&path).unwrap_err();
        assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{err}");
        assert!(err.to_string().contains("absent.parquet"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_parquet_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.parquet");
        std::fs::write(&path, b"definitely not a parquet file, no PAR1 footer here").unwrap();
        let err = ParquetSource::open(&path).unwrap_err();
        assert!(matches!(&err, Error::BadInput { format: "parquet", path: p, .. } if p == &path), "{err}");
    }

    #[test]
    fn an_empty_file_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        std::fs::write(&path, b"").unwrap();
        let err = ParquetSource::open(&path).unwrap_err();
        assert!(matches!(err, Error::BadInput { format: "parquet", .. }), "{err}");
    }
}
