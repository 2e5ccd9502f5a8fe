//! Every policy of the keyed accumulator, alone, on small exact examples:
//! max items, max bytes, partial flush off, after-complete drop, max keys
//! (LRU eviction), allowed lateness, a user predicate; and the Count and
//! Window accumulators.

mod common;

use std::time::Duration;

use arrow_array::RecordBatch;
use common::{frags, lines, out, timed};
use garner_accum::{
    AfterComplete, CountAccumulator, Error, TimeMode, VarSet, WindowAccumulator, WithPolicies, ERROR_COLUMN,
};

fn abc() -> VarSet {
    VarSet::keyed("k").require(["a", "b", "c"])
}

fn errors(batch: &RecordBatch) -> Vec<String> {
    let col = batch.column_by_name(ERROR_COLUMN).unwrap();
    let strings = arrow_array::cast::AsArray::as_string::<i32>(col);
    strings.iter().map(|s| s.unwrap().split(':').next().unwrap().to_owned()).collect()
}

#[test]
fn max_items_emits_a_generation_with_that_many_fragments() {
    let mut asm = abc().max_items(2).build(frags(&[]).schema_ref()).unwrap();
    let got =
        out(asm.push(&frags(&[(1, "a", "x"), (2, "a", "y"), (1, "a", "again"), (2, "b", "z")]), 0).unwrap());
    assert_eq!(
        got,
        [
            "1 | x | null | null | 0.3333333333333333 | [b, c] | false | max_items",
            "2 | y | z | null | 0.6666666666666666 | [c] | false | max_items"
        ]
    );
    assert_eq!(asm.stats().partial, 2);
    assert_eq!(asm.stats().duplicate_fragments, 1);
}

#[test]
fn max_bytes_emits_once_the_values_hold_that_many_bytes() {
    let mut asm = abc().max_bytes(5).build(frags(&[]).schema_ref()).unwrap();
    assert!(asm.push(&frags(&[(1, "a", "xx")]), 0).unwrap().is_none());
    assert_eq!(
        out(asm.push(&frags(&[(1, "b", "yyy")]), 0).unwrap()),
        ["1 | xx | yyy | null | 0.6666666666666666 | [c] | false | max_bytes"]
    );
}

#[test]
fn with_partial_flush_off_expired_keys_go_to_the_dead_letter_output() {
    let v = abc().partial_flush_after(Duration::from_millis(10)).partial_flush(false);
    let mut asm = v.build(frags(&[]).schema_ref()).unwrap();
    assert!(asm
        .push(&frags(&[(1, "a", "x"), (2, "a", "y"), (2, "b", "y"), (2, "c", "y")]), 0)
        .unwrap()
        .is_some());
    assert!(asm.advance(11).unwrap().is_none(), "the expired key is not in the output");
    let dead = asm.take_dead_letters();
    assert!(dead.fragments.is_empty());
    assert_eq!(dead.partials.len(), 1);
    assert_eq!(lines(&dead.partials[0])[0], "1 | x | null | null | 0.3333333333333333 | [b, c] | false | ttl | ttl: the generation expired incomplete and partial_flush is off");
    let stats = asm.stats();
    assert_eq!((stats.complete, stats.partial, stats.expired_dead_lettered, stats.rows_out), (1, 0, 1, 1));
    assert!(asm.take_dead_letters().is_empty(), "taken once");
}

#[test]
fn after_complete_drop_rejects_fragments_until_the_deadline_passes() {
    let v = VarSet::keyed("k")
        .require(["a"])
        .partial_flush_after(Duration::from_millis(10))
        .after_complete(AfterComplete::Drop);
    let mut asm = v.build(frags(&[]).schema_ref()).unwrap();
    assert_eq!(
        out(asm.push(&frags(&[(1, "a", "x"), (1, "a", "again")]), 0).unwrap()),
        ["1 | x | 1.0 | [] | false | complete"]
    );
    assert_eq!(asm.resident_keys(), 0);
    assert!(asm.push(&frags(&[(1, "a", "still")]), 10).unwrap().is_none());
    let dead = asm.take_dead_letters();
    assert_eq!(dead.fragments.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    assert_eq!(errors(&dead.fragments[0]), ["after_complete"]);
    assert_eq!(dead.fragments[0].schema().fields().len(), 4, "input columns plus _error");
    // Past the completed generation's deadline (0 + 10), the key starts afresh.
    assert_eq!(
        out(asm.push(&frags(&[(1, "a", "new")]), 11).unwrap()),
        ["1 | new | 1.0 | [] | false | complete"]
    );
    assert_eq!(asm.stats().dropped_after_complete, 2);
}

#[test]
fn after_complete_restart_opens_a_new_generation() {
    let mut asm = VarSet::keyed("k").require(["a"]).build(frags(&[]).schema_ref()).unwrap();
    let got = out(asm.push(&frags(&[(1, "a", "x"), (1, "a", "y")]), 0).unwrap());
    assert_eq!(got, ["1 | x | 1.0 | [] | false | complete", "1 | y | 1.0 | [] | false | complete"]);
}

#[test]
fn max_keys_evicts_the_least_recently_touched_key() {
    let mut asm = abc().max_keys(2).build(frags(&[]).schema_ref()).unwrap();
    // 1 and 2 open; 1 is touched again, so 2 is the oldest when 3 arrives.
    let got =
        out(asm.push(&frags(&[(1, "a", "p"), (2, "a", "q"), (1, "b", "r"), (3, "a", "s")]), 0).unwrap());
    assert_eq!(got, ["2 | q | null | null | 0.3333333333333333 | [b, c] | false | evicted"]);
    assert_eq!(asm.resident_keys(), 2);
    let got = out(asm.push(&frags(&[(4, "c", "t")]), 0).unwrap());
    assert_eq!(got, ["1 | p | r | null | 0.6666666666666666 | [c] | false | evicted"]);
    assert_eq!(asm.stats().evicted, 2);
    assert_eq!(out(asm.finish().unwrap()).len(), 2);
}

#[test]
fn late_fragments_are_counted_and_dead_lettered() {
    let v = abc().time(TimeMode::event("ts")).allowed_lateness(Duration::from_millis(5));
    let mut asm = v.build(timed(&[]).schema_ref()).unwrap();
    let batch = timed(&[(1, "a", "x", 10), (2, "a", "y", 20), (1, "b", "late", 14), (1, "c", "ok", 15)]);
    assert!(asm.push(&batch, 0).unwrap().is_none());
    let dead = asm.take_dead_letters();
    assert_eq!(
        lines(&dead.fragments[0]),
        ["1 | b | late | 14 | late: event time before the watermark minus the allowed lateness, or of a closed window"]
    );
    assert_eq!(asm.stats().late, 1);
    assert_eq!(
        out(asm.finish().unwrap())[0],
        "1 | x | null | ok | 0.6666666666666666 | [b] | false | end_of_input"
    );
}

#[test]
fn a_user_predicate_completes_early_and_names_what_is_missing() {
    let v = abc().complete_when(|k| k.has("a") && k.has("c"));
    let mut asm = v.build(frags(&[]).schema_ref()).unwrap();
    let got =
        out(asm.push(&frags(&[(1, "a", "x"), (1, "b", "y"), (2, "a", "p"), (2, "c", "q")]), 0).unwrap());
    assert_eq!(got, ["2 | p | null | q | 0.6666666666666666 | [b] | false | predicate"]);
    let got = out(asm.push(&frags(&[(1, "c", "z")]), 0).unwrap());
    assert_eq!(
        got,
        ["1 | x | y | z | 1.0 | [] | false | complete"],
        "all present is `complete`, not `predicate`"
    );
}

#[test]
fn count_accumulator_emits_every_n_and_flushes_the_rest_as_partials() {
    let c = CountAccumulator::keyed("k").every(2).value_column("value");
    let mut asm = c.build(frags(&[]).schema_ref()).unwrap();
    let got =
        out(asm.push(&frags(&[(1, "a", "x"), (2, "a", "y"), (1, "b", "z"), (1, "c", "w")]), 0).unwrap());
    assert_eq!(got, ["1 | 2 | [x, z] | 1.0 | [] | false | complete"]);
    let rest = out(asm.finish().unwrap());
    assert_eq!(
        rest,
        ["2 | 1 | [y] | 0.5 | [] | false | end_of_input", "1 | 1 | [w] | 0.5 | [] | false | end_of_input"]
    );
    assert!(matches!(
        CountAccumulator::keyed("k").build(frags(&[]).schema_ref()),
        Err(Error::BadPolicy { policy: "every", .. })
    ));
}

#[test]
fn count_accumulator_takes_max_bytes_and_max_latency() {
    let c = CountAccumulator::keyed("k")
        .every(100)
        .value_column("value")
        .max_bytes(4)
        .max_latency(Duration::from_millis(5));
    let mut asm = c.build(frags(&[]).schema_ref()).unwrap();
    let got = out(asm.push(&frags(&[(1, "a", "xx"), (1, "a", "yy"), (2, "a", "z")]), 0).unwrap());
    assert_eq!(got, ["1 | 2 | [xx, yy] | 0.02 | [] | false | max_bytes"]);
    assert_eq!(out(asm.advance(6).unwrap()), ["2 | 1 | [z] | 0.01 | [] | false | max_latency"]);
}

#[test]
fn tumbling_windows_close_with_the_watermark_and_refuse_late_fragments() {
    let w = WindowAccumulator::tumbling("k", "ts", Duration::from_millis(10)).value_column("value");
    let mut asm = w.build(timed(&[]).schema_ref()).unwrap();
    let got = out(asm
        .push(&timed(&[(1, "a", "x", 1), (1, "a", "y", 9), (2, "a", "p", 5), (1, "a", "z", 12)]), 0)
        .unwrap());
    assert_eq!(
        got,
        [
            "1 | 0 | 10 | 2 | [x, y] | 1.0 | [] | false | complete",
            "2 | 0 | 10 | 1 | [p] | 1.0 | [] | false | complete"
        ]
    );
    // Window [0, 10) is closed: a fragment for it is late.
    assert!(asm.push(&timed(&[(2, "a", "late", 3)]), 0).unwrap().is_none());
    assert_eq!(asm.stats().late, 1);
    assert_eq!(asm.take_dead_letters().fragments[0].num_rows(), 1);
    assert_eq!(out(asm.finish().unwrap()), ["1 | 10 | 20 | 1 | [z] | 1.0 | [] | false | end_of_input"]);
}

#[test]
fn session_windows_stay_open_while_fragments_keep_coming() {
    let w = WindowAccumulator::session("k", "ts", Duration::from_millis(10));
    let mut asm = w.build(timed(&[]).schema_ref()).unwrap();
    let batch =
        timed(&[(1, "a", "", 0), (1, "a", "", 8), (1, "a", "", 16), (2, "a", "", 17), (2, "a", "", 40)]);
    let got = out(asm.push(&batch, 0).unwrap());
    // Key 2's row at 40 closes its own session (17, ended at 27), then the
    // watermark (40) closes key 1's (0..16, ended at 26); windows closed by
    // their end come out in deadline order.
    assert_eq!(
        got,
        ["1 | 0 | 26 | 3 | 1.0 | [] | false | complete", "2 | 17 | 27 | 1 | 1.0 | [] | false | complete"]
    );
    assert_eq!(out(asm.finish().unwrap()), ["2 | 40 | 50 | 1 | 1.0 | [] | false | end_of_input"]);
}

#[test]
fn window_accumulators_refuse_deadline_policies_and_processing_time() {
    let w = WindowAccumulator::tumbling("k", "ts", Duration::from_millis(10));
    let err =
        w.clone().partial_flush_after(Duration::from_secs(1)).build(timed(&[]).schema_ref()).unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
    let err =
        WindowAccumulator::tumbling("k", "ts", Duration::ZERO).build(timed(&[]).schema_ref()).unwrap_err();
    assert!(err.to_string().contains("positive"), "{err}");
    let err = w.build(frags(&[]).schema_ref()).unwrap_err();
    assert!(matches!(err, Error::UnknownColumn { role: "time", .. }), "{err}");
}

#[test]
fn late_fragments_of_new_keys_do_not_keep_their_keys() {
    let w = WindowAccumulator::tumbling("k", "ts", Duration::from_millis(10));
    let mut asm = w.build(timed(&[]).schema_ref()).unwrap();
    asm.push(&timed(&[(0, "a", "", 100)]), 0).unwrap();
    let late_batch = |from: u64| -> Vec<(u64, &'static str, &'static str, i64)> {
        (from..from + 1000).map(|k| (k, "a", "", 0)).collect()
    };
    asm.push(&timed(&late_batch(1)), 0).unwrap();
    let held = asm.bytes_held();
    for i in 1..10 {
        asm.push(&timed(&late_batch(1 + i * 1000)), 0).unwrap();
    }
    assert_eq!(asm.stats().late, 10_000);
    assert!(asm.bytes_held() <= held + 4096, "{} > {held}: rejected keys stayed interned", asm.bytes_held());
    assert_eq!(asm.take_dead_letters().fragments.iter().map(RecordBatch::num_rows).sum::<usize>(), 10_000);
}

#[test]
fn sessions_wait_for_the_allowed_lateness_before_closing() {
    let w = WindowAccumulator::session("k", "ts", Duration::from_millis(10))
        .allowed_lateness(Duration::from_millis(100));
    let mut asm = w.build(timed(&[]).schema_ref()).unwrap();
    let got = out(asm.push(&timed(&[(1, "a", "", 0), (2, "a", "", 50), (1, "a", "", 5)]), 0).unwrap());
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(
        out(asm.push(&timed(&[(3, "a", "", 200)]), 0).unwrap()),
        ["1 | 0 | 15 | 2 | 1.0 | [] | false | complete", "2 | 50 | 60 | 1 | 1.0 | [] | false | complete"]
    );
}

#[test]
fn a_session_grows_backwards_within_a_gap_and_refuses_what_is_further() {
    let w = WindowAccumulator::session("k", "ts", Duration::from_millis(10))
        .allowed_lateness(Duration::from_millis(1000));
    let mut asm = w.build(timed(&[]).schema_ref()).unwrap();
    assert!(asm.push(&timed(&[(1, "a", "", 100), (1, "a", "", 95), (1, "a", "", 50)]), 0).unwrap().is_none());
    assert_eq!(asm.stats().late, 1, "50 is more than a gap before the session");
    assert_eq!(out(asm.finish().unwrap()), ["1 | 95 | 110 | 2 | 1.0 | [] | false | end_of_input"]);
}

#[test]
fn a_window_fragment_without_event_time_is_dead_lettered() {
    use std::sync::Arc;
    let batch = common::batch_of(&[
        ("k", Arc::new(arrow_array::UInt64Array::from(vec![1, 1]))),
        ("var", Arc::new(arrow_array::StringArray::from(vec!["a", "a"]))),
        ("value", Arc::new(arrow_array::StringArray::from(vec!["x", "y"]))),
        ("ts", Arc::new(arrow_array::Int64Array::from(vec![None, Some(5)]))),
    ]);
    let mut asm =
        WindowAccumulator::session("k", "ts", Duration::from_millis(10)).build(batch.schema_ref()).unwrap();
    asm.push(&batch, 0).unwrap();
    let dead = asm.take_dead_letters();
    assert_eq!(errors(&dead.fragments[0]), ["late"]);
    assert!(lines(&dead.fragments[0])[0].contains("no event time"));
    assert_eq!(out(asm.finish().unwrap()), ["1 | 5 | 15 | 1 | 1.0 | [] | false | end_of_input"]);
}
