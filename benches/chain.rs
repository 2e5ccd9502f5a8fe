//! The `chain` workload (DESIGN §10): eight stateless stages on 1024-row
//! batches. What is measured is the cost of one *hop*, one batch passing
//! from one stage to the next, with fusion on (a function call inside one
//! task) and off (a bounded link and a scheduling decision per hop).
//!
//! Each criterion iteration is one hop: a sample runs the 8-stage pipeline
//! and the same pipeline with no stage over `iterations / 8` batches and
//! reports the difference, so start-up, source and sink costs cancel out.
//! The stages pass their batch on untouched (no copy, no check), so what
//! a hop costs is the engine's alone.
//!
//! Run with `cargo bench --bench chain`; BENCHMARKS.md has the figures.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use criterion::{criterion_group, criterion_main, Criterion};
use garner::columnar::source::IterSource;
use garner::engine::{Emitter, Engine};
use garner::prelude::*;

const STAGES: u64 = 8;

/// A stage that passes its batch on as it is.
#[derive(Debug, Clone, Copy)]
struct Pass;

impl Stage for Pass {
    fn output_schema(&self, input: &SchemaRef) -> garner::engine::Result<SchemaRef> {
        Ok(input.clone())
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> garner::engine::Result<()> {
        out.emit(batch);
        Ok(())
    }
}
const ROWS: usize = 1024;

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::UInt64, false),
        Field::new("x", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(0..ROWS as u64)),
        Arc::new(Int64Array::from_iter_values(0..ROWS as i64)),
    ];
    RecordBatch::try_new(schema, columns).expect("valid batch")
}

/// Runs source -> `stages` pass-through stages -> sink over `batches`
/// copies of one batch; returns the wall time of the whole run.
fn run(engine: &dyn Engine, stages: u64, batches: u64) -> Duration {
    let b = batch();
    let schema = b.schema();
    let source = IterSource::new(schema, std::iter::repeat_n(b, batches as usize).map(Ok::<_, ArrowError>));
    let mut p = Pipeline::new("chain").source("read", source);
    for i in 0..stages {
        p = p.transform(format!("hop{i}"), Pass).parallelism(1);
    }
    let (sink, out) = CollectSink::new();
    let graph = p.sink("out", sink).build().expect("valid chain");
    let start = Instant::now();
    engine.run(graph, RunOptions::default()).expect("chain runs");
    let elapsed = start.elapsed();
    assert_eq!(out.num_rows(), batches as usize * ROWS);
    elapsed
}

fn hops(c: &mut Criterion) {
    let engines: Vec<(&str, Box<dyn Engine>)> = vec![
        ("sync", Box::new(SyncEngine::new())),
        ("steal-1-fused", Box::new(StealEngine::with_threads(1))),
        ("steal-1-unfused", Box::new(StealEngine::with_threads(1).fusion(false))),
        ("steal-2-unfused", Box::new(StealEngine::with_threads(2).fusion(false))),
        ("dataflow", Box::new(DataflowEngine::with_threads(1))),
    ];
    let mut group = c.benchmark_group("chain-hop");
    group.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (name, engine) in &engines {
        group.bench_function(*name, |b| {
            b.iter_custom(|iterations| {
                let batches = iterations.div_ceil(STAGES).max(1);
                let with = run(engine.as_ref(), STAGES, batches);
                let without = run(engine.as_ref(), 0, batches);
                // Per hop: criterion divides by `iterations`.
                with.saturating_sub(without)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hops);
criterion_main!(benches);
