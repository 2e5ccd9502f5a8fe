//! Arrow IPC sinks: the file format (random access, what
//! [`IpcFileSource`](crate::source::IpcFileSource) maps) and the stream
//! format.

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{ArrowError, SchemaRef};

use super::file::{forward_sink, FileFormat, FileSink, Output};
use crate::Result;

/// Writes an Arrow IPC file.
///
/// The file format cannot replace a dictionary: every batch must carry the
/// same dictionary values for a dictionary column (the same `Arc`, as
/// batches sliced from one array do). A batch with other values is an
/// [`Error::Arrow`](crate::Error::Arrow); write an IPC stream instead.
#[derive(Debug)]
pub struct IpcFileSink(FileSink<IpcFile>);

impl IpcFileSink {
    /// Prepares to write `path`; fails if its directory does not exist.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        FileSink::create(IpcFile, path.as_ref()).map(Self)
    }
}

forward_sink!(IpcFileSink);

/// Writes an Arrow IPC stream to a file.
#[derive(Debug)]
pub struct IpcStreamSink(FileSink<IpcStream>);

impl IpcStreamSink {
    /// Prepares to write `path`; fails if its directory does not exist.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        FileSink::create(IpcStream, path.as_ref()).map(Self)
    }
}

forward_sink!(IpcStreamSink);

#[derive(Debug)]
pub(crate) struct IpcFile;

impl FileFormat for IpcFile {
    type Encoder = FileWriter<Output>;
    const KIND: &'static str = "ipc file";

    fn start(&self, out: Output, schema: &SchemaRef) -> Result<Self::Encoder, ArrowError> {
        FileWriter::try_new(out, schema)
    }

    fn write(encoder: &mut Self::Encoder, batch: &RecordBatch) -> Result<(), ArrowError> {
        encoder.write(batch)
    }

    fn finish(encoder: Self::Encoder) -> Result<Output, ArrowError> {
        encoder.into_inner()
    }
}

#[derive(Debug)]
pub(crate) struct IpcStream;

impl FileFormat for IpcStream {
    type Encoder = StreamWriter<Output>;
    const KIND: &'static str = "ipc stream";

    fn start(&self, out: Output, schema: &SchemaRef) -> Result<Self::Encoder, ArrowError> {
        StreamWriter::try_new(out, schema)
    }

    fn write(encoder: &mut Self::Encoder, batch: &RecordBatch) -> Result<(), ArrowError> {
        encoder.write(batch)
    }

    fn finish(encoder: Self::Encoder) -> Result<Output, ArrowError> {
        encoder.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{IpcFileSource, IpcStreamSource};
    use crate::testdata::samples;
    use crate::{BatchSink, BatchSource};

    fn write_all(sink: &mut dyn BatchSink, batches: &[RecordBatch]) -> crate::SinkSummary {
        sink.open(batches[0].schema()).unwrap();
        for batch in batches {
            sink.write(batch).unwrap();
        }
        let summary = sink.finish().unwrap();
        sink.commit().unwrap();
        summary
    }

    fn read_all(source: &mut dyn BatchSource) -> Vec<RecordBatch> {
        std::iter::from_fn(|| source.next_batch().transpose()).collect::<crate::Result<_>>().unwrap()
    }

    #[test]
    fn an_ipc_file_round_trips_every_column_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.arrow");
        let batches = samples();
        let summary = write_all(&mut IpcFileSink::create(&path).unwrap(), &batches);
        assert_eq!((summary.rows, summary.batches), (13, 3));
        assert_eq!(summary.bytes, Some(std::fs::metadata(&path).unwrap().len()));

        let mut source = IpcFileSource::open(&path).unwrap();
        assert_eq!(source.schema(), batches[0].schema());
        assert_eq!(source.rows_hint(), Some(13));
        assert_eq!(read_all(&mut source), batches);
    }

    #[test]
    fn an_ipc_stream_round_trips_every_column_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.arrows");
        let batches = samples();
        let summary = write_all(&mut IpcStreamSink::create(&path).unwrap(), &batches);
        assert_eq!((summary.rows, summary.batches), (13, 3));

        let mut source = IpcStreamSource::open(&path).unwrap();
        assert_eq!(source.schema(), batches[0].schema());
        assert_eq!(read_all(&mut source), batches);

        let bytes = std::fs::read(&path).unwrap();
        let mut source = IpcStreamSource::from_reader("<memory>", std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(read_all(&mut source), batches);
    }

    #[test]
    fn an_ipc_file_with_no_batches_still_has_its_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.arrow");
        let mut sink = IpcFileSink::create(&path).unwrap();
        sink.open(samples()[0].schema()).unwrap();
        assert_eq!(sink.finish().unwrap().rows, 0);
        sink.commit().unwrap();
        let mut source = IpcFileSource::open(&path).unwrap();
        assert_eq!(source.schema(), samples()[0].schema());
        assert_eq!(source.rows_hint(), Some(0));
        assert!(source.next_batch().unwrap().is_none());
    }
}
