//! File formats by name and extension.

use std::path::Path;
use std::str::FromStr;

use crate::sink::{BatchSink, CsvSink, IpcFileSink, IpcStreamSink, JsonlSink, ParquetSink};
use crate::source::{
    BatchSource, CsvOptions, CsvSource, IpcFileSource, IpcStreamSource, JsonlOptions, JsonlSource,
    ParquetSource, SourceOptions,
};
use crate::{Error, Result};

/// A file format garner reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Arrow IPC file (`.arrow`, `.ipc`, `.feather`), read through a memory map.
    Ipc,
    /// Arrow IPC stream (`.arrows`).
    IpcStream,
    /// Apache Parquet (`.parquet`).
    Parquet,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
    /// JSON lines, one object per line (`.jsonl`, `.ndjson`, `.json`).
    Jsonl,
}

impl Format {
    /// All formats, for help texts.
    pub const ALL: [Format; 5] =
        [Format::Ipc, Format::IpcStream, Format::Parquet, Format::Csv, Format::Jsonl];

    /// The format a path's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "arrow" | "ipc" | "feather" => Format::Ipc,
            "arrows" => Format::IpcStream,
            "parquet" | "pq" => Format::Parquet,
            "csv" => Format::Csv,
            "jsonl" | "ndjson" | "json" => Format::Jsonl,
            _ => return None,
        })
    }

    /// The name used in specs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ipc => "ipc",
            Format::IpcStream => "ipc-stream",
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "ipc" | "arrow" | "ipc-file" => Format::Ipc,
            "ipc-stream" | "arrows" => Format::IpcStream,
            "parquet" => Format::Parquet,
            "csv" => Format::Csv,
            "jsonl" | "ndjson" | "json" => Format::Jsonl,
            _ => return Err(Error::UnknownFormat { name: s.to_owned() }),
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Opens `path` as a source of `format` with default options (CSV and JSON
/// lines infer their schema from the first 1000 rows).
///
/// ```no_run
/// use std::path::Path;
/// use garner_columnar::{open_source, Format};
///
/// let path = Path::new("events.parquet");
/// let format = Format::from_path(path).unwrap_or(Format::Ipc);
/// let mut source = open_source(format, path)?;
/// while let Some(batch) = source.next_batch()? {
///     println!("{} rows", batch.num_rows());
/// }
/// # Ok::<(), garner_columnar::Error>(())
/// ```
pub fn open_source(format: Format, path: &Path) -> Result<Box<dyn BatchSource>> {
    open_source_with(format, path, &SourceOptions::default())
}

/// Opens `path` as a source of `format` with `options` (batch size for the
/// formats that choose it, CSV header and delimiter, what CSV and JSON
/// lines do with bad rows).
///
/// ```no_run
/// use std::path::Path;
/// use garner_columnar::source::SourceOptions;
/// use garner_columnar::{open_source_with, Format};
///
/// let mut options = SourceOptions { batch_rows: 65_536, ..SourceOptions::default() };
/// options.csv.delimiter = b';';
/// let source = open_source_with(Format::Csv, Path::new("events.csv"), &options)?;
/// # Ok::<(), garner_columnar::Error>(())
/// ```
pub fn open_source_with(
    format: Format,
    path: &Path,
    options: &SourceOptions,
) -> Result<Box<dyn BatchSource>> {
    let batch_rows = options.batch_rows.max(1);
    Ok(match format {
        Format::Ipc => Box::new(IpcFileSource::open(path)?),
        Format::IpcStream => Box::new(IpcStreamSource::open(path)?),
        Format::Parquet => Box::new(ParquetSource::open_with(path, batch_rows)?),
        Format::Csv => Box::new(CsvSource::open(
            path,
            CsvOptions {
                batch_size: batch_rows,
                on_bad_row: options.on_bad_row,
                stage_id: options.stage_id.clone(),
                ..options.csv.clone()
            },
        )?),
        Format::Jsonl => Box::new(JsonlSource::open(
            path,
            JsonlOptions {
                batch_size: batch_rows,
                on_bad_row: options.on_bad_row,
                stage_id: options.stage_id.clone(),
                ..JsonlOptions::default()
            },
        )?),
    })
}

/// Creates a sink writing `path` as `format` with default options.
pub fn create_sink(format: Format, path: &Path) -> Result<Box<dyn BatchSink>> {
    Ok(match format {
        Format::Ipc => Box::new(IpcFileSink::create(path)?),
        Format::IpcStream => Box::new(IpcStreamSink::create(path)?),
        Format::Parquet => Box::new(ParquetSink::create(path)?),
        Format::Csv => Box::new(CsvSink::create(path)?),
        Format::Jsonl => Box::new(JsonlSink::create(path)?),
    })
}

#[cfg(test)]
mod tests {
    //! The sink protocol, checked for every format through [`create_sink`].

    use super::*;
    use crate::testdata::{project, sample};

    /// The flat columns every format can write.
    const FLAT: [&str; 5] = ["id", "count", "score", "flag", "name"];

    fn file_name(format: Format) -> String {
        format!(
            "out.{}",
            match format {
                Format::Ipc => "arrow",
                Format::IpcStream => "arrows",
                Format::Parquet => "parquet",
                Format::Csv => "csv",
                Format::Jsonl => "jsonl",
            }
        )
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_and_extensions_agree() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>().unwrap(), format);
            assert_eq!(Format::from_path(Path::new(&file_name(format))), Some(format));
        }
        assert!(matches!("xlsx".parse::<Format>(), Err(Error::UnknownFormat { .. })));
    }

    #[test]
    fn every_format_writes_what_open_source_reads_back() {
        let batch = project(&sample(0, 9), &FLAT);
        for format in Format::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(file_name(format));
            let mut sink = create_sink(format, &path).unwrap();
            sink.open(batch.schema()).unwrap();
            sink.write(&batch).unwrap();
            let summary = sink.finish().unwrap();
            assert_eq!((summary.rows, summary.batches), (9, 1), "{format}");
            assert!(!path.exists(), "{format}: finished but not yet committed");
            sink.commit().unwrap();
            assert_eq!(entries(dir.path()), [file_name(format)], "{format}: only the target remains");

            let mut source = open_source(format, &path).unwrap();
            let back = source.next_batch().unwrap().unwrap();
            assert_eq!(back.num_rows(), 9, "{format}");
            assert_eq!(back.schema().fields().len(), FLAT.len(), "{format}");
        }
    }

    #[test]
    fn an_aborted_or_dropped_sink_leaves_nothing_behind() {
        let batch = project(&sample(0, 3), &FLAT);
        for format in Format::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(file_name(format));

            let mut sink = create_sink(format, &path).unwrap();
            sink.open(batch.schema()).unwrap();
            sink.write(&batch).unwrap();
            assert_eq!(entries(dir.path()).len(), 1, "{format}: the temporary file exists while writing");
            sink.abort();
            sink.abort();
            assert!(entries(dir.path()).is_empty(), "{format}: aborted");
            assert!(matches!(sink.write(&batch), Err(Error::Closed { .. })), "{format}");
            assert!(matches!(sink.finish(), Err(Error::Closed { .. })), "{format}");

            let mut sink = create_sink(format, &path).unwrap();
            sink.open(batch.schema()).unwrap();
            sink.write(&batch).unwrap();
            drop(sink);
            assert!(entries(dir.path()).is_empty(), "{format}: dropped while open");

            drop(create_sink(format, &path).unwrap());
            assert!(entries(dir.path()).is_empty(), "{format}: dropped before open");
        }
    }

    #[test]
    fn a_sink_is_opened_before_writing_and_closed_after_finishing() {
        let batch = project(&sample(0, 3), &FLAT);
        for format in Format::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(file_name(format));
            let mut sink = create_sink(format, &path).unwrap();
            assert!(matches!(sink.write(&batch), Err(Error::NotOpen { .. })), "{format}");
            assert!(matches!(sink.finish(), Err(Error::NotOpen { .. })), "{format}");
            sink.open(batch.schema()).unwrap();
            let other = project(&batch, &["id", "name"]);
            let err = sink.write(&other).unwrap_err();
            assert!(matches!(err, Error::SchemaMismatch { .. }), "{format}: {err}");
            assert!(err.to_string().contains(&file_name(format)), "{format}: {err}");
            assert!(matches!(sink.commit(), Err(Error::NotFinished { .. })), "{format}");
            sink.write(&batch).unwrap();
            sink.finish().unwrap();
            assert!(matches!(sink.write(&batch), Err(Error::Closed { .. })), "{format}");
            assert!(matches!(sink.open(batch.schema()), Err(Error::Closed { .. })), "{format}");
            assert!(matches!(sink.finish(), Err(Error::Closed { .. })), "{format}");
            sink.commit().unwrap();
            assert!(matches!(sink.commit(), Err(Error::Closed { .. })), "{format}");
            sink.abort();
            assert_eq!(
                entries(dir.path()),
                [file_name(format)],
                "{format}: abort after commit keeps the file"
            );
        }
    }

    #[test]
    fn a_finished_sink_that_is_not_committed_leaves_nothing_behind() {
        // What a run with two sinks does when the second fails to finish:
        // the first, already finished, is aborted (or dropped).
        let batch = project(&sample(0, 3), &FLAT);
        for format in Format::ALL {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(file_name(format));

            let mut sink = create_sink(format, &path).unwrap();
            sink.open(batch.schema()).unwrap();
            sink.write(&batch).unwrap();
            sink.finish().unwrap();
            assert_eq!(entries(dir.path()).len(), 1, "{format}: the finished temporary file");
            assert!(!path.exists(), "{format}: not visible before commit");
            sink.abort();
            assert!(entries(dir.path()).is_empty(), "{format}: aborted after finish");
            assert!(matches!(sink.commit(), Err(Error::Closed { .. })), "{format}");

            let mut sink = create_sink(format, &path).unwrap();
            sink.open(batch.schema()).unwrap();
            sink.write(&batch).unwrap();
            sink.finish().unwrap();
            drop(sink);
            assert!(entries(dir.path()).is_empty(), "{format}: dropped after finish");
        }
    }

    #[test]
    fn open_source_with_applies_batch_rows_and_csv_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("semi.csv");
        std::fs::write(&path, "a;b\n1;x\n2;y\n3;z\n").unwrap();
        let mut options = SourceOptions { batch_rows: 2, ..SourceOptions::default() };
        options.csv.delimiter = b';';
        let mut source = open_source_with(Format::Csv, &path, &options).unwrap();
        assert_eq!(source.schema().fields().len(), 2, "split on ';'");
        let sizes: Vec<usize> =
            std::iter::from_fn(|| source.next_batch().unwrap()).map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [2, 1]);
    }

    #[test]
    fn a_sink_into_a_missing_directory_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        for format in Format::ALL {
            let path = missing.join(file_name(format));
            let err = create_sink(format, &path).err().expect("no sink into a missing directory");
            assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{format}: {err}");
            assert!(err.to_string().contains("no-such-dir"), "{format}: {err}");
        }
    }

    #[test]
    fn a_missing_input_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for format in Format::ALL {
            let path = dir.path().join(file_name(format));
            let err = open_source(format, &path).err().expect("no source from a missing file");
            assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{format}: {err}");
            assert!(err.to_string().contains(&file_name(format)), "{format}: {err}");
        }
    }

    #[test]
    fn committing_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        std::fs::write(&path, "old contents\n").unwrap();
        let batch = project(&sample(0, 1), &["id"]);
        let mut sink = create_sink(Format::Csv, &path).unwrap();
        sink.open(batch.schema()).unwrap();
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old contents\n", "untouched until commit");
        sink.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "id\n0\n");
    }
}
