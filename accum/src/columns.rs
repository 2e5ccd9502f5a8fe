//! Input columns, validated once against the input schema: the key
//! column(s), the event-time column and any other column an accumulator
//! reads. Shared by every accumulator built on
//! [`KeyedAccumulator`](crate::KeyedAccumulator).

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef};

use crate::{
    error::{Error, Result},
    time::{is_time_type, TimeMode, TIME_TYPES},
};

/// One input column an accumulator reads, as validated at build time.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) data_type: DataType,
}

impl ColumnPlan {
    /// Finds `name` in `input`; the error lists the available columns.
    pub(crate) fn find(name: &str, role: &'static str, input: &Schema) -> Result<Self> {
        match input.field_with_name(name) {
            Ok(f) => Ok(ColumnPlan { name: name.to_owned(), role, data_type: f.data_type().clone() }),
            Err(_) => Err(Error::UnknownColumn {
                column: name.to_owned(),
                role,
                available: input.fields().iter().map(|f| f.name().clone()).collect(),
            }),
        }
    }

    /// The column in `batch`, checked to have the type seen at build time.
    pub(crate) fn resolve<'a>(&self, batch: &'a RecordBatch) -> Result<&'a ArrayRef> {
        let schema = batch.schema_ref();
        let Ok(index) = schema.index_of(&self.name) else {
            return Err(Error::UnknownColumn {
                column: self.name.clone(),
                role: self.role,
                available: schema.fields().iter().map(|f| f.name().clone()).collect(),
            });
        };
        let column = batch.column(index);
        if column.data_type() != &self.data_type {
            return Err(Error::SchemaChanged {
                column: self.name.clone(),
                role: self.role,
                expected: self.data_type.clone(),
                found: column.data_type().clone(),
            });
        }
        Ok(column)
    }

    /// The error for a column of a type the accumulator cannot read.
    pub(crate) fn bad_type(&self, expected: &'static str) -> Error {
        Error::BadColumnType {
            column: self.name.clone(),
            role: self.role,
            data_type: self.data_type.clone(),
            expected,
        }
    }
}

/// How keys are represented in the state.
#[derive(Debug, Clone)]
pub(crate) enum KeyKind {
    /// One integer column: keys are `u64` (signed values keep their bits).
    Int {
        /// The output type (the input type, dictionary unpacked).
        output_type: DataType,
    },
    /// One string or binary column: its bytes (a dictionary unpacked).
    Bytes {
        /// The output type (the input type, dictionary unpacked).
        output_type: DataType,
    },
    /// Several columns: `arrow-row` rows over the key columns (dictionaries
    /// unpacked first).
    Rows {
        /// The output type of each key column.
        output_types: Vec<DataType>,
    },
}

/// The key and time columns of an accumulator, validated.
#[derive(Debug, Clone)]
pub(crate) struct KeyPlan {
    pub(crate) keys: Vec<ColumnPlan>,
    pub(crate) key_kind: KeyKind,
    /// The output fields of the key columns (not null, input metadata kept).
    pub(crate) key_fields: Vec<FieldRef>,
    pub(crate) time: Option<ColumnPlan>,
}

impl KeyPlan {
    /// Validates `key` and `time` against `input`.
    pub(crate) fn new(key: &[String], time: &TimeMode, input: &Schema) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::NoKeyColumns);
        }
        let keys = key.iter().map(|k| ColumnPlan::find(k, "key", input)).collect::<Result<Vec<_>>>()?;
        let mut key_fields = Vec::with_capacity(keys.len());
        for k in &keys {
            let output_type = key_output_type(&k.data_type).ok_or_else(|| Error::UnhashableKey {
                column: k.name.clone(),
                data_type: k.data_type.clone(),
            })?;
            let metadata = input.field_with_name(&k.name).map(|f| f.metadata().clone()).unwrap_or_default();
            key_fields.push(Arc::new(Field::new(&k.name, output_type, false).with_metadata(metadata)));
        }
        let key_kind = match key_fields.as_slice() {
            [f] if f.data_type().is_integer() => KeyKind::Int { output_type: f.data_type().clone() },
            [f] if is_string(f.data_type()) => KeyKind::Bytes { output_type: f.data_type().clone() },
            _ => KeyKind::Rows { output_types: key_fields.iter().map(|f| f.data_type().clone()).collect() },
        };
        let time = match time {
            TimeMode::Processing => None,
            TimeMode::Event { column } => {
                let t = ColumnPlan::find(column, "time", input)?;
                if !is_time_type(&t.data_type) {
                    return Err(t.bad_type(TIME_TYPES));
                }
                Some(t)
            }
        };
        Ok(KeyPlan { keys, key_kind, key_fields, time })
    }
}

/// Names of the bookkeeping output columns, in order.
pub const ACC_COLUMNS: [&str; 4] = ["acc_completeness", "acc_missing_vars", "acc_spilled", "acc_reason"];

/// The output schema: key fields, the accumulator's fields, the `acc_*`
/// fields. Errors when a name appears twice.
pub(crate) fn output_schema(key_fields: &[FieldRef], fields: &[FieldRef]) -> Result<SchemaRef> {
    let mut all: Vec<FieldRef> = key_fields.iter().chain(fields).cloned().collect();
    all.push(Arc::new(Field::new(ACC_COLUMNS[0], DataType::Float64, false)));
    all.push(Arc::new(Field::new(ACC_COLUMNS[1], missing_vars_type(), false)));
    all.push(Arc::new(Field::new(ACC_COLUMNS[2], DataType::Boolean, false)));
    all.push(Arc::new(Field::new(ACC_COLUMNS[3], DataType::Utf8, false)));
    let mut seen = std::collections::HashSet::new();
    for f in &all {
        if !seen.insert(f.name().as_str()) {
            return Err(Error::DuplicateOutputColumn { column: f.name().clone() });
        }
    }
    Ok(Arc::new(Schema::new(all)))
}

/// `List<Utf8>` with a nullable item field named `"item"`.
pub(crate) fn missing_vars_type() -> DataType {
    DataType::List(missing_item_field())
}

/// The item field of `acc_missing_vars`.
pub(crate) fn missing_item_field() -> FieldRef {
    Arc::new(Field::new("item", DataType::Utf8, true))
}

pub(crate) fn is_string(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The output type of a key column, or `None` when the type cannot be a key.
fn key_output_type(data_type: &DataType) -> Option<DataType> {
    let values = match data_type {
        DataType::Dictionary(_, v) => v.as_ref(),
        other => other,
    };
    (values.is_integer() || is_string(values)).then(|| values.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_keys_are_unpacked_and_strings_use_rows() {
        let dict = DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8));
        let input = Schema::new(vec![Field::new("k", dict, true), Field::new("n", DataType::Int32, true)]);
        let plan = KeyPlan::new(&["k".to_owned()], &TimeMode::Processing, &input).unwrap();
        assert_eq!(plan.key_fields[0].data_type(), &DataType::Utf8);
        assert!(matches!(plan.key_kind, KeyKind::Bytes { .. }));
        let plan = KeyPlan::new(&["k".to_owned(), "n".to_owned()], &TimeMode::Processing, &input).unwrap();
        assert!(matches!(plan.key_kind, KeyKind::Rows { .. }));
        let plan = KeyPlan::new(&["n".to_owned()], &TimeMode::Processing, &input).unwrap();
        assert!(matches!(plan.key_kind, KeyKind::Int { .. }));
        let err = KeyPlan::new(&["n".to_owned()], &TimeMode::event("k"), &input).unwrap_err();
        assert!(matches!(err, Error::BadColumnType { role: "time", .. }));
    }

    #[test]
    fn output_names_must_be_unique() {
        let k: FieldRef = Arc::new(Field::new("k", DataType::Int32, false));
        let one = std::slice::from_ref(&k);
        let err = output_schema(one, one).unwrap_err();
        assert!(matches!(err, Error::DuplicateOutputColumn { column } if column == "k"));
        let r: FieldRef = Arc::new(Field::new("acc_reason", DataType::Int32, false));
        assert!(output_schema(&[k], &[r]).is_err());
    }
}
