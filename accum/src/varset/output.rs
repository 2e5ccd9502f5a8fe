//! Emitted generations, staged and turned into one output batch per call.
//!
//! When a generation closes (complete, expired, flushed), the assembler moves
//! its value references into the [`Staging`] area and empties the slot at
//! once, so the same key can open a new generation later in the same batch.
//! The key stays interned until the call ends (slots are only freed after the
//! output is built), so a staged row finds its key through its slot. At the
//! end of the call [`Staging::build`] orders the rows (completions first, in
//! completion order; then deadline closures by deadline and arrival; then
//! end-of-input flushes by arrival), builds every output column for all rows
//! at once, and [`Staging::release`] returns the value bytes to the arena.

use std::sync::Arc;

use arrow_array::{
    builder::StringBuilder, ArrayRef, BooleanArray, Float64Array, ListArray, RecordBatch, StringArray,
};
use arrow_buffer::{BooleanBuffer, OffsetBuffer, ScalarBuffer};

use super::{
    arena::{ByteArena, ValueRef},
    config::EmitReason,
    keys::KeyTable,
    plan::{missing_item_field, Plan},
    values::build_column,
};
use crate::{
    error::{Error, Result},
    time::Millis,
};

/// One closed generation waiting for the output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StagedRow {
    pub(crate) slot: u32,
    pub(crate) arrival: u64,
    pub(crate) deadline: Millis,
    pub(crate) present: u32,
    pub(crate) reason: EmitReason,
}

impl StagedRow {
    /// The position of this row in the output (smaller first); `index` is
    /// its staging position, which breaks every remaining tie.
    fn order_key(&self, index: usize) -> (u8, Millis, u64, usize) {
        match self.reason {
            EmitReason::Complete => (0, 0, 0, index),
            EmitReason::Ttl | EmitReason::MaxLatency => (1, self.deadline, self.arrival, index),
            EmitReason::EndOfInput => (2, 0, self.arrival, index),
        }
    }
}

/// Closed generations of the current call: rows, and `vars` value references
/// per row.
#[derive(Debug)]
pub(crate) struct Staging {
    rows: Vec<StagedRow>,
    values: Vec<ValueRef>,
    vars: usize,
    column: Vec<ValueRef>,
}

impl Staging {
    /// An empty staging area for rows of `vars` variables.
    pub(crate) fn new(vars: usize) -> Self {
        Staging { rows: Vec::new(), values: Vec::new(), vars, column: Vec::new() }
    }

    /// Stages a row, taking its value references (`values` is left absent).
    #[inline]
    pub(crate) fn push(&mut self, row: StagedRow, values: &mut [ValueRef]) {
        self.rows.push(row);
        self.values.extend_from_slice(values);
        values.fill(ValueRef::ABSENT);
    }

    /// Whether nothing is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The staged rows, in staging order.
    pub(crate) fn rows(&self) -> &[StagedRow] {
        &self.rows
    }

    /// The staged value references (live arena references, for compaction).
    pub(crate) fn values_mut(&mut self) -> &mut [ValueRef] {
        &mut self.values
    }

    /// Builds the output batch of the staged rows, in output order.
    pub(crate) fn build(&mut self, plan: &Plan, keys: &KeyTable, arena: &ByteArena) -> Result<RecordBatch> {
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_unstable_by_key(|&i| self.rows[i].order_key(i));
        let n = self.vars;

        let slots: Vec<u32> = order.iter().map(|&i| self.rows[i].slot).collect();
        let mut columns: Vec<ArrayRef> = keys.key_columns(&slots)?;
        for var in 0..n {
            self.column.clear();
            self.column.extend(order.iter().map(|&i| self.values[i * n + var]));
            columns.push(build_column(plan.value_kind, &plan.value_type, arena, &self.column)?);
        }

        let completeness = order.iter().map(|&i| f64::from(self.rows[i].present) / n as f64);
        columns.push(Arc::new(Float64Array::from_iter_values(completeness)));
        columns.push(self.missing_vars(plan, &order)?);
        columns.push(Arc::new(BooleanArray::new(BooleanBuffer::new_unset(order.len()), None)));
        let reasons = order.iter().map(|&i| self.rows[i].reason.as_str());
        columns.push(Arc::new(StringArray::from_iter_values(reasons)));

        RecordBatch::try_new(plan.schema.clone(), columns)
            .map_err(Error::arrow("assembling the output batch"))
    }

    /// `acc_missing_vars`: the absent variables of each row, sorted by name.
    fn missing_vars(&self, plan: &Plan, order: &[usize]) -> Result<ArrayRef> {
        let n = self.vars;
        let mut names = StringBuilder::new();
        let mut offsets = Vec::with_capacity(order.len() + 1);
        let mut count = 0i32;
        offsets.push(0i32);
        for &i in order {
            let values = &self.values[i * n..(i + 1) * n];
            if self.rows[i].present as usize != n {
                for &var in &plan.missing_order {
                    if values[var as usize].is_absent() {
                        names.append_value(&plan.vars[var as usize]);
                        count = count.checked_add(1).ok_or_else(|| {
                            Error::Internal("more than i32::MAX missing variable names in one batch".into())
                        })?;
                    }
                }
            }
            offsets.push(count);
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

    /// Returns the staged values' bytes to the arena and empties the area.
    pub(crate) fn release(&mut self, arena: &mut ByteArena) {
        for &r in &self.values {
            arena.release(r);
        }
        self.values.clear();
        self.rows.clear();
    }

    /// Approximate bytes held.
    pub(crate) fn bytes_held(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<StagedRow>()
            + (self.values.capacity() + self.column.capacity()) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(reason: EmitReason, deadline: Millis, arrival: u64) -> StagedRow {
        StagedRow { slot: 0, arrival, deadline, present: 0, reason }
    }

    #[test]
    fn completions_come_first_then_deadlines_then_end_of_input() {
        let rows = [
            row(EmitReason::Ttl, 20, 1),
            row(EmitReason::Complete, 0, 9),
            row(EmitReason::EndOfInput, 0, 0),
            row(EmitReason::MaxLatency, 10, 5),
            row(EmitReason::Complete, 0, 3),
            row(EmitReason::Ttl, 10, 2),
        ];
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i].order_key(i));
        assert_eq!(order, [1, 4, 5, 3, 0, 2]);
    }
}
