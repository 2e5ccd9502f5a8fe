//! VarSet assembly without deadlines: completeness, partials, repeats,
//! generations, key and value types.

mod common;

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt64Array,
};
use arrow_schema::DataType;
use common::{batch_of, frags, header, lines, out};
use garner_accum::{RepeatPolicy, VarSet};

fn abc() -> VarSet {
    VarSet::keyed("k").require(["a", "b", "c"])
}

#[test]
fn a_key_completed_within_one_batch_is_emitted_by_that_push() {
    let input = frags(&[(1, "a", "x"), (2, "a", "y"), (1, "b", "z"), (1, "c", "w")]);
    let mut asm = abc().build(input.schema_ref()).unwrap();
    let batch = asm.push(&input, 0).unwrap().unwrap();
    assert_eq!(
        header(&batch),
        "k | a | b | c | acc_completeness | acc_missing_vars | acc_spilled | acc_reason"
    );
    assert_eq!(lines(&batch), ["1 | x | z | w | 1.0 | [] | false | complete"]);
    assert_eq!(asm.resident_keys(), 1, "key 2 still waits");
    let s = asm.stats();
    assert_eq!((s.fragments_in, s.rows_out, s.complete, s.partial, s.active_keys), (4, 1, 1, 0, 1));
    assert!(s.bytes_held > 0);
}

#[test]
fn fragments_complete_across_batches_in_any_order() {
    let mut asm = abc().build(frags(&[]).schema_ref()).unwrap();
    assert_eq!(out(asm.push(&frags(&[(7, "c", "3")]), 0).unwrap()), Vec::<String>::new());
    assert_eq!(out(asm.push(&frags(&[(8, "b", "-"), (7, "a", "1")]), 1).unwrap()), Vec::<String>::new());
    assert_eq!(
        out(asm.push(&frags(&[(7, "b", "2")]), 2).unwrap()),
        ["7 | 1 | 2 | 3 | 1.0 | [] | false | complete"]
    );
    assert_eq!(
        out(asm.finish().unwrap()),
        ["8 | null | - | null | 0.3333333333333333 | [a, c] | false | end_of_input"]
    );
}

#[test]
fn finish_emits_partials_in_arrival_order_naming_missing_vars_sorted() {
    let mut asm =
        VarSet::keyed("k").require(["zeta", "alpha", "mid"]).build(frags(&[]).schema_ref()).unwrap();
    let input = frags(&[(3, "mid", "m3"), (1, "zeta", "z1"), (3, "alpha", "a3"), (2, "mid", "m2")]);
    assert!(asm.push(&input, 0).unwrap().is_none());
    let batch = asm.finish().unwrap().unwrap();
    assert_eq!(
        header(&batch),
        "k | zeta | alpha | mid | acc_completeness | acc_missing_vars | acc_spilled | acc_reason"
    );
    assert_eq!(
        lines(&batch),
        [
            "3 | null | a3 | m3 | 0.6666666666666666 | [zeta] | false | end_of_input",
            "1 | z1 | null | null | 0.3333333333333333 | [alpha, mid] | false | end_of_input",
            "2 | null | null | m2 | 0.3333333333333333 | [alpha, zeta] | false | end_of_input",
        ]
    );
    assert_eq!(asm.resident_keys(), 0);
    assert_eq!((asm.stats().partial, asm.stats().active_keys), (3, 0));
    assert!(asm.finish().unwrap().is_none(), "nothing left");
}

#[test]
fn a_repeated_variable_keeps_the_first_value_by_default() {
    let input =
        frags(&[(1, "a", "first"), (1, "a", "second"), (1, "b", "b"), (1, "a", "third"), (1, "c", "c")]);
    let mut asm = abc().build(input.schema_ref()).unwrap();
    assert_eq!(out(asm.push(&input, 0).unwrap()), ["1 | first | b | c | 1.0 | [] | false | complete"]);
    assert_eq!(asm.stats().duplicate_fragments, 2);
}

#[test]
fn keep_last_overwrites_a_repeated_variable() {
    let input =
        frags(&[(1, "a", "first"), (1, "a", "second"), (1, "b", "b"), (1, "a", "third"), (1, "c", "c")]);
    let mut asm = abc().on_repeat(RepeatPolicy::KeepLast).build(input.schema_ref()).unwrap();
    assert_eq!(out(asm.push(&input, 0).unwrap()), ["1 | third | b | c | 1.0 | [] | false | complete"]);
    assert_eq!(asm.stats().duplicate_fragments, 2);
}

#[test]
fn a_fragment_after_completion_starts_a_new_generation() {
    let input = frags(&[(1, "a", "1"), (1, "b", "2"), (1, "c", "3"), (1, "a", "again"), (1, "b", "more")]);
    let mut asm = abc().build(input.schema_ref()).unwrap();
    assert_eq!(out(asm.push(&input, 0).unwrap()), ["1 | 1 | 2 | 3 | 1.0 | [] | false | complete"]);
    assert_eq!(asm.resident_keys(), 1);
    assert_eq!(asm.stats().duplicate_fragments, 0, "a new generation is not a repeat");
    assert_eq!(
        out(asm.finish().unwrap()),
        ["1 | again | more | null | 0.6666666666666666 | [c] | false | end_of_input"]
    );
}

#[test]
fn completions_are_emitted_in_completion_order() {
    let input =
        frags(&[(1, "a", "."), (2, "a", "."), (2, "b", "."), (1, "b", "."), (2, "c", "2"), (1, "c", "1")]);
    let mut asm = abc().build(input.schema_ref()).unwrap();
    let keys: Vec<String> = out(asm.push(&input, 0).unwrap()).iter().map(|l| l[..1].to_owned()).collect();
    assert_eq!(keys, ["2", "1"]);
}

#[test]
fn a_multi_column_key_keeps_its_column_types() {
    let input = batch_of(&[
        ("region", Arc::new(StringArray::from(vec!["eu", "us", "eu", "eu"])) as ArrayRef),
        ("id", Arc::new(Int32Array::from(vec![-4, -4, -4, 5]))),
        ("var", Arc::new(StringArray::from(vec!["a", "a", "b", "a"]))),
        ("value", Arc::new(Int64Array::from(vec![10, 20, 30, 40]))),
    ]);
    let mut asm = VarSet::keyed(["region", "id"]).require(["a", "b"]).build(input.schema_ref()).unwrap();
    let done = asm.push(&input, 0).unwrap().unwrap();
    assert_eq!(done.schema().field(0).data_type(), &DataType::Utf8);
    assert_eq!(done.schema().field(1).data_type(), &DataType::Int32);
    assert_eq!(done.schema().field(2).data_type(), &DataType::Int64);
    assert_eq!(lines(&done), ["eu | -4 | 10 | 30 | 1.0 | [] | false | complete"]);
    assert_eq!(
        out(asm.finish().unwrap()),
        [
            "us | -4 | 20 | null | 0.5 | [b] | false | end_of_input",
            "eu | 5 | 40 | null | 0.5 | [b] | false | end_of_input"
        ]
    );
}

/// Pushes fragments with the given key column (vars a, b, a, b, a; values
/// 1..=5) and returns the output key type and all output lines.
fn assemble_with_key(key: ArrayRef) -> (DataType, Vec<String>) {
    let input = batch_of(&[
        ("k", key),
        ("var", Arc::new(StringArray::from(vec!["a", "b", "a", "b", "a"]))),
        ("value", Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]))),
    ]);
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(input.schema_ref()).unwrap();
    let mut lines = out(asm.push(&input, 0).unwrap());
    lines.extend(out(asm.finish().unwrap()));
    (asm.output_schema().field(0).data_type().clone(), lines)
}

#[test]
fn integer_string_and_dictionary_keys() {
    let expected = |k1: &str, k2: &str, k3: &str| {
        vec![
            format!("{k1} | 1 | 4 | 1.0 | [] | false | complete"),
            format!("{k2} | null | 2 | 0.5 | [a] | false | end_of_input"),
            format!("{k3} | 3 | null | 0.5 | [b] | false | end_of_input"),
        ]
        .into_iter()
        .chain([format!("{k1} | 5 | null | 0.5 | [b] | false | end_of_input")])
        .collect::<Vec<_>>()
    };
    let u64_keys: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 9, 0, u64::MAX, u64::MAX]));
    assert_eq!(assemble_with_key(u64_keys), (DataType::UInt64, expected(&u64::MAX.to_string(), "9", "0")));

    let i32_keys: ArrayRef = Arc::new(Int32Array::from(vec![-1, i32::MIN, 7, -1, -1]));
    assert_eq!(assemble_with_key(i32_keys), (DataType::Int32, expected("-1", &i32::MIN.to_string(), "7")));

    let str_keys: ArrayRef = Arc::new(StringArray::from(vec!["s-1", "", "s-3", "s-1", "s-1"]));
    assert_eq!(assemble_with_key(str_keys), (DataType::Utf8, expected("s-1", "", "s-3")));

    let dict: DictionaryArray<arrow_array::types::Int16Type> =
        vec!["x", "y", "z", "x", "x"].into_iter().collect();
    assert_eq!(assemble_with_key(Arc::new(dict)), (DataType::Utf8, expected("x", "y", "z")));

    let int_dict = DictionaryArray::new(
        arrow_array::Int8Array::from(vec![0, 1, 2, 0, 0]),
        Arc::new(UInt64Array::from(vec![100, 200, 300])),
    );
    assert_eq!(assemble_with_key(Arc::new(int_dict)), (DataType::UInt64, expected("100", "200", "300")));
}

/// Assembles one complete and one partial key with the given value column
/// (4 rows: key 1 var a, key 2 var a, key 1 var b, key 2 var a again).
fn assemble_values(values: ArrayRef) -> RecordBatch {
    let input = batch_of(&[
        ("k", Arc::new(UInt64Array::from(vec![1, 2, 1, 2])) as ArrayRef),
        ("var", Arc::new(StringArray::from(vec!["a", "a", "b", "a"]))),
        ("value", values),
    ]);
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(input.schema_ref()).unwrap();
    let first = asm.push(&input, 0).unwrap().unwrap();
    let rest = asm.finish().unwrap().unwrap();
    arrow_select::concat::concat_batches(first.schema_ref(), [&first, &rest]).unwrap()
}

#[test]
fn value_columns_keep_their_type() {
    let cases: Vec<(ArrayRef, [&str; 2])> = vec![
        (
            Arc::new(StringArray::from(vec![Some("s1"), None, Some("s3"), Some("s4")])),
            [
                "1 | s1 | s3 | 1.0 | [] | false | complete",
                "2 | null | null | 0.5 | [b] | false | end_of_input",
            ],
        ),
        (
            Arc::new(Int64Array::from(vec![-1, 2, i64::MAX, 4])),
            [
                "1 | -1 | 9223372036854775807 | 1.0 | [] | false | complete",
                "2 | 2 | null | 0.5 | [b] | false | end_of_input",
            ],
        ),
        (
            Arc::new(Float64Array::from(vec![0.5, 2.0, -1.25, 4.0])),
            [
                "1 | 0.5 | -1.25 | 1.0 | [] | false | complete",
                "2 | 2.0 | null | 0.5 | [b] | false | end_of_input",
            ],
        ),
        (
            Arc::new(BooleanArray::from(vec![true, false, false, true])),
            [
                "1 | true | false | 1.0 | [] | false | complete",
                "2 | false | null | 0.5 | [b] | false | end_of_input",
            ],
        ),
        (
            Arc::new(TimestampMillisecondArray::from(vec![0, 1_000, 86_400_000, 5]).with_timezone("+00:00")),
            [
                "1 | 1970-01-01T00:00:00Z | 1970-01-02T00:00:00Z | 1.0 | [] | false | complete",
                "2 | 1970-01-01T00:00:01Z | null | 0.5 | [b] | false | end_of_input",
            ],
        ),
    ];
    for (values, expected) in cases {
        let data_type = values.data_type().clone();
        let batch = assemble_values(values);
        assert_eq!(batch.schema().field(1).data_type(), &data_type);
        assert_eq!(batch.schema().field(2).data_type(), &data_type);
        assert_eq!(lines(&batch), expected, "{data_type}");
    }
}

#[test]
fn a_null_value_counts_as_present() {
    let input = batch_of(&[
        ("k", Arc::new(UInt64Array::from(vec![1, 1])) as ArrayRef),
        ("var", Arc::new(StringArray::from(vec!["a", "b"]))),
        ("value", Arc::new(Int64Array::from(vec![None, Some(2)]))),
    ]);
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(input.schema_ref()).unwrap();
    assert_eq!(out(asm.push(&input, 0).unwrap()), ["1 | null | 2 | 1.0 | [] | false | complete"]);
}

#[test]
fn null_keys_are_skipped_and_counted() {
    let input = batch_of(&[
        ("k", Arc::new(UInt64Array::from(vec![None, Some(1), None])) as ArrayRef),
        ("var", Arc::new(StringArray::from(vec!["a", "a", "b"]))),
        ("value", Arc::new(StringArray::from(vec!["x", "y", "z"]))),
    ]);
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(input.schema_ref()).unwrap();
    assert!(asm.push(&input, 0).unwrap().is_none());
    assert_eq!((asm.stats().null_key_fragments, asm.resident_keys()), (2, 1));
    assert_eq!(out(asm.finish().unwrap()), ["1 | y | null | 0.5 | [b] | false | end_of_input"]);
}

#[test]
fn unknown_and_null_vars_are_counted_and_create_no_key() {
    let input = batch_of(&[
        ("k", Arc::new(UInt64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("var", Arc::new(StringArray::from(vec![Some("nope"), None, Some("A")]))),
        ("value", Arc::new(StringArray::from(vec!["x", "y", "z"]))),
    ]);
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(input.schema_ref()).unwrap();
    assert!(asm.push(&input, 0).unwrap().is_none());
    assert_eq!((asm.stats().unknown_var_fragments, asm.resident_keys()), (3, 0));
    assert!(asm.finish().unwrap().is_none());
    assert_eq!(asm.stats().applied_fragments(), 0);
}

#[test]
fn a_dictionary_var_column_is_mapped_through_its_values() {
    let vars: DictionaryArray<arrow_array::types::UInt8Type> =
        vec![Some("b"), Some("x"), None, Some("a")].into_iter().collect();
    let input = batch_of(&[
        ("k", Arc::new(UInt64Array::from(vec![1, 1, 1, 1])) as ArrayRef),
        ("var", Arc::new(vars)),
        ("value", Arc::new(StringArray::from(vec!["vb", "vx", "vn", "va"]))),
    ]);
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(input.schema_ref()).unwrap();
    assert_eq!(out(asm.push(&input, 0).unwrap()), ["1 | va | vb | 1.0 | [] | false | complete"]);
    assert_eq!(asm.stats().unknown_var_fragments, 2);
}

#[test]
fn more_than_64_variables_use_the_wide_presence_sets() {
    let names: Vec<String> = (0..70).map(|i| format!("v{i:02}")).collect();
    let rows: Vec<(u64, &str, &str)> = names
        .iter()
        .rev()
        .map(|n| (1, n.as_str(), "x"))
        .chain(names[..68].iter().map(|n| (2, n.as_str(), "y")))
        .collect();
    let input = frags(&rows);
    let mut asm = VarSet::keyed("k").require(names.clone()).build(input.schema_ref()).unwrap();
    let done = asm.push(&input, 0).unwrap().unwrap();
    assert_eq!(done.num_rows(), 1);
    assert!(lines(&done)[0].ends_with("| 1.0 | [] | false | complete"));
    let rest = lines(&asm.finish().unwrap().unwrap());
    assert!(rest[0].ends_with("| 0.9714285714285714 | [v68, v69] | false | end_of_input"), "{}", rest[0]);
}

#[test]
fn state_stays_correct_through_arena_compactions() {
    // 3 000 long string keys with 1 KiB values complete and leave garbage
    // behind (about 3 MiB of values, 1.3 MiB of keys), forcing both arenas to
    // compact while 10 keys stay resident.
    let big = "v".repeat(1024);
    let pad = "p".repeat(400);
    let keys: Vec<String> = (0..3_000).map(|i| format!("key-{i:05}-{pad}")).collect();
    let strings = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let schema =
        common::schema_of(&[("k", &strings(vec![])), ("var", &strings(vec![])), ("value", &strings(vec![]))]);
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(&schema).unwrap();
    let mut push = |rows: Vec<(&str, &str, &str)>| {
        let input = batch_of(&[
            ("k", strings(rows.iter().map(|r| r.0).collect())),
            ("var", strings(rows.iter().map(|r| r.1).collect())),
            ("value", strings(rows.iter().map(|r| r.2).collect())),
        ]);
        out(asm.push(&input, 0).unwrap())
    };
    push(keys[..10].iter().map(|k| (k.as_str(), "a", "kept")).collect());
    let mut completed = 0;
    for chunk in keys[10..].chunks(100) {
        push(chunk.iter().map(|k| (k.as_str(), "a", big.as_str())).collect());
        completed += push(chunk.iter().map(|k| (k.as_str(), "b", "b")).collect()).len();
    }
    assert_eq!(completed, 2_990);
    // Without compaction the arenas would hold every byte ever pushed (at
    // least 4 MiB + 2 MiB of capacity); with it, each holds its live bytes
    // plus at most about 1 MiB of garbage, in at most 2 MiB of capacity.
    let held = asm.stats().bytes_held;
    assert!(held < 5 << 20, "garbage was reclaimed: {held} bytes held");
    let rest = out(asm.finish().unwrap());
    assert_eq!(rest.len(), 10);
    assert_eq!(rest[3], format!("key-00003-{pad} | kept | null | 0.5 | [b] | false | end_of_input"));
}

#[test]
fn stats_hold_completeness_and_first_fragment_to_emit_latency() {
    let mut asm = abc().build(frags(&[]).schema_ref()).unwrap();
    asm.push(&frags(&[(7, "c", "3")]), 0).unwrap();
    asm.push(&frags(&[(8, "b", "-"), (7, "a", "1")]), 1).unwrap();
    asm.push(&frags(&[(7, "b", "2")]), 2).unwrap(); // key 7: 0 ms -> 2 ms
    asm.push(&frags(&[(9, "a", "1"), (9, "b", "2")]), 40).unwrap();
    asm.finish().unwrap(); // key 8: 1 -> 40 ms (the clock at the end); key 9: 40 -> 40
    let s = asm.stats();
    let mut want = [0u64; 11];
    want[10] = 1; // key 7, complete
    want[3] = 1; // key 8, 1 of 3
    want[6] = 1; // key 9, 2 of 3
    assert_eq!(s.completeness, want);
    assert_eq!(s.latency.count(), 3);
    assert_eq!(s.latency.quantile(0.0), Some(0)); // key 9
    assert_eq!(s.latency.quantile(0.5), Some(3)); // key 7: 2 ms, in [2, 4)
    assert_eq!(s.latency.quantile(1.0), Some(63)); // key 8: 39 ms, in [32, 64)
                                                   // Shards merge.
    let mut merged = s.clone();
    merged.merge(&s);
    assert_eq!(merged.latency.count(), 6);
    assert_eq!(merged.completeness[10], 2);
}
