//! What a text source does with a row it cannot read: the `on_bad_row`
//! policy, its counters, and the dead-letter batch.
//!
//! A *bad row* is a CSV record with the wrong number of fields, a JSON line
//! that is not one JSON object, or a value that does not parse as its
//! column's type. Under [`OnBadRow::Fail`] the first one ends the read with
//! [`Error::BadInput`](crate::Error::BadInput); under
//! [`OnBadRow::Skip`] it is dropped and counted; under
//! [`OnBadRow::DeadLetter`] it is counted and kept, with its error, for
//! [`BatchSource::take_dead_letters`](super::BatchSource::take_dead_letters).
//!
//! # Finding the bad rows in a batch
//!
//! The Arrow decoders reject a whole batch for one bad value. The lenient
//! readers therefore split the input into records themselves, decode a
//! batch's records in one go and, only when that fails, decode the two
//! halves again, recursively, until each bad record is alone (see
//! [`decode_isolating`]). A clean batch costs one decode; a batch with `k`
//! bad rows among `n` costs about `log2(n)` decodes of its rows at worst,
//! far fewer when the bad rows cluster.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

/// The dead-letter column holding the bad row's original text.
pub const RAW_COLUMN: &str = "_raw";
/// The dead-letter column holding the error, with the file and line.
pub const ERROR_COLUMN: &str = "_error";
/// The dead-letter column naming the stage that set the row aside (empty
/// if the source was not told its stage).
pub const STAGE_COLUMN: &str = "_stage";

/// What a CSV or JSON lines source does with a row it cannot read
/// (spec key `on_bad_row`).
///
/// ```
/// use garner_columnar::source::OnBadRow;
/// assert_eq!("dead_letter".parse::<OnBadRow>().unwrap(), OnBadRow::DeadLetter);
/// assert_eq!(OnBadRow::default(), OnBadRow::Fail);
/// assert!("ignore".parse::<OnBadRow>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnBadRow {
    /// The read fails at the first bad row, naming its line (the default).
    #[default]
    Fail,
    /// Bad rows are dropped and counted in [`BadRowStats::skipped`].
    Skip,
    /// Bad rows are counted in [`BadRowStats::dead_lettered`] and handed
    /// out by `take_dead_letters` as rows of [`dead_letter_schema`].
    DeadLetter,
}

impl OnBadRow {
    /// All policies, for help texts.
    pub const ALL: [OnBadRow; 3] = [OnBadRow::Fail, OnBadRow::Skip, OnBadRow::DeadLetter];

    /// The name used in specs: `fail`, `skip`, `dead_letter`.
    pub fn name(self) -> &'static str {
        match self {
            OnBadRow::Fail => "fail",
            OnBadRow::Skip => "skip",
            OnBadRow::DeadLetter => "dead_letter",
        }
    }
}

impl std::fmt::Display for OnBadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown `on_bad_row` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown on_bad_row {0:?}: expected fail, skip or dead_letter")]
pub struct UnknownOnBadRow(pub String);

impl FromStr for OnBadRow {
    type Err = UnknownOnBadRow;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OnBadRow::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| UnknownOnBadRow(s.to_owned()))
    }
}

/// How many bad rows a source has set aside so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BadRowStats {
    /// Rows dropped under [`OnBadRow::Skip`].
    pub skipped: u64,
    /// Rows set aside under [`OnBadRow::DeadLetter`] (taken or not yet).
    pub dead_lettered: u64,
}

/// The schema of a source's dead-letter batches: `_raw`, `_error`,
/// `_stage`, all non-null Utf8.
///
/// ```
/// use garner_columnar::source::dead_letter_schema;
/// let names: Vec<_> = dead_letter_schema().fields().iter().map(|f| f.name().clone()).collect();
/// assert_eq!(names, ["_raw", "_error", "_stage"]);
/// ```
pub fn dead_letter_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new(RAW_COLUMN, DataType::Utf8, false),
            Field::new(ERROR_COLUMN, DataType::Utf8, false),
            Field::new(STAGE_COLUMN, DataType::Utf8, false),
        ]))
    }))
}

/// A source's bad-row bookkeeping: the policy, the counters, and the rows
/// set aside and not yet taken.
#[derive(Debug)]
pub(crate) struct BadRows {
    policy: OnBadRow,
    stage: String,
    stats: BadRowStats,
    raw: StringBuilder,
    error: StringBuilder,
    pending: usize,
}

impl BadRows {
    pub(crate) fn new(policy: OnBadRow, stage: String) -> Self {
        BadRows {
            policy,
            stage,
            stats: BadRowStats::default(),
            raw: StringBuilder::new(),
            error: StringBuilder::new(),
            pending: 0,
        }
    }

    pub(crate) fn stats(&self) -> BadRowStats {
        self.stats
    }

    /// Handles one bad row under a lenient policy: `raw` is its original
    /// text, `error` the full message (file, line, what is wrong).
    pub(crate) fn push(&mut self, raw: &[u8], error: String) {
        match self.policy {
            OnBadRow::Skip => self.stats.skipped += 1,
            OnBadRow::DeadLetter => {
                self.stats.dead_lettered += 1;
                self.raw.append_value(String::from_utf8_lossy(trim_terminator(raw)));
                self.error.append_value(error);
                self.pending += 1;
            }
            OnBadRow::Fail => unreachable!("a failing source returns the error instead"),
        }
    }

    /// The rows set aside since the last call, as one batch of
    /// [`dead_letter_schema`]; `None` if there are none.
    pub(crate) fn take(&mut self) -> Option<RecordBatch> {
        if self.pending == 0 {
            return None;
        }
        let stage: ArrayRef = Arc::new(StringArray::from(vec![self.stage.as_str(); self.pending]));
        self.pending = 0;
        let columns: Vec<ArrayRef> = vec![Arc::new(self.raw.finish()), Arc::new(self.error.finish()), stage];
        Some(
            RecordBatch::try_new(dead_letter_schema(), columns)
                .expect("three non-null Utf8 columns of one length"),
        )
    }
}

/// A record without its line terminator, nor the blank lines before it.
pub(crate) fn trim_terminator(raw: &[u8]) -> &[u8] {
    let newline = |b: &u8| *b == b'\n' || *b == b'\r';
    let start = raw.iter().position(|b| !newline(b)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !newline(b)).map_or(start, |i| i + 1);
    &raw[start..end]
}

/// Decodes `items` with `decode`; when that fails, decodes the two halves,
/// recursively, so that each item that cannot be decoded is reported alone
/// to `bad` with its error, and every other item ends up in one of the
/// returned batches, in input order.
///
/// `decode` must be all-or-nothing for the items it is given, and must
/// return exactly one row per item (a mismatch is an error of its own, so
/// the caller can return `Err` for it).
pub(crate) fn decode_isolating<T>(
    items: &[T],
    decode: &mut impl FnMut(&[T]) -> Result<RecordBatch, ArrowError>,
    bad: &mut impl FnMut(&T, ArrowError),
    out: &mut Vec<RecordBatch>,
) {
    if items.is_empty() {
        return;
    }
    match decode(items) {
        Ok(batch) => out.push(batch),
        Err(e) if items.len() == 1 => bad(&items[0], e),
        Err(_) => {
            let (left, right) = items.split_at(items.len() / 2);
            decode_isolating(left, decode, bad, out);
            decode_isolating(right, decode, bad, out);
        }
    }
}

/// The good batches [`decode_isolating`] returned, as one (`None` when
/// there are none); `context` names the file for an Arrow error.
pub(crate) fn join_good(
    schema: &SchemaRef,
    mut good: Vec<RecordBatch>,
    context: impl FnOnce() -> String,
) -> crate::Result<Option<RecordBatch>> {
    match good.len() {
        0 => Ok(None),
        1 => Ok(good.pop()),
        _ => arrow_select::concat::concat_batches(schema, &good)
            .map(Some)
            .map_err(|e| crate::Error::arrow(context(), e)),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::Int64Array;

    use super::*;

    #[test]
    fn names_round_trip() {
        for p in OnBadRow::ALL {
            assert_eq!(p.name().parse::<OnBadRow>().unwrap(), p);
        }
        let e = "drop".parse::<OnBadRow>().unwrap_err().to_string();
        assert_eq!(e, "unknown on_bad_row \"drop\": expected fail, skip or dead_letter");
    }

    #[test]
    fn dead_letters_are_taken_once_with_the_stage_named() {
        let mut bad = BadRows::new(OnBadRow::DeadLetter, "read".into());
        assert!(bad.take().is_none());
        bad.push(b"1,x\r\n", "line 3: bad".into());
        bad.push(b"2\n", "line 4: short".into());
        let batch = bad.take().unwrap();
        assert_eq!(batch.schema(), dead_letter_schema());
        let text =
            |i: usize| batch.column(i).as_string::<i32>().iter().map(Option::unwrap).collect::<Vec<_>>();
        assert_eq!(text(0), ["1,x", "2"]);
        assert_eq!(text(1), ["line 3: bad", "line 4: short"]);
        assert_eq!(text(2), ["read", "read"]);
        assert!(bad.take().is_none(), "taken once");
        assert_eq!(bad.stats(), BadRowStats { skipped: 0, dead_lettered: 2 });
    }

    #[test]
    fn skipped_rows_are_counted_not_kept() {
        let mut bad = BadRows::new(OnBadRow::Skip, String::new());
        bad.push(b"x", "e".into());
        assert!(bad.take().is_none());
        assert_eq!(bad.stats(), BadRowStats { skipped: 1, dead_lettered: 0 });
    }

    #[test]
    fn bisection_isolates_every_bad_item_and_keeps_the_order_of_the_rest() {
        // Items are numbers; the "decoder" rejects any slice holding a multiple of 7.
        let items: Vec<i64> = (1..=50).collect();
        let mut decodes = 0;
        let mut decode = |xs: &[i64]| {
            decodes += 1;
            match xs.iter().find(|x| *x % 7 == 0) {
                Some(x) => Err(ArrowError::ParseError(format!("{x} is bad"))),
                None => {
                    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
                    Ok(RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(xs.to_vec()))]).unwrap())
                }
            }
        };
        let mut rejected = Vec::new();
        let mut out = Vec::new();
        decode_isolating(&items, &mut decode, &mut |x, e| rejected.push((*x, e.to_string())), &mut out);
        assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [7, 14, 21, 28, 35, 42, 49]);
        assert!(rejected[0].1.contains("7 is bad"));
        let good: Vec<i64> = out
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<arrow_array::types::Int64Type>().values().to_vec())
            .collect();
        assert_eq!(good, items.iter().copied().filter(|x| x % 7 != 0).collect::<Vec<_>>());
        assert!(decodes < 100, "{decodes} decodes for 50 items");
    }
}
