//! The error type of the data layer.

use std::path::{Path, PathBuf};

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong reading, writing or reshaping batches. Every variant
/// that concerns a file names it; positions are given where the format has
/// them (byte offset, line, row group).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid in its format, or ends too early.
    #[error("{path}: invalid {format} input{}: {message}", position.as_ref().map(|p| format!(" at {p}")).unwrap_or_default())]
    BadInput {
        /// The file (or `<stream>` for an in-memory reader).
        path: PathBuf,
        /// The format that was expected.
        format: &'static str,
        /// Where in the file, as the format counts ("byte 1024", "line 17", "row group 3").
        position: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A batch does not have the schema the source or sink was opened with.
    #[error("{context}: schema mismatch: expected {expected}, found {found}")]
    SchemaMismatch {
        /// Which file or sink.
        context: String,
        /// The schema that was expected, printed.
        expected: String,
        /// The schema that came, printed.
        found: String,
    },
    /// An Arrow kernel failed.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The file's extension or the given name is not a known format.
    #[error("unknown format {name:?}: expected one of ipc, ipc-stream, parquet, csv, jsonl")]
    UnknownFormat {
        /// What was asked for.
        name: String,
    },
    /// A sink was written to, or finished, before `open`.
    #[error("{context}: sink not opened")]
    NotOpen {
        /// Which sink.
        context: String,
    },
    /// A sink was committed before `finish` succeeded.
    #[error("{context}: sink not finished (commit comes after a successful finish)")]
    NotFinished {
        /// Which sink.
        context: String,
    },
    /// A sink was used after `finish`, `commit` or `abort`.
    #[error("{context}: sink already closed")]
    Closed {
        /// Which sink.
        context: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// An Arrow error with context.
    pub fn arrow(context: impl Into<String>, source: arrow_schema::ArrowError) -> Self {
        Error::Arrow { context: context.into(), source }
    }

    /// Bad input in `path`, read as `format`, at `position` if known.
    pub(crate) fn bad_input(
        path: &Path,
        format: &'static str,
        position: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::BadInput { path: path.to_owned(), format, position, message: message.into() }
    }
}
