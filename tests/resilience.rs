//! Fault injection on every engine: a transform failing transiently is
//! retried and the output is complete; one failing for good sends its rows
//! to the dead-letter output and the run goes on; a panicking stage is
//! contained by its policy (the run ends with an error naming it, or the
//! stage is quarantined and its input dead-lettered); a batch over its time
//! quota counts as failed. Never a hang (each run is watched), never a row
//! unaccounted for: rows in = rows out + dead-lettered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::{cast::AsArray, types::Int64Type, ArrayRef, Int64Array, RecordBatch};
use garner::columnar::sink::CollectSink;
use garner::columnar::source::MemorySource;
use garner::engine::resilience::{GuardStats, Guarded, PanicPolicy, RetryPolicy, StagePolicy};
use garner::engine::{DeadLetterQueue, Engine, Error};
use garner::prelude::*;

mod common;

type Failing = Box<dyn Fn(i64) -> Result<(), String> + Send + Sync>;

/// 40 batches of 25 rows, `x` = 0..1000; batch `b` starts at `25 b`.
fn input() -> Vec<RecordBatch> {
    (0..40)
        .map(|b| {
            let x: ArrayRef = Arc::new(Int64Array::from_iter_values(b * 25..(b + 1) * 25));
            RecordBatch::try_from_iter([("x", x)]).unwrap()
        })
        .collect()
}

fn engines() -> Vec<Box<dyn Engine>> {
    vec![
        Box::new(SyncEngine::new()),
        Box::new(StealEngine::with_threads(3)),
        Box::new(DataflowEngine::with_threads(3)),
        Box::new(HybridEngine::with_threads(3)),
        Box::new(RayonEngine::with_threads(3)),
    ]
}

fn no_wait(max_attempts: u32) -> RetryPolicy {
    RetryPolicy { max_attempts, base_backoff: Duration::ZERO, max_backoff: Duration::ZERO, jitter: 0.0 }
}

/// A transform calling `fail(first x of the batch)` before passing the batch on.
fn stage(fail: Failing) -> MapBatches {
    MapBatches::new(move |b: RecordBatch| {
        let first = b.column(0).as_primitive::<Int64Type>().value(0);
        fail(first).map_err(Box::<dyn std::error::Error + Send + Sync>::from)?;
        Ok(b)
    })
}

struct Outcome {
    result: garner::engine::Result<RunReport>,
    out: Vec<i64>,
    dead: DeadLetterQueue,
    stats: GuardStats,
}

/// Runs `read → guarded(fail) → add-one → out` on `engine` (3 instances of the guarded stage).
fn run(engine: &dyn Engine, fail: Failing, policy: StagePolicy) -> Outcome {
    let dead = DeadLetterQueue::new();
    let guarded = Guarded::new(stage(fail), policy).dead_letters(dead.clone());
    let stats = guarded.stats_handle();
    let (sink, collected) = CollectSink::new();
    let graph = Pipeline::new("faults")
        .source("read", MemorySource::try_from_batches(input()).unwrap())
        .transform("flaky", guarded)
        .parallelism(3)
        .transform("pass", MapBatches::new(Ok))
        .sink("out", sink)
        .build()
        .unwrap();
    let result =
        common::run_watched(engine, graph, RunOptions::default(), common::HANG_TIMEOUT, &engine.name());
    let mut out: Vec<i64> = collected
        .batches()
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    out.sort_unstable();
    Outcome { result, out, dead, stats: stats.get() }
}

fn dead_xs(dead: &DeadLetterQueue) -> Vec<i64> {
    let Some(all) = dead.concat().unwrap() else { return Vec::new() };
    let mut xs = all.column(0).as_primitive::<Int64Type>().values().to_vec();
    xs.sort_unstable();
    xs
}

#[test]
fn transient_failures_are_retried_and_the_output_is_complete() {
    for engine in engines() {
        // Each batch fails twice, then succeeds: three tries are enough.
        let tries: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
        let fail: Failing = Box::new(move |first| {
            let mut t = tries.lock().unwrap();
            let n = t.entry(first).or_default();
            *n += 1;
            if *n <= 2 {
                Err(format!("transient failure {n} of batch {first}"))
            } else {
                Ok(())
            }
        });
        let o = run(engine.as_ref(), fail, StagePolicy { retry: no_wait(3), ..StagePolicy::default() });
        let name = engine.name();
        o.result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(o.out, (0..1000).collect::<Vec<_>>(), "{name}");
        assert_eq!(o.dead.rows(), 0, "{name}");
        assert_eq!((o.stats.ok_batches, o.stats.retries, o.stats.dead_batches), (40, 80, 0), "{name}");
    }
}

#[test]
fn permanent_failures_go_to_the_dead_letter_output_and_the_run_goes_on() {
    for engine in engines() {
        // Batches starting at a multiple of 100 always fail.
        let fail: Failing =
            Box::new(|first| if first % 100 == 0 { Err(format!("bad batch {first}")) } else { Ok(()) });
        let o = run(engine.as_ref(), fail, StagePolicy { retry: no_wait(2), ..StagePolicy::default() });
        let name = engine.name();
        let report = o.result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let bad: Vec<i64> = (0..1000).filter(|x| x / 25 * 25 % 100 == 0).collect();
        let good: Vec<i64> = (0..1000).filter(|x| x / 25 * 25 % 100 != 0).collect();
        assert_eq!(o.out, good, "{name}");
        assert_eq!(dead_xs(&o.dead), bad, "{name}");
        assert_eq!(o.dead.rows_of("flaky"), 250, "{name}");
        let all = o.dead.concat().unwrap().unwrap();
        let errors = all.column_by_name("_error").unwrap().as_string::<i32>();
        assert!(errors.iter().all(|e| e.unwrap().starts_with("failed after 2 attempt(s): ")), "{name}");
        assert!(errors.iter().any(|e| e.unwrap().contains("bad batch 100")), "{name}");
        let stages = all.column_by_name("_stage").unwrap().as_string::<i32>();
        assert!(stages.iter().all(|s| s == Some("flaky")), "{name}");
        // Every row accounted for: in = out + dead-lettered.
        let flaky = report.stage("flaky").unwrap();
        assert_eq!(flaky.rows_in, flaky.rows_out + flaky.rows_dropped, "{name}");
        assert_eq!(flaky.rows_dropped, 250, "{name}");
        assert_eq!((o.stats.dead_batches, o.stats.retries), (10, 10), "{name}");
    }
}

#[test]
fn a_panicking_stage_is_quarantined_and_its_input_dead_lettered() {
    for engine in engines() {
        let calls = Arc::new(AtomicUsize::new(0));
        let fail: Failing = Box::new(move |first| {
            if first == 500 {
                panic!("boom at {first}");
            }
            calls.fetch_add(1, SeqCst);
            Ok(())
        });
        let policy = StagePolicy { on_panic: PanicPolicy::Quarantine, ..StagePolicy::default() };
        let o = run(engine.as_ref(), fail, policy);
        let name = engine.name();
        o.result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let dead = dead_xs(&o.dead);
        assert!(dead.contains(&500), "{name}: the panicking batch is dead-lettered");
        let mut all = o.out.clone();
        all.extend(&dead);
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>(), "{name}: every row is out or dead-lettered");
        assert_eq!(o.stats.panics, 1, "{name}");
        let errors = o.dead.concat().unwrap().unwrap();
        let errors = errors.column_by_name("_error").unwrap().as_string::<i32>();
        assert!(
            errors.iter().all(|e| e.unwrap().contains("quarantined: the stage panicked: boom at 500")),
            "{name}"
        );
    }
}

#[test]
fn a_panic_under_the_abort_policy_ends_the_run_naming_the_stage() {
    for engine in engines() {
        let fail: Failing = Box::new(|first| if first == 500 { panic!("boom") } else { Ok(()) });
        let o = run(engine.as_ref(), fail, StagePolicy::default());
        let name = engine.name();
        match o.result {
            Err(Error::Panicked { stage, message }) => {
                assert_eq!((stage.as_str(), message.as_str()), ("flaky", "boom"), "{name}")
            }
            Err(Error::Stage { stage, source }) if matches!(*source, Error::Panicked { .. }) => {
                assert_eq!(stage, "flaky", "{name}")
            }
            other => panic!("{name}: expected a panic error, got {:?}", other.map(|r| r.rows_out())),
        }
    }
}

#[test]
fn a_batch_over_its_time_quota_counts_as_failed() {
    let engine = SyncEngine::new();
    let fail: Failing = Box::new(|first| {
        if first == 250 {
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(())
    });
    let policy = StagePolicy {
        retry: no_wait(2),
        time_quota: Some(Duration::from_millis(10)),
        ..StagePolicy::default()
    };
    let o = run(&engine, fail, policy);
    o.result.unwrap();
    assert_eq!(dead_xs(&o.dead), (250..275).collect::<Vec<_>>());
    let all = o.dead.concat().unwrap().unwrap();
    let error = all.column_by_name("_error").unwrap().as_string::<i32>().value(0).to_owned();
    assert!(error.contains("over the time quota of 10ms"), "{error}");
}

#[test]
fn without_a_dead_letter_output_a_permanent_failure_ends_the_run() {
    let guarded = Guarded::new(stage(Box::new(|_| Err("always".into()))), StagePolicy::default());
    let (sink, _) = CollectSink::new();
    let graph = Pipeline::new("no-dlq")
        .source("read", MemorySource::try_from_batches(input()).unwrap())
        .transform("flaky", guarded)
        .sink("out", sink)
        .build()
        .unwrap();
    let e = SyncEngine::new().run(graph, RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("flaky"), "{e}");
}

/// A registry's snapshot is taken per run: a run keeps the policy it
/// started with, the next one picks up the change.
#[test]
fn a_new_run_picks_up_a_changed_policy_and_a_running_one_keeps_its_own() {
    use garner::engine::resilience::{PolicyRegistry, PolicySet};
    let graph = |dlq: &DeadLetterQueue, registry: &PolicyRegistry| {
        // Every batch fails on its first try only.
        let tries: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
        let flaky = stage(Box::new(move |first| {
            let mut t = tries.lock().unwrap();
            let n = t.entry(first).or_default();
            *n += 1;
            if *n == 1 {
                Err("first try fails".into())
            } else {
                Ok(())
            }
        }));
        let (sink, out) = CollectSink::new();
        let g = Pipeline::new("policies")
            .source("read", MemorySource::try_from_batches(input()).unwrap())
            .transform("flaky", flaky)
            .sink("out", sink)
            .build()
            .unwrap()
            .with_policies(&registry.snapshot(), Some(dlq));
        (g, out)
    };
    let once = StagePolicy { retry: no_wait(1), ..StagePolicy::default() };
    let registry = PolicyRegistry::new(PolicySet::new(once)).unwrap();
    let (old_dlq, new_dlq) = (DeadLetterQueue::new(), DeadLetterQueue::new());
    let (first, first_out) = graph(&old_dlq, &registry);
    let running = StealEngine::with_threads(2).spawn(first, RunOptions::default()).unwrap();
    registry.update(PolicySet::new(StagePolicy { retry: no_wait(2), ..StagePolicy::default() })).unwrap();
    running.join().unwrap();
    assert_eq!(old_dlq.rows(), 1000, "the running run kept its snapshot: no retry, all dead-lettered");
    assert_eq!(first_out.batches().len(), 0);
    let (second, second_out) = graph(&new_dlq, &registry);
    SyncEngine::new().run(second, RunOptions::default()).unwrap();
    assert_eq!(new_dlq.rows(), 0, "the next run retries");
    assert_eq!(second_out.concat().unwrap().num_rows(), 1000);
}
