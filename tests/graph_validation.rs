//! Every validation error `Pipeline::build` reports, each naming the stage
//! (and the column).

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use garner::engine::{col, Error, StageKind};
use garner::prelude::*;

fn data() -> RecordBatch {
    RecordBatch::try_from_iter([
        ("k", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ("f", Arc::new(Float64Array::from(vec![0.5, 1.5])) as ArrayRef),
        ("var", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
        ("value", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
    ])
    .unwrap()
}

fn source() -> MemorySource {
    MemorySource::try_from_batches(vec![data()]).unwrap()
}

fn sink() -> CollectSink {
    CollectSink::new().0
}

fn varset(key: &str) -> VarSet {
    VarSet::keyed(key).var_column("var").value_column("value").require(["a", "b"])
}

#[test]
fn a_valid_chain_builds_with_hash_partitioning_into_the_accumulator() {
    let graph = Pipeline::new("ok")
        .source("read", source())
        .transform("clean", DropNulls::on(["k"]))
        .accumulate("assemble", varset("k"))
        .sink("write", sink())
        .build()
        .unwrap();
    let acc = graph.nodes().iter().position(|n| n.kind == StageKind::Accumulator).unwrap();
    let edge = graph.edges().iter().find(|e| e.to == acc).unwrap();
    assert_eq!(edge.partitioning, garner::engine::Partitioning::Hash(vec!["k".into()]));
    assert_eq!(graph.topo_order().len(), 4);
}

#[test]
fn cycle_is_reported_with_its_stages() {
    let err = Pipeline::new("cyclic")
        .source("read", source())
        .merge("m", ["read", "b"])
        .transform("a", Select::columns(["k", "f", "var", "value"]))
        .transform("b", Select::columns(["k", "f", "var", "value"]))
        .branch("split", Branch::new().route("x", col("k").gt(1)).otherwise("y"))
        .from("split.x")
        .sink("w1", sink())
        .from("split.y")
        .sink("w2", sink())
        .build()
        .unwrap_err();
    // b feeds both m and split: the cycle is m -> a -> b -> m.
    match err {
        Error::Cycle { stages } => {
            assert_eq!(stages.first(), stages.last());
            for s in ["m", "a", "b"] {
                assert!(stages.contains(&s.to_owned()), "{stages:?}");
            }
        }
        other => panic!("expected a cycle, got {other}"),
    }
}

#[test]
fn a_stage_without_input_is_unconnected() {
    let err = Pipeline::new("p")
        .source("read", source())
        .sink("write", sink())
        .transform("orphan", Select::columns(["k"]))
        .sink("w2", sink())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnconnectedPort { ref stage, ref port, .. } if stage == "orphan" && port == "input"),
        "{err}"
    );
}

#[test]
fn an_output_nobody_reads_is_unconnected() {
    let err = Pipeline::new("p")
        .source("read", source())
        .transform("t", Select::columns(["k"]))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnconnectedPort { ref stage, ref port, .. } if stage == "t" && port == "output"),
        "{err}"
    );
    let err = Pipeline::new("p")
        .source("read", source())
        .branch("split", Branch::new().route("hi", col("k").gt(1)).otherwise("lo"))
        .from("split.hi")
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnconnectedPort { ref stage, ref port, .. } if stage == "split" && port == "output `lo`"),
        "{err}"
    );
}

#[test]
fn unknown_inputs_and_ports_are_named() {
    let err = Pipeline::new("p").source("read", source()).from("nope").sink("w", sink()).build().unwrap_err();
    assert!(
        matches!(err, Error::UnknownInput { ref stage, ref input } if stage == "w" && input == "nope"),
        "{err}"
    );
    let err = Pipeline::new("p")
        .source("read", source())
        .branch("split", Branch::new().route("hi", col("k").gt(1)))
        .from("split.nope")
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("split.nope (`split` has outputs: hi)"), "{err}");
    let err = Pipeline::new("p")
        .source("read", source())
        .branch("split", Branch::new().route("hi", col("k").gt(1)).otherwise("lo"))
        .from("split")
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("name one of its outputs: split.hi, split.lo"), "{err}");
}

#[test]
fn duplicate_and_invalid_ids() {
    let err = Pipeline::new("p").source("read", source()).sink("read", sink()).build().unwrap_err();
    assert!(matches!(err, Error::DuplicateStage { ref stage } if stage == "read"), "{err}");
    let err = Pipeline::new("p").source("re.ad", source()).sink("w", sink()).build().unwrap_err();
    assert!(matches!(err, Error::InvalidStageId { .. }), "{err}");
}

#[test]
fn no_source() {
    let err = Pipeline::new("p").build().unwrap_err();
    assert!(matches!(err, Error::NoSource), "{err}");
}

#[test]
fn merge_of_different_schemas_is_a_mismatch() {
    let err = Pipeline::new("p")
        .source("a", source())
        .source("b", source())
        .transform("narrow", Select::columns(["k"]))
        .merge("m", ["a", "narrow"])
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::SchemaMismatch { ref stage, ref input, .. } if stage == "m" && input == "narrow"),
        "{err}"
    );
}

#[test]
fn unknown_columns_name_stage_and_column() {
    let err = Pipeline::new("p")
        .source("read", source())
        .transform("clean", Filter::new(col("nope").gt(1)))
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownColumn { ref stage, ref column, .. } if stage == "clean" && column == "nope"),
        "{err}"
    );

    for (key, var) in [("missing_key", "var"), ("k", "missing_var")] {
        let err = Pipeline::new("p")
            .source("read", source())
            .accumulate("assemble", varset(key).var_column(var))
            .sink("w", sink())
            .build()
            .unwrap_err();
        let (missing, role) = if key == "k" { (var, "var") } else { (key, "key") };
        // The accumulator's own error is kept whole: it says which role the
        // missing column plays.
        let text = err.to_string();
        match err {
            Error::Stage { ref stage, ref source } => {
                assert_eq!(stage, "assemble");
                assert!(
                    matches!(**source, Error::Accum(garner::accum::Error::UnknownColumn { ref column, role: r, .. })
                        if column == missing && r == role),
                    "{source}"
                );
            }
            other => panic!("expected the accumulator's error: {other}"),
        }
        assert!(text.contains(&format!("no {role} column `{missing}`")), "{text}");
        assert!(text.contains("available columns: [k, f, var, value]"), "{text}");
    }
}

#[test]
fn a_float_key_is_unhashable() {
    let err = Pipeline::new("p")
        .source("read", source())
        .accumulate("assemble", varset("f"))
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnhashableKey { ref stage, ref column, .. } if stage == "assemble" && column == "f"),
        "{err}"
    );
}

#[test]
fn an_input_listed_twice_is_rejected() {
    // Caught: `.from(["read", "read"])` fed every batch twice.
    let err = Pipeline::new("p")
        .source("read", source())
        .from(["read", "read"])
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidStage { ref stage, ref message } if stage == "w" && message == "input `read` is listed twice"),
        "{err}"
    );
    let err = Pipeline::new("p")
        .source("read", source())
        .branch("split", Branch::new().route("hi", col("k").gt(1)).otherwise("lo"))
        .merge("m", ["split.hi", "split.lo", "split.hi"])
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("input `split.hi` is listed twice"), "{err}");
}

#[test]
fn a_kind_that_does_not_fit_the_stage_is_invalid_not_internal() {
    let select: Arc<dyn garner::engine::StageFactory> = Arc::new(Select::columns(["k"]));
    for kind in [StageKind::Source, StageKind::Sink] {
        let err = Pipeline::new("p")
            .source("read", source())
            .stage("odd", kind, select.clone())
            .sink("w", sink())
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidStage { ref stage, .. } if stage == "odd"), "{kind:?}: {err}");
    }
    let err = Pipeline::new("p")
        .source("read", source())
        .stage("b", StageKind::Branch, Arc::new(Branch::new()))
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidStage { ref stage, ref message } if stage == "b" && message.contains("at least one output")),
        "{err}"
    );
    let two_ports = Branch::new().route("hi", col("k").gt(1)).otherwise("lo");
    let err = Pipeline::new("p")
        .source("read", source())
        .stage("t", StageKind::Transform, Arc::new(two_ports))
        .from("t.hi")
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidStage { ref stage, .. } if stage == "t"), "{err}");
}

#[test]
fn merging_a_nullable_and_a_non_nullable_version_of_a_schema_builds_and_runs() {
    // Caught: merge inputs had to agree on nullability and metadata too.
    use arrow_schema::{DataType, Field, Schema};
    let batch = |nullable: bool| {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, nullable)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef]).unwrap()
    };
    let (collect, out) = CollectSink::new();
    let graph = Pipeline::new("p")
        .source("required", MemorySource::try_from_batches(vec![batch(false)]).unwrap())
        .source("optional", MemorySource::try_from_batches(vec![batch(true)]).unwrap())
        .merge("m", ["required", "optional"])
        .transform("big", Filter::new(col("k").gt(1)))
        .sink("w", collect)
        .build()
        .unwrap();
    let merged = graph.node("m").unwrap().input_schema.clone().unwrap();
    assert!(merged.field(0).is_nullable(), "nullable if any input is");
    SyncEngine::new().run(graph, RunOptions::default()).unwrap();
    assert_eq!(out.num_rows(), 2);

    let err = Pipeline::new("p")
        .source("a", MemorySource::try_from_batches(vec![batch(false)]).unwrap())
        .source("b", source())
        .transform("narrow", Select::columns(["f"]))
        .merge("m", ["a", "narrow"])
        .sink("w", sink())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "names and types must agree: {err}");
}
