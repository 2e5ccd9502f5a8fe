//! The `VarSet` state machine.
//!
//! # One call, step by step
//!
//! 1. **Resolve.** The batch's key, var, value (and time) columns are found by
//!    name and checked against the types seen at build time. Nothing is
//!    applied when this fails.
//! 2. **Columnar pre-pass.** The var column becomes a `Vec<u32>` of variable
//!    indices ([`VarLookup`]); all keys are extracted and hashed at once
//!    ([`KeyTable::load_batch`]); the value column is wrapped in the reader
//!    its layout needs ([`BatchValues`]); event times are converted to
//!    milliseconds ([`EventTimes`]). Rows with a null key or an unknown
//!    variable are counted and marked skipped; every other row's key is
//!    interned to its slot, giving a `Vec<u32>` of slots.
//! 3. **Row loop.** For each applied row, in order (generic over the value
//!    reader and the time source, so no `dyn` call per row):
//!    a generation past its deadline is closed; a slot without a generation
//!    opens one (arrival number, deadline, heap entry); the variable's
//!    presence bit is set and its value copied into the arena (or the repeat
//!    policy applied); a full presence set closes the generation as
//!    complete. Then the watermark moves to the row's time and every
//!    generation due by it is closed. Closing moves the generation's value
//!    references to the [`Staging`] area and empties the slot.
//! 4. **Output.** The staged rows are built into one batch
//!    ([`Staging::build`]), their value bytes released, and slots left
//!    without a generation freed. The arenas are compacted when garbage
//!    outweighs live bytes.
//!
//! Per-slot state is struct-of-arrays: `arrival[slot]` (the open
//! generation's number, or [`NO_GEN`]), `deadline[slot]`,
//! `values[slot * vars + var]` ([`ValueRef`]s into one [`ByteArena`]) and
//! the presence sets ([`Presence`]).

use arrow_array::RecordBatch;
use arrow_buffer::NullBuffer;
use arrow_schema::SchemaRef;

use super::{
    arena::{ByteArena, ValueRef},
    config::{EmitReason, RepeatPolicy},
    deadlines::{Deadlines, Due},
    keys::KeyTable,
    output::{StagedRow, Staging},
    plan::Plan,
    presence::Presence,
    values::{BatchValues, ValueSource},
    vars::{VarLookup, UNKNOWN_VAR},
};
use crate::{
    error::{Error, Result},
    stats::AccumStats,
    time::{ConstTime, EventTimes, Millis, TimeSource},
};

/// `arrival[slot]` of a slot without an open generation.
const NO_GEN: u64 = u64::MAX;

/// The slot of a skipped row (null key or unknown variable).
const SKIP: u32 = u32::MAX;

/// The running `VarSet` assembler: feed it fragment batches, get assembled
/// rows back. Built by [`VarSet::build`](crate::VarSet::build); see the
/// [module docs](crate::varset) for the semantics.
///
/// It is single-threaded and deterministic: the same calls with the same
/// arguments give the same output. It is `Send`, so an engine can move it to
/// the thread that owns its shard.
#[derive(Debug)]
pub struct VarSetAssembler {
    plan: Plan,
    keys: KeyTable,
    vars: VarLookup,
    state: SlotState,
    /// Per-row variable indices of the current batch.
    var_idx: Vec<u32>,
    /// Per-row slots of the current batch ([`SKIP`] for skipped rows).
    slots: Vec<u32>,
    stats: AccumStats,
}

/// Per-slot state and everything the row loop mutates.
#[derive(Debug)]
struct SlotState {
    vars: usize,
    repeat: RepeatPolicy,
    deadline_after: Option<(Millis, EmitReason)>,
    arrival: Vec<u64>,
    /// Time of the generation's first fragment (its deadline follows).
    first: Vec<Millis>,
    values: Vec<ValueRef>,
    presence: Presence,
    arena: ByteArena,
    deadlines: Deadlines,
    staging: Staging,
    watermark: Millis,
    next_arrival: u64,
    active: u64,
    duplicates: u64,
    /// Emitted generations by completeness, in tenths (see `AccumStats`).
    completeness: [u64; 11],
    /// First fragment to emission, per emitted generation.
    latency: crate::LatencyHistogram,
}

impl VarSetAssembler {
    pub(crate) fn new(plan: Plan) -> Result<Self> {
        let vars = plan.vars.len();
        Ok(VarSetAssembler {
            keys: KeyTable::new(&plan.key_kind)?,
            vars: VarLookup::new(&plan.vars),
            state: SlotState {
                vars,
                repeat: plan.repeat,
                deadline_after: plan.deadline,
                arrival: Vec::new(),
                first: Vec::new(),
                values: Vec::new(),
                presence: Presence::new(vars),
                arena: ByteArena::default(),
                deadlines: Deadlines::default(),
                staging: Staging::new(vars),
                watermark: Millis::MIN,
                next_arrival: 0,
                active: 0,
                duplicates: 0,
                completeness: [0; 11],
                latency: Default::default(),
            },
            var_idx: Vec::new(),
            slots: Vec::new(),
            stats: AccumStats::default(),
            plan,
        })
    }

    /// The schema of every batch this assembler emits.
    pub fn output_schema(&self) -> SchemaRef {
        self.plan.schema.clone()
    }

    /// Applies a batch of fragments; returns the rows emitted because of it
    /// (keys completed by it, keys whose deadline the watermark passed), or
    /// `None` if none. `now` is the processing time (a `now` earlier than one
    /// passed before counts as that one); it is ignored in event-time mode.
    pub fn push(&mut self, batch: &RecordBatch, now: Millis) -> Result<Option<RecordBatch>> {
        let plan = &self.plan;
        let key_columns = plan.keys.iter().map(|k| k.resolve(batch)).collect::<Result<Vec<_>>>()?;
        let var_column = plan.var.resolve(batch)?;
        let value_column = plan.value.resolve(batch)?;
        let times = match &plan.time {
            Some(t) => Some(EventTimes::from_column(t.resolve(batch)?)?),
            None => None,
        };
        let (values, nulls) = BatchValues::new(value_column, plan.value_kind, &plan.value_type)?;
        self.vars.map_column(var_column, &mut self.var_idx)?;
        self.keys.load_batch(&key_columns)?;

        let rows = batch.num_rows();
        self.stats.fragments_in += rows as u64;
        self.slots.clear();
        for row in 0..rows {
            let slot = if self.keys.is_null(row) {
                self.stats.null_key_fragments += 1;
                SKIP
            } else if self.var_idx[row] == UNKNOWN_VAR {
                self.stats.unknown_var_fragments += 1;
                SKIP
            } else {
                self.keys.intern(row)?
            };
            self.slots.push(slot);
        }
        self.state.grow(self.keys.slot_count());

        match times {
            Some(times) => self.dispatch(&values, nulls.as_ref(), &times)?,
            // Processing time never runs backwards: an earlier `now` counts as the latest one.
            None => self.dispatch(&values, nulls.as_ref(), &ConstTime(now.max(self.state.watermark)))?,
        }
        self.emit()
    }

    /// Processing time moved on (engine timer): emits the generations whose
    /// deadline is `<= now`. In event-time mode this is a no-op returning
    /// `None`.
    pub fn advance(&mut self, now: Millis) -> Result<Option<RecordBatch>> {
        if self.plan.time.is_some() {
            return Ok(None);
        }
        self.state.watermark = self.state.watermark.max(now);
        self.state.sweep_if_due();
        self.emit()
    }

    /// Event time: the input as a whole (of which this assembler may see
    /// only a hash shard) has reached `watermark`; generations whose
    /// deadline is before it are emitted. In processing mode a no-op.
    pub fn observe_watermark(&mut self, watermark: Millis) -> Result<Option<RecordBatch>> {
        if self.plan.time.is_none() || watermark <= self.state.watermark {
            return Ok(None);
        }
        self.state.watermark = watermark;
        self.state.sweep_if_due();
        self.emit()
    }

    /// End of input: every held generation is emitted (incomplete ones as
    /// partials with reason `end_of_input`), in arrival order. Afterwards no
    /// key is resident; the assembler can take more input.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let state = &mut self.state;
        let mut open: Vec<(u64, u32)> = state
            .arrival
            .iter()
            .enumerate()
            .filter(|&(_, &a)| a != NO_GEN)
            .map(|(slot, &a)| (a, slot as u32))
            .collect();
        open.sort_unstable();
        state.deadlines.clear();
        for (_, slot) in open {
            let now = state.watermark;
            state.close(slot, EmitReason::EndOfInput, true, now);
        }
        let out = self.take_output()?;
        self.keys.clear();
        self.state.reset();
        Ok(out)
    }

    /// Counters since the assembler was built.
    pub fn stats(&self) -> AccumStats {
        AccumStats {
            active_keys: self.state.active,
            duplicate_fragments: self.state.duplicates,
            completeness: self.state.completeness,
            latency: self.state.latency.clone(),
            bytes_held: self.bytes_held(),
            ..self.stats.clone()
        }
    }

    /// Approximate bytes held by the state (as in [`AccumStats::bytes_held`]),
    /// without building the whole stats.
    pub fn bytes_held(&self) -> u64 {
        (self.keys.bytes_held()
            + self.state.bytes_held()
            + (self.var_idx.capacity() + self.slots.capacity()) * 4) as u64
    }

    /// Key generations currently held.
    pub fn resident_keys(&self) -> usize {
        self.state.active as usize
    }

    /// Runs the row loop with the reader of this batch's value layout.
    fn dispatch<T: TimeSource>(
        &mut self,
        values: &BatchValues,
        nulls: Option<&NullBuffer>,
        times: &T,
    ) -> Result<()> {
        match values {
            BatchValues::Offsets32(v) => self.apply_rows(v, nulls, times),
            BatchValues::Offsets64(v) => self.apply_rows(v, nulls, times),
            BatchValues::Views(v) => self.apply_rows(v, nulls, times),
            BatchValues::Fixed(v) => self.apply_rows(v, nulls, times),
            BatchValues::Bool(v) => self.apply_rows(v, nulls, times),
        }
    }

    /// The row loop (step 3 of the module docs).
    fn apply_rows<V: ValueSource, T: TimeSource>(
        &mut self,
        values: &V,
        nulls: Option<&NullBuffer>,
        times: &T,
    ) -> Result<()> {
        let state = &mut self.state;
        for (row, (&slot, &var)) in self.slots.iter().zip(&self.var_idx).enumerate() {
            if slot == SKIP {
                // An ignored row still says how far event time has come.
                if let Some(time) = times.time(row) {
                    if time > state.watermark {
                        state.watermark = time;
                        state.sweep_if_due();
                    }
                }
                continue;
            }
            let time = times.time(row).unwrap_or(state.watermark);
            let value = match nulls {
                Some(n) if n.is_null(row) => None,
                _ => Some(values.bytes(row)),
            };
            state.apply(slot, var, time, value)?;
            if time > state.watermark {
                state.watermark = time;
            }
            state.sweep_if_due();
        }
        Ok(())
    }

    /// Step 4: builds the output of the staged rows and frees their slots.
    fn emit(&mut self) -> Result<Option<RecordBatch>> {
        let freed: Vec<u32> = self.state.staging.rows().iter().map(|r| r.slot).collect();
        let out = self.take_output()?;
        for slot in freed {
            if self.state.arrival[slot as usize] == NO_GEN && self.keys.in_use(slot) {
                self.keys.free(slot)?;
            }
        }
        self.keys.maybe_compact();
        if self.state.arena.wants_compaction() {
            self.state.compact_values();
        }
        Ok(out)
    }

    /// Builds the staged rows into a batch, counts them and releases them.
    fn take_output(&mut self) -> Result<Option<RecordBatch>> {
        let state = &mut self.state;
        if state.staging.is_empty() {
            return Ok(None);
        }
        let batch = state.staging.build(&self.plan, &self.keys, &state.arena)?;
        for row in state.staging.rows() {
            match row.reason {
                EmitReason::Complete => self.stats.complete += 1,
                _ => self.stats.partial += 1,
            }
        }
        self.stats.rows_out += batch.num_rows() as u64;
        state.staging.release(&mut state.arena);
        Ok(Some(batch))
    }
}

impl SlotState {
    /// Makes room for `slots` slots.
    fn grow(&mut self, slots: usize) {
        if slots > self.arrival.len() {
            self.arrival.resize(slots, NO_GEN);
            self.first.resize(slots, Millis::MAX);
            self.values.resize(slots * self.vars, ValueRef::ABSENT);
            self.presence.grow(slots);
        }
    }

    /// Applies one fragment: `var` of `slot`'s key arrived at `time`.
    #[inline(always)]
    fn apply(&mut self, slot: u32, var: u32, time: Millis, value: Option<&[u8]>) -> Result<()> {
        let s = slot as usize;
        if self.arrival[s] != NO_GEN && time > self.deadline_of(s) {
            self.close(slot, self.deadline_reason(), false, time);
        }
        if self.arrival[s] == NO_GEN {
            self.open(slot, time);
        }
        let at = s * self.vars + var as usize;
        if self.presence.insert(slot, var) {
            self.values[at] = self.store(value)?;
            if self.presence.is_full(slot) {
                self.close(slot, EmitReason::Complete, false, time);
            }
        } else {
            self.duplicates += 1;
            if self.repeat == RepeatPolicy::KeepLast {
                let new = self.store(value)?;
                let old = std::mem::replace(&mut self.values[at], new);
                self.arena.release(old);
            }
        }
        Ok(())
    }

    /// Opens a generation in `slot`, first fragment at `time`.
    #[inline]
    fn open(&mut self, slot: u32, time: Millis) {
        let s = slot as usize;
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.arrival[s] = arrival;
        self.active += 1;
        self.first[s] = time;
        if let Some((after, _)) = self.deadline_after {
            self.deadlines.push(Due { deadline: time.saturating_add(after), arrival, slot });
        }
    }

    /// When `slot`'s generation (opened at `first`) expires.
    #[inline(always)]
    fn deadline_of(&self, s: usize) -> Millis {
        match self.deadline_after {
            Some((after, _)) => self.first[s].saturating_add(after),
            None => Millis::MAX,
        }
    }

    /// Closes `slot`'s generation: stages it and empties the slot.
    /// `popped`: its deadline entry is already off the heap. `now`: the
    /// time of the closing (the fragment, watermark or clock that did it).
    fn close(&mut self, slot: u32, reason: EmitReason, popped: bool, now: Millis) {
        let s = slot as usize;
        let row = StagedRow {
            slot,
            arrival: self.arrival[s],
            deadline: self.deadline_of(s),
            present: self.presence.count(slot),
            reason,
        };
        self.latency.record(now.saturating_sub(self.first[s]));
        self.completeness[(row.present as usize * 10 / self.vars.max(1)).min(10)] += 1;
        self.staging.push(row, &mut self.values[s * self.vars..(s + 1) * self.vars]);
        self.presence.clear(slot);
        self.arrival[s] = NO_GEN;
        self.active -= 1;
        if !popped && self.deadline_after.is_some() {
            let arrival = &self.arrival;
            self.deadlines.forget_one(|d| arrival[d.slot as usize] == d.arrival);
        }
    }

    /// The reason of a deadline closure.
    fn deadline_reason(&self) -> EmitReason {
        self.deadline_after.map_or(EmitReason::Ttl, |(_, r)| r)
    }

    /// Closes every generation whose deadline is before the watermark.
    #[inline(always)]
    fn sweep_if_due(&mut self) {
        if self.deadlines.earliest().is_some_and(|d| d < self.watermark) {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        let reason = self.deadline_reason();
        loop {
            let arrival = &self.arrival;
            match self.deadlines.pop_due(self.watermark, |d| arrival[d.slot as usize] == d.arrival) {
                Some(due) => self.close(due.slot, reason, true, self.watermark),
                None => break,
            }
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
            self.compact_values();
            if let Some(r) = self.arena.try_push(bytes) {
                return Ok(r);
            }
        }
        Err(Error::StateTooLarge { what: "the value arena", limit: u64::from(u32::MAX) })
    }

    /// Moves live values (held and staged) into a fresh arena.
    fn compact_values(&mut self) {
        let staged = self.staging.values_mut();
        self.arena.compact(self.values.iter_mut().chain(staged.iter_mut()));
    }

    /// Drops every slot (after `finish`).
    fn reset(&mut self) {
        self.arrival.clear();
        self.first.clear();
        self.values.clear();
        self.presence.reset();
        self.arena.clear();
        self.deadlines.clear();
        self.active = 0;
    }

    fn bytes_held(&self) -> usize {
        self.arena.capacity_bytes()
            + (self.arrival.capacity() + self.first.capacity() + self.values.capacity()) * 8
            + self.presence.bytes_held()
            + self.deadlines.bytes_held()
            + self.staging.bytes_held()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assembler_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<VarSetAssembler>();
    }
}
