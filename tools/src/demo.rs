//! `garner demo`: the main job on generated data, no files needed.
//!
//! About 8M fragments (2M subjects, 5% missing a variable, windowed
//! arrival) are generated on the fly, assembled by subject with an
//! event-time TTL, and written to `garner-demo-out/assembled.parquet`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use garner::accum::{TimeMode, VarSet, WithPolicies};
use garner::columnar::sink::ParquetSink;
use garner::engine::exec::EngineKind;
use garner::engine::{Pipeline, Progress, RunOptions};
use garner::workload::{WorkloadSpec, VARS};

use crate::display::{human, summary, LiveProgress};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Number of subjects (about 4 fragments each).
    #[arg(long, default_value_t = 2_000_000)]
    pub(crate) subjects: u64,
    /// Share of subjects missing one variable.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) missing_rate: f64,
    /// Output directory.
    #[arg(long, default_value = "garner-demo-out")]
    pub(crate) out_dir: PathBuf,
    /// Engine to run with.
    #[arg(long, default_value = "steal")]
    pub(crate) engine: String,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// No progress bar and no summary table.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

pub(crate) fn demo(args: DemoArgs) -> Result<()> {
    let engine: EngineKind = args.engine.parse()?;
    anyhow::ensure!(args.threads > 0, "--threads: must be at least 1");
    anyhow::ensure!(args.subjects > 0, "--subjects must be at least 1");
    let workload =
        WorkloadSpec { subjects: args.subjects, missing_rate: args.missing_rate, ..WorkloadSpec::default() };
    // The same checks as `garner gen` (subjects, missing rate).
    let source = workload.try_source().context("invalid --subjects or --missing-rate")?;
    let expected_partial =
        (0..workload.subjects).filter(|&s| workload.missing_var(s).is_some()).count() as u64;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let out = args.out_dir.join("assembled.parquet");

    let graph = Pipeline::new("demo-assemble")
        .source("generate", source)
        .accumulate(
            "assemble",
            VarSet::keyed("subject_id")
                .var_column("var")
                .value_column("value")
                .require(VARS)
                .time(TimeMode::Event { column: "ts".into() })
                .partial_flush_after(Duration::from_secs(10)),
        )
        .sink("write", ParquetSink::create(&out)?)
        .build()?;

    let progress = Arc::new(Progress::default());
    let live = LiveProgress::start(progress.clone(), args.quiet);
    let result = engine.create(args.threads).run(graph, RunOptions::default().with_progress(progress));
    live.stop();
    let report = result?;

    let acc = report.stage("assemble").and_then(|s| s.accum.clone()).unwrap_or_default();
    if !args.quiet {
        eprint!("{}", summary(&report));
    }
    println!(
        "garner demo: {} subjects, {:.0}% missing one variable, windowed arrival",
        args.subjects,
        args.missing_rate * 100.0
    );
    println!("  rows in       {}", report.rows_in());
    println!(
        "  rows out      {} ({} complete, {} partial; {} subjects were generated incomplete)",
        report.rows_out(),
        acc.complete,
        acc.partial,
        expected_partial
    );
    println!(
        "  throughput    {} fragment rows/s ({:.2}s, engine {})",
        human(report.rows_per_sec() as u64),
        report.elapsed.as_secs_f64(),
        report.engine
    );
    println!("  peak RSS      {}", crate::rss::peak_rss_text());
    println!("  output        {}", out.display());
    anyhow::ensure!(
        acc.complete + acc.partial == args.subjects && acc.partial == expected_partial,
        "the assembly does not match what was generated: {} complete + {} partial for {} subjects ({} expected partial)",
        acc.complete,
        acc.partial,
        args.subjects,
        expected_partial
    );
    Ok(())
}
