//! Validation of a [`VarSet`] against an input schema, resolved into a `Plan`:
//! what every later step needs to know about the columns, decided once.

use std::{collections::HashSet, sync::Arc};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef};

use super::{
    config::{EmitReason, RepeatPolicy, VarSet},
    values::ValueKind,
};
use crate::{
    error::{Error, Result},
    time::{duration_millis, is_time_type, Millis, TimeMode, TIME_TYPES},
};

/// At most this many required variables (each slot holds one value reference
/// per variable, and the output has one column per variable).
pub(crate) const MAX_REQUIRED_VARS: usize = 1 << 16;

/// Names of the bookkeeping output columns, in order.
pub(crate) const ACC_COLUMNS: [&str; 4] =
    ["acc_completeness", "acc_missing_vars", "acc_spilled", "acc_reason"];

const VAR_TYPES: &str = "Utf8, LargeUtf8, Utf8View or a dictionary of those";
const VALUE_TYPES: &str = "a string, binary, boolean or fixed-width primitive type, or a dictionary of those";

/// One input column the assembler reads, as validated at build time.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) data_type: DataType,
}

impl ColumnPlan {
    fn find(name: &str, role: &'static str, input: &Schema) -> Result<Self> {
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
}

/// How keys are represented in the state.
#[derive(Debug, Clone)]
pub(crate) enum KeyKind {
    /// One integer column: keys are `u64` (signed values keep their bits).
    Int {
        /// The output type (the input type, dictionary unpacked).
        output_type: DataType,
    },
    /// Anything else: `arrow-row` rows over the key columns (dictionaries
    /// unpacked first).
    Rows {
        /// The output type of each key column.
        output_types: Vec<DataType>,
    },
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) keys: Vec<ColumnPlan>,
    pub(crate) key_kind: KeyKind,
    pub(crate) var: ColumnPlan,
    pub(crate) value: ColumnPlan,
    pub(crate) value_kind: ValueKind,
    /// The value type of the output columns (a dictionary unpacked).
    pub(crate) value_type: DataType,
    pub(crate) time: Option<ColumnPlan>,
    pub(crate) vars: Vec<String>,
    /// Variable indices ordered by name, for `acc_missing_vars`.
    pub(crate) missing_order: Vec<u32>,
    /// Time from a generation's first fragment to its deadline, and the reason.
    pub(crate) deadline: Option<(Millis, EmitReason)>,
    pub(crate) repeat: RepeatPolicy,
    pub(crate) schema: SchemaRef,
}

impl Plan {
    /// Validates `config` against `input`.
    pub(crate) fn new(config: &VarSet, input: &SchemaRef) -> Result<Plan> {
        if config.key.is_empty() {
            return Err(Error::NoKeyColumns);
        }
        let keys =
            config.key.iter().map(|k| ColumnPlan::find(k, "key", input)).collect::<Result<Vec<_>>>()?;
        let mut key_fields = Vec::with_capacity(keys.len());
        for k in &keys {
            let output_type = key_output_type(&k.data_type).ok_or_else(|| Error::UnhashableKey {
                column: k.name.clone(),
                data_type: k.data_type.clone(),
            })?;
            let metadata = input.field_with_name(&k.name).map(|f| f.metadata().clone()).unwrap_or_default();
            key_fields.push(Field::new(&k.name, output_type, false).with_metadata(metadata));
        }
        let key_kind = match key_fields.as_slice() {
            [f] if f.data_type().is_integer() => KeyKind::Int { output_type: f.data_type().clone() },
            _ => KeyKind::Rows { output_types: key_fields.iter().map(|f| f.data_type().clone()).collect() },
        };

        let var = ColumnPlan::find(&config.var_column, "var", input)?;
        if !is_var_type(&var.data_type) {
            return Err(bad_type(&var, VAR_TYPES));
        }
        let value = ColumnPlan::find(&config.value_column, "value", input)?;
        let value_type = match &value.data_type {
            DataType::Dictionary(_, v) => v.as_ref().clone(),
            other => other.clone(),
        };
        let value_kind = ValueKind::of(&value_type).ok_or_else(|| bad_type(&value, VALUE_TYPES))?;
        let time = match &config.time {
            TimeMode::Processing => None,
            TimeMode::Event { column } => {
                let t = ColumnPlan::find(column, "time", input)?;
                if !is_time_type(&t.data_type) {
                    return Err(bad_type(&t, TIME_TYPES));
                }
                Some(t)
            }
        };

        let vars = check_vars(&config.required)?;
        let mut names: HashSet<&str> = HashSet::new();
        let all_names = config.key.iter().chain(&vars).map(String::as_str).chain(ACC_COLUMNS);
        for name in all_names {
            if !names.insert(name) {
                return Err(Error::DuplicateOutputColumn { column: name.to_owned() });
            }
        }
        let mut missing_order: Vec<u32> = (0..vars.len() as u32).collect();
        missing_order.sort_by(|&a, &b| vars[a as usize].cmp(&vars[b as usize]));

        let deadline = match (config.ttl.map(duration_millis), config.max_latency.map(duration_millis)) {
            (None, None) => None,
            (Some(ttl), None) => Some((ttl, EmitReason::Ttl)),
            (None, Some(lat)) => Some((lat, EmitReason::MaxLatency)),
            (Some(ttl), Some(lat)) if ttl <= lat => Some((ttl, EmitReason::Ttl)),
            (Some(_), Some(lat)) => Some((lat, EmitReason::MaxLatency)),
        };

        let mut fields: Vec<FieldRef> = key_fields.into_iter().map(Arc::new).collect();
        fields.extend(vars.iter().map(|v| Arc::new(Field::new(v, value_type.clone(), true))));
        fields.push(Arc::new(Field::new(ACC_COLUMNS[0], DataType::Float64, false)));
        fields.push(Arc::new(Field::new(ACC_COLUMNS[1], missing_vars_type(), false)));
        fields.push(Arc::new(Field::new(ACC_COLUMNS[2], DataType::Boolean, false)));
        fields.push(Arc::new(Field::new(ACC_COLUMNS[3], DataType::Utf8, false)));

        Ok(Plan {
            keys,
            key_kind,
            var,
            value,
            value_kind,
            value_type,
            time,
            vars,
            missing_order,
            deadline,
            repeat: config.repeat,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

/// `List<Utf8>` with a nullable item field named `"item"`.
pub(crate) fn missing_vars_type() -> DataType {
    DataType::List(missing_item_field())
}

/// The item field of `acc_missing_vars`.
pub(crate) fn missing_item_field() -> FieldRef {
    Arc::new(Field::new("item", DataType::Utf8, true))
}

fn bad_type(column: &ColumnPlan, expected: &'static str) -> Error {
    Error::BadColumnType {
        column: column.name.clone(),
        role: column.role,
        data_type: column.data_type.clone(),
        expected,
    }
}

fn is_string(data_type: &DataType) -> bool {
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

fn is_var_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, v) => is_string(v),
        other => is_string(other),
    }
}

fn check_vars(required: &[String]) -> Result<Vec<String>> {
    if required.is_empty() {
        return Err(Error::NoRequiredVars);
    }
    if required.len() > MAX_REQUIRED_VARS {
        return Err(Error::TooManyVars { count: required.len(), max: MAX_REQUIRED_VARS });
    }
    let mut seen = HashSet::with_capacity(required.len());
    for v in required {
        if !seen.insert(v.as_str()) {
            return Err(Error::DuplicateRequiredVar { var: v.clone() });
        }
    }
    Ok(required.to_vec())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn input() -> SchemaRef {
        let dict = DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8));
        Arc::new(Schema::new(vec![
            Field::new("k", dict.clone(), true),
            Field::new("var", dict, true),
            Field::new(
                "value",
                DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Int32)),
                true,
            ),
        ]))
    }

    #[test]
    fn dictionaries_are_unpacked_in_the_output() {
        let plan = Plan::new(&VarSet::keyed("k").require(["b", "a"]), &input()).unwrap();
        let types: Vec<_> = plan.schema.fields().iter().map(|f| f.data_type().to_string()).collect();
        assert_eq!(types[..3], ["Utf8", "Int32", "Int32"]);
        assert!(matches!(plan.key_kind, KeyKind::Rows { .. }));
        assert_eq!(plan.missing_order, [1, 0]);
    }

    #[test]
    fn the_shorter_deadline_names_the_reason() {
        let base = VarSet::keyed("k").require(["a"]);
        let d = |v: VarSet| Plan::new(&v, &input()).unwrap().deadline;
        assert_eq!(d(base.clone()), None);
        let both = base.clone().partial_flush_after(Duration::from_secs(2));
        assert_eq!(d(both.clone().max_latency(Duration::from_secs(2))), Some((2_000, EmitReason::Ttl)));
        assert_eq!(d(both.max_latency(Duration::from_secs(1))), Some((1_000, EmitReason::MaxLatency)));
    }

    #[test]
    fn output_names_must_be_unique() {
        let err = Plan::new(&VarSet::keyed("k").require(["k"]), &input()).unwrap_err();
        assert!(matches!(err, Error::DuplicateOutputColumn { column } if column == "k"));
        let err = Plan::new(&VarSet::keyed("k").require(["acc_reason"]), &input()).unwrap_err();
        assert!(matches!(err, Error::DuplicateOutputColumn { column } if column == "acc_reason"));
    }
}
