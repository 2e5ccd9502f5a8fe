//! What every file sink shares: the temporary file, renamed into place on
//! commit and removed otherwise, and the open → write → finish → commit
//! protocol.
//!
//! ```text
//!   create ──► Ready(temp) ──open──► Open(encoder) ──finish──► Finished(temp) ──commit──► Closed (temp renamed to target)
//!                  │                     │                          │
//!                  └──────abort/drop─────┴──────────abort/drop──────┴──────────────────► Closed (temp removed)
//! ```
//!
//! `finish` does all the work that can fail for reasons of the data or the
//! disk (encoding the footer, flushing, `fsync`); `commit` is one rename in
//! the same directory. An engine with several sinks finishes them all and
//! commits only when every finish succeeded, so a failed run leaves no
//! output file behind.
//!
//! A format plugs in as a [`FileFormat`]: how to start an encoder over the
//! buffered temporary file, write a batch, and finish, handing the file
//! back. Public sinks wrap a [`FileSink`] and forward to it with
//! [`forward_sink!`].

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use tempfile::NamedTempFile;

use crate::schema::ensure_compatible;
use crate::{BatchSink, Error, Result, SinkSummary};

/// The buffered temporary file a format writes into.
pub(crate) type Output = BufWriter<NamedTempFile>;

/// A file format's encoder, as a [`FileSink`] drives it.
pub(crate) trait FileFormat: Send {
    /// The format's encoder over an [`Output`].
    type Encoder: Send;

    /// How the sink describes itself, e.g. `ipc file`.
    const KIND: &'static str;

    /// Starts encoding batches of `schema` into `out` (writes any header).
    fn start(&self, out: Output, schema: &SchemaRef) -> Result<Self::Encoder, ArrowError>;

    /// Encodes one batch.
    fn write(encoder: &mut Self::Encoder, batch: &RecordBatch) -> Result<(), ArrowError>;

    /// Writes any footer and returns the output (flushing is the sink's job).
    fn finish(encoder: Self::Encoder) -> Result<Output, ArrowError>;
}

enum State<E> {
    /// Created; the temporary file exists and is empty.
    Ready(NamedTempFile),
    /// Opened with a schema.
    Open { encoder: E, schema: SchemaRef },
    /// Everything written and synced to the temporary file; not yet visible.
    Finished(NamedTempFile),
    /// Committed or aborted.
    Closed,
}

/// A sink writing format `F` to a temporary file next to `target`.
pub(crate) struct FileSink<F: FileFormat> {
    format: F,
    target: PathBuf,
    state: State<F::Encoder>,
    rows: u64,
    batches: u64,
}

impl<F: FileFormat> FileSink<F> {
    /// Checks that the directory of `target` exists and creates the
    /// temporary file in it (same directory, so the final rename is atomic).
    pub(crate) fn create(format: F, target: &Path) -> Result<Self> {
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            let message = format!("directory {} does not exist", dir.display());
            return Err(Error::io(target, std::io::Error::new(std::io::ErrorKind::NotFound, message)));
        }
        let name = target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(target, e))?;
        Ok(Self { format, target: target.to_owned(), state: State::Ready(temp), rows: 0, batches: 0 })
    }

    fn arrow_error(&self, action: &str, e: ArrowError) -> Error {
        match e {
            ArrowError::IoError(_, source) => Error::io(&self.target, source),
            other => Error::arrow(format!("{}: {action}", self.describe()), other),
        }
    }

    /// Flushes and syncs the temporary file; returns it and its size.
    fn sync(&self, out: Output) -> Result<(NamedTempFile, u64)> {
        let io = |e| Error::io(&self.target, e);
        let temp = out.into_inner().map_err(|e| io(e.into_error()))?;
        temp.as_file().sync_all().map_err(io)?;
        let bytes = temp.as_file().metadata().map_err(io)?.len();
        Ok((temp, bytes))
    }
}

impl<F: FileFormat> BatchSink for FileSink<F> {
    fn open(&mut self, schema: SchemaRef) -> Result<()> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Ready(temp) => {
                let encoder = self
                    .format
                    .start(BufWriter::new(temp), &schema)
                    .map_err(|e| self.arrow_error("start", e))?;
                self.state = State::Open { encoder, schema };
                Ok(())
            }
            // Opening again with the schema it has is harmless.
            State::Open { encoder, schema: open } => {
                let same = ensure_compatible(|| self.describe(), &open, &schema)
                    .and_then(|()| ensure_compatible(|| self.describe(), &schema, &open));
                self.state = State::Open { encoder, schema: open };
                same
            }
            finished @ State::Finished(_) => {
                self.state = finished;
                Err(Error::Closed { context: self.describe() })
            }
            State::Closed => Err(Error::Closed { context: self.describe() }),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let (encoder, schema) = match &mut self.state {
            State::Open { encoder, schema } => (encoder, schema),
            State::Ready(_) => return Err(Error::NotOpen { context: self.describe() }),
            State::Finished(_) | State::Closed => return Err(Error::Closed { context: self.describe() }),
        };
        if !std::sync::Arc::ptr_eq(schema, &batch.schema()) {
            let context = || format!("{} sink {}", F::KIND, self.target.display());
            ensure_compatible(context, schema, &batch.schema())?;
        }
        if let Err(e) = F::write(encoder, batch) {
            return Err(self.arrow_error("write", e));
        }
        self.rows += batch.num_rows() as u64;
        self.batches += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        let encoder = match std::mem::replace(&mut self.state, State::Closed) {
            State::Open { encoder, .. } => encoder,
            State::Ready(temp) => {
                // Not opened: nothing to write, but stay usable for `open`.
                self.state = State::Ready(temp);
                return Err(Error::NotOpen { context: self.describe() });
            }
            finished @ State::Finished(_) => {
                self.state = finished;
                return Err(Error::Closed { context: self.describe() });
            }
            State::Closed => return Err(Error::Closed { context: self.describe() }),
        };
        // On any error below the temporary file is dropped, which removes it.
        let out = F::finish(encoder).map_err(|e| self.arrow_error("finish", e))?;
        let (temp, bytes) = self.sync(out)?;
        self.state = State::Finished(temp);
        Ok(SinkSummary { rows: self.rows, batches: self.batches, bytes: Some(bytes) })
    }

    fn commit(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.state, State::Closed) {
            // On failure the temporary file comes back in the error and is
            // dropped, which removes it.
            State::Finished(temp) => {
                temp.persist(&self.target).map(drop).map_err(|e| Error::io(&self.target, e.error))
            }
            State::Closed => Err(Error::Closed { context: self.describe() }),
            unfinished => {
                self.state = unfinished;
                Err(Error::NotFinished { context: self.describe() })
            }
        }
    }

    fn abort(&mut self) {
        // Dropping the temporary file (inside the encoder, if open) removes it;
        // after a commit there is none left and the target stays.
        self.state = State::Closed;
    }

    fn describe(&self) -> String {
        format!("{} sink {}", F::KIND, self.target.display())
    }
}

impl<F: FileFormat> std::fmt::Debug for FileSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("kind", &F::KIND)
            .field("target", &self.target)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Implements [`BatchSink`] for a newtype around a [`FileSink`] by
/// forwarding every method to field `0`.
macro_rules! forward_sink {
    ($sink:ty) => {
        impl $crate::BatchSink for $sink {
            fn open(&mut self, schema: arrow_schema::SchemaRef) -> $crate::Result<()> {
                self.0.open(schema)
            }
            fn write(&mut self, batch: &arrow_array::RecordBatch) -> $crate::Result<()> {
                self.0.write(batch)
            }
            fn finish(&mut self) -> $crate::Result<$crate::SinkSummary> {
                self.0.finish()
            }
            fn commit(&mut self) -> $crate::Result<()> {
                self.0.commit()
            }
            fn abort(&mut self) {
                self.0.abort()
            }
            fn describe(&self) -> String {
                self.0.describe()
            }
        }
    };
}
pub(crate) use forward_sink;
