//! `garner`: run, generate, draw and demo pipelines.

mod demo;
mod display;
mod gen;
mod interrupt;
mod malloc;
mod metrics;
mod plan;
mod report;
mod rss;
mod run;
mod simulate;
mod spec;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// High-throughput, memory-bounded pipelines over Apache Arrow, with
/// conditional accumulation.
#[derive(Debug, Parser)]
#[command(name = "garner", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline described by a TOML spec.
    Run(run::RunArgs),
    /// Assemble generated fragments end to end (no files needed).
    Demo(demo::DemoArgs),
    /// Generate the standard `assemble` workload to a file.
    Gen(gen::GenArgs),
    /// Draw a spec's pipeline as Mermaid or Graphviz dot.
    Graph(GraphArgs),
    /// Simulate a pipeline's throughput and peak memory from per-stage costs.
    Simulate(simulate::SimulateArgs),
    /// Draw a `run --timeline` file over time as HTML or SVG.
    Report(report::ReportArgs),
}

#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// The pipeline spec.
    spec: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    format: GraphFormat,
    /// Annotate each stage with a run's rows in and out and rows/s, from
    /// `garner run --metrics-out FILE.json` (or a `--timeline` file's last line).
    #[arg(long, value_name = "FILE")]
    with_metrics: Option<PathBuf>,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
    /// SVG, drawn by Graphviz's `dot` (must be installed).
    Svg,
    /// PNG, drawn by Graphviz's `dot` (must be installed).
    Png,
}

/// `dot_text` drawn by Graphviz as `format` (`svg` or `png`).
fn graphviz(dot_text: &str, format: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "--format {format} needs Graphviz's `dot` ({e}); install Graphviz, or write --format dot and render it elsewhere"
            )
        })?;
    child.stdin.take().expect("piped stdin").write_all(dot_text.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "Graphviz `dot -T{format}` failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(output.stdout)
}

fn graph(args: GraphArgs) -> anyhow::Result<()> {
    let spec = run::load_spec(&args.spec)?;
    let graph = plan::build(&spec, None)?;
    let metrics = args.with_metrics.as_deref().map(timeline::read_last).transpose()?;
    if let (Some(m), Some(path)) = (&metrics, &args.with_metrics) {
        anyhow::ensure!(
            graph.nodes().iter().any(|n| m.stage(&n.id).is_some()),
            "--with-metrics {}: no stage of {} is in it (pipeline `{}`)",
            path.display(),
            args.spec.display(),
            m.pipeline
        );
    }
    let notes = |id: &str| metrics.as_ref().map(|m| report::stage_notes(m, id)).unwrap_or_default();
    let bytes = match args.format {
        GraphFormat::Mermaid => graph.to_mermaid_annotated(notes).into_bytes(),
        GraphFormat::Dot => graph.to_dot_annotated(notes).into_bytes(),
        GraphFormat::Svg => graphviz(&graph.to_dot_annotated(notes), "svg")?,
        GraphFormat::Png => graphviz(&graph.to_dot_annotated(notes), "png")?,
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
        }
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&bytes)?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    malloc::tune();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Demo(a) => demo::demo(a),
        Command::Gen(a) => gen::gen(a),
        Command::Graph(a) => graph(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Report(a) => report::report(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<interrupt::Interrupted>().is_some() => {
            eprintln!("stopped: {e}; the output holds what was processed before it");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by `: `, skipping a cause whose text the
/// message before it already ends with (our error types print their source
/// inline, e.g. `file.arrow: No such file or directory`).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e =
            anyhow::Error::new(garner::columnar::Error::io("x.arrow", io)).context("cannot build pipeline");
        assert_eq!(super::error_chain(&e), "cannot build pipeline: x.arrow: No such file or directory");
    }
}
