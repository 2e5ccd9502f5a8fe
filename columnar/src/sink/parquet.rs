//! Apache Parquet sink.

use std::path::Path;

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::Compression;
use ::parquet::file::properties::WriterProperties;
use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use super::file::{forward_sink, FileFormat, FileSink, Output};
use crate::Result;

/// Page compression of a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompression {
    /// No compression.
    Uncompressed,
    /// Snappy: fast, and read by every Parquet implementation.
    #[default]
    Snappy,
    /// LZ4 (the `LZ4_RAW` codec): faster to decompress than Snappy.
    Lz4Raw,
}

impl From<ParquetCompression> for Compression {
    fn from(c: ParquetCompression) -> Self {
        match c {
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Lz4Raw => Compression::LZ4_RAW,
        }
    }
}

/// How to write a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetOptions {
    /// Page compression (default Snappy).
    pub compression: ParquetCompression,
    /// Rows per row group (default 1 Mi): a row group is buffered in memory
    /// until it is complete, so this bounds the sink's memory.
    pub row_group_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self { compression: ParquetCompression::default(), row_group_rows: 1 << 20 }
    }
}

/// Writes a Parquet file. The Arrow schema is stored in the file, so types
/// Parquet lacks (dictionaries, unsigned integers) read back as written.
#[derive(Debug)]
pub struct ParquetSink(FileSink<Parquet>);

impl ParquetSink {
    /// Prepares to write `path` with default options; fails if its directory
    /// does not exist.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::create_with(path, ParquetOptions::default())
    }

    /// Prepares to write `path` with `options`.
    pub fn create_with(path: impl AsRef<Path>, options: ParquetOptions) -> Result<Self> {
        FileSink::create(Parquet(options), path.as_ref()).map(Self)
    }
}

forward_sink!(ParquetSink);

#[derive(Debug)]
pub(crate) struct Parquet(ParquetOptions);

impl FileFormat for Parquet {
    type Encoder = ArrowWriter<Output>;
    const KIND: &'static str = "parquet";

    fn start(&self, out: Output, schema: &SchemaRef) -> Result<Self::Encoder, ArrowError> {
        let properties = WriterProperties::builder()
            .set_compression(self.0.compression.into())
            .set_max_row_group_row_count(Some(self.0.row_group_rows.max(1)))
            .build();
        Ok(ArrowWriter::try_new(out, schema.clone(), Some(properties))?)
    }

    fn write(encoder: &mut Self::Encoder, batch: &RecordBatch) -> Result<(), ArrowError> {
        Ok(encoder.write(batch)?)
    }

    fn finish(encoder: Self::Encoder) -> Result<Output, ArrowError> {
        Ok(encoder.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ParquetSource;
    use crate::testdata::samples;
    use crate::{BatchSink, BatchSource};

    fn round_trip(options: ParquetOptions) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let batches = samples();
        let mut sink = ParquetSink::create_with(&path, options).unwrap();
        sink.open(batches[0].schema()).unwrap();
        for batch in &batches {
            sink.write(batch).unwrap();
        }
        let summary = sink.finish().unwrap();
        sink.commit().unwrap();
        assert_eq!((summary.rows, summary.batches), (13, 3));
        assert_eq!(summary.bytes, Some(std::fs::metadata(&path).unwrap().len()));

        // Batches of 4 rows: Parquet does not keep batch boundaries.
        let mut source = ParquetSource::open_with(&path, 4).unwrap();
        assert_eq!(source.schema(), batches[0].schema());
        assert_eq!(source.rows_hint(), Some(13));
        let back: Vec<RecordBatch> =
            std::iter::from_fn(|| source.next_batch().transpose()).collect::<crate::Result<_>>().unwrap();
        assert!(back.iter().all(|b| b.num_rows() <= 4));
        let schema = batches[0].schema();
        let written = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
        let read = arrow_select::concat::concat_batches(&schema, &back).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn a_parquet_file_round_trips_every_column_type_with_each_codec() {
        for compression in
            [ParquetCompression::Uncompressed, ParquetCompression::Snappy, ParquetCompression::Lz4Raw]
        {
            round_trip(ParquetOptions { compression, ..Default::default() });
        }
    }

    #[test]
    fn small_row_groups_round_trip_too() {
        round_trip(ParquetOptions { row_group_rows: 3, ..Default::default() });
    }
}
