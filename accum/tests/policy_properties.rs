//! Property tests of the §5 invariants with every policy in play: random
//! fragment streams and random policy combinations (max items, max bytes,
//! TTL, partial flush off, after-complete drop, max keys, allowed lateness,
//! a predicate), cut into random batches.
//!
//! - every applied fragment is in exactly one output row (a cell, or a
//!   repeat of one), or in the dead-letter output;
//! - no key generation is emitted twice (every row holds at least one
//!   fragment, and fragments are unique);
//! - a row marked complete has every variable; a partial names exactly
//!   what is missing;
//! - once the watermark passes every deadline, no key is resident;
//! - the output does not depend on how the input was cut into batches.
//!
//! The VarSet properties use proptest; the Count accumulator's conservation
//! law uses quickcheck.

mod common;

use std::{collections::HashSet, time::Duration};

use arrow_array::{cast::AsArray, types::*, Array, RecordBatch};
use common::{to_batch, Frag, VARS};
use garner_accum::{
    AfterComplete, CountAccumulator, KeyedAccumulator, Policies, SpillOptions, TimeMode, VarSet,
    WindowAccumulator, WithPolicies, ERROR_COLUMN,
};
use proptest::prelude::*;
use quickcheck::{QuickCheck, TestResult};

/// One emitted row, decoded; values are fragment ids.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct Row {
    key: u64,
    values: [Option<i64>; 4],
    completeness: f64,
    missing: Vec<String>,
    reason: String,
    dead: bool,
}

fn decode(batch: &RecordBatch, dead: bool) -> Vec<Row> {
    let keys = batch.column(0).as_primitive::<UInt64Type>();
    let vars: Vec<_> = (1..=4).map(|c| batch.column(c).as_primitive::<Int64Type>()).collect();
    let completeness = batch.column(5).as_primitive::<Float64Type>();
    let missing = batch.column(6).as_list::<i32>();
    let reasons = batch.column(8).as_string::<i32>();
    (0..batch.num_rows())
        .map(|r| Row {
            key: keys.value(r),
            values: std::array::from_fn(|v| vars[v].is_valid(r).then(|| vars[v].value(r))),
            completeness: completeness.value(r),
            missing: missing.value(r).as_string::<i32>().iter().map(|s| s.unwrap().to_owned()).collect(),
            reason: reasons.value(r).to_owned(),
            dead,
        })
        .collect()
}

/// What one run gave: rows (output and dead-lettered partials), rejected
/// fragment ids with their reason, and the accumulator.
struct Outcome<A: garner_accum::Accumulator> {
    rows: Vec<Row>,
    rejected: Vec<(i64, String)>,
    acc: KeyedAccumulator<A>,
}

fn collect_dead<A: garner_accum::Accumulator>(
    acc: &mut KeyedAccumulator<A>,
    rows: &mut Vec<Row>,
    rejected: &mut Vec<(i64, String)>,
) {
    let dead = acc.take_dead_letters();
    for b in &dead.partials {
        assert_eq!(b.schema().field(b.num_columns() - 1).name(), ERROR_COLUMN);
        rows.extend(decode(b, true));
    }
    for b in &dead.fragments {
        let ids = b.column_by_name("value").unwrap().as_primitive::<Int64Type>();
        let why = b.column_by_name(ERROR_COLUMN).unwrap().as_string::<i32>();
        for r in 0..b.num_rows() {
            rejected.push((ids.value(r), why.value(r).split(':').next().unwrap().to_owned()));
        }
    }
}

/// Pushes `stream` cut by `cuts`, then (with a deadline) a watermark past
/// every deadline, checking no key stays resident, then finishes.
/// Runs as [`run`], spilling every open generation after each call when
/// `spill` (the output must not change).
fn run_spilling(
    config: &VarSet,
    stream: &[Frag],
    cuts: &[usize],
    spill: bool,
) -> Outcome<garner_accum::varset::VarSetState> {
    let mut acc = config.build(to_batch(&[], 0).schema_ref()).unwrap();
    if spill {
        acc = acc
            .with_spill(SpillOptions { limit_bytes: 1, low_water: 0.0, ..SpillOptions::limit(0) })
            .unwrap();
    }
    drive(acc, config, stream, cuts)
}

fn run(config: &VarSet, stream: &[Frag], cuts: &[usize]) -> Outcome<garner_accum::varset::VarSetState> {
    run_spilling(config, stream, cuts, false)
}

fn drive(
    mut acc: KeyedAccumulator<garner_accum::varset::VarSetState>,
    config: &VarSet,
    stream: &[Frag],
    cuts: &[usize],
) -> Outcome<garner_accum::varset::VarSetState> {
    let (mut rows, mut rejected) = (Vec::new(), Vec::new());
    let (mut at, mut cut) = (0, 0);
    while at < stream.len() {
        let size = cuts[cut % cuts.len()].min(stream.len() - at);
        if let Some(b) = acc.push(&to_batch(&stream[at..at + size], at), 0).unwrap() {
            rows.extend(decode(&b, false));
        }
        collect_dead(&mut acc, &mut rows, &mut rejected);
        at += size;
        cut += 1;
    }
    if config.policies().partial_flush_after.is_some() || config.policies().max_latency.is_some() {
        if let Some(b) = acc.observe_watermark(1_000_000).unwrap() {
            rows.extend(decode(&b, false));
        }
        collect_dead(&mut acc, &mut rows, &mut rejected);
        assert_eq!(acc.resident_keys(), 0, "the watermark passed every deadline: no key may stay");
    }
    if let Some(b) = acc.finish().unwrap() {
        rows.extend(decode(&b, false));
    }
    collect_dead(&mut acc, &mut rows, &mut rejected);
    Outcome { rows, rejected, acc }
}

fn check(config: &VarSet, stream: &[Frag], o: &Outcome<garner_accum::varset::VarSetState>) {
    let p = config.policies();
    let stats = o.acc.stats();
    let mut seen = HashSet::new();
    for r in &o.rows {
        for (v, cell) in r.values.iter().enumerate() {
            if let Some(id) = cell {
                let f = stream[*id as usize];
                assert_eq!((f.key, f.var), (Some(r.key), v), "fragment {id} landed in the wrong cell");
                assert!(seen.insert(*id), "fragment {id} landed in two rows");
            }
        }
        let present = r.values.iter().filter(|v| v.is_some()).count();
        assert!(present > 0, "an empty generation was emitted: {r:?}");
        assert_eq!(r.completeness, present as f64 / 4.0);
        let mut missing: Vec<String> =
            (0..4).filter(|&v| r.values[v].is_none()).map(|v| VARS[v].to_owned()).collect();
        missing.sort();
        assert_eq!(r.missing, missing, "a partial names exactly what is missing");
        assert_eq!(
            r.reason == "complete",
            present == 4,
            "complete rows, and only they, have every variable: {r:?}"
        );
        let allowed = match r.reason.as_str() {
            "complete" | "end_of_input" => true,
            "max_items" => p.max_items.is_some(),
            "max_bytes" => p.max_bytes.is_some(),
            "evicted" => p.max_keys.is_some(),
            "predicate" => p.complete_when.is_some(),
            "ttl" => p.partial_flush_after.is_some(),
            "max_latency" => p.max_latency.is_some(),
            _ => false,
        };
        assert!(allowed, "reason {} without its policy", r.reason);
        assert_eq!(
            r.dead,
            r.reason == "ttl" && !p.flushes_partials(),
            "only TTL expiries are dead-lettered, when asked"
        );
    }
    for (id, why) in &o.rejected {
        assert!(!seen.contains(id), "fragment {id} is both in a row and dead-lettered");
        match why.as_str() {
            "late" => assert!(p.allowed_lateness.is_some()),
            "after_complete" => assert_eq!(p.after_complete, AfterComplete::Drop),
            other => panic!("unknown rejection {other}"),
        }
    }
    let rejected: HashSet<i64> = o.rejected.iter().map(|r| r.0).collect();
    assert_eq!(rejected.len(), o.rejected.len(), "a fragment was rejected twice");
    let applied = stream.iter().filter(|f| f.key.is_some() && f.var < 4).count() as u64;
    assert_eq!(
        seen.len() as u64 + stats.duplicate_fragments + rejected.len() as u64,
        applied,
        "every fragment is in a row, a repeat, or the dead-letter output"
    );
    assert_eq!(stats.late + stats.dropped_after_complete, rejected.len() as u64);
    assert_eq!(stats.evicted, o.rows.iter().filter(|r| r.reason == "evicted").count() as u64);
    assert_eq!(stats.expired_dead_lettered, o.rows.iter().filter(|r| r.dead).count() as u64);
    assert_eq!(stats.rows_out + stats.expired_dead_lettered, o.rows.len() as u64);
    assert_eq!(stats.complete + stats.partial, stats.rows_out);
    assert_eq!((o.acc.resident_keys(), stats.active_keys), (0, 0), "finish leaves no key resident");
}

fn policies() -> impl Strategy<Value = Policies> {
    (
        prop::option::of(1u64..6),
        prop::option::of(8u64..40),
        prop::option::of(prop_oneof![Just(50u64), Just(100), Just(200)]),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1u64..12),
        prop::option::of(prop_oneof![Just(0u64), Just(20), Just(60)]),
        any::<bool>(),
    )
        .prop_map(|(items, bytes, ttl, flush, drop, keys, late, pred)| {
            Policies {
                max_items: items,
                max_bytes: bytes,
                partial_flush_after: ttl.map(Duration::from_millis),
                partial_flush: ttl.map(|_| flush),
                after_complete: if drop { AfterComplete::Drop } else { AfterComplete::Restart },
                max_keys: keys,
                allowed_lateness: late.map(Duration::from_millis),
                complete_when: None,
                ..Policies::default()
            }
            .with_predicate(pred)
        })
}

trait WithPredicate {
    fn with_predicate(self, on: bool) -> Self;
}

impl WithPredicate for Policies {
    fn with_predicate(mut self, on: bool) -> Self {
        if on {
            let v = VarSet::keyed("k").complete_when(|k| k.has("w") && k.has("z"));
            self.complete_when = v.policies().complete_when.clone();
        }
        self
    }
}

fn streams() -> impl Strategy<Value = (Vec<Frag>, Vec<usize>)> {
    // Times drift upwards with some disorder, so lateness happens.
    let frag = (prop::option::weighted(0.97, 0u64..30), 0usize..5, 0i64..60, -3i64..1)
        .prop_map(|(key, var, tick, back)| Frag { key, var, time: (tick + back) * 10 });
    (prop::collection::vec(frag, 0..300), prop::collection::vec(1usize..40, 1..8)).prop_map(
        |(mut s, cuts)| {
            // A rising trend: fragment i's time is at least i/5 ticks.
            for (i, f) in s.iter_mut().enumerate() {
                f.time += (i as i64 / 5) * 10;
            }
            (s, cuts)
        },
    )
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_policy_combination_keeps_the_invariants(
        (stream, cuts) in streams(),
        policies in policies(),
        spill in any::<bool>(),
    ) {
        let mut config = VarSet::keyed("k").require(VARS).time(TimeMode::event("ts"));
        *config.policies_mut() = policies;
        let o = run_spilling(&config, &stream, &cuts, spill);
        check(&config, &stream, &o);
        if spill {
            let s = o.acc.stats();
            prop_assert_eq!(s.spill_writes, s.spill_reads, "every spilled generation came back");
            prop_assert_eq!(s.spilled_keys, 0);
        }
        let one = run(&config, &stream, &[1]);
        check(&config, &stream, &one);
        prop_assert_eq!(sorted(o.rows), sorted(one.rows), "the cut changed the output");
        prop_assert_eq!(o.rejected.len(), one.rejected.len());
    }
}

/// Count accumulator: every applied fragment id is in exactly one `items`
/// list (output or dead-lettered partial) or rejected; counts add up.
fn count_conserves(keys: Vec<(u8, u8)>, every: u8, max_keys: u8, ttl: bool, drop: bool) -> TestResult {
    let every = u64::from(every % 5) + 1;
    let stream: Vec<Frag> = keys
        .iter()
        .enumerate()
        .map(|(i, &(k, t))| Frag { key: Some(u64::from(k % 16)), var: 0, time: i as i64 + i64::from(t % 4) })
        .collect();
    let mut c = CountAccumulator::keyed("k").every(every).value_column("value").time(TimeMode::event("ts"));
    if max_keys % 3 != 0 {
        c = c.max_keys(u64::from(max_keys % 7) + 1);
    }
    if ttl {
        c = c.partial_flush_after(Duration::from_millis(8)).partial_flush(!drop);
    } else if drop {
        c = c.after_complete(AfterComplete::Drop);
    }
    let mut acc = c.build(to_batch(&[], 0).schema_ref()).unwrap();
    let mut ids: Vec<i64> = Vec::new();
    let mut counted = 0u64;
    let mut take = |b: &RecordBatch, ids: &mut Vec<i64>| {
        let counts = b.column_by_name("count").unwrap().as_primitive::<UInt64Type>();
        let items = b.column_by_name("items").unwrap().as_list::<i32>();
        for r in 0..b.num_rows() {
            let list = items.value(r);
            let list = list.as_primitive::<Int64Type>();
            assert_eq!(list.len() as u64, counts.value(r));
            assert!(counts.value(r) >= 1 && counts.value(r) <= every, "a generation holds 1..=every items");
            counted += counts.value(r);
            ids.extend(list.values().iter());
        }
    };
    for chunk in (0..stream.len()).collect::<Vec<_>>().chunks(7) {
        let at = chunk[0];
        if let Some(b) = acc.push(&to_batch(&stream[at..at + chunk.len()], at), 0).unwrap() {
            take(&b, &mut ids);
        }
    }
    if let Some(b) = acc.finish().unwrap() {
        take(&b, &mut ids);
    }
    let dead = acc.take_dead_letters();
    for b in &dead.partials {
        take(b, &mut ids);
    }
    for b in &dead.fragments {
        ids.extend(b.column_by_name("value").unwrap().as_primitive::<Int64Type>().values().iter());
    }
    ids.sort_unstable();
    let expected: Vec<i64> = (0..stream.len() as i64).collect();
    TestResult::from_bool(
        ids == expected
            && counted + dead.fragments.iter().map(|b| b.num_rows() as u64).sum::<u64>()
                == stream.len() as u64,
    )
}

#[test]
fn count_accumulator_conserves_every_fragment() {
    QuickCheck::new()
        .tests(300)
        .quickcheck(count_conserves as fn(Vec<(u8, u8)>, u8, u8, bool, bool) -> TestResult);
}

/// Window accumulators: every fragment lands in exactly one window's
/// `items` or the dead-letter output, inside its window's bounds; tumbling
/// windows of one key never repeat; the output does not depend on the cut.
/// One emitted window: key, start, end, fragment ids.
type WindowRow = (u64, i64, i64, Vec<i64>);

fn window_run(w: &WindowAccumulator, stream: &[Frag], cuts: &[usize]) -> (Vec<WindowRow>, Vec<i64>) {
    let mut acc = w.build(to_batch(&[], 0).schema_ref()).unwrap();
    let (mut rows, mut rejected) = (Vec::new(), Vec::new());
    let take = |b: &RecordBatch, rows: &mut Vec<WindowRow>| {
        let keys = b.column(0).as_primitive::<UInt64Type>();
        let starts = b.column_by_name("window_start").unwrap().as_primitive::<Int64Type>();
        let ends = b.column_by_name("window_end").unwrap().as_primitive::<Int64Type>();
        let items = b.column_by_name("items").unwrap().as_list::<i32>();
        for r in 0..b.num_rows() {
            let list = items.value(r);
            let ids = list.as_primitive::<Int64Type>().values().to_vec();
            rows.push((keys.value(r), starts.value(r), ends.value(r), ids));
        }
    };
    let (mut at, mut cut) = (0, 0);
    while at < stream.len() {
        let size = cuts[cut % cuts.len()].min(stream.len() - at);
        if let Some(b) = acc.push(&to_batch(&stream[at..at + size], at), 0).unwrap() {
            take(&b, &mut rows);
        }
        at += size;
        cut += 1;
    }
    if let Some(b) = acc.finish().unwrap() {
        take(&b, &mut rows);
    }
    for b in acc.take_dead_letters().fragments {
        rejected.extend(b.column_by_name("value").unwrap().as_primitive::<Int64Type>().values().iter());
    }
    assert_eq!(acc.resident_keys(), 0);
    rows.sort();
    rejected.sort_unstable();
    (rows, rejected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn windows_hold_every_fragment_once_within_their_bounds(
        (stream, cuts) in streams(),
        session in any::<bool>(),
        length in 5u64..80,
        lateness in prop::option::of(0u64..100),
    ) {
        let d = Duration::from_millis(length);
        let mut w = if session {
            WindowAccumulator::session("k", "ts", d)
        } else {
            WindowAccumulator::tumbling("k", "ts", d)
        }
        .value_column("value");
        if let Some(l) = lateness {
            w = w.allowed_lateness(Duration::from_millis(l));
        }
        // Keys only (windows take every row); drop null keys, which are ignored.
        let stream: Vec<Frag> = stream.into_iter().filter(|f| f.key.is_some()).collect();
        let (rows, rejected) = window_run(&w, &stream, &cuts);
        let mut ids: Vec<i64> = rows.iter().flat_map(|r| r.3.iter().copied()).chain(rejected.iter().copied()).collect();
        ids.sort_unstable();
        prop_assert_eq!(ids, (0..stream.len() as i64).collect::<Vec<_>>(), "every fragment exactly once");
        let length = length as i64;
        for (key, start, end, items) in &rows {
            prop_assert!(!items.is_empty());
            for &id in items {
                let f = stream[id as usize];
                prop_assert_eq!(f.key, Some(*key));
                if session {
                    prop_assert!(*start <= f.time && f.time + length <= *end, "{} outside [{}, {})", f.time, start, end);
                } else {
                    prop_assert!(*start <= f.time && f.time < *end && end - start == length);
                }
            }
        }
        if !session {
            let mut seen = HashSet::new();
            for (key, start, _, _) in &rows {
                prop_assert!(seen.insert((*key, *start)), "window {start} of key {key} emitted twice");
            }
        }
        let (one_rows, one_rejected) = window_run(&w, &stream, &[1]);
        prop_assert_eq!(rows, one_rows);
        prop_assert_eq!(rejected, one_rejected);
    }
}
