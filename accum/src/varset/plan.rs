//! Validation of a [`VarSet`]'s var and value columns and required
//! variables against an input schema, resolved into a `VarPlan`.

use std::collections::HashSet;

use arrow_schema::{DataType, Schema};

use super::config::{RepeatPolicy, VarSet};
use crate::{
    columns::{is_string, ColumnPlan},
    error::{Error, Result},
    values::ValueKind,
};

/// At most this many required variables (each slot holds one value reference
/// per variable, and the output has one column per variable).
pub(crate) const MAX_REQUIRED_VARS: usize = 1 << 16;

const VAR_TYPES: &str = "Utf8, LargeUtf8, Utf8View or a dictionary of those";
const VALUE_TYPES: &str = "a string, binary, boolean or fixed-width primitive type, or a dictionary of those";

/// A validated configuration of the VarSet-specific columns.
#[derive(Debug, Clone)]
pub(crate) struct VarPlan {
    pub(crate) var: ColumnPlan,
    pub(crate) value: ColumnPlan,
    pub(crate) value_kind: ValueKind,
    /// The value type of the output columns (a dictionary unpacked).
    pub(crate) value_type: DataType,
    pub(crate) vars: Vec<String>,
    /// Variable indices ordered by name, for `acc_missing_vars`.
    pub(crate) missing_order: Vec<u32>,
    pub(crate) repeat: RepeatPolicy,
}

impl VarPlan {
    /// Validates `config` against `input`.
    pub(crate) fn new(config: &VarSet, input: &Schema) -> Result<VarPlan> {
        let var = ColumnPlan::find(&config.var_column, "var", input)?;
        if !is_var_type(&var.data_type) {
            return Err(var.bad_type(VAR_TYPES));
        }
        let (value, value_type, value_kind) = value_column(&config.value_column, input)?;
        let vars = check_vars(&config.required)?;
        let mut missing_order: Vec<u32> = (0..vars.len() as u32).collect();
        missing_order.sort_by(|&a, &b| vars[a as usize].cmp(&vars[b as usize]));
        Ok(VarPlan { var, value, value_kind, value_type, vars, missing_order, repeat: config.repeat })
    }
}

/// Finds a value column: the column, its output type (a dictionary
/// unpacked) and its byte layout.
pub(crate) fn value_column(name: &str, input: &Schema) -> Result<(ColumnPlan, DataType, ValueKind)> {
    let value = ColumnPlan::find(name, "value", input)?;
    let value_type = match &value.data_type {
        DataType::Dictionary(_, v) => v.as_ref().clone(),
        other => other.clone(),
    };
    let kind = ValueKind::of(&value_type).ok_or_else(|| value.bad_type(VALUE_TYPES))?;
    Ok((value, value_type, kind))
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
    use std::sync::Arc;

    use arrow_schema::Field;

    use super::*;
    use crate::WithPolicies;

    fn input() -> Arc<Schema> {
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
        let schema = VarSet::keyed("k").require(["b", "a"]).output_schema(&input()).unwrap();
        let types: Vec<_> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
        assert_eq!(types[..3], ["Utf8", "Int32", "Int32"]);
        let plan = VarPlan::new(&VarSet::keyed("k").require(["b", "a"]), &input()).unwrap();
        assert_eq!(plan.missing_order, [1, 0]);
    }

    #[test]
    fn output_names_must_be_unique() {
        let err = VarSet::keyed("k").require(["k"]).build(&input()).unwrap_err();
        assert!(matches!(err, Error::DuplicateOutputColumn { column } if column == "k"));
        let err = VarSet::keyed("k").require(["acc_reason"]).build(&input()).unwrap_err();
        assert!(matches!(err, Error::DuplicateOutputColumn { column } if column == "acc_reason"));
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        let v = VarSet::keyed("k").require(["a"]);
        let err = v.clone().max_items(0).build(&input()).unwrap_err();
        assert!(matches!(err, Error::BadPolicy { policy: "max_items", .. }), "{err}");
        let err = v.clone().allowed_lateness(std::time::Duration::from_secs(1)).build(&input()).unwrap_err();
        assert!(err.to_string().contains("event time"), "{err}");
        let err = v.partial_flush(false).build(&input()).unwrap_err();
        assert!(err.to_string().contains("partial_flush_after"), "{err}");
    }
}
