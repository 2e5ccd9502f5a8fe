//! Rough single-core throughput of the VarSet assembler on the shape of the
//! `assemble` workload (DESIGN §10): four required variables, one fragment
//! per (subject, variable), 5% of subjects missing one, `window` and
//! `random` locality.
//! Not a benchmark (criterion benches live in `benches/`); a quick check
//! that the hot path stays in the right order of magnitude. Ignored by
//! default; run with
//!
//! ```text
//! cargo test -p garner-accum --release --test varset_throughput -- --ignored --nocapture
//! ```

mod common;

use std::{sync::Arc, time::Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use common::batch_of;
use garner_accum::VarSet;

const SUBJECTS: u64 = 250_000;
const WINDOW: usize = 100_000;
const BATCH: usize = 8_192;
const VARS: [&str; 4] = ["id", "name", "riskClass", "limit"];

/// A small xorshift generator: deterministic input without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Fragment rows `(subject, var index)`, shuffled within windows of `window` rows.
fn fragments(window: usize) -> Vec<(u64, usize)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rows: Vec<(u64, usize)> = Vec::with_capacity(SUBJECTS as usize * 4);
    for s in 0..SUBJECTS {
        let skip = if s % 20 == 7 { (s / 20 % 4) as usize } else { usize::MAX };
        rows.extend((0..4).filter(|&v| v != skip).map(|v| (s, v)));
    }
    for window in rows.chunks_mut(window) {
        for i in (1..window.len()).rev() {
            window.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
    }
    rows
}

fn batches(string_keys: bool, window: usize) -> Vec<RecordBatch> {
    fragments(window)
        .chunks(BATCH)
        .map(|chunk| {
            let key: ArrayRef = if string_keys {
                Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| format!("subject-{:08}", r.0))))
            } else {
                Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|r| r.0)))
            };
            batch_of(&[
                ("subject_id", key),
                ("var", Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| VARS[r.1])))),
                (
                    "value",
                    Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| format!("v{}", r.0 * 4)))),
                ),
                ("ts", Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0 as i64)))),
            ])
        })
        .collect()
}

fn measure(string_keys: bool, window: usize) {
    let input = batches(string_keys, window);
    let rows: usize = input.iter().map(|b| b.num_rows()).sum();
    let mut asm = VarSet::keyed("subject_id").require(VARS).build(input[0].schema_ref()).unwrap();
    let start = Instant::now();
    let mut out = 0;
    for (i, b) in input.iter().enumerate() {
        out += asm.push(b, i as i64).unwrap().map_or(0, |o| o.num_rows());
    }
    out += asm.finish().unwrap().map_or(0, |o| o.num_rows());
    let secs = start.elapsed().as_secs_f64();
    let kind = if string_keys { "Utf8" } else { "UInt64" };
    let locality = if window == usize::MAX { "random" } else { "window" };
    println!(
        "{kind} keys, {locality} locality: {rows} fragments → {out} rows in {:.3} s: \
         {:.2} M fragments/s ({} MiB allocated after finish)",
        secs,
        rows as f64 / secs / 1e6,
        asm.stats().bytes_held >> 20
    );
    assert_eq!(out as u64, SUBJECTS);
}

#[test]
#[ignore]
fn assemble_throughput() {
    for window in [WINDOW, usize::MAX] {
        measure(false, window);
        measure(true, window);
    }
}
