//! [`CountAccumulator`]: a keyed micro-batcher. Per key, fragments are
//! collected until `every` of them arrived (then the generation is complete)
//! or a policy closes it: `max_bytes` (bytes of the collected values),
//! `max_latency`, the TTL, `max_keys` eviction or the end of input.

use arrow_schema::SchemaRef;

use crate::{
    collect::{CollectMode, CollectState, Collected},
    error::{Error, Result},
    keyed::{KeyedAccumulator, Policies},
    time::TimeMode,
    varset::KeyColumns,
};

/// A running count accumulator.
pub type CountAssembler = KeyedAccumulator<CollectState>;

/// Configuration of a count accumulator: emit every `n` fragments per key.
///
/// Output, one row per key generation: the key column(s), `count`
/// (`UInt64`, fragments in the generation), `items` (`List` of the value
/// column's type, in arrival order; only with [`value_column`](Self::value_column)),
/// then the `acc_*` columns (`acc_completeness` is `count / n`).
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use arrow_array::{cast::AsArray, types::UInt64Type, RecordBatch, StringArray, UInt64Array};
/// use arrow_schema::{DataType, Field, Schema};
/// use garner_accum::{CountAccumulator, WithPolicies};
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("device", DataType::UInt64, false),
///     Field::new("reading", DataType::Utf8, true),
/// ]));
/// let mut acc = CountAccumulator::keyed("device")
///     .every(2)
///     .value_column("reading")
///     .max_latency(Duration::from_secs(5))
///     .build(&schema)?;
/// let batch = RecordBatch::try_new(schema.clone(), vec![
///     Arc::new(UInt64Array::from(vec![7, 8, 7])),
///     Arc::new(StringArray::from(vec!["a", "b", "c"])),
/// ])?;
/// let out = acc.push(&batch, 0)?.expect("device 7 has two readings");
/// let items = out.column_by_name("items").unwrap().as_list::<i32>().value(0);
/// assert_eq!(items.as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["a", "c"]);
/// let late = acc.advance(6_000)?.expect("device 8 waited too long");
/// assert_eq!(late.column_by_name("count").unwrap().as_primitive::<UInt64Type>().value(0), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CountAccumulator {
    key: Vec<String>,
    every: Option<u64>,
    value_column: Option<String>,
    time: TimeMode,
    policies: Policies,
}

impl CountAccumulator {
    /// A count accumulator keyed by `key`, in processing time; set
    /// [`every`](Self::every) before building.
    pub fn keyed(key: impl KeyColumns) -> Self {
        CountAccumulator {
            key: key.into_key_columns(),
            every: None,
            value_column: None,
            time: TimeMode::Processing,
            policies: Policies::default(),
        }
    }

    /// A generation is complete with `n` fragments.
    pub fn every(mut self, n: u64) -> Self {
        self.every = Some(n);
        self
    }

    /// Collect this column's values into the `items` list column.
    pub fn value_column(mut self, name: impl Into<String>) -> Self {
        self.value_column = Some(name.into());
        self
    }

    /// Processing time (the default) or event time from a column.
    pub fn time(mut self, mode: TimeMode) -> Self {
        self.time = mode;
        self
    }

    /// Validates against `input` and builds an empty accumulator. Errors as
    /// [`VarSet::build`](crate::VarSet::build), and
    /// [`BadPolicy`](Error::BadPolicy) when `every` is missing or zero.
    pub fn build(&self, input: &SchemaRef) -> Result<CountAssembler> {
        let every = match self.every {
            Some(n) if n > 0 => n,
            Some(_) => return Err(Error::BadPolicy { policy: "every", reason: "must be at least 1".into() }),
            None => {
                return Err(Error::BadPolicy {
                    policy: "every",
                    reason: "a count accumulator needs `every = N`".into(),
                })
            }
        };
        let collected = collected(self.value_column.as_deref(), input)?;
        let state = CollectState::new(CollectMode::Count { every }, collected);
        KeyedAccumulator::new(state, &self.key, &self.time, self.policies.clone(), input)
    }
}

/// Validates the collected value column, if any.
pub(crate) fn collected(name: Option<&str>, input: &SchemaRef) -> Result<Option<Collected>> {
    let Some(name) = name else { return Ok(None) };
    let (column, value_type, kind) = crate::varset::value_column(name, input)?;
    Ok(Some(Collected { column, kind, value_type }))
}

crate::keyed::keyed_builder!(CountAccumulator, "count", |s| s.time.clone());
