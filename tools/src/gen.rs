//! `garner gen`: the standard workload to a file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::ValueEnum;
use garner::columnar::{BatchSink, BatchSource, Format};
use garner::workload::{KeyKind, Locality, WorkloadSpec};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LocalityArg {
    /// A subject's fragments within a window of rows.
    Window,
    /// Fragments anywhere (full shuffle).
    Random,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KeyArg {
    /// UInt64 subject ids.
    U64,
    /// Utf8 IRIs (`http://example.org/subject/N`).
    Iri,
}

#[derive(Debug, clap::Args)]
pub(crate) struct GenArgs {
    /// Number of subjects (each has 4 variables, so about 4x rows).
    #[arg(long, default_value_t = 250_000)]
    pub(crate) subjects: u64,
    /// Share of subjects missing one variable.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) missing_rate: f64,
    /// Where a subject's fragments are.
    #[arg(long, value_enum, default_value_t = LocalityArg::Window)]
    pub(crate) locality: LocalityArg,
    /// Window size in rows, for `--locality window`.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) window_rows: usize,
    /// Key column type.
    #[arg(long, value_enum, default_value_t = KeyArg::U64)]
    pub(crate) key: KeyArg,
    /// Output format: ipc, ipc-stream, parquet, csv, jsonl (default: from the extension).
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Output file.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Event-time rate: `ts` advances one second every this many rows.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) rows_per_sec: u64,
    /// Rows per batch (and per IPC record batch / Parquet page group).
    #[arg(long, default_value_t = 65_536)]
    pub(crate) batch_rows: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

impl GenArgs {
    pub(crate) fn workload(&self) -> Result<WorkloadSpec> {
        anyhow::ensure!(self.subjects > 0, "--subjects must be at least 1");
        let spec = WorkloadSpec {
            subjects: self.subjects,
            missing_rate: self.missing_rate,
            locality: match self.locality {
                LocalityArg::Window => Locality::Window,
                LocalityArg::Random => Locality::Random,
            },
            key: match self.key {
                KeyArg::U64 => KeyKind::U64,
                KeyArg::Iri => KeyKind::Iri,
            },
            window_rows: self.window_rows.max(4),
            rows_per_sec: self.rows_per_sec.max(1),
            batch_rows: self.batch_rows.max(1),
            seed: self.seed,
            ..WorkloadSpec::default()
        };
        spec.validate().context("invalid --subjects or --missing-rate")?;
        Ok(spec)
    }
}

pub(crate) fn gen(args: GenArgs) -> Result<()> {
    let workload = args.workload()?;
    let format = match &args.format {
        Some(f) => f.parse::<Format>()?,
        None => Format::from_path(&args.out)
            .with_context(|| format!("cannot tell the format of {}: pass --format", args.out.display()))?,
    };
    let started = Instant::now();
    let mut source = workload.try_source()?;
    let mut sink = garner::columnar::sink::create_sink(format, &args.out)?;
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(source.rows_hint().unwrap_or(0));
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let result = (|| -> Result<u64> {
        sink.open(source.schema())?;
        let mut rows = 0;
        while let Some(batch) = source.next_batch()? {
            sink.write(&batch)?;
            rows += batch.num_rows() as u64;
            bar.set_position(rows);
        }
        sink.finish()?;
        sink.commit()?;
        Ok(rows)
    })();
    bar.finish_and_clear();
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            sink.abort();
            return Err(e.context(format!("cannot write {}", args.out.display())));
        }
    };
    if !args.quiet {
        eprintln!(
            "wrote {rows} fragments of {} subjects to {} ({format}) in {:.2}s",
            args.subjects,
            args.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
