//! Closed generations of the current call, staged and turned into one
//! output batch.
//!
//! When a generation closes, the driver records a [`StagedRow`] and the
//! accumulator moves the slot's state into its own staging area, so the same
//! key can open a new generation later in the same batch. The key stays
//! interned until the call ends (slots are freed only after the output is
//! built), so a staged row finds its key through its slot.

use std::sync::Arc;

use arrow_array::{
    builder::StringBuilder, ArrayRef, BooleanArray, Float64Array, ListArray, RecordBatch, StringArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;

use super::{rejects::ERROR_COLUMN, Accumulator, EmitReason, Fill};
use crate::{
    columns::missing_item_field,
    error::{Error, Result},
    keys::KeyTable,
    time::Millis,
};

/// One closed generation waiting for the output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StagedRow {
    pub(crate) slot: u32,
    pub(crate) arrival: u64,
    pub(crate) deadline: Millis,
    pub(crate) fill: Fill,
    pub(crate) reason: EmitReason,
    /// Goes to the dead-letter output (a TTL expiry with partial flush off).
    pub(crate) dead: bool,
    /// Closed by its deadline or window end (by a fragment past it or by the
    /// watermark), not by its own content.
    pub(crate) by_deadline: bool,
    /// Was spilled out of memory at least once (`acc_spilled`).
    pub(crate) spilled: bool,
}

impl StagedRow {
    /// The position of this row in the output (smaller first); `index` is
    /// its staging position, which breaks every remaining tie.
    fn order_key(&self, index: usize) -> (u8, Millis, u64, usize) {
        match self.reason {
            EmitReason::EndOfInput => (2, 0, self.arrival, index),
            _ if self.by_deadline => (1, self.deadline, self.arrival, index),
            _ => (0, 0, 0, index),
        }
    }
}

/// The output of one call: rows for the output and for the dead-letter output.
pub(crate) struct Built {
    pub(crate) rows: Option<RecordBatch>,
    pub(crate) dead: Option<RecordBatch>,
}

/// Builds the output of `rows` (staged in this order by `acc`).
pub(crate) fn build<A: Accumulator>(
    rows: &[StagedRow],
    schema: &SchemaRef,
    dead_schema: &SchemaRef,
    keys: &KeyTable,
    acc: &mut A,
) -> Result<Built> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_unstable_by_key(|&i| rows[i].order_key(i));
    let dead = rows.iter().filter(|r| r.dead).count();
    let (live, dead_order): (Vec<usize>, Vec<usize>) =
        if dead == 0 { (order, Vec::new()) } else { order.into_iter().partition(|&i| !rows[i].dead) };
    let built = |order: &[usize], acc: &mut A| -> Result<Vec<ArrayRef>> {
        let slots: Vec<u32> = order.iter().map(|&i| rows[i].slot).collect();
        let mut columns = keys.key_columns(&slots)?;
        acc.build(order, &mut columns)?;
        columns.push(Arc::new(Float64Array::from_iter_values(order.iter().map(|&i| rows[i].fill.ratio()))));
        columns.push(missing_vars(rows, order, acc)?);
        columns.push(Arc::new(BooleanArray::from_iter(order.iter().map(|&i| Some(rows[i].spilled)))));
        columns.push(Arc::new(StringArray::from_iter_values(order.iter().map(|&i| rows[i].reason.as_str()))));
        Ok(columns)
    };
    let out = if live.is_empty() {
        None
    } else {
        let columns = built(&live, acc)?;
        Some(
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(Error::arrow("assembling the output batch"))?,
        )
    };
    let dead = if dead_order.is_empty() {
        None
    } else {
        let mut columns = built(&dead_order, acc)?;
        let why = "ttl: the generation expired incomplete and partial_flush is off";
        columns.push(Arc::new(StringArray::from_iter_values(dead_order.iter().map(|_| why))));
        debug_assert_eq!(dead_schema.field(dead_schema.fields().len() - 1).name(), ERROR_COLUMN);
        Some(
            RecordBatch::try_new(dead_schema.clone(), columns)
                .map_err(Error::arrow("assembling the dead-letter batch"))?,
        )
    };
    Ok(Built { rows: out, dead })
}

/// `acc_missing_vars`: what each row misses, as the accumulator names it.
fn missing_vars<A: Accumulator>(rows: &[StagedRow], order: &[usize], acc: &A) -> Result<ArrayRef> {
    let mut names = StringBuilder::new();
    let mut offsets = Vec::with_capacity(order.len() + 1);
    let mut count = 0usize;
    offsets.push(0i32);
    for &i in order {
        if rows[i].fill.present < rows[i].fill.required {
            acc.missing(i, &mut |name| {
                names.append_value(name);
                count += 1;
            });
        }
        offsets.push(
            i32::try_from(count).map_err(|_| {
                Error::Internal("more than i32::MAX missing variable names in one batch".into())
            })?,
        );
    }
    let list = ListArray::try_new(
        missing_item_field(),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(names.finish()),
        None,
    )
    .map_err(Error::arrow("building acc_missing_vars"))?;
    Ok(Arc::new(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(reason: EmitReason, deadline: Millis, arrival: u64) -> StagedRow {
        let by_deadline = matches!(reason, EmitReason::Ttl | EmitReason::MaxLatency);
        StagedRow {
            slot: 0,
            arrival,
            deadline,
            fill: Fill::default(),
            reason,
            dead: false,
            by_deadline,
            spilled: false,
        }
    }

    #[test]
    fn closings_by_rows_come_first_then_deadlines_then_end_of_input() {
        let rows = [
            row(EmitReason::Ttl, 20, 1),
            row(EmitReason::Complete, 0, 9),
            row(EmitReason::EndOfInput, 0, 0),
            row(EmitReason::MaxLatency, 10, 5),
            row(EmitReason::Evicted, 0, 3),
            row(EmitReason::Ttl, 10, 2),
        ];
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i].order_key(i));
        assert_eq!(order, [1, 4, 5, 3, 0, 2]);
    }
}
