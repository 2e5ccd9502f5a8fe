//! Every engine against the reference: random graphs (chains, branch and
//! merge, accumulators, 1 to 4 partitions) over random inputs cut into
//! batches of 1 to 8192 rows. Outputs must equal `SyncEngine`'s exactly
//! where the graph keeps order (chains and branches into their own sinks),
//! and as a multiset where it does not (accumulators, merges).

use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use garner::engine::{Engine, ParallelismHint};
use garner::prelude::*;
use proptest::prelude::*;

mod common;

use common::{Row, VARS};

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    common::fragment_rows(60, 700)
}

fn batch_size() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=4, 5usize..=300, 301usize..=8192]
}

fn batches(rows: &[Row], size: usize) -> Vec<RecordBatch> {
    common::fragment_batches(rows, size)
}

/// A stateless transform, by code.
#[derive(Debug, Clone, Copy)]
enum T {
    FilterGt(i64),
    NotNull,
    Reorder,
    DropFirstRow,
}

fn transform_strategy() -> impl Strategy<Value = T> {
    prop_oneof![(-40i64..40).prop_map(T::FilterGt), Just(T::NotNull), Just(T::Reorder), Just(T::DropFirstRow)]
}

fn add(p: Pipeline, id: &str, t: T, parallelism: usize) -> Pipeline {
    let p = match t {
        T::FilterGt(c) => p.transform(id, Filter::new(col("x").gt(c))),
        T::NotNull => p.transform(id, DropNulls::on(["x"])),
        T::Reorder => p
            .transform(id, Select::columns(["ts", "x", "value", "var", "k"]))
            .transform(format!("{id}-back"), Select::columns(["k", "var", "value", "x", "ts"])),
        T::DropFirstRow => p.transform(
            id,
            MapBatches::new(
                |b: RecordBatch| Ok(b.slice(1.min(b.num_rows()), b.num_rows().saturating_sub(1))),
            ),
        ),
    };
    if parallelism > 0 {
        p.parallelism(parallelism)
    } else {
        p
    }
}

/// A graph shape, rebuilt for every engine.
#[derive(Debug, Clone)]
enum Shape {
    /// source -> transforms -> sink: ordered.
    Chain(Vec<(T, usize)>),
    /// source -> transforms -> accumulate -> filter -> sink: multiset.
    Accumulate { before: Vec<(T, usize)>, partitions: usize, acc: Acc, filter_after: bool },
    /// source -> branch -> (hi: transform -> sink1) (lo: transform -> sink2): each ordered.
    Branch { cut: i64, hi: (T, usize), lo: (T, usize) },
    /// source -> branch -> transforms -> merge -> accumulate -> sink: multiset.
    BranchMerge { cut: i64, hi: (T, usize), lo: (T, usize), partitions: usize },
}

impl Shape {
    fn ordered(&self) -> bool {
        matches!(self, Shape::Chain(_) | Shape::Branch { .. })
    }
    fn sinks(&self) -> usize {
        if matches!(self, Shape::Branch { .. }) {
            2
        } else {
            1
        }
    }
}

/// An accumulator and its policies. Every policy here depends only on each
/// key's own fragments and on event time that never decreases, so a hash
/// shard closes exactly what one instance would. (`max_keys` is per
/// instance and lateness follows each shard's watermark: they are tested in
/// `garner-accum`, not here.)
#[derive(Debug, Clone)]
enum Acc {
    VarSet {
        ttl: Option<i64>,
        keep_last: bool,
        max_items: Option<u64>,
        drop_after_complete: bool,
        dead_ttl: bool,
    },
    Count {
        every: u64,
        max_latency: Option<i64>,
    },
    Window {
        session: bool,
        length: i64,
    },
}

fn acc_strategy() -> impl Strategy<Value = Acc> {
    prop_oneof![
        3 => (prop::option::of(0i64..30), any::<bool>(), prop::option::of(2u64..6), any::<bool>(), any::<bool>()).prop_map(
            |(ttl, keep_last, max_items, drop_after_complete, dead_ttl)| Acc::VarSet {
                ttl,
                keep_last,
                max_items,
                drop_after_complete,
                dead_ttl: dead_ttl && ttl.is_some(),
            }
        ),
        1 => (1u64..6, prop::option::of(0i64..20)).prop_map(|(every, max_latency)| Acc::Count { every, max_latency }),
        1 => (any::<bool>(), 1i64..40).prop_map(|(session, length)| Acc::Window { session, length }),
    ]
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    // Transforms run with the engine's thread count (0) or 1 to 3
    // instances: repartitions between different parallelisms must keep
    // order too.
    let tp = || (transform_strategy(), 0usize..=3);
    prop_oneof![
        prop::collection::vec(tp(), 0..4).prop_map(Shape::Chain),
        (prop::collection::vec(tp(), 0..2), 1usize..=4, acc_strategy(), any::<bool>()).prop_map(
            |(before, partitions, acc, filter_after)| Shape::Accumulate {
                before,
                partitions,
                acc,
                filter_after
            }
        ),
        (-30i64..30, tp(), tp()).prop_map(|(cut, hi, lo)| Shape::Branch { cut, hi, lo }),
        (-30i64..30, tp(), tp(), 1usize..=4).prop_map(|(cut, hi, lo, partitions)| Shape::BranchMerge {
            cut,
            hi,
            lo,
            partitions
        }),
    ]
}

fn varset(ttl: Option<i64>, keep_last: bool) -> VarSet {
    let mut v =
        VarSet::keyed("k").require(["a", "b", "c", "d"]).time(TimeMode::Event { column: "ts".into() });
    if let Some(t) = ttl {
        v = v.partial_flush_after(Duration::from_millis(t as u64));
    }
    if keep_last {
        v = v.on_repeat(RepeatPolicy::KeepLast);
    }
    v
}

fn accumulator(acc: &Acc) -> AccumulateStage {
    let ms = |t: i64| Duration::from_millis(t as u64);
    match *acc {
        Acc::VarSet { ttl, keep_last, max_items, drop_after_complete, dead_ttl } => {
            let mut v = varset(ttl, keep_last);
            if let Some(n) = max_items {
                v = v.max_items(n);
            }
            if drop_after_complete {
                v = v.after_complete(AfterComplete::Drop);
            }
            v.partial_flush(!dead_ttl).into()
        }
        Acc::Count { every, max_latency } => {
            let mut c =
                CountAccumulator::keyed("k").every(every).value_column("value").time(TimeMode::event("ts"));
            if let Some(t) = max_latency {
                c = c.max_latency(ms(t));
            }
            c.into()
        }
        Acc::Window { session: true, length } => WindowAccumulator::session("k", "ts", ms(length)).into(),
        Acc::Window { session: false, length } => {
            WindowAccumulator::tumbling("k", "ts", ms(length)).value_column("x").into()
        }
    }
}

fn build(shape: &Shape, input: &[RecordBatch]) -> (PipelineGraph, Vec<Collected>) {
    let source = MemorySource::try_from_batches(input.to_vec()).unwrap();
    let mut p = Pipeline::new("differential").source("read", source);
    let mut outs = Vec::new();
    let mut sink = |p: Pipeline, id: &str| {
        let (s, c) = CollectSink::new();
        outs.push(c);
        p.sink(id, s)
    };
    match shape {
        Shape::Chain(ts) => {
            for (i, (t, par)) in ts.iter().enumerate() {
                p = add(p, &format!("t{i}"), *t, *par);
            }
            p = sink(p, "out");
        }
        Shape::Accumulate { before, partitions, acc, filter_after } => {
            for (i, (t, par)) in before.iter().enumerate() {
                p = add(p, &format!("t{i}"), *t, *par);
            }
            p = p.accumulate("assemble", accumulator(acc)).parallelism(*partitions);
            if *filter_after {
                p = p.transform("complete-enough", Filter::new(col("acc_completeness").gt_eq(0.5)));
            }
            p = sink(p, "out");
        }
        Shape::Branch { cut, hi, lo } => {
            p = p.branch("split", Branch::new().route("hi", col("x").gt(*cut)).otherwise("lo"));
            p = add(p.from("split.hi"), "hi-t", hi.0, hi.1);
            p = sink(p, "hi-out");
            p = add(p.from("split.lo"), "lo-t", lo.0, lo.1);
            p = sink(p, "lo-out");
        }
        Shape::BranchMerge { cut, hi, lo, partitions } => {
            p = p.branch("split", Branch::new().route("hi", col("x").gt(*cut)).otherwise("lo"));
            p = add(p.from("split.hi"), "hi-t", hi.0, hi.1);
            p = add(p.from("split.lo"), "lo-t", lo.0, lo.1);
            let hi_end = if matches!(hi.0, T::Reorder) { "hi-t-back" } else { "hi-t" };
            let lo_end = if matches!(lo.0, T::Reorder) { "lo-t-back" } else { "lo-t" };
            p = p.merge("union", [hi_end, lo_end]).hint(ParallelismHint::CpuBound);
            p = p.accumulate("assemble", varset(Some(20), false)).parallelism(*partitions);
            p = sink(p, "out");
        }
    }
    (p.build().unwrap(), outs)
}

/// Per stage: id, rows in, rows out, rows dropped.
type Counts = Vec<(String, u64, u64, u64)>;

fn run(
    engine: &dyn Engine,
    shape: &Shape,
    input: &[RecordBatch],
    (capacity, floating): (usize, usize),
) -> (Vec<Vec<String>>, Counts) {
    let (graph, outs) = build(shape, input);
    let opts = RunOptions::default().with_mailbox_capacity(capacity).with_floating_credits(floating);
    let report = common::run_watched(
        engine,
        graph,
        opts,
        common::HANG_TIMEOUT,
        &(shape, input.len(), capacity, floating),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
    let counts =
        report.stages.iter().map(|s| (s.id.clone(), s.rows_in, s.rows_out, s.rows_dropped)).collect();
    (outs.iter().map(common::rows_of).collect(), counts)
}

fn engines(threads: usize) -> Vec<(String, Box<dyn Engine>)> {
    vec![
        (format!("steal({threads})"), Box::new(StealEngine::with_threads(threads))),
        (format!("steal({threads}, unfused)"), Box::new(StealEngine::with_threads(threads).fusion(false))),
        (format!("rayon({threads})"), Box::new(RayonEngine::with_threads(threads))),
        (format!("dataflow({threads})"), Box::new(DataflowEngine::with_threads(threads))),
        (format!("hybrid({threads})"), Box::new(HybridEngine::with_threads(threads))),
    ]
}

fn check(
    shape: &Shape,
    rows: &[Row],
    size: usize,
    threads: usize,
    capacity: usize,
) -> Result<(), TestCaseError> {
    check_links(shape, rows, size, threads, (capacity, 0))
}

/// As [`check`], with links of `(capacity, floating credits)`.
fn check_links(
    shape: &Shape,
    rows: &[Row],
    size: usize,
    threads: usize,
    capacity: (usize, usize),
) -> Result<(), TestCaseError> {
    let input = batches(rows, size);
    let (expected, expected_counts) = run(&SyncEngine::new(), shape, &input, capacity);
    prop_assert_eq!(expected.len(), shape.sinks());
    for (name, engine) in engines(threads) {
        let (mut got, counts) = run(engine.as_ref(), shape, &input, capacity);
        prop_assert_eq!(&counts, &expected_counts, "engine {} counts rows differently on {:?}", name, shape);
        let mut want = expected.clone();
        if !shape.ordered() {
            for v in got.iter_mut().chain(want.iter_mut()) {
                v.sort();
            }
        }
        if got != want {
            let (g, w): (Vec<_>, Vec<_>) = (got.concat(), want.concat());
            let missing: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(5).collect();
            let extra: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(5).collect();
            return Err(TestCaseError::fail(format!(
                "engine {name} differs on {shape:?}: {} rows vs {} expected; missing {missing:?}; extra {extra:?}",
                g.len(),
                w.len()
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 200, ..ProptestConfig::default() })]

    // Every case runs each engine under a hang watchdog: a scheduling
    // deadlock fails with the engine's state instead of stalling CI.
    #[test]
    fn every_engine_matches_the_sync_engine(
        shape in shape_strategy(),
        rows in rows_strategy(),
        size in batch_size(),
        threads in 1usize..=3,
        capacity in 1usize..=8,
        floating in prop_oneof![3 => Just(0usize), 1 => 1usize..=4],
    ) {
        check_links(&shape, &rows, size, threads, (capacity, floating))?;
    }
}

#[test]
fn an_empty_input_gives_empty_outputs_everywhere() {
    let acc = Acc::VarSet {
        ttl: Some(5),
        keep_last: false,
        max_items: None,
        drop_after_complete: false,
        dead_ttl: false,
    };
    let shape = Shape::Accumulate { before: vec![], partitions: 3, acc, filter_after: true };
    check(&shape, &[], 10, 2, 1).unwrap();
}

#[test]
fn keys_spread_over_partitions_are_assembled_like_one_instance() {
    let rows: Vec<Row> = (0..2000)
        .map(|i| Row { k: (i * 7919 % 97) as u64, var: VARS[i % 4], x: Some(i as i64), ts: i as i64 })
        .collect();
    let acc = Acc::VarSet {
        ttl: Some(50),
        keep_last: false,
        max_items: None,
        drop_after_complete: false,
        dead_ttl: false,
    };
    let shape = Shape::Accumulate { before: vec![(T::NotNull, 2)], partitions: 4, acc, filter_after: false };
    check(&shape, &rows, 64, 3, 2).unwrap();
}

#[test]
fn every_accumulator_kind_and_policy_matches_over_partitions() {
    let rows: Vec<Row> = (0..3000)
        .map(|i| Row {
            k: (i * 7919 % 89) as u64,
            var: VARS[i % 5],
            x: Some(i as i64 % 77),
            ts: i as i64 / 3,
        })
        .collect();
    let accs = [
        Acc::VarSet {
            ttl: Some(40),
            keep_last: true,
            max_items: Some(3),
            drop_after_complete: true,
            dead_ttl: true,
        },
        Acc::Count { every: 4, max_latency: Some(30) },
        Acc::Window { session: true, length: 25 },
        Acc::Window { session: false, length: 60 },
    ];
    for acc in accs {
        let shape =
            Shape::Accumulate { before: vec![], partitions: 3, acc: acc.clone(), filter_after: false };
        check(&shape, &rows, 100, 2, 2).unwrap_or_else(|e| panic!("{acc:?}: {e}"));
    }
}

#[test]
fn casts_survive_every_engine() {
    // A transform that changes the schema, replicated.
    let rows: Vec<Row> =
        (0..500).map(|i| Row { k: i as u64 % 10, var: "a", x: Some(i as i64), ts: i as i64 }).collect();
    let input = batches(&rows, 33);
    let go = |engine: &dyn Engine| {
        let (sink, out) = CollectSink::new();
        let graph = Pipeline::new("cast")
            .source("read", MemorySource::try_from_batches(input.clone()).unwrap())
            .transform("cast", Cast::column("x", DataType::Float64))
            .parallelism(3)
            .sink("out", sink)
            .build()
            .unwrap();
        engine.run(graph, RunOptions::default()).unwrap();
        common::rows_of(&out)
    };
    let want = go(&SyncEngine::new());
    for (name, engine) in engines(2) {
        assert_eq!(go(engine.as_ref()), want, "{name}");
    }
}

#[test]
fn order_survives_repartitions_between_different_parallelisms() {
    // 2 -> 3 -> 1 -> 2 instances of stateless stages, one-row batches:
    // every unit crosses round-robin repartitions, and the sink must still
    // see the source order (exactly what the SyncEngine writes).
    let rows: Vec<Row> = (0..600)
        .map(|i| Row { k: i as u64, var: VARS[i % 5], x: Some(i as i64 % 40), ts: i as i64 })
        .collect();
    let shape =
        Shape::Chain(vec![(T::NotNull, 2), (T::Reorder, 3), (T::FilterGt(-1), 1), (T::DropFirstRow, 2)]);
    for threads in 1..=3 {
        for capacity in [1, 3] {
            check(&shape, &rows, 1, threads, capacity).unwrap();
            check(&shape, &rows, 7, threads, capacity).unwrap();
        }
    }
}

/// `input` through a spilling `acc` of `parallelism` instances into a
/// collector, without the `acc_spilled` column (which a budget changes).
fn spill_graph(input: &[RecordBatch], acc: VarSet, parallelism: usize) -> (PipelineGraph, Collected) {
    let (s, c) = CollectSink::new();
    let source = MemorySource::try_from_batches(input.to_vec()).unwrap();
    let columns = ["k", "a", "b", "c", "d", "acc_completeness", "acc_missing_vars", "acc_reason"];
    let g = Pipeline::new("spill")
        .source("read", source)
        .accumulate("assemble", acc.spill_on_pressure(true))
        .parallelism(parallelism)
        .transform("drop-flag", Select::columns(columns))
        .sink("out", s)
        .build()
        .unwrap();
    (g, c)
}

/// The collected rows, sorted (a multiset to compare).
fn sorted(c: &Collected) -> Vec<String> {
    let mut r = common::rows_of(c);
    r.sort();
    r
}

/// Spilling is transparent on every engine: with a memory budget far below
/// what the state needs, the output (minus `acc_spilled`) equals the
/// unbudgeted SyncEngine's as a multiset, and the accumulator did spill.
#[test]
fn a_tiny_memory_budget_spills_on_every_engine_without_changing_the_output() {
    let rows: Vec<Row> = (0..4000)
        .map(|i| Row { k: (i * 7919 % 700) as u64, var: VARS[i % 4], x: Some(i as i64), ts: i as i64 })
        .collect();
    let input = batches(&rows, 97);
    let graph = || spill_graph(&input, varset(Some(200), false), 3);
    let (g, c) = graph();
    SyncEngine::new().run(g, RunOptions::default()).unwrap();
    let expected = sorted(&c);
    assert!(expected.len() > 700);
    let mut all: Vec<(String, Box<dyn Engine>)> = engines(2);
    all.push(("sync".into(), Box::new(SyncEngine::new())));
    for (name, engine) in all {
        let (g, c) = graph();
        let opts = RunOptions::default().with_memory_budget(garner::pools::ByteSize::kib(16));
        let budget = opts.memory_budget.clone().expect("a budget");
        let leaks = garner::pools::testing::LeakCheck::new(&budget, budget.buffers());
        let report = common::run_watched(engine.as_ref(), g, opts, common::HANG_TIMEOUT, &name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        leaks.check().unwrap_or_else(|e| panic!("{name}: reservations outlived the run: {e}"));
        assert_eq!(sorted(&c), expected, "{name}");
        let stats = report.stages.iter().find_map(|s| s.accum.clone()).expect("accumulator stats");
        assert!(stats.spill_writes > 0, "{name}: nothing spilled: {stats:?}");
        assert_eq!(stats.spill_writes, stats.spill_reads, "{name}: every spilled generation came back");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 50, ..ProptestConfig::default() })]

    /// Spill transparency on every engine: under a budget small enough to
    /// spill most keys (or not at all), the output equals the unbudgeted
    /// SyncEngine's as a multiset, and every reservation and spill buffer
    /// is returned.
    #[test]
    fn any_budget_gives_the_output_of_no_budget(
        rows in rows_strategy(),
        size in batch_size(),
        ttl in prop::option::of(1i64..40),
        keep_last in any::<bool>(),
        parallelism in 1usize..=3,
        budget_kib in prop::sample::select(vec![4u64, 16, 64, 4096]),
    ) {
        let input = batches(&rows, size);
        let graph = || spill_graph(&input, varset(ttl, keep_last), parallelism);
        let (g, c) = graph();
        SyncEngine::new().run(g, RunOptions::default()).unwrap();
        let expected = sorted(&c);
        let mut all: Vec<(String, Box<dyn Engine>)> = engines(2);
        all.push(("sync".into(), Box::new(SyncEngine::new())));
        for (name, engine) in all {
            let (g, c) = graph();
            let opts = RunOptions::default().with_memory_budget(garner::pools::ByteSize::kib(budget_kib));
            let budget = opts.memory_budget.clone().expect("a budget");
            let leaks = garner::pools::testing::LeakCheck::of(&budget);
            common::run_watched(engine.as_ref(), g, opts, common::HANG_TIMEOUT, &name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            prop_assert_eq!(leaks.check(), Ok(()), "{}", name);
            prop_assert_eq!(sorted(&c), expected.clone(), "{}", name);
        }
    }
}
