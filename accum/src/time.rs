//! Time as the assembler sees it: plain milliseconds, passed in by the caller.
//!
//! The accumulator never reads a clock. In processing-time mode the engine
//! passes `now` with every call; in event-time mode the time of each fragment
//! comes from a column of the batch: `Int64` is read as milliseconds since the
//! epoch, an Arrow `Timestamp` of any unit is converted to milliseconds
//! (rounding towards negative infinity for micro- and nanoseconds, saturating
//! for seconds).

use std::time::Duration;

use arrow_array::{cast::AsArray, types::*, Array, ArrayRef};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, TimeUnit};

use crate::error::{Error, Result};

/// Time in milliseconds (since the epoch for event time; any monotonic origin
/// for processing time).
pub type Millis = i64;

/// Where the time of a fragment comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TimeMode {
    /// The `now` passed to [`push`](crate::VarSetAssembler::push) and
    /// [`advance`](crate::VarSetAssembler::advance) (the default).
    #[default]
    Processing,
    /// Each fragment's time is read from `column` (`Int64` milliseconds since
    /// the epoch, or an Arrow `Timestamp` of any unit). The watermark is the
    /// largest event time seen so far.
    Event {
        /// The event-time column.
        column: String,
    },
}

impl TimeMode {
    /// Event time read from `column`.
    pub fn event(column: impl Into<String>) -> Self {
        TimeMode::Event { column: column.into() }
    }
}

/// Converts a duration to milliseconds, saturating at [`Millis::MAX`].
pub(crate) fn duration_millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// What an event-time column must be, for error messages.
pub(crate) const TIME_TYPES: &str = "Int64 (milliseconds since the epoch) or Timestamp (any unit)";

/// Whether `data_type` can be an event-time column.
pub(crate) fn is_time_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Int64 | DataType::Timestamp(_, _))
}

/// The time of every row of one batch.
pub(crate) trait TimeSource {
    /// The row's time in milliseconds, or `None` when it has none (a null in
    /// the event-time column).
    fn time(&self, row: usize) -> Option<Millis>;
}

/// Processing time: every row of the batch happens at `now`.
pub(crate) struct ConstTime(pub(crate) Millis);

impl TimeSource for ConstTime {
    #[inline(always)]
    fn time(&self, _row: usize) -> Option<Millis> {
        Some(self.0)
    }
}

/// Event times of one batch, already in milliseconds.
pub(crate) struct EventTimes {
    millis: ScalarBuffer<i64>,
    nulls: Option<NullBuffer>,
}

impl TimeSource for EventTimes {
    #[inline(always)]
    fn time(&self, row: usize) -> Option<Millis> {
        match &self.nulls {
            Some(n) if n.is_null(row) => None,
            _ => Some(self.millis[row]),
        }
    }
}

impl EventTimes {
    /// Reads an `Int64` or `Timestamp` column. Milliseconds are used without
    /// copying; other units are converted into a new buffer.
    pub(crate) fn from_column(column: &ArrayRef) -> Result<Self> {
        let nulls = column.logical_nulls();
        let millis = match column.data_type() {
            DataType::Int64 => column.as_primitive::<Int64Type>().values().clone(),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                column.as_primitive::<TimestampMillisecondType>().values().clone()
            }
            DataType::Timestamp(TimeUnit::Second, _) => {
                convert(column.as_primitive::<TimestampSecondType>().values(), |s| s.saturating_mul(1_000))
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                convert(column.as_primitive::<TimestampMicrosecondType>().values(), |us| us.div_euclid(1_000))
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                convert(column.as_primitive::<TimestampNanosecondType>().values(), |ns| {
                    ns.div_euclid(1_000_000)
                })
            }
            other => {
                return Err(Error::Internal(format!("event-time column of type {other} passed validation")))
            }
        };
        Ok(EventTimes { millis, nulls })
    }
}

/// The latest event time in `column` (an `Int64` of milliseconds or an Arrow
/// `Timestamp` of any unit), in milliseconds; `None` when every value is
/// null or the column is empty. An engine that splits a batch over several
/// accumulator instances passes this on, so each instance's watermark
/// follows the whole input and not just its share of it.
pub fn max_event_time(column: &ArrayRef) -> Result<Option<Millis>> {
    if !is_time_type(column.data_type()) {
        return Err(Error::Internal(format!(
            "event-time column of type {} passed validation",
            column.data_type()
        )));
    }
    let times = EventTimes::from_column(column)?;
    Ok((0..column.len()).filter_map(|row| times.time(row)).max())
}

fn convert(values: &ScalarBuffer<i64>, f: impl Fn(i64) -> i64) -> ScalarBuffer<i64> {
    values.iter().map(|&v| f(v)).collect::<Vec<_>>().into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        Int64Array, TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray,
    };

    use super::*;

    fn times(column: ArrayRef) -> Vec<Option<Millis>> {
        let t = EventTimes::from_column(&column).unwrap();
        (0..column.len()).map(|i| t.time(i)).collect()
    }

    #[test]
    fn max_event_time_skips_nulls_and_converts_units() {
        let c: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None, Some(9)]));
        assert_eq!(max_event_time(&c).unwrap(), Some(9));
        let c: ArrayRef = Arc::new(TimestampSecondArray::from(vec![2, 1]));
        assert_eq!(max_event_time(&c).unwrap(), Some(2_000));
        let c: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>]));
        assert_eq!(max_event_time(&c).unwrap(), None);
    }

    #[test]
    fn int64_is_read_as_milliseconds_and_nulls_have_no_time() {
        let col: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None, Some(-3)]));
        assert_eq!(times(col), vec![Some(5), None, Some(-3)]);
    }

    #[test]
    fn timestamps_of_every_unit_become_milliseconds() {
        let s: ArrayRef = Arc::new(TimestampSecondArray::from(vec![2, i64::MAX]).with_timezone("UTC"));
        assert_eq!(times(s), vec![Some(2_000), Some(i64::MAX)]);
        let us: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_999, -1]));
        assert_eq!(times(us), vec![Some(1), Some(-1)]);
        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![3_000_000, 2_999_999]));
        assert_eq!(times(ns), vec![Some(3), Some(2)]);
    }

    #[test]
    fn durations_saturate() {
        assert_eq!(duration_millis(Duration::from_secs(2)), 2_000);
        assert_eq!(duration_millis(Duration::MAX), Millis::MAX);
    }
}
