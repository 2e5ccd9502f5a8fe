//! [`VarSetState`]: the VarSet's per-slot state, run by a
//! [`KeyedAccumulator`](crate::KeyedAccumulator).
//!
//! Struct-of-arrays: `values[slot * vars + var]` ([`ValueRef`]s into one
//! [`ByteArena`]) and the presence sets ([`Presence`]). A closed
//! generation's value references move to `staged` (`vars` per staged row),
//! so the slot can open a new generation at once; the output columns of
//! all staged rows are built together, one column per variable.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, FieldRef};
use std::sync::Arc;

use super::{
    config::RepeatPolicy,
    plan::VarPlan,
    presence::Presence,
    vars::{VarLookup, UNKNOWN_VAR},
};
use crate::{
    arena::{ByteArena, ValueRef},
    error::{Error, Result},
    keyed::{Accumulator, Fill, Generation, Update},
    spill_codec,
    values::{build_column, ColumnValues},
    AccumStats,
};

/// The per-slot state of the [`VarSet`](crate::VarSet) assembler.
#[derive(Debug)]
pub struct VarSetState {
    plan: VarPlan,
    lookup: VarLookup,
    vars: usize,
    values: Vec<ValueRef>,
    presence: Presence,
    arena: ByteArena,
    staged: Vec<ValueRef>,
    column: Vec<ValueRef>,
    duplicates: u64,
}

/// One batch's var indices and values.
pub struct VarInput {
    var_idx: Vec<u32>,
    values: ColumnValues,
}

impl VarSetState {
    pub(crate) fn new(plan: VarPlan) -> Self {
        let vars = plan.vars.len();
        VarSetState {
            lookup: VarLookup::new(&plan.vars),
            vars,
            values: Vec::new(),
            presence: Presence::new(vars),
            arena: ByteArena::default(),
            staged: Vec::new(),
            column: Vec::new(),
            duplicates: 0,
            plan,
        }
    }

    /// Copies a value into the arena (a null value becomes [`ValueRef::NULL`]).
    #[inline]
    fn store(&mut self, value: Option<&[u8]>) -> Result<ValueRef> {
        let Some(bytes) = value else { return Ok(ValueRef::NULL) };
        if let Some(r) = self.arena.try_push(bytes) {
            return Ok(r);
        }
        if self.arena.has_garbage() {
            self.compact();
            if let Some(r) = self.arena.try_push(bytes) {
                return Ok(r);
            }
        }
        Err(Error::StateTooLarge { what: "the value arena", limit: u64::from(u32::MAX) })
    }

    /// Moves live values (held and staged) into a fresh arena.
    fn compact(&mut self) {
        self.arena.compact(self.values.iter_mut().chain(self.staged.iter_mut()));
    }
}

impl Accumulator for VarSetState {
    type Input<'a> = VarInput;

    fn fields(&self) -> Vec<FieldRef> {
        let t = &self.plan.value_type;
        self.plan.vars.iter().map(|v| Arc::new(Field::new(v, t.clone(), true))).collect()
    }

    fn bind(&mut self, batch: &RecordBatch) -> Result<VarInput> {
        let var_column = self.plan.var.resolve(batch)?;
        let value_column = self.plan.value.resolve(batch)?;
        let values = ColumnValues::new(value_column, self.plan.value_kind, &self.plan.value_type)?;
        let mut var_idx = Vec::with_capacity(batch.num_rows());
        self.lookup.map_column(var_column, &mut var_idx)?;
        Ok(VarInput { var_idx, values })
    }

    #[inline(always)]
    fn accepts(&self, input: &VarInput, row: usize) -> bool {
        input.var_idx[row] != UNKNOWN_VAR
    }

    fn reserve(&mut self, slots: usize) {
        if slots * self.vars > self.values.len() {
            self.values.resize(slots * self.vars, ValueRef::ABSENT);
            self.presence.grow(slots);
        }
    }

    #[inline(always)]
    fn prefetch(&self, slot: u32) {
        self.presence.prefetch(slot);
        crate::prefetch::prefetch(&self.values, slot as usize * self.vars);
    }

    #[inline(always)]
    fn update(&mut self, slot: u32, input: &VarInput, row: usize) -> Result<Update> {
        let var = input.var_idx[row];
        let value = input.values.get(row);
        let bytes = value.map_or(0, |v| v.len() as u64);
        let at = slot as usize * self.vars + var as usize;
        if self.presence.insert(slot, var) {
            self.values[at] = self.store(value)?;
            Ok(Update { bytes, complete: self.presence.is_full(slot) })
        } else {
            self.duplicates += 1;
            if self.plan.repeat == RepeatPolicy::KeepLast {
                let new = self.store(value)?;
                let old = std::mem::replace(&mut self.values[at], new);
                self.arena.release(old);
            }
            Ok(Update { bytes, complete: false })
        }
    }

    fn fill(&self, slot: u32) -> Fill {
        Fill { present: self.presence.count(slot), required: self.vars as u32 }
    }

    fn has_part(&self, slot: u32, part: usize) -> bool {
        self.presence.contains(slot, part as u32)
    }

    fn part_names(&self) -> &[String] {
        &self.plan.vars
    }

    #[inline]
    fn stage(&mut self, slot: u32, _generation: &Generation) {
        let s = slot as usize;
        let held = &mut self.values[s * self.vars..(s + 1) * self.vars];
        self.staged.extend_from_slice(held);
        held.fill(ValueRef::ABSENT);
        self.presence.clear(slot);
    }

    fn build(&mut self, order: &[usize], columns: &mut Vec<ArrayRef>) -> Result<()> {
        let n = self.vars;
        for var in 0..n {
            self.column.clear();
            self.column.extend(order.iter().map(|&i| self.staged[i * n + var]));
            columns.push(build_column(
                self.plan.value_kind,
                &self.plan.value_type,
                &self.arena,
                &self.column,
            )?);
        }
        Ok(())
    }

    fn missing(&self, staged: usize, name: &mut dyn FnMut(&str)) {
        let values = &self.staged[staged * self.vars..(staged + 1) * self.vars];
        for &var in &self.plan.missing_order {
            if values[var as usize].is_absent() {
                name(&self.plan.vars[var as usize]);
            }
        }
    }

    fn release_staged(&mut self) {
        for &r in &self.staged {
            self.arena.release(r);
        }
        self.staged.clear();
    }

    fn reset(&mut self) {
        self.values.clear();
        self.presence.reset();
        self.arena.clear();
    }

    fn bytes_held(&self) -> usize {
        self.arena.capacity_bytes()
            + (self.values.capacity() + self.staged.capacity() + self.column.capacity()) * 8
            + self.presence.bytes_held()
    }

    fn live_bytes(&self) -> usize {
        self.arena.capacity_bytes()
    }

    fn maintain(&mut self) {
        if self.arena.wants_compaction() {
            self.compact();
        }
    }

    fn spill(&mut self, slot: u32, out: &mut Vec<u8>) -> Result<bool> {
        let s = slot as usize;
        for at in s * self.vars..(s + 1) * self.vars {
            let r = self.values[at];
            let value = if r.is_absent() {
                None
            } else if r.is_stored() {
                Some(Some(self.arena.get(r)))
            } else {
                Some(None)
            };
            spill_codec::put_value(out, value);
            self.arena.release(r);
            self.values[at] = ValueRef::ABSENT;
        }
        self.presence.clear(slot);
        Ok(true)
    }

    fn restore(&mut self, slot: u32, bytes: &[u8]) -> Result<()> {
        let s = slot as usize;
        let mut r = spill_codec::Reader::new(bytes);
        let mut restored = Vec::with_capacity(self.vars);
        for _ in 0..self.vars {
            restored.push(r.value()?);
        }
        r.finish()?;
        for (var, value) in restored.into_iter().enumerate() {
            if let Some(value) = value {
                self.presence.insert(slot, var as u32);
                self.values[s * self.vars + var] = self.store(value)?;
            }
        }
        Ok(())
    }

    fn add_stats(&self, stats: &mut AccumStats) {
        stats.duplicate_fragments += self.duplicates;
    }
}
