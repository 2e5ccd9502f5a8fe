//! Spilling is transparent: with a limit small enough to spill most keys,
//! the output equals the output without spilling (as a multiset, ignoring
//! `acc_spilled`); a corrupted record and a full store lose nothing
//! silently.

mod common;

use std::{sync::Arc, time::Duration};

use arrow_array::{cast::AsArray, ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use common::{batch_of, lines};
use garner_accum::{CountAccumulator, SpillOptions, TimeMode, VarSet, WithPolicies};
use garner_pools::SpillConfig;
use proptest::prelude::*;

const VARS: [&str; 4] = ["w", "x", "y", "z"];

fn to_batch(rows: &[(u64, usize, i64)], first_id: usize) -> RecordBatch {
    batch_of(&[
        ("k", Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
        ("var", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| VARS[r.1])))),
        (
            "value",
            Arc::new(StringArray::from_iter_values(
                (first_id..first_id + rows.len()).map(|i| format!("v{i}")),
            )),
        ),
        ("ts", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2)))),
    ])
}

/// Runs `stream` in batches of `cut` rows; returns the output lines without
/// the `acc_spilled` column (sorted) and the spilled flags.
fn run(
    acc: &mut dyn garner_accum::RunningAccumulator,
    stream: &[(u64, usize, i64)],
    cut: usize,
) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut spilled = 0;
    let mut take = |b: RecordBatch| {
        let flags = b.column_by_name("acc_spilled").unwrap().as_boolean().clone();
        spilled += flags.true_count();
        let i = b.schema().index_of("acc_spilled").unwrap();
        let mut b = b;
        b.remove_column(i);
        out.extend(lines(&b));
    };
    for (n, chunk) in stream.chunks(cut.max(1)).enumerate() {
        if let Some(b) = acc.push(&to_batch(chunk, n * cut), 0).unwrap() {
            take(b);
        }
    }
    if let Some(b) = acc.finish().unwrap() {
        take(b);
    }
    out.sort();
    (out, spilled)
}

fn stream() -> impl Strategy<Value = (Vec<(u64, usize, i64)>, usize)> {
    (prop::collection::vec((0u64..200, 0usize..4, 0i64..1000), 1..600), 1usize..64).prop_map(
        |(mut rows, cut)| {
            rows.sort_by_key(|r| r.2);
            (rows, cut)
        },
    )
}

fn tiny() -> SpillOptions {
    SpillOptions { limit_bytes: 1, low_water: 0.0, store: SpillConfig::default(), buffers: None }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn spilling_changes_no_row(
        (rows, cut) in stream(),
        ttl in prop::option::of(10u64..300),
        limit in prop::sample::select(vec![1u64, 2_000, 8_000, 30_000]),
        per_slice in prop::sample::select(vec![1u64, 3, 16_384]),
        small_pieces in any::<bool>(),
        wide_rows in prop::sample::select(vec![1u64, 3, 32_768]),
    ) {
        // A limit of 1 spills every key after every call; the larger ones
        // spill some partitions and keep others, and reload them on deadlines.
        let mut v = VarSet::keyed("k").require(VARS).time(TimeMode::event("ts"));
        if let Some(t) = ttl {
            v = v.partial_flush_after(Duration::from_millis(t));
        }
        let schema = to_batch(&[], 0).schema();
        let mut plain = v.build(&schema).unwrap();
        let budget = garner_pools::MemoryBudget::unbounded();
        let leaks = garner_pools::testing::LeakCheck::of(&budget);
        let options = SpillOptions {
            limit_bytes: limit,
            low_water: 0.5,
            store: SpillConfig::default(),
            buffers: Some(budget.buffers().clone()),
        };
        let mut spilling = v.build(&schema).unwrap().with_spill(options).unwrap();
        // Spilled partitions come back at the end whole, or in slices of their sub-partitions.
        spilling.set_finish_slice_for_test(per_slice);
        if small_pieces {
            // Every call's pieces go to the store, their entries to index
            // blocks of two, in records spanning all sub-partitions, fewer
            // as a partition grows (a record read by several slices), or one.
            spilling.set_piece_limits_for_test(0, 2, wide_rows);
        }
        let (expected, none) = run(&mut plain, &rows, cut);
        let (got, spilled) = run(&mut spilling, &rows, cut);
        prop_assert_eq!(none, 0);
        prop_assert_eq!(got, expected);
        let stats = spilling.stats();
        prop_assert_eq!(stats.spilled_keys, 0, "finish brings everything back");
        prop_assert!(stats.spill_writes == 0 || spilled > 0);
        prop_assert_eq!(stats.spill_writes, stats.spill_reads);
        prop_assert_eq!(stats.spill_corrupted + stats.spill_failures, 0);
        prop_assert_eq!(leaks.check(), Ok(()), "every spill buffer went back to the pool");
    }

    #[test]
    fn count_accumulators_spill_transparently((rows, cut) in stream(), every in 2u64..6) {
        let c = CountAccumulator::keyed("k").every(every).value_column("value");
        let schema = to_batch(&[], 0).schema();
        let (expected, _) = run(&mut c.build(&schema).unwrap(), &rows, cut);
        let (got, _) = run(&mut c.build(&schema).unwrap().with_spill(tiny()).unwrap(), &rows, cut);
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn generations_that_were_spilled_say_so() {
    let rows: Vec<(u64, usize, i64)> = (0..400).map(|i| (i % 100, (i / 100) as usize, i as i64)).collect();
    let v = VarSet::keyed("k").require(VARS);
    let mut acc = v.build(&to_batch(&[], 0).schema()).unwrap().with_spill(tiny()).unwrap();
    let (out, spilled) = run(&mut acc, &rows, 50);
    assert_eq!(out.len(), 100);
    assert!(spilled > 50, "{spilled} of 100 rows were spilled at some point");
    let stats = acc.stats();
    // The first 50 keys were written out; the rest arrived while their
    // partitions were out, so their fragments were buffered instead.
    assert!(stats.spill_writes >= 50 && stats.spill_reads == stats.spill_writes, "{stats:?}");
}

#[test]
fn a_full_store_flushes_its_victims_as_partials_and_loses_nothing() {
    let rows: Vec<(u64, usize, i64)> = (0..300).map(|i| (i % 100, (i / 100) as usize, i as i64)).collect();
    let store = SpillConfig { memory_bytes: 256, mapped_bytes: 0, file_bytes: 0, ..SpillConfig::default() };
    let options = SpillOptions { limit_bytes: 1, low_water: 0.0, store, buffers: None };
    let v = VarSet::keyed("k").require(VARS);
    let mut acc = v.build(&to_batch(&[], 0).schema()).unwrap().with_spill(options).unwrap();
    let (out, _) = run(&mut acc, &rows, 50);
    let stats = acc.stats();
    assert!(stats.spill_failures > 0, "{stats:?}");
    assert_eq!(stats.evicted, stats.spill_failures);
    // Every fragment's value is in exactly one output row.
    let cells: usize = out.iter().map(|l| l.split(" | ").filter(|c| c.starts_with('v')).count()).sum();
    assert_eq!(cells, 300);
}

#[test]
fn a_corrupted_record_is_emitted_as_corrupted_and_the_run_goes_on() {
    // The partition comes back whole, or a key at a time (its records read once per slice).
    for per_slice in [16_384, 1] {
        corrupted_records(per_slice);
    }
}

fn corrupted_records(per_slice: u64) {
    let v = VarSet::keyed("k").require(VARS);
    let mut acc = v.build(&to_batch(&[], 0).schema()).unwrap().with_spill(tiny()).unwrap();
    acc.set_finish_slice_for_test(per_slice);
    // Keys 0..10 get two variables each, then everything is spilled.
    let first: Vec<(u64, usize, i64)> = (0..20).map(|i| (i % 10, (i / 10) as usize, i as i64)).collect();
    assert!(acc.push(&to_batch(&first, 0), 0).unwrap().is_none());
    assert_eq!(acc.stats().spilled_keys, 10);
    assert_eq!(acc.corrupt_spilled_for_test(), 10);
    // Key 0's next fragment is buffered with its spilled partition. When the
    // partition comes back (here at the end of input), each damaged
    // generation leaves as `corrupted`, and the fragment opens a new one.
    assert!(acc.push(&to_batch(&[(0, 2, 30)], 20), 0).unwrap().is_none());
    let rest = acc.finish().unwrap().unwrap();
    let mut got = lines(&rest);
    got.sort();
    assert_eq!(got.len(), 11);
    assert_eq!(got[0], "0 | null | null | null | null | 0.0 | [w, x, y, z] | true | corrupted");
    assert_eq!(got[1], "0 | null | null | v20 | null | 0.25 | [w, x, z] | true | end_of_input");
    let reasons = rest.column_by_name("acc_reason").unwrap().as_string::<i32>();
    assert_eq!(reasons.iter().filter(|r| *r == Some("corrupted")).count(), 10);
    assert_eq!(reasons.iter().filter(|r| *r == Some("end_of_input")).count(), 1);
    let stats = acc.stats();
    assert_eq!((stats.spill_corrupted, stats.spilled_keys), (10, 0));
    let errors: Vec<String> = acc.take_spill_errors().iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 10);
    assert!(
        errors.iter().any(|e| e.starts_with("spilled state of key 0 unreadable in the memory tier:")),
        "{errors:?}"
    );
}

#[test]
fn finishing_in_parts_gives_the_same_rows() {
    let rows: Vec<(u64, usize, i64)> = (0..900).map(|i| (i % 300, (i / 300) as usize, i as i64)).collect();
    let v = VarSet::keyed("k").require(VARS);
    let schema = to_batch(&[], 0).schema();
    let mut whole = v.build(&schema).unwrap();
    let mut parts = v.build(&schema).unwrap().with_spill(tiny()).unwrap();
    for acc in [&mut whole, &mut parts] {
        assert!(acc.push(&to_batch(&rows, 0), 0).unwrap().is_none());
    }
    let expected = lines(&whole.finish().unwrap().unwrap());
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    parts
        .finish_into(64, &mut |b| {
            sizes.push(b.num_rows());
            got.extend(lines(&b).into_iter().map(|l| l.replace(" | true | ", " | false | ")));
        })
        .unwrap();
    // Spilled partitions come back one at a time, each in parts of at most 64 rows.
    assert!(sizes.iter().all(|&n| n <= 64), "{sizes:?}");
    assert!(sizes.len() > 5, "{sizes:?}");
    got.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(parts.stats().spilled_keys, 0);
}

#[test]
fn a_middling_limit_spills_some_partitions_and_keeps_the_others() {
    let rows: Vec<(u64, usize, i64)> = (0..2000).map(|i| (i, 0, i as i64)).collect();
    let v = VarSet::keyed("k").require(VARS);
    let schema = to_batch(&[], 0).schema();
    let mut acc = v.build(&schema).unwrap();
    assert!(acc.push(&to_batch(&rows, 0), 0).unwrap().is_none());
    let full = acc.bytes_held();
    let options =
        SpillOptions { limit_bytes: full / 2, low_water: 0.5, store: SpillConfig::default(), buffers: None };
    let mut acc = v.build(&schema).unwrap().with_spill(options).unwrap();
    assert!(acc.push(&to_batch(&rows, 0), 0).unwrap().is_none());
    let (resident, spilled) = (acc.resident_keys() as u64, acc.spilled_keys());
    assert_eq!(resident + spilled, 2000);
    assert!(spilled > 0 && resident > 0, "resident {resident}, spilled {spilled}");
    // The rest of every key: completes the resident ones now, the spilled
    // ones when their partitions come back at the end.
    let rest: Vec<(u64, usize, i64)> =
        (0..2000).flat_map(|i| (1..4).map(move |v| (i, v, 2000 + i as i64))).collect();
    let now = acc.push(&to_batch(&rest, 2000), 0).unwrap().map_or(0, |b| b.num_rows());
    assert!(now > 0 && now < 2000, "{now} keys completed in memory");
    let later = acc.finish().unwrap().unwrap();
    let reasons = later.column_by_name("acc_reason").unwrap().as_string::<i32>();
    assert_eq!(now + later.num_rows(), 2000);
    assert!(reasons.iter().all(|r| r == Some("complete")));
    assert_eq!(acc.stats().spilled_keys, 0);
}
