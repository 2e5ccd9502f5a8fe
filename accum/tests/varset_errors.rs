//! VarSet validation: every configuration error names what is wrong.

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, ListArray, StringArray, UInt64Array};
use arrow_schema::{DataType, SchemaRef};
use common::{batch_of, frags, schema_of};
use garner_accum::{Error, TimeMode, VarSet};

fn input() -> SchemaRef {
    frags(&[]).schema()
}

fn available() -> Vec<String> {
    vec!["k".into(), "var".into(), "value".into()]
}

#[test]
fn a_missing_column_is_named_with_its_role_and_the_available_columns() {
    let cases = [
        (VarSet::keyed("subject").require(["a"]), "subject", "key"),
        (VarSet::keyed(["k", "region"]).require(["a"]), "region", "key"),
        (VarSet::keyed("k").var_column("name").require(["a"]), "name", "var"),
        (VarSet::keyed("k").value_column("val").require(["a"]), "val", "value"),
        (VarSet::keyed("k").time(TimeMode::event("ts")).require(["a"]), "ts", "time"),
    ];
    for (config, missing, expected_role) in cases {
        match config.output_schema(&input()).unwrap_err() {
            Error::UnknownColumn { column, role, available: avail } => {
                assert_eq!((column.as_str(), role), (missing, expected_role));
                assert_eq!(avail, available());
            }
            other => panic!("expected UnknownColumn for {missing}, got {other:?}"),
        }
    }
    let message = VarSet::keyed("subject").require(["a"]).build(&input()).unwrap_err().to_string();
    assert_eq!(message, "no key column `subject` in the input; available columns: [k, var, value]");
}

#[test]
fn float_and_nested_keys_are_unhashable() {
    let float: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
    let list: ArrayRef =
        Arc::new(ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![Some(vec![
            Some(1),
        ])]));
    let var: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    for key in [float, list] {
        let schema = schema_of(&[("k", &key), ("var", &var), ("value", &var)]);
        match VarSet::keyed("k").require(["a"]).output_schema(&schema).unwrap_err() {
            Error::UnhashableKey { column, data_type } => {
                assert_eq!((column.as_str(), &data_type), ("k", key.data_type()));
            }
            other => panic!("expected UnhashableKey, got {other:?}"),
        }
    }
}

#[test]
fn var_value_and_time_columns_of_the_wrong_type_are_refused() {
    let k: ArrayRef = Arc::new(UInt64Array::from(vec![1]));
    let s: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    let int: ArrayRef = Arc::new(Int32Array::from(vec![1]));
    let list: ArrayRef =
        Arc::new(ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![Some(vec![
            Some(1),
        ])]));
    let v = || VarSet::keyed("k").require(["a"]);
    let cases = [
        (schema_of(&[("k", &k), ("var", &int), ("value", &s)]), v(), "var", DataType::Int32),
        (schema_of(&[("k", &k), ("var", &s), ("value", &list)]), v(), "value", list.data_type().clone()),
        (
            schema_of(&[("k", &k), ("var", &s), ("value", &s), ("ts", &s)]),
            v().time(TimeMode::event("ts")),
            "time",
            DataType::Utf8,
        ),
    ];
    for (schema, config, expected_role, expected_type) in cases {
        match config.output_schema(&schema).unwrap_err() {
            Error::BadColumnType { role, data_type, expected, .. } => {
                assert_eq!((role, &data_type), (expected_role, &expected_type));
                assert!(!expected.is_empty());
            }
            other => panic!("expected BadColumnType for the {expected_role} column, got {other:?}"),
        }
    }
}

#[test]
fn required_variables_must_be_given_once_each() {
    assert!(matches!(VarSet::keyed("k").output_schema(&input()), Err(Error::NoRequiredVars)));
    assert!(matches!(
        VarSet::keyed("k").require(Vec::<String>::new()).output_schema(&input()),
        Err(Error::NoRequiredVars)
    ));
    match VarSet::keyed("k").require(["a", "b", "a"]).output_schema(&input()) {
        Err(Error::DuplicateRequiredVar { var }) => assert_eq!(var, "a"),
        other => panic!("expected DuplicateRequiredVar, got {other:?}"),
    }
    assert!(matches!(
        VarSet::keyed(Vec::<String>::new()).require(["a"]).build(&input()),
        Err(Error::NoKeyColumns)
    ));
}

#[test]
fn a_batch_that_changed_type_is_refused_before_anything_is_applied() {
    let mut asm = VarSet::keyed("k").require(["a", "b"]).build(&input()).unwrap();
    let changed = batch_of(&[
        ("k", Arc::new(UInt64Array::from(vec![1])) as ArrayRef),
        ("var", Arc::new(StringArray::from(vec!["a"]))),
        ("value", Arc::new(Int64Array::from(vec![1]))),
    ]);
    match asm.push(&changed, 0).unwrap_err() {
        Error::SchemaChanged { column, role, expected, found } => {
            assert_eq!(
                (column.as_str(), role, expected, found),
                ("value", "value", DataType::Utf8, DataType::Int64)
            );
        }
        other => panic!("expected SchemaChanged, got {other:?}"),
    }
    let missing = batch_of(&[("k", Arc::new(UInt64Array::from(vec![1])) as ArrayRef)]);
    assert!(matches!(asm.push(&missing, 0), Err(Error::UnknownColumn { role: "var", .. })));
    assert_eq!((asm.resident_keys(), asm.stats().fragments_in), (0, 0));
}

#[test]
fn the_output_schema_lists_keys_variables_and_bookkeeping_columns() {
    let schema = VarSet::keyed("k").require(["b", "a"]).output_schema(&input()).unwrap();
    let described: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {} {}", f.name(), f.data_type(), f.is_nullable()))
        .collect();
    assert_eq!(
        described,
        [
            "k: UInt64 false",
            "b: Utf8 true",
            "a: Utf8 true",
            "acc_completeness: Float64 false",
            "acc_missing_vars: List(Utf8) false",
            "acc_spilled: Boolean false",
            "acc_reason: Utf8 false",
        ]
    );
    let DataType::List(item) = schema.field(4).data_type() else { panic!("a list") };
    assert_eq!((item.name().as_str(), item.is_nullable()), ("item", true));
}
