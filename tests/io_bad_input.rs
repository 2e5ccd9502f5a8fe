//! Bad input through a whole pipeline: a clear error naming the stage and
//! the position, no panic, and no output file left behind.

use std::path::Path;

use garner::columnar::sink::{create_sink, ParquetSink};
use garner::columnar::source::{CsvOptions, CsvSource, IpcFileSource};
use garner::prelude::*;
use garner::workload::WorkloadSpec;

fn only_entry(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn a_csv_row_with_too_few_or_too_many_fields_fails_the_run_and_leaves_no_output() {
    for (bad_line, why) in [("7,x\n", "too few"), ("7,x,y,1,extra\n", "too many")] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        let mut text = String::from("subject_id,var,value,ts\n1,id,a,1\n2,id,b,2\n");
        text.push_str(bad_line);
        std::fs::write(&input, text).unwrap();
        let out = dir.path().join("out.parquet");
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("subject_id", arrow_schema::DataType::Int64, true),
            arrow_schema::Field::new("var", arrow_schema::DataType::Utf8, true),
            arrow_schema::Field::new("value", arrow_schema::DataType::Utf8, true),
            arrow_schema::Field::new("ts", arrow_schema::DataType::Int64, true),
        ]));
        let source =
            CsvSource::open(&input, CsvOptions { schema: Some(schema), ..CsvOptions::default() }).unwrap();
        let graph = Pipeline::new("p")
            .source("read", source)
            .accumulate("assemble", VarSet::keyed("subject_id").require(["id"]))
            .sink("write", ParquetSink::create(&out).unwrap())
            .build()
            .unwrap();
        let err = SyncEngine::new().run(graph, RunOptions::default()).unwrap_err().to_string();
        assert!(err.starts_with("stage `read`:"), "{why}: {err}");
        assert!(err.contains("line 4"), "{why}: the error names the line: {err}");
        assert_eq!(only_entry(dir.path()), ["in.csv"], "{why}: no output or temporary file is left");
    }
}

#[test]
fn a_truncated_ipc_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.arrow");
    let spec = WorkloadSpec { subjects: 500, batch_rows: 100, ..WorkloadSpec::default() };
    let mut src = spec.source();
    let mut sink = create_sink(Format::Ipc, &path).unwrap();
    sink.open(src.schema()).unwrap();
    while let Some(b) = src.next_batch().unwrap() {
        sink.write(&b).unwrap();
    }
    sink.finish().unwrap();
    sink.commit().unwrap();
    let full = std::fs::read(&path).unwrap();
    for cut in [0, 7, full.len() / 3, full.len() - 1] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let err = IpcFileSource::open(&path).err().unwrap_or_else(|| panic!("cut at {cut} opened"));
        let text = err.to_string();
        assert!(text.contains("f.arrow") && text.contains("invalid ipc input"), "cut {cut}: {text}");
    }
}

#[test]
fn a_missing_input_names_the_path() {
    let err = IpcFileSource::open(Path::new("/nonexistent/in.arrow")).err().unwrap();
    assert!(err.to_string().contains("/nonexistent/in.arrow"), "{err}");
}
