//! The `VarSet` configuration: a builder validated against an input schema.

use std::time::Duration;

use arrow_schema::SchemaRef;

use super::{plan::VarPlan, state::VarSetState, VarSetAssembler};
use crate::{
    error::Result,
    keyed::{KeyedAccumulator, Policies},
    time::TimeMode,
};

/// What to do when a variable arrives again within one key generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepeatPolicy {
    /// Keep the value that arrived first (the default).
    #[default]
    KeepFirst,
    /// Overwrite with the value that arrived last.
    KeepLast,
}

/// Things that name the key column(s) of a [`VarSet`]: a column name, or a
/// list of them.
pub trait KeyColumns {
    /// The column names, in order.
    fn into_key_columns(self) -> Vec<String>;
}

impl KeyColumns for &str {
    fn into_key_columns(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl KeyColumns for String {
    fn into_key_columns(self) -> Vec<String> {
        vec![self]
    }
}

impl KeyColumns for &String {
    fn into_key_columns(self) -> Vec<String> {
        vec![self.clone()]
    }
}

impl<const N: usize> KeyColumns for [&str; N] {
    fn into_key_columns(self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}

impl<const N: usize> KeyColumns for [String; N] {
    fn into_key_columns(self) -> Vec<String> {
        self.into()
    }
}

impl KeyColumns for Vec<String> {
    fn into_key_columns(self) -> Vec<String> {
        self
    }
}

impl KeyColumns for Vec<&str> {
    fn into_key_columns(self) -> Vec<String> {
        self.into_iter().map(str::to_owned).collect()
    }
}

impl KeyColumns for &[&str] {
    fn into_key_columns(self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// Configuration of the `VarSet` assembler: which columns hold the key, the
/// variable name and its value, which variables make a record complete, and
/// when to give up waiting. See the [module docs](crate::varset) for the
/// semantics.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{cast::AsArray, RecordBatch, StringArray, UInt64Array};
/// use arrow_schema::{DataType, Field, Schema};
/// use garner_accum::VarSet;
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("subject_id", DataType::UInt64, false),
///     Field::new("var", DataType::Utf8, false),
///     Field::new("value", DataType::Utf8, true),
/// ]));
/// let mut assembler = VarSet::keyed("subject_id").require(["id", "name"]).build(&schema)?;
///
/// let batch = RecordBatch::try_new(schema.clone(), vec![
///     Arc::new(UInt64Array::from(vec![1, 2, 1])),
///     Arc::new(StringArray::from(vec!["id", "id", "name"])),
///     Arc::new(StringArray::from(vec!["A-1", "B-7", "Alice"])),
/// ])?;
/// // Subject 1 is complete with the third row: it is emitted at once.
/// let out = assembler.push(&batch, 0)?.expect("subject 1 is complete");
/// assert_eq!(out.num_rows(), 1);
/// assert_eq!(out.column_by_name("name").unwrap().as_string::<i32>().value(0), "Alice");
///
/// // Subject 2 never got its name: the end of input emits it as a partial.
/// let rest = assembler.finish()?.expect("subject 2 is still held");
/// let missing = rest.column_by_name("acc_missing_vars").unwrap().as_list::<i32>().value(0);
/// assert_eq!(missing.as_string::<i32>().value(0), "name");
/// assert_eq!(rest.column_by_name("acc_reason").unwrap().as_string::<i32>().value(0), "end_of_input");
/// assert_eq!(assembler.resident_keys(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct VarSet {
    pub(crate) key: Vec<String>,
    pub(crate) var_column: String,
    pub(crate) value_column: String,
    pub(crate) required: Vec<String>,
    pub(crate) time: TimeMode,
    pub(crate) policies: Policies,
    pub(crate) repeat: RepeatPolicy,
}

impl VarSet {
    /// A VarSet keyed by one or more columns (integer or string types, or
    /// dictionaries of those), reading `var` and `value`, in processing time,
    /// with no deadline.
    pub fn keyed(key: impl KeyColumns) -> Self {
        VarSet {
            key: key.into_key_columns(),
            var_column: "var".to_owned(),
            value_column: "value".to_owned(),
            required: Vec::new(),
            time: TimeMode::Processing,
            policies: Policies::default(),
            repeat: RepeatPolicy::KeepFirst,
        }
    }

    /// The column holding the variable's name (default `"var"`).
    pub fn var_column(mut self, name: impl Into<String>) -> Self {
        self.var_column = name.into();
        self
    }

    /// The column holding the variable's value (default `"value"`).
    pub fn value_column(mut self, name: impl Into<String>) -> Self {
        self.value_column = name.into();
        self
    }

    /// Adds required variables; a key generation is complete once all arrived.
    /// The output has one column per required variable, in this order.
    pub fn require<I, S>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required.extend(vars.into_iter().map(Into::into));
        self
    }

    /// Processing time (the default) or event time from a column.
    pub fn time(mut self, mode: TimeMode) -> Self {
        self.time = mode;
        self
    }

    /// What to do with a variable repeated within one generation.
    pub fn on_repeat(mut self, policy: RepeatPolicy) -> Self {
        self.repeat = policy;
        self
    }

    /// The key column names.
    pub fn key_columns(&self) -> &[String] {
        &self.key
    }

    /// The required variables, in output order.
    pub fn required_vars(&self) -> &[String] {
        &self.required
    }

    /// The var column's name.
    pub fn var_column_name(&self) -> &str {
        &self.var_column
    }

    /// The value column's name.
    pub fn value_column_name(&self) -> &str {
        &self.value_column
    }

    /// The time mode.
    pub fn time_mode(&self) -> &TimeMode {
        &self.time
    }

    /// The TTL, if set.
    pub fn ttl(&self) -> Option<Duration> {
        self.policies.partial_flush_after
    }

    /// The maximum latency, if set.
    pub fn latency_bound(&self) -> Option<Duration> {
        self.policies.max_latency
    }

    /// The repeat policy.
    pub fn repeat_policy(&self) -> RepeatPolicy {
        self.repeat
    }

    /// Whether spilling under pressure was asked for.
    pub fn spills_on_pressure(&self) -> bool {
        self.policies.spill
    }

    /// Validates the configuration against `input` and returns the output
    /// schema (see the [module docs](crate::varset#output)).
    ///
    /// Errors: [`UnknownColumn`](crate::Error::UnknownColumn) naming the role
    /// and the available columns, [`UnhashableKey`](crate::Error::UnhashableKey),
    /// [`BadColumnType`](crate::Error::BadColumnType) for the var, value and
    /// time columns, [`NoKeyColumns`](crate::Error::NoKeyColumns),
    /// [`NoRequiredVars`](crate::Error::NoRequiredVars),
    /// [`DuplicateRequiredVar`](crate::Error::DuplicateRequiredVar),
    /// [`TooManyVars`](crate::Error::TooManyVars),
    /// [`DuplicateOutputColumn`](crate::Error::DuplicateOutputColumn) and
    /// [`BadPolicy`](crate::Error::BadPolicy).
    pub fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.build(input)?.output_schema())
    }

    /// Validates the configuration against `input` (as
    /// [`output_schema`](Self::output_schema)) and builds an empty assembler.
    pub fn build(&self, input: &SchemaRef) -> Result<VarSetAssembler> {
        let state = VarSetState::new(VarPlan::new(self, input)?);
        KeyedAccumulator::new(state, &self.key, &self.time, self.policies.clone(), input)
    }
}

crate::keyed::keyed_builder!(VarSet, "varset", |s| s.time.clone());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WithPolicies;

    #[test]
    fn key_columns_come_from_names_or_lists() {
        assert_eq!(VarSet::keyed("a").key_columns(), ["a"]);
        assert_eq!(VarSet::keyed(["a", "b"]).key_columns(), ["a", "b"]);
        assert_eq!(VarSet::keyed(vec!["a".to_owned()]).key_columns(), ["a"]);
        assert_eq!(VarSet::keyed(&["x", "y"][..]).key_columns(), ["x", "y"]);
    }

    #[test]
    fn builder_defaults_and_setters() {
        let v = VarSet::keyed("k");
        assert_eq!((v.var_column_name(), v.value_column_name()), ("var", "value"));
        assert_eq!(v.time_mode(), &TimeMode::Processing);
        assert_eq!(v.repeat_policy(), RepeatPolicy::KeepFirst);
        let v = v
            .require(["a"])
            .require(vec![String::from("b")])
            .partial_flush_after(Duration::from_secs(1))
            .max_latency(Duration::from_millis(5))
            .on_repeat(RepeatPolicy::KeepLast)
            .spill_on_pressure(true);
        assert_eq!(v.required_vars(), ["a", "b"]);
        assert_eq!(v.ttl(), Some(Duration::from_secs(1)));
        assert_eq!(v.latency_bound(), Some(Duration::from_millis(5)));
        assert!(v.spills_on_pressure());
    }
}
