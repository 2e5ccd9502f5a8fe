//! Property tests: random fragment streams, cut into random batches, checked
//! against a plain reference model of the contract (one `BTreeMap` of open
//! generations) and against the invariants of DESIGN §5.

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use arrow_array::{cast::AsArray, types::*, Array, RecordBatch};
use common::{to_batch, Frag, VARS};
use garner_accum::{TimeMode, VarSet, VarSetAssembler, WithPolicies};
use proptest::prelude::*;

const TTL: i64 = 100;

/// One output row, decoded. Values are fragment ids (the row index in the
/// stream), so every cell says which fragment it came from.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct Row {
    key: u64,
    values: [Option<i64>; 4],
    completeness: f64,
    missing: Vec<String>,
    reason: String,
}

fn decode(batch: &RecordBatch) -> Vec<Row> {
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
        })
        .collect()
}

/// Pushes `stream` cut into batches of the given sizes (cycled), then
/// finishes; returns every output row in emission order.
fn run(config: &VarSet, stream: &[Frag], cuts: &[usize]) -> (Vec<Row>, VarSetAssembler) {
    let mut asm = config.build(to_batch(&[], 0).schema_ref()).unwrap();
    let mut rows = Vec::new();
    let (mut at, mut cut) = (0, 0);
    while at < stream.len() {
        let size = cuts[cut % cuts.len()].min(stream.len() - at);
        if let Some(b) = asm.push(&to_batch(&stream[at..at + size], at), cut as i64).unwrap() {
            rows.extend(decode(&b));
        }
        at += size;
        cut += 1;
    }
    if let Some(b) = asm.finish().unwrap() {
        rows.extend(decode(&b));
    }
    (rows, asm)
}

/// The contract, written as plainly as possible. `ttl: None` = no deadlines.
fn model(stream: &[Frag], ttl: Option<i64>) -> Vec<Row> {
    struct Gen {
        arrival: u64,
        deadline: i64,
        values: [Option<i64>; 4],
    }
    fn row(key: u64, g: &Gen, reason: &str) -> Row {
        let present = g.values.iter().filter(|v| v.is_some()).count();
        let mut missing: Vec<String> =
            (0..4).filter(|&v| g.values[v].is_none()).map(|v| VARS[v].to_owned()).collect();
        missing.sort();
        Row { key, values: g.values, completeness: present as f64 / 4.0, missing, reason: reason.into() }
    }
    let mut open: BTreeMap<u64, Gen> = BTreeMap::new();
    let (mut out, mut arrival, mut watermark) = (Vec::new(), 0u64, i64::MIN);
    for (id, f) in stream.iter().enumerate() {
        // Ignored rows (null key, unknown var) still move the watermark.
        if let (Some(key), true) = (f.key, f.var < 4) {
            if open.get(&key).is_some_and(|g| f.time > g.deadline) {
                out.push(row(key, &open.remove(&key).unwrap(), "ttl"));
            }
            let g = open.entry(key).or_insert_with(|| {
                arrival += 1;
                Gen { arrival, deadline: ttl.map_or(i64::MAX, |t| f.time + t), values: [None; 4] }
            });
            g.values[f.var].get_or_insert(id as i64);
            if g.values.iter().all(Option::is_some) {
                out.push(row(key, &open.remove(&key).unwrap(), "complete"));
            }
        }
        watermark = watermark.max(f.time);
        let due: Vec<u64> = open.iter().filter(|(_, g)| g.deadline < watermark).map(|(k, _)| *k).collect();
        for key in due {
            out.push(row(key, &open.remove(&key).unwrap(), "ttl"));
        }
    }
    let mut rest: Vec<(u64, u64)> = open.iter().map(|(k, g)| (g.arrival, *k)).collect();
    rest.sort();
    out.extend(rest.into_iter().map(|(_, k)| row(k, &open[&k], "end_of_input")));
    out
}

/// The invariants of DESIGN §5 that hold whatever the configuration.
fn check_invariants(stream: &[Frag], rows: &[Row], asm: &VarSetAssembler) {
    let stats = asm.stats();
    let mut seen = HashSet::new();
    for r in rows {
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
        assert_eq!(r.missing, missing, "partials name exactly what is missing");
        assert_eq!(r.reason == "complete", present == 4, "complete rows, and only they, have every variable");
    }
    let applied = stream.iter().filter(|f| f.key.is_some() && f.var < 4).count() as u64;
    assert_eq!(
        seen.len() as u64 + stats.duplicate_fragments,
        applied,
        "every fragment is in a row or a repeat"
    );
    assert_eq!(stats.fragments_in, stream.len() as u64);
    assert_eq!(stats.null_key_fragments, stream.iter().filter(|f| f.key.is_none()).count() as u64);
    assert_eq!(stats.rows_out, rows.len() as u64);
    assert_eq!(stats.complete + stats.partial, stats.rows_out);
    assert_eq!((asm.resident_keys(), stats.active_keys), (0, 0), "finish leaves no key resident");
}

fn streams() -> impl Strategy<Value = (Vec<Frag>, Vec<usize>)> {
    // Times on a 10 ms grid, so ties and fragments exactly at a deadline are common.
    let frag = (prop::option::weighted(0.97, 0u64..50), 0usize..5, 0i64..60)
        .prop_map(|(key, var, tick)| Frag { key, var, time: tick * 10 });
    (prop::collection::vec(frag, 0..400), prop::collection::vec(1usize..40, 1..10))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn without_deadlines_the_output_is_the_models_in_order((stream, cuts) in streams()) {
        let config = VarSet::keyed("k").require(VARS);
        let (rows, asm) = run(&config, &stream, &cuts);
        check_invariants(&stream, &rows, &asm);
        prop_assert_eq!(rows, model(&stream, None));
    }

    #[test]
    fn with_event_time_ttl_any_cut_gives_the_models_rows((stream, cuts) in streams()) {
        let config = VarSet::keyed("k")
            .require(VARS)
            .time(TimeMode::event("ts"))
            .partial_flush_after(Duration::from_millis(TTL as u64));
        let (mut rows, asm) = run(&config, &stream, &cuts);
        check_invariants(&stream, &rows, &asm);
        let (mut one_by_one, _) = run(&config, &stream, &[1]);
        let mut expected = model(&stream, Some(TTL));
        for v in [&mut rows, &mut one_by_one, &mut expected] {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        }
        prop_assert_eq!(&rows, &expected);
        prop_assert_eq!(&one_by_one, &expected);
    }
}
