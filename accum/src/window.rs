//! [`WindowAccumulator`]: tumbling and session windows per key in event
//! time, closed by the watermark.

use std::time::Duration;

use arrow_schema::SchemaRef;

use crate::{
    collect::{CollectMode, CollectState},
    count::collected,
    error::Result,
    keyed::{KeyedAccumulator, Policies, WindowRule},
    time::{duration_millis, TimeMode},
    varset::KeyColumns,
};

/// A running window accumulator.
pub type WindowAssembler = KeyedAccumulator<CollectState>;

/// Configuration of a window accumulator: per key, the fragments of one
/// event-time window, emitted (reason `complete`) once the watermark passes
/// the window's end (plus the allowed lateness).
///
/// - **Tumbling** windows of a fixed size, aligned to the epoch: a key has
///   one open window at a time; a fragment of a later window closes it, a
///   fragment of an earlier one (or of a window the watermark already
///   closed) is late: counted and dead-lettered.
/// - **Session** windows: a key's window stays open while fragments keep
///   coming within `gap` of the latest one.
///
/// Output, one row per key window: the key column(s), `window_start` and
/// `window_end` (`Int64` ms, end exclusive; a session ends at its last
/// fragment plus the gap), `count`, `items` (with
/// [`value_column`](Self::value_column)), then the `acc_*` columns.
/// `max_items`, `max_bytes`, `max_keys` and a predicate close a window early;
/// a TTL or max latency cannot be combined with windows.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use arrow_array::{cast::AsArray, types::Int64Type, Int64Array, RecordBatch, UInt64Array};
/// use arrow_schema::{DataType, Field, Schema};
/// use garner_accum::WindowAccumulator;
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::UInt64, false),
///     Field::new("ts", DataType::Int64, false),
/// ]));
/// let mut acc = WindowAccumulator::tumbling("user", "ts", Duration::from_secs(60)).build(&schema)?;
/// let batch = RecordBatch::try_new(schema.clone(), vec![
///     Arc::new(UInt64Array::from(vec![1, 1, 2, 1])),
///     Arc::new(Int64Array::from(vec![1_000, 30_000, 59_000, 61_000])),
/// ])?;
/// // The fragment at 61 s closes user 1's first minute; the watermark (61 s)
/// // is past the end of user 2's first minute too.
/// let out = acc.push(&batch, 0)?.unwrap();
/// assert_eq!(out.num_rows(), 2);
/// assert_eq!(out.column_by_name("window_end").unwrap().as_primitive::<Int64Type>().value(0), 60_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct WindowAccumulator {
    key: Vec<String>,
    time_column: String,
    rule: WindowRule,
    value_column: Option<String>,
    policies: Policies,
}

impl WindowAccumulator {
    /// Tumbling windows of `size` over event time from `time_column`.
    pub fn tumbling(key: impl KeyColumns, time_column: impl Into<String>, size: Duration) -> Self {
        Self::with_rule(key, time_column, WindowRule::Tumbling { size: duration_millis(size) })
    }

    /// Session windows closed after `gap` without a fragment.
    pub fn session(key: impl KeyColumns, time_column: impl Into<String>, gap: Duration) -> Self {
        Self::with_rule(key, time_column, WindowRule::Session { gap: duration_millis(gap) })
    }

    fn with_rule(key: impl KeyColumns, time_column: impl Into<String>, rule: WindowRule) -> Self {
        WindowAccumulator {
            key: key.into_key_columns(),
            time_column: time_column.into(),
            rule,
            value_column: None,
            policies: Policies::default(),
        }
    }

    /// Collect this column's values into the `items` list column.
    pub fn value_column(mut self, name: impl Into<String>) -> Self {
        self.value_column = Some(name.into());
        self
    }

    /// The window rule.
    pub fn rule(&self) -> WindowRule {
        self.rule
    }

    /// Validates against `input` and builds an empty accumulator. Errors as
    /// [`VarSet::build`](crate::VarSet::build), and
    /// [`BadPolicy`](crate::Error::BadPolicy) for a zero size or a TTL.
    pub fn build(&self, input: &SchemaRef) -> Result<WindowAssembler> {
        let collected = collected(self.value_column.as_deref(), input)?;
        let state = CollectState::new(CollectMode::Window(self.rule), collected);
        let time = TimeMode::event(&self.time_column);
        KeyedAccumulator::new(state, &self.key, &time, self.policies.clone(), input)
    }
}

crate::keyed::keyed_builder!(WindowAccumulator, "window", |s| TimeMode::event(&s.time_column));
