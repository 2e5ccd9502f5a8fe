//! `garner`: run, generate, draw and demo pipelines.

mod demo;
mod display;
mod gen;
mod plan;
mod rss;
mod run;
mod spec;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// The pipeline spec.
    spec: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    format: GraphFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

fn graph(args: GraphArgs) -> anyhow::Result<()> {
    let spec = run::load_spec(&args.spec)?;
    let graph = plan::build(&spec)?;
    match args.format {
        GraphFormat::Mermaid => print!("{}", graph.to_mermaid()),
        GraphFormat::Dot => print!("{}", graph.to_dot()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Demo(a) => demo::demo(a),
        Command::Gen(a) => gen::gen(a),
        Command::Graph(a) => graph(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
