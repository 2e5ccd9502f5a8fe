//! The README's library example, end to end: generate fragments to an IPC
//! file, assemble them, write Parquet.
//!
//! `cargo run --release --example assemble`

use std::time::Duration;

use garner::columnar::sink::{create_sink, ParquetSink};
use garner::columnar::source::IpcFileSource;
use garner::prelude::*;
use garner::workload::WorkloadSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("fragments.arrow");
    let output = dir.path().join("assembled.parquet");

    // Some fragments to read: 10k subjects, 5% missing a variable.
    let mut fragments = WorkloadSpec { subjects: 10_000, ..WorkloadSpec::default() }.source();
    let mut file = create_sink(Format::Ipc, &input)?;
    file.open(fragments.schema())?;
    while let Some(batch) = fragments.next_batch()? {
        file.write(&batch)?;
    }
    file.finish()?;
    file.commit()?;

    let graph = Pipeline::new("risk-assembly")
        .source("read", IpcFileSource::open(&input)?)
        .transform("clean", DropNulls::on(["subject_id"]))
        .accumulate(
            "assemble",
            VarSet::keyed("subject_id")
                .var_column("var")
                .value_column("value")
                .require(["id", "name", "riskClass", "limit"])
                .time(TimeMode::Event { column: "ts".into() })
                .max_latency(Duration::from_secs(5))
                .partial_flush_after(Duration::from_secs(10)),
        )
        .sink("write", ParquetSink::create(&output)?)
        .build()?;
    let report = SyncEngine::new().run(graph, RunOptions::default())?;
    let acc = report.stage("assemble").and_then(|s| s.accum.clone()).unwrap_or_default();
    println!(
        "{} fragments in, {} records out ({} complete, {} partial) in {:.2?}",
        report.rows_in(),
        report.rows_out(),
        acc.complete,
        acc.partial,
        report.elapsed
    );
    Ok(())
}
