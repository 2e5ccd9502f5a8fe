//! End to end on files: generated fragments written as IPC, Parquet and CSV,
//! assembled by the SyncEngine, written as Parquet, read back and checked
//! subject by subject against what the generator made.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use garner::columnar::sink::{create_sink, ParquetSink};
use garner::columnar::source::{CsvOptions, CsvSource, IpcFileSource, ParquetSource};
use garner::prelude::*;
use garner::workload::{Locality, WorkloadSpec, VARS};

fn write(spec: &WorkloadSpec, format: Format, path: &Path) {
    let mut src = spec.source();
    let mut sink = create_sink(format, path).unwrap();
    sink.open(src.schema()).unwrap();
    while let Some(b) = src.next_batch().unwrap() {
        sink.write(&b).unwrap();
    }
    sink.finish().unwrap();
    sink.commit().unwrap();
}

fn assemble(source: impl BatchSource + 'static, out: &Path) -> RunReport {
    let graph = Pipeline::new("assemble")
        .source("read", source)
        .accumulate(
            "assemble",
            VarSet::keyed("subject_id")
                .var_column("var")
                .value_column("value")
                .require(VARS)
                .time(TimeMode::Event { column: "ts".into() })
                .partial_flush_after(Duration::from_secs(10)),
        )
        .sink("write", ParquetSink::create(out).unwrap())
        .build()
        .unwrap();
    SyncEngine::new().run(graph, RunOptions::default()).unwrap()
}

fn read_all(path: &Path) -> Vec<RecordBatch> {
    let mut src = ParquetSource::open(path).unwrap();
    std::iter::from_fn(|| src.next_batch().unwrap()).collect()
}

/// One row per subject; partial exactly for the subjects the generator made
/// incomplete, naming the variable it left out.
fn check(spec: &WorkloadSpec, batches: &[RecordBatch]) {
    let mut seen: HashMap<u64, ()> = HashMap::new();
    for b in batches {
        let keys: Vec<u64> = match b.column(0).data_type() {
            arrow_schema::DataType::UInt64 => b.column(0).as_primitive::<UInt64Type>().values().to_vec(),
            _ => b.column(0).as_primitive::<Int64Type>().values().iter().map(|&k| k as u64).collect(),
        };
        let completeness = b.column_by_name("acc_completeness").unwrap().as_primitive::<Float64Type>();
        let missing = b.column_by_name("acc_missing_vars").unwrap().as_list::<i32>();
        for (row, &s) in keys.iter().enumerate() {
            assert!(seen.insert(s, ()).is_none(), "subject {s} emitted twice");
            let names: Vec<String> =
                missing.value(row).as_string::<i32>().iter().map(|v| v.unwrap().to_owned()).collect();
            match spec.missing_var(s) {
                None => {
                    assert_eq!(completeness.value(row), 1.0, "subject {s}");
                    assert!(names.is_empty());
                }
                Some(v) => {
                    assert_eq!(completeness.value(row), 0.75, "subject {s}");
                    assert_eq!(names, [VARS[v]], "subject {s}");
                    let col = b.column_by_name(VARS[v]).unwrap();
                    assert!(col.is_null(row), "the missing variable's column is null");
                }
            }
        }
    }
    assert_eq!(seen.len() as u64, spec.subjects);
}

fn spec() -> WorkloadSpec {
    WorkloadSpec { subjects: 3_000, locality: Locality::Random, batch_rows: 1_000, ..WorkloadSpec::default() }
}

#[test]
fn ipc_in_parquet_out() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("f.arrow"), dir.path().join("out.parquet"));
    write(&spec(), Format::Ipc, &input);
    let report = assemble(IpcFileSource::open(&input).unwrap(), &out);
    let acc = report.stage("assemble").unwrap().accum.clone().unwrap();
    assert_eq!(acc.complete + acc.partial, 3_000);
    check(&spec(), &read_all(&out));
}

#[test]
fn parquet_in_parquet_out() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("f.parquet"), dir.path().join("out.parquet"));
    write(&spec(), Format::Parquet, &input);
    assemble(ParquetSource::open(&input).unwrap(), &out);
    check(&spec(), &read_all(&out));
}

#[test]
fn csv_in_parquet_out() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("f.csv"), dir.path().join("out.parquet"));
    let spec = WorkloadSpec { locality: Locality::Window, window_rows: 500, ..spec() };
    write(&spec, Format::Csv, &input);
    assemble(CsvSource::open(&input, CsvOptions::default()).unwrap(), &out);
    check(&spec, &read_all(&out));
}

#[test]
fn generated_source_direct() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.parquet");
    let spec = WorkloadSpec { locality: Locality::Window, window_rows: 400, ..spec() };
    let report = assemble(spec.source(), &out);
    assert_eq!(report.rows_in(), spec.source().rows_hint().unwrap());
    assert_eq!(report.rows_out(), 3_000);
    check(&spec, &read_all(&out));
}
