//! `garner run SPEC`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use garner::engine::exec::EngineKind;
use garner::engine::telemetry::Redactor;
use garner::engine::{Progress, RunOptions};
use garner::pools::ByteSize;

use crate::display::{human, summary_with, LiveProgress, QueueSampler};
use crate::metrics::{MetricsOut, MetricsServer};
use crate::spec::{self, Spec, StageSpec};
use crate::timeline::TimelineWriter;

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The pipeline spec (TOML).
    pub(crate) spec: PathBuf,
    /// Engine to run with (overrides the spec's `engine`).
    #[arg(long)]
    pub(crate) engine: Option<String>,
    /// Worker threads (overrides the spec's `threads`).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Memory budget, e.g. 256MiB (overrides the spec's `memory_budget`).
    #[arg(long)]
    pub(crate) memory_budget: Option<ByteSize>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Write the run's final metrics to FILE: Prometheus text (.prom,
    /// .txt) or JSON (.json).
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// Serve the live metrics (Prometheus text) at http://ADDR/metrics
    /// while the run goes on, e.g. 127.0.0.1:9898 (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// Write a JSON-lines timeline to FILE: one metrics snapshot per
    /// interval while the run goes on, and a final one (`garner report`
    /// draws it).
    #[arg(long, value_name = "FILE")]
    pub(crate) timeline: Option<PathBuf>,
    /// How often `--timeline` takes a snapshot, e.g. 250ms.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::timeline::parse_interval)]
    pub(crate) timeline_interval: std::time::Duration,
}

/// Reads and checks a spec file; relative paths in it are relative to it.
pub(crate) fn load_spec(path: &Path) -> Result<Spec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read spec {}", path.display()))?;
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    spec::parse(&text, &base).with_context(|| format!("invalid spec {}", path.display()))
}

/// Notes on settings not enforced yet (unless `quiet`), and warnings on
/// settings that lose rows by design (always).
fn warn_about(spec: &Spec, budget: Option<ByteSize>, quiet: bool) {
    let spilling = spec.stages.iter().any(|s| matches!(s, StageSpec::Accumulate(a) if a.spill == Some(true)));
    if let (Some(b), false, false) = (budget, spilling, quiet) {
        eprintln!(
            "note: memory budget {b}: no accumulate stage has spill = true, so state is counted against it but nothing spills"
        );
    }
    for (i, stage) in spec.stages.iter().enumerate() {
        match stage {
            StageSpec::Accumulate(a) if a.spill == Some(true) && budget.is_none() && !quiet => eprintln!(
                "note: stage[{i}].spill = true has no effect without a memory budget ([pipeline] memory_budget or --memory-budget)"
            ),
            StageSpec::Branch(b) if b.otherwise.is_none() => eprintln!(
                "warning: stage[{i}] (branch `{}`) has no `otherwise`: rows that match no route are dropped (counted in the summary); add otherwise = \"rest\" to keep them",
                b.id
            ),
            _ => {}
        }
    }
}

/// Writes the run's dead letters to `path`, the columns `redactor` names
/// redacted; with none, no file is written (and an old one is removed, so
/// the file never belongs to another run).
fn write_dead_letters(
    queue: &garner::engine::DeadLetterQueue,
    format: garner::columnar::Format,
    path: &std::path::Path,
    redactor: Option<&Redactor>,
) -> Result<u64> {
    if queue.rows() == 0 {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => return Ok(0),
        }
    }
    let mut sink = garner::columnar::sink::create_sink(format, path)?;
    let rows = match redactor {
        // As `DeadLetterQueue::write_to`, the named columns redacted.
        Some(r) => match queue.concat()? {
            Some(all) => {
                let all = r.redact_batch(&all)?;
                sink.open(all.schema())?;
                sink.write(&all)?;
                all.num_rows() as u64
            }
            None => 0,
        },
        None => queue.write_to(sink.as_mut())?,
    };
    sink.finish()?;
    sink.commit()?;
    Ok(rows)
}

pub(crate) fn run(args: RunArgs) -> Result<()> {
    let spec = load_spec(&args.spec)?;
    let engine = match &args.engine {
        Some(name) => name.parse::<EngineKind>()?,
        None => spec.engine()?.unwrap_or_default(),
    };
    anyhow::ensure!(args.threads != Some(0), "--threads: must be at least 1");
    let threads = args
        .threads
        .or(spec.pipeline.threads)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let budget = args.memory_budget.or(spec.pipeline.memory_budget);
    warn_about(&spec, budget, args.quiet);
    let dead_letters = spec.pipeline.dead_letter.as_ref().map(|_| garner::engine::DeadLetterQueue::new());
    let graph = crate::plan::build(&spec, dead_letters.as_ref())
        .with_context(|| format!("cannot build pipeline from {}", args.spec.display()))?;
    let metrics_out = args.metrics_out.clone().map(MetricsOut::new).transpose()?;
    let server = args.metrics_addr.map(MetricsServer::bind).transpose()?;
    if let Some(s) = &server {
        eprintln!("metrics: serving http://{}/metrics", s.addr());
    }
    let timeline =
        args.timeline.clone().map(|p| TimelineWriter::create(p, args.timeline_interval)).transpose()?;
    let progress = Arc::new(Progress::default());
    let live = LiveProgress::start(progress.clone(), args.quiet);
    let mut options = RunOptions::default().with_progress(progress);
    if let Some(b) = budget {
        options = options.with_memory_budget(b);
        // Freed memory back to the system at once: the budget is about RSS.
        crate::malloc::prefer_memory();
    }
    if let Some(ratio) = spec.pipeline.alert_partial_ratio {
        options = options.with_partial_alert(ratio); // checked in [0, 1] by spec::parse
    }
    if !spec.pipeline.redact.is_empty() {
        let mut redactor = Redactor::new(spec.pipeline.redact.iter().cloned());
        // Dead-lettered fragments carry variables as (var, value) rows.
        for stage in &spec.stages {
            if let StageSpec::Accumulate(a) = stage {
                let (var, value) = (a.var_column.as_deref(), a.value_column.as_deref());
                redactor = redactor.with_fragment_columns(var.unwrap_or("var"), value.unwrap_or("value"));
            }
        }
        options.redactor = Some(redactor);
    }
    let (partial_alert, redactor) = (options.partial_alert, options.redactor.clone());
    let mut sampler = None;
    let result = engine.create(threads).spawn(graph, options).and_then(|h| {
        if let Some(s) = &server {
            s.serve(h.monitor());
        }
        if let Some(t) = &timeline {
            t.record(h.monitor());
        }
        if !args.quiet {
            sampler = Some(QueueSampler::start(h.monitor()));
        }
        crate::interrupt::watch(h, args.quiet)
    });
    drop(server);
    live.stop();
    let max_queue = sampler.map(QueueSampler::finish);
    let (report, drained) = match result? {
        crate::interrupt::Ended::Completed(r) => (r, false),
        crate::interrupt::Ended::Drained(r) => (r, true),
    };
    if let Some(out) = &metrics_out {
        out.write(&report)?;
    }
    if let Some(t) = timeline {
        t.finish(&report)?;
    }
    if let (Some(queue), Some(d)) = (&dead_letters, &spec.pipeline.dead_letter) {
        let path = spec.resolve(&d.path);
        let rows = write_dead_letters(queue, d.format(), &path, redactor.as_ref())
            .with_context(|| format!("cannot write the dead-letter output {}", path.display()))?;
        if !args.quiet {
            let by_stage: Vec<String> = queue.by_stage().iter().map(|(s, n)| format!("{s}: {n}")).collect();
            eprintln!("{rows} dead-lettered rows written to {} ({})", path.display(), by_stage.join(", "));
        }
    }
    if !args.quiet {
        eprint!("{}", summary_with(&report, max_queue.as_ref()));
        eprintln!(
            "{} rows in, {} rows out in {:.2}s ({} rows/s, engine {}), peak RSS {}",
            report.rows_in(),
            report.rows_out(),
            report.elapsed.as_secs_f64(),
            human(report.rows_per_sec() as u64),
            report.engine,
            crate::rss::peak_rss_text()
        );
    }
    // Alerts are warnings: shown with --quiet too.
    for alert in partial_alert.map(|a| a.check(&report.metrics())).unwrap_or_default() {
        eprintln!("alert: {alert}");
    }
    if drained {
        return Err(crate::interrupt::Interrupted.into());
    }
    Ok(())
}
