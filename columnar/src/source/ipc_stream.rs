//! Arrow IPC stream source, over arrow-ipc's `StreamReader`.
//!
//! Unlike the file source, this one cannot check a message before arrow-ipc
//! decodes it, and arrow-ipc 60 slices body buffers at the offsets a message
//! claims without bounds checks: most corruptions of a stream end in a
//! panic inside the decoder, which [`decode_guarded`] turns into
//! [`Error::BadInput`]. The byte-flip test below covers this.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_schema::SchemaRef;

use super::{decode_guarded, input_error, BatchSource};
use crate::{Error, Result};

const FORMAT: &str = "ipc-stream";

/// An Arrow IPC stream read from a file or any reader, through a buffer.
///
/// A malformed stream is an [`Error::BadInput`] whose position is the byte
/// at which the failing batch's messages start (a batch may be preceded by
/// dictionary messages); after an error the source ends.
pub struct IpcStreamSource {
    name: PathBuf,
    reader: StreamReader<Counted<BufReader<Box<dyn Read + Send>>>>,
    /// Set by an error: the reader may be mid-message, so it is not read
    /// again and the source ends.
    failed: bool,
}

impl IpcStreamSource {
    /// Opens the stream file at `path` and reads its schema message.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(path, file)
    }

    /// Reads a stream from `reader`; `name` is used in errors (e.g.
    /// `<stdin>`).
    pub fn from_reader(name: impl Into<PathBuf>, reader: impl Read + Send + 'static) -> Result<Self> {
        let name = name.into();
        let boxed: Box<dyn Read + Send> = Box::new(reader);
        let counted = Counted { inner: BufReader::new(boxed), bytes: 0 };
        let reader = decode_guarded(|| StreamReader::try_new(counted, None))
            .map_err(|e| input_error(&name, FORMAT, Some("byte 0".into()), e))?;
        Ok(Self { name, reader, failed: false })
    }
}

impl std::fmt::Debug for IpcStreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcStreamSource").field("name", &self.name).finish_non_exhaustive()
    }
}

impl BatchSource for IpcStreamSource {
    fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.failed {
            return Ok(None);
        }
        let start = self.reader.get_ref().bytes;
        decode_guarded(|| self.reader.next().transpose()).map_err(|e| {
            self.failed = true;
            input_error(&self.name, FORMAT, Some(format!("byte {start}")), e)
        })
    }

    fn describe(&self) -> String {
        format!("ipc stream {}", self.name.display())
    }
}

/// A reader that counts the bytes it has handed out, so a stream error can
/// say where the failing message began. It sits above the buffer, so the
/// count is what the decoder consumed, not what was read ahead.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::IpcStreamSink;
    use crate::testdata::{samples, write_samples};
    use crate::BatchSink;

    fn sample_stream(dir: &Path) -> Vec<u8> {
        let path = dir.join("sample.arrows");
        write_samples(IpcStreamSink::create(&path).unwrap(), &path)
    }

    fn read_stream(bytes: Vec<u8>) -> Result<Vec<RecordBatch>> {
        let mut source = IpcStreamSource::from_reader("<test>", std::io::Cursor::new(bytes))?;
        std::iter::from_fn(|| source.next_batch().transpose()).collect()
    }

    #[test]
    fn a_stream_is_read_from_any_reader() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_stream(sample_stream(dir.path())).unwrap(), samples());
    }

    #[test]
    fn a_truncated_stream_is_bad_input_at_the_message_it_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_stream(dir.path());
        let len = bytes.len();
        // The stream format has no footer: a cut between two messages reads
        // as a shorter stream, a cut inside one is an error.
        for cut in [0, 3, 10, len / 2, len - 9] {
            match read_stream(bytes[..cut].to_vec()) {
                Err(Error::BadInput { format: FORMAT, position: Some(at), .. }) => {
                    assert!(at.starts_with("byte "), "cut at {cut}: {at}");
                }
                other => panic!("cut at {cut} of {len}: expected bad input, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_position_is_where_the_failing_batch_starts() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_stream(dir.path());
        // The same stream without its last batch ends where that batch
        // starts, plus the 8-byte end-of-stream marker.
        let path = dir.path().join("two.arrows");
        let mut sink = IpcStreamSink::create(&path).unwrap();
        sink.open(samples()[0].schema()).unwrap();
        for batch in &samples()[..2] {
            sink.write(batch).unwrap();
        }
        sink.finish().unwrap();
        sink.commit().unwrap();
        let third_at = std::fs::metadata(&path).unwrap().len() - 8;

        let err = read_stream(bytes[..bytes.len() - 9].to_vec()).unwrap_err();
        match err {
            Error::BadInput { position: Some(at), .. } => assert_eq!(at, format!("byte {third_at}")),
            other => panic!("expected bad input, got {other}"),
        }
    }

    #[test]
    fn an_error_ends_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_stream(dir.path());
        let cut = bytes.len() - 9;
        let mut source =
            IpcStreamSource::from_reader("<test>", std::io::Cursor::new(bytes[..cut].to_vec())).unwrap();
        let result: Result<Vec<RecordBatch>> =
            std::iter::from_fn(|| source.next_batch().transpose()).collect();
        assert!(result.is_err());
        assert!(source.next_batch().unwrap().is_none());
    }

    #[test]
    fn no_corrupted_byte_makes_the_stream_reader_panic() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_stream(dir.path());
        for at in 0..bytes.len() {
            for flip in [0xff, 0x80, 0x01] {
                let mut corrupt = bytes.clone();
                corrupt[at] ^= flip;
                if let Err(err) = read_stream(corrupt) {
                    assert!(matches!(err, Error::BadInput { .. }), "byte {at} ^ {flip:#x}: {err}");
                }
            }
        }
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.arrows");
        let err = IpcStreamSource::open(&path).unwrap_err();
        assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{err}");
    }
}
