//! Tracing spans and observer hooks: a recording subscriber sees
//! `stage.process`, `accumulator.update` and `accumulator.spill` with their
//! attributes; a `PipelineObserver` sees every stage start, every batch,
//! accumulator events, errors and circuit changes, consistent with the
//! run's report, on every engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use garner::columnar::sink::CollectSink;
use garner::columnar::source::MemorySource;
use garner::engine::resilience::{BreakerConfig, CircuitState, Guarded, RetryPolicy, StagePolicy};
use garner::engine::{
    AccumulatorEvent, BatchProcessed, DeadLetterQueue, Engine, Error, PipelineObserver, StageStart,
};
use garner::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Span name → field name → values seen (as text).
type Seen = Arc<Mutex<HashMap<String, HashMap<String, Vec<String>>>>>;

struct Recorder(Seen);

struct Fields<'a>(&'a mut HashMap<String, Vec<String>>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.entry(field.name().to_owned()).or_default().push(format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name().to_owned();
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(name.clone());
        }
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        attrs.record(&mut Fields(seen.entry(name).or_default()));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(name) = ctx.span(id).and_then(|s| s.extensions().get::<String>().cloned()) else { return };
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        values.record(&mut Fields(seen.entry(name).or_default()));
    }
}

/// The process-wide recording subscriber (workers of the parallel engines
/// are other threads: a thread-local default would not reach them).
fn recorded() -> &'static Seen {
    static SEEN: OnceLock<Seen> = OnceLock::new();
    SEEN.get_or_init(|| {
        let seen: Seen = Arc::default();
        let subscriber = tracing_subscriber::registry().with(Recorder(seen.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        seen
    })
}

fn fragments() -> Vec<RecordBatch> {
    (0..20)
        .map(|b| {
            // Keys 0..1000 get `a` in the first ten batches and `b` in the last ten.
            let k: ArrayRef = Arc::new(Int64Array::from_iter_values((0..100).map(|i| (b * 100 + i) % 1000)));
            let var: ArrayRef = Arc::new(StringArray::from(vec![if b < 10 { "a" } else { "b" }; 100]));
            let value: ArrayRef = Arc::new(StringArray::from_iter_values((0..100).map(|i| format!("v{i}"))));
            RecordBatch::try_from_iter([("k", k), ("var", var), ("value", value)]).unwrap()
        })
        .collect()
}

fn graph() -> (PipelineGraph, garner::columnar::sink::Collected) {
    let (sink, out) = CollectSink::new();
    let graph = Pipeline::new("hooks")
        .source("read", MemorySource::try_from_batches(fragments()).unwrap())
        .transform("keep", Filter::new(col("k").gt(-1)))
        .accumulate(
            "assemble",
            VarSet::keyed("k").require(["a", "b"]).time(TimeMode::Processing).spill_on_pressure(true),
        )
        .sink("out", sink)
        .build()
        .unwrap();
    (graph, out)
}

#[test]
fn spans_carry_the_seed_attributes() {
    let seen = recorded();
    for engine in [Box::new(SyncEngine::new()) as Box<dyn Engine>, Box::new(StealEngine::with_threads(2))] {
        let (g, _) = graph();
        let opts = RunOptions::default().with_memory_budget(garner::pools::ByteSize::kib(16));
        engine.run(g, opts).unwrap();
    }
    let seen = seen.lock().unwrap();
    let process = &seen["stage.process"];
    for field in ["stage", "engine", "batch_size", "queue_depth_in", "queue_depth_out"] {
        assert!(process.contains_key(field), "stage.process lacks {field}: {process:?}");
    }
    assert!(process["engine"].iter().any(|e| e.contains("sync")));
    assert!(process["engine"].iter().any(|e| e.contains("steal")));
    assert!(process["stage"].iter().any(|s| s.contains("keep")));
    let update = &seen["accumulator.update"];
    for field in ["stage", "batch_size", "emitted", "completeness", "resident_keys", "spill"] {
        assert!(update.contains_key(field), "accumulator.update lacks {field}: {update:?}");
    }
    assert!(update["spill"].iter().any(|v| v == "true"), "under a 16 KiB budget state spills");
    let spill = &seen["accumulator.spill"];
    for field in ["stage", "held_bytes", "target_bytes", "spilled_keys"] {
        assert!(spill.contains_key(field), "accumulator.spill lacks {field}: {spill:?}");
    }
}

#[derive(Default)]
struct Counting {
    starts: Mutex<HashMap<String, u64>>,
    rows_in: Mutex<HashMap<String, u64>>,
    emitted: AtomicU64,
    errors: Mutex<Vec<String>>,
    circuits: Mutex<Vec<CircuitState>>,
}

impl PipelineObserver for Counting {
    fn on_stage_start(&self, stage: &str, _info: &StageStart) {
        *self.starts.lock().unwrap().entry(stage.to_owned()).or_default() += 1;
    }
    fn on_batch_processed(&self, stage: &str, b: &BatchProcessed) {
        *self.rows_in.lock().unwrap().entry(stage.to_owned()).or_default() += b.rows_in;
    }
    fn on_accumulator_event(&self, _stage: &str, e: &AccumulatorEvent) {
        self.emitted.fetch_add(e.emitted, Relaxed);
    }
    fn on_error(&self, stage: &str, _error: &Error) {
        self.errors.lock().unwrap().push(stage.to_owned());
    }
    fn on_circuit_change(&self, _stage: &str, state: CircuitState) {
        self.circuits.lock().unwrap().push(state);
    }
}

fn engines() -> Vec<Box<dyn Engine>> {
    vec![
        Box::new(SyncEngine::new()),
        Box::new(StealEngine::with_threads(2)),
        Box::new(DataflowEngine::with_threads(2)),
        Box::new(HybridEngine::with_threads(2)),
        Box::new(RayonEngine::with_threads(2)),
    ]
}

#[test]
fn the_observer_sees_starts_batches_and_accumulator_events_matching_the_report() {
    for engine in engines() {
        let name = engine.name();
        let observer = Arc::new(Counting::default());
        let (g, _) = graph();
        let report = engine.run(g, RunOptions::default().with_observer(observer.clone())).unwrap();
        let starts = observer.starts.lock().unwrap().clone();
        for stage in ["keep", "assemble"] {
            let r = report.stage(stage).unwrap();
            let started = starts.get(stage).copied().unwrap_or(0);
            assert_eq!(started, r.instances as u64, "{name} {stage}");
            assert_eq!(
                observer.rows_in.lock().unwrap().get(stage).copied(),
                Some(r.rows_in),
                "{name} {stage}"
            );
        }
        // Emitted while processing (the end of input's partials are not batch events).
        let assemble = report.stage("assemble").unwrap();
        let while_processing = observer.emitted.load(Relaxed);
        assert!(while_processing > 0 && while_processing <= assemble.rows_out, "{name}");
        assert!(observer.errors.lock().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn the_observer_sees_errors_and_circuit_changes() {
    // A stage failing every batch, under a breaker that opens after 4 failures.
    let breaker = BreakerConfig {
        window: 4,
        min_calls: 4,
        error_rate: Some(0.5),
        min_open_ms: 60_000,
        ..BreakerConfig::default()
    };
    let retry = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    let failing = MapBatches::new(|_b: RecordBatch| Err("down".into()));
    let dlq = DeadLetterQueue::new();
    let guarded =
        Guarded::new(failing, StagePolicy { retry, breaker: Some(breaker), ..StagePolicy::default() })
            .dead_letters(dlq.clone());
    let (sink, _) = CollectSink::new();
    let g = Pipeline::new("circuit")
        .source("read", MemorySource::try_from_batches(fragments()).unwrap())
        .transform("remote", guarded)
        .sink("out", sink)
        .build()
        .unwrap();
    let observer = Arc::new(Counting::default());
    let report = SyncEngine::new().run(g, RunOptions::default().with_observer(observer.clone())).unwrap();
    assert_eq!(*observer.circuits.lock().unwrap(), [CircuitState::Open]);
    let metrics = report.metrics();
    assert_eq!(metrics.stage("remote").unwrap().stage_circuit_state, 2, "the gauge shows the open breaker");
    assert_eq!(dlq.rows(), 2000, "failed and refused batches are dead-lettered");

    // An uncontained failure reaches on_error, naming the stage.
    for engine in engines() {
        let observer = Arc::new(Counting::default());
        let (sink, _) = CollectSink::new();
        let g = Pipeline::new("error")
            .source("read", MemorySource::try_from_batches(fragments()).unwrap())
            .transform("broken", MapBatches::new(|_b: RecordBatch| Err("broken".into())))
            .sink("out", sink)
            .build()
            .unwrap();
        assert!(engine.run(g, RunOptions::default().with_observer(observer.clone())).is_err());
        assert!(observer.errors.lock().unwrap().iter().any(|s| s == "broken"), "{}", engine.name());
    }
}
