//! VarSet deadlines: event-time and processing-time TTL, max latency,
//! the "late fragment closes the generation" rule, batch-cut independence.

mod common;

use std::{sync::Arc, time::Duration};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampSecondArray, UInt64Array};
use common::{batch_of, frags, lines, out, timed};
use garner_accum::{TimeMode, VarSet, VarSetAssembler, WithPolicies};

/// Keys needing `a` and `b`, event time from `ts`, TTL 100 ms.
fn event_ttl() -> VarSet {
    VarSet::keyed("k")
        .require(["a", "b"])
        .time(TimeMode::event("ts"))
        .partial_flush_after(Duration::from_millis(100))
}

fn build(v: &VarSet) -> VarSetAssembler {
    v.build(timed(&[]).schema_ref()).unwrap()
}

#[test]
fn event_time_generations_expire_once_the_watermark_passes_their_deadline() {
    let mut asm = build(&event_ttl());
    assert!(asm.push(&timed(&[(1, "a", "x", 0), (2, "a", "y", 50)]), 0).unwrap().is_none());
    assert!(asm.push(&timed(&[(3, "a", "z", 100)]), 0).unwrap().is_none(), "deadline 100 not passed");
    assert_eq!(
        out(asm.push(&timed(&[(3, "b", "w", 101)]), 0).unwrap()),
        ["3 | z | w | 1.0 | [] | false | complete", "1 | x | null | 0.5 | [b] | false | ttl"]
    );
    assert_eq!(
        out(asm.push(&timed(&[(4, "a", "v", 170)]), 0).unwrap()),
        ["2 | y | null | 0.5 | [b] | false | ttl"]
    );
    assert_eq!(asm.resident_keys(), 1);
    assert!(asm.advance(1_000_000).unwrap().is_none(), "advance is a no-op in event time");
    assert_eq!(out(asm.finish().unwrap()), ["4 | v | null | 0.5 | [b] | false | end_of_input"]);
}

#[test]
fn a_fragment_beyond_its_generations_deadline_closes_it_first() {
    let mut asm = build(&event_ttl());
    let batch = timed(&[(1, "a", "old", 0), (1, "b", "new", 150)]);
    assert_eq!(out(asm.push(&batch, 0).unwrap()), ["1 | old | null | 0.5 | [b] | false | ttl"]);
    assert_eq!(out(asm.finish().unwrap()), ["1 | null | new | 0.5 | [a] | false | end_of_input"]);
}

#[test]
fn a_fragment_exactly_at_the_deadline_still_joins() {
    let mut asm = build(&event_ttl());
    let batch = timed(&[(1, "a", "x", 0), (1, "b", "y", 100)]);
    assert_eq!(out(asm.push(&batch, 0).unwrap()), ["1 | x | y | 1.0 | [] | false | complete"]);
}

#[test]
fn a_late_fragment_after_the_watermark_passed_starts_a_new_generation() {
    let mut asm = build(&event_ttl());
    // Key 2's row at t=300 moves the watermark past key 1's deadline (100), so
    // key 1's late `b` (t=90) finds its generation already emitted.
    let batch = timed(&[(1, "a", "x", 0), (2, "a", "y", 300), (1, "b", "late", 90)]);
    assert_eq!(
        out(asm.push(&batch, 0).unwrap()),
        [
            "1 | x | null | 0.5 | [b] | false | ttl",
            // Opened at t=90 with the watermark at 300: due at once.
            "1 | null | late | 0.5 | [a] | false | ttl",
        ]
    );
}

#[test]
fn expiries_are_ordered_by_deadline_then_arrival_after_completions() {
    let mut asm = build(&event_ttl());
    let batch =
        timed(&[(1, "a", "", 20), (2, "a", "", 10), (3, "a", "", 20), (4, "a", "", 0), (4, "b", "", 1)]);
    assert_eq!(out(asm.push(&batch, 0).unwrap()).len(), 1);
    let expired = out(asm.push(&timed(&[(9, "a", "", 500)]), 0).unwrap());
    let keys: Vec<&str> = expired.iter().map(|l| &l[..1]).collect();
    assert_eq!(keys, ["2", "1", "3"]);
}

/// Out-of-order fragments of 5 keys, with late ones and repeats.
fn stream() -> Vec<(u64, &'static str, &'static str, i64)> {
    vec![
        (1, "a", "1a", 0),
        (2, "b", "2b", 10),
        (3, "a", "3a", 5),
        (1, "b", "1b", 60),
        (4, "a", "4a", 120),
        (2, "a", "2a", 40),
        (5, "b", "5b", 260),
        (3, "b", "3b", 100),
        (4, "a", "4a'", 130),
        (1, "a", "1a'", 200),
        (2, "b", "2b'", 210),
        (5, "a", "5a", 250),
        (3, "b", "3b'", 90),
        (4, "b", "4b", 400),
        (1, "b", "1b'", 290),
    ]
}

fn run_in_cuts(size: usize) -> Vec<String> {
    let mut asm = build(&event_ttl());
    let rows = stream();
    let mut all = Vec::new();
    for chunk in rows.chunks(size) {
        all.extend(out(asm.push(&timed(chunk), 0).unwrap()));
    }
    all.extend(out(asm.finish().unwrap()));
    all.sort();
    all
}

#[test]
fn output_rows_do_not_depend_on_batch_boundaries() {
    let whole = run_in_cuts(usize::MAX);
    assert_eq!(
        whole,
        [
            "1 | 1a | 1b | 1.0 | [] | false | complete",
            "1 | 1a' | null | 0.5 | [b] | false | ttl",
            "1 | null | 1b' | 0.5 | [a] | false | ttl",
            "2 | 2a | null | 0.5 | [b] | false | ttl",
            "2 | null | 2b | 0.5 | [a] | false | ttl",
            "2 | null | 2b' | 0.5 | [a] | false | ttl",
            "3 | 3a | null | 0.5 | [b] | false | ttl",
            "3 | null | 3b | 0.5 | [a] | false | ttl",
            "3 | null | 3b' | 0.5 | [a] | false | ttl",
            "4 | 4a | null | 0.5 | [b] | false | ttl",
            "4 | 4a' | null | 0.5 | [b] | false | ttl",
            "4 | null | 4b | 0.5 | [a] | false | end_of_input",
            "5 | 5a | 5b | 1.0 | [] | false | complete",
        ]
    );
    assert_eq!(run_in_cuts(1), whole);
    assert_eq!(run_in_cuts(3), whole);
}

#[test]
fn a_null_event_time_happens_at_the_watermark() {
    let mut asm = build(&event_ttl());
    let batch = batch_of(&[
        ("k", Arc::new(UInt64Array::from(vec![1, 2, 2])) as ArrayRef),
        ("var", Arc::new(StringArray::from(vec!["a", "a", "b"]))),
        ("value", Arc::new(StringArray::from(vec!["x", "y", "z"]))),
        ("ts", Arc::new(Int64Array::from(vec![Some(50), None, Some(200)]))),
    ]);
    // Key 2 opened at the watermark (50), so its deadline is 150 and the
    // fragment at 200 closes it first; key 1 (deadline 150) expires too.
    assert_eq!(
        out(asm.push(&batch, 0).unwrap()),
        ["1 | x | null | 0.5 | [b] | false | ttl", "2 | y | null | 0.5 | [b] | false | ttl"]
    );
}

#[test]
fn timestamp_columns_are_read_in_their_unit() {
    let v = VarSet::keyed("k")
        .require(["a", "b"])
        .time(TimeMode::event("ts"))
        .partial_flush_after(Duration::from_secs(2));
    let batch = |k: Vec<u64>, var: Vec<&str>, secs: Vec<i64>| -> RecordBatch {
        batch_of(&[
            ("k", Arc::new(UInt64Array::from(k)) as ArrayRef),
            ("var", Arc::new(StringArray::from(var))),
            ("value", Arc::new(StringArray::from(vec!["v"; secs.len()]))),
            ("ts", Arc::new(TimestampSecondArray::from(secs))),
        ])
    };
    let mut asm = v.build(batch(vec![], vec![], vec![]).schema_ref()).unwrap();
    assert!(asm.push(&batch(vec![1, 2], vec!["a", "a"], vec![10, 11]), 0).unwrap().is_none());
    assert!(asm.push(&batch(vec![3], vec!["a"], vec![12]), 0).unwrap().is_none(), "deadline 12 s not passed");
    assert_eq!(
        out(asm.push(&batch(vec![3], vec!["b"], vec![13]), 0).unwrap()),
        ["3 | v | v | 1.0 | [] | false | complete", "1 | v | null | 0.5 | [b] | false | ttl"]
    );
}

#[test]
fn processing_time_deadlines_fire_on_advance() {
    let v = VarSet::keyed("k").require(["a", "b"]).partial_flush_after(Duration::from_millis(100));
    let mut asm = v.build(frags(&[]).schema_ref()).unwrap();
    assert!(asm.push(&frags(&[(1, "a", "x")]), 1_000).unwrap().is_none());
    assert!(asm.push(&frags(&[(2, "a", "y")]), 1_050).unwrap().is_none());
    assert!(asm.advance(1_100).unwrap().is_none(), "due once time is past the deadline");
    assert_eq!(out(asm.advance(1_101).unwrap()), ["1 | x | null | 0.5 | [b] | false | ttl"]);
    assert_eq!(asm.resident_keys(), 1);
    // A push is checked against its own `now`: key 2 is due by 1 150.
    assert_eq!(
        out(asm.push(&frags(&[(3, "a", "z")]), 1_200).unwrap()),
        ["2 | y | null | 0.5 | [b] | false | ttl"]
    );
    assert!(asm.advance(500).unwrap().is_none(), "time never runs backwards");
    assert_eq!(out(asm.advance(1_301).unwrap()), ["3 | z | null | 0.5 | [b] | false | ttl"]);
    let s = asm.stats();
    assert_eq!((s.partial, s.rows_out, s.active_keys), (3, 3, 0));
    // A push with an earlier `now` happens at the latest time seen (1 301).
    assert!(asm.push(&frags(&[(4, "a", "late")]), 0).unwrap().is_none());
    assert!(asm.advance(1_401).unwrap().is_none());
    assert_eq!(out(asm.advance(1_402).unwrap()), ["4 | late | null | 0.5 | [b] | false | ttl"]);
}

#[test]
fn the_shorter_of_ttl_and_max_latency_decides_and_names_the_reason() {
    let run = |v: VarSet| {
        let mut asm = v.require(["a", "b"]).build(frags(&[]).schema_ref()).unwrap();
        asm.push(&frags(&[(1, "a", "x")]), 0).unwrap();
        (out(asm.advance(100).unwrap()), out(asm.advance(101).unwrap()))
    };
    let ms = Duration::from_millis;
    let (early, due) = run(VarSet::keyed("k").partial_flush_after(ms(200)).max_latency(ms(100)));
    assert!(early.is_empty());
    assert_eq!(due, ["1 | x | null | 0.5 | [b] | false | max_latency"]);
    let (_, due) = run(VarSet::keyed("k").partial_flush_after(ms(100)).max_latency(ms(100)));
    assert_eq!(due, ["1 | x | null | 0.5 | [b] | false | ttl"]);
    let (_, due) = run(VarSet::keyed("k").max_latency(ms(100)));
    assert_eq!(due, ["1 | x | null | 0.5 | [b] | false | max_latency"]);
}

#[test]
fn without_deadlines_keys_wait_for_the_end_of_input() {
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(frags(&[]).schema_ref()).unwrap();
    asm.push(&frags(&[(1, "a", "x")]), 0).unwrap();
    assert!(asm.advance(i64::MAX).unwrap().is_none());
    assert_eq!(lines(&asm.finish().unwrap().unwrap()), ["1 | x | null | 0.5 | [b] | false | end_of_input"]);
}

#[test]
fn an_observed_watermark_expires_like_the_rows_that_carried_it() {
    // A shard that sees only key 1 learns from the engine that the whole
    // input reached t=200: key 1 (deadline 100) expires as it would have.
    let mut asm = build(&event_ttl());
    assert!(asm.push(&timed(&[(1, "a", "x", 0)]), 0).unwrap().is_none());
    assert!(asm.observe_watermark(100).unwrap().is_none(), "not past the deadline yet");
    assert_eq!(out(asm.observe_watermark(200).unwrap()), ["1 | x | null | 0.5 | [b] | false | ttl"]);
    assert!(asm.observe_watermark(50).unwrap().is_none(), "a watermark never goes back");
}
