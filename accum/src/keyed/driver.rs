//! [`KeyedAccumulator`]: keys, generations, deadlines, policies and output
//! around an [`Accumulator`].
//!
//! # One call, step by step
//!
//! 1. **Resolve.** The key (and time) columns are found by name and checked
//!    against the types seen at build time; the accumulator binds its own
//!    columns. Nothing is applied when this fails.
//! 2. **Columnar pre-pass.** All keys are extracted and hashed at once
//!    ([`KeyTable::load_batch`]); rows with a null key or not accepted by
//!    the accumulator are counted and marked skipped; every other row's key
//!    is interned to its slot, giving a `Vec<u32>` of slots.
//! 3. **Row loop.** For each row, in order (generic over the accumulator
//!    and the time source: no `dyn` call per row), the steps of the
//!    [module docs](super#semantics).
//! 4. **Output.** The staged rows are built into one batch (and the
//!    dead-letter batch), the accumulator's staged state released, and slots
//!    left without a generation freed.
//!
//! Per-slot driver state is struct-of-arrays: `arrival[slot]` (the open
//! generation's number, or [`NO_GEN`]) and `first[slot]` always; `last`,
//! `items`, `bytes`, the LRU links and the completed-key marks only when a
//! policy needs them, so the common case touches two vectors per row.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use garner_pools::SpillError;

mod partitions;

use super::{
    lru::Lru,
    policy::{AfterComplete, Policies},
    rejects::{with_error_column, Rejection, Rejects},
    spill::{Spill, SpillOptions, IN_MEMORY, RESTORED, SPILLED},
    spill_parts::{self, part_of},
    staging::{build, StagedRow},
    Accumulator, EmitReason, Generation, KeyView, WindowRule,
};
use crate::{
    columns::{output_schema, KeyPlan},
    deadlines::{Deadlines, Due},
    error::{Error, Result},
    keys::{KeyTable, AHEAD},
    prefetch::prefetch,
    stats::AccumStats,
    time::{duration_millis, ConstTime, EventTimes, Millis, TimeMode, TimeSource},
};

/// `arrival[slot]` of a slot without an open generation.
const NO_GEN: u64 = u64::MAX;

/// The slot of a skipped row (null key or not accepted).
const SKIP: u32 = u32::MAX;

/// The slot of a row of a spilled partition (buffered, applied when the
/// partition comes back).
const PENDING: u32 = u32::MAX - 1;

/// Rows the policies sent to the dead-letter output, taken with
/// [`KeyedAccumulator::take_dead_letters`].
#[derive(Debug, Default)]
pub struct DeadLetters {
    /// Rejected input fragments (late, or after their key completed): the
    /// input columns plus `_error`.
    pub fragments: Vec<RecordBatch>,
    /// Generations expired by the TTL while `partial_flush` is off: the
    /// output columns plus `_error`.
    pub partials: Vec<RecordBatch>,
}

impl DeadLetters {
    /// Rows held, of both kinds.
    pub fn rows(&self) -> usize {
        self.fragments.iter().chain(&self.partials).map(RecordBatch::num_rows).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty() && self.partials.is_empty()
    }
}

/// How a generation's deadline follows from its fragments.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// None: generations wait for completeness or the end of input.
    Never,
    /// `first + after`, closing with `reason` (TTL / max latency).
    AfterFirst { after: Millis, reason: EmitReason },
    /// The end of the tumbling window holding `first` (exclusive).
    Tumbling { size: Millis },
    /// `last + gap`.
    Session { gap: Millis },
}

impl Rule {
    fn reason(self) -> EmitReason {
        match self {
            Rule::AfterFirst { reason, .. } => reason,
            _ => EmitReason::Complete,
        }
    }
}

/// Start of the tumbling window holding `t`.
fn window_start(t: Millis, size: Millis) -> Millis {
    t.div_euclid(size).saturating_mul(size)
}

/// A running keyed accumulator: feed it batches, get emitted rows back.
/// Built by an accumulator builder ([`VarSet::build`](crate::VarSet::build),
/// [`CountAccumulator::build`](crate::CountAccumulator::build), ...) or by
/// [`KeyedAccumulator::new`] for your own [`Accumulator`]; see the
/// [module docs](super) for the semantics.
///
/// It is single-threaded and deterministic: the same calls with the same
/// arguments give the same output. It is `Send`, so an engine can move it to
/// the thread that owns its shard.
#[derive(Debug)]
pub struct KeyedAccumulator<A: Accumulator> {
    plan: KeyPlan,
    schema: SchemaRef,
    dead_schema: SchemaRef,
    keys: KeyTable,
    core: Core<A>,
    slots: Vec<u32>,
    rejects: Rejects,
    dead: DeadLetters,
    spill_errors: Vec<Error>,
    stats: AccumStats,
}

/// Per-slot state and everything the row loop mutates.
#[derive(Debug)]
struct Core<A: Accumulator> {
    acc: A,
    policies: Policies,
    rule: Rule,
    lateness: Option<Millis>,
    arrival: Vec<u64>,
    first: Vec<Millis>,
    /// Latest fragment time, per slot (session windows only).
    last: Vec<Millis>,
    /// Fragments and bytes per generation (only with a policy that reads them).
    items: Vec<u64>,
    bytes: Vec<u64>,
    track_sizes: bool,
    lru: Option<Lru>,
    /// Slots holding a completed generation's mark (`AfterComplete::Drop`).
    done: Vec<bool>,
    deadlines: Deadlines,
    /// Spilling, when enabled ([`KeyedAccumulator::with_spill`]).
    spill: Option<Spill>,
    staged: Vec<StagedRow>,
    /// Slots emptied during this call, freed once the output is built.
    released: Vec<u32>,
    watermark: Millis,
    next_arrival: u64,
    active: u64,
    tombstones: u64,
    evicted: u64,
    late: u64,
    dropped_after_complete: u64,
    completeness: [u64; 11],
    latency: crate::LatencyHistogram,
}

impl<A: Accumulator> KeyedAccumulator<A> {
    /// Runs `acc` keyed by the `key` columns of `input`, with time from
    /// `time` and the given policies. Validates the key and time columns
    /// and the policies; errors name the column or the policy.
    pub fn new(
        acc: A,
        key: &[String],
        time: &TimeMode,
        policies: Policies,
        input: &SchemaRef,
    ) -> Result<Self> {
        let plan = KeyPlan::new(key, time, input)?;
        let schema = output_schema(&plan.key_fields, &acc.fields())?;
        let rule = match (acc.window(), policies.deadline()) {
            (Some(_), Some(_)) => {
                return Err(Error::BadPolicy {
                    policy: "partial_flush_after / max_latency",
                    reason: "a window accumulator's generations end with their window".into(),
                })
            }
            (Some(_), None) if plan.time.is_none() => {
                return Err(Error::BadPolicy { policy: "window", reason: "windows need event time".into() })
            }
            (Some(WindowRule::Tumbling { size }), None) if size > 0 => Rule::Tumbling { size },
            (Some(WindowRule::Session { gap }), None) if gap >= 0 => Rule::Session { gap },
            (Some(_), None) => {
                return Err(Error::BadPolicy { policy: "window", reason: "the size must be positive".into() })
            }
            (None, Some((after, reason))) => Rule::AfterFirst { after, reason },
            (None, None) => Rule::Never,
        };
        check_policies(&policies, plan.time.is_some())?;
        if !matches!(rule, Rule::Never | Rule::AfterFirst { .. })
            && policies.after_complete == AfterComplete::Drop
        {
            return Err(Error::BadPolicy {
                policy: "after_complete",
                reason: "a window closes once; `drop` applies to accumulators that complete".into(),
            });
        }
        let rejecting = policies.allowed_lateness.is_some()
            || policies.after_complete == AfterComplete::Drop
            || matches!(rule, Rule::Tumbling { .. });
        if rejecting {
            with_error_column(input)?;
        }
        let dead_schema = with_error_column(&schema)?;
        let keys = KeyTable::new(&plan.key_kind)?;
        Ok(KeyedAccumulator {
            core: Core {
                track_sizes: policies.max_items.is_some()
                    || policies.max_bytes.is_some()
                    || policies.complete_when.is_some(),
                lru: policies.max_keys.map(|_| Lru::new()),
                lateness: policies.allowed_lateness.map(duration_millis),
                acc,
                policies,
                rule,
                arrival: Vec::new(),
                first: Vec::new(),
                last: Vec::new(),
                items: Vec::new(),
                bytes: Vec::new(),
                done: Vec::new(),
                deadlines: Deadlines::default(),
                spill: None,
                staged: Vec::new(),
                released: Vec::new(),
                watermark: Millis::MIN,
                next_arrival: 0,
                active: 0,
                tombstones: 0,
                evicted: 0,
                late: 0,
                dropped_after_complete: 0,
                completeness: [0; 11],
                latency: Default::default(),
            },
            plan,
            schema,
            dead_schema,
            keys,
            slots: Vec::new(),
            rejects: Rejects::default(),
            dead: DeadLetters::default(),
            spill_errors: Vec::new(),
            stats: AccumStats::default(),
        })
    }

    /// The schema of every batch this accumulator emits: key columns, the
    /// accumulator's columns, `acc_completeness`, `acc_missing_vars`,
    /// `acc_spilled`, `acc_reason`.
    pub fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Spills generations out of memory when the state passes
    /// `options.limit_bytes` (see [`SpillOptions`]). Errors when the store
    /// cannot be set up or the options cannot work.
    pub fn with_spill(mut self, options: SpillOptions) -> Result<Self> {
        self.enable_spill(options)?;
        Ok(self)
    }

    /// As [`with_spill`](Self::with_spill), in place (spilled generations
    /// of an earlier setting are kept).
    pub fn enable_spill(&mut self, options: SpillOptions) -> Result<()> {
        match &mut self.core.spill {
            Some(spill) => spill.options = options,
            None => {
                let mut spill = Spill::new(options, self.core.lru.is_none())?;
                spill.state.resize(self.core.arrival.len(), IN_MEMORY);
                self.core.spill = Some(spill);
            }
        }
        Ok(())
    }

    /// Spills generations until the state holds at most `target_bytes`
    /// (or nothing more can go), whatever the configured limit: what an
    /// engine calls when the run's memory budget says no. Returns the rows
    /// this emitted (generations the store had no room for leave as
    /// partials). Spilling must be enabled.
    pub fn spill_to(&mut self, target_bytes: u64) -> Result<Option<RecordBatch>> {
        if self.core.spill.is_none() {
            return Err(Error::Spill("spill_to without spilling enabled".into()));
        }
        let held = self.bytes_held();
        if self.partitioned() {
            self.spill_parts(held, target_bytes)?;
        } else {
            self.core.spill_down(held, target_bytes)?;
        }
        self.emit()
    }

    /// Spilled generations that could not be read back since the last
    /// call, as [`Error::Serialization`] naming the key and the tier. Each
    /// was emitted as a row with reason `corrupted`; the run goes on.
    pub fn take_spill_errors(&mut self) -> Vec<Error> {
        std::mem::take(&mut self.spill_errors)
    }

    /// Turns the slots of unreadable records into errors naming their keys
    /// (while the keys are still interned: slots are freed after this).
    fn name_spill_errors(&mut self) -> Result<()> {
        let Some(spill) = &mut self.core.spill else { return Ok(()) };
        for (slot, tier, reason) in spill.errors.drain(..) {
            let key = self.keys.key_columns(&[slot])?;
            let options = arrow_cast::display::FormatOptions::default();
            let key = key
                .iter()
                .map(|c| {
                    arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options)
                        .map(|f| f.value(0).to_string())
                        .unwrap_or_else(|_| "?".into())
                })
                .collect::<Vec<_>>()
                .join(", ");
            self.spill_errors.push(Error::Serialization { key, tier, reason });
        }
        Ok(())
    }

    /// Generations currently spilled out of memory.
    pub fn spilled_keys(&self) -> u64 {
        self.core.spill.as_ref().map_or(0, Spill::spilled_generations)
    }

    /// Test hook: flips a byte of every spilled record, so the next read of
    /// each fails its checksum. Returns how many records it damaged.
    #[doc(hidden)]
    pub fn corrupt_spilled_for_test(&mut self) -> usize {
        let Some(spill) = &mut self.core.spill else { return 0 };
        let mut handles: Vec<_> = spill.handles.values().copied().collect();
        // Of spilled partitions, the state records (the keys stay readable).
        let mut damaged = handles.len();
        if let Some(parts) = &spill.parts {
            for run in parts.parts.iter().flat_map(|p| &p.runs) {
                handles.push(run.states);
                damaged += run.count as usize;
            }
        }
        for &h in &handles {
            spill.store.corrupt_for_test(h);
        }
        damaged
    }

    /// Test hook: the generations and fragments a spilled partition brings
    /// back at a time at the end of input (small, to test the slicing).
    #[doc(hidden)]
    pub fn set_finish_slice_for_test(&mut self, per_slice: u64) {
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.finish_slice = per_slice.max(1);
        }
    }

    /// Test hook: buffered bytes after which a partition's pieces are
    /// stored, stored records per index block, and rows a partition buffers
    /// in records spanning all its sub-partitions (small, to test them).
    #[doc(hidden)]
    pub fn set_piece_limits_for_test(&mut self, piece_bytes: usize, index_block: usize, wide_rows: u64) {
        if let Some(parts) = self.core.spill.as_mut().and_then(|s| s.parts.as_mut()) {
            parts.piece_limit = piece_bytes;
            parts.index_block = index_block.max(1);
            parts.wide_rows = wide_rows.max(1);
        }
    }

    /// The accumulator being driven.
    pub fn accumulator(&self) -> &A {
        &self.core.acc
    }

    /// Applies a batch of fragments; returns the rows emitted because of it
    /// (keys completed by it, keys whose deadline the watermark passed), or
    /// `None` if none. `now` is the processing time (a `now` earlier than one
    /// passed before counts as that one); it is ignored in event-time mode.
    /// Rows the policies reject are kept for [`take_dead_letters`](Self::take_dead_letters).
    pub fn push(&mut self, batch: &RecordBatch, now: Millis) -> Result<Option<RecordBatch>> {
        let key_columns = self.plan.keys.iter().map(|k| k.resolve(batch)).collect::<Result<Vec<_>>>()?;
        let times = match &self.plan.time {
            Some(t) => Some(EventTimes::from_column(t.resolve(batch)?)?),
            None => None,
        };
        let input = self.core.acc.bind(batch)?;
        self.keys.load_batch(&key_columns)?;

        let rows = batch.num_rows();
        self.stats.fragments_in += rows as u64;
        self.slots.clear();
        let spilled = self.spilled_mask();
        for row in 0..rows {
            let slot = if self.keys.is_null(row) {
                self.stats.null_key_fragments += 1;
                SKIP
            } else if !self.core.acc.accepts(&input, row) {
                self.stats.unknown_var_fragments += 1;
                SKIP
            } else if spilled.is_some_and(|m| m[part_of(self.keys.row_hash(row))]) {
                PENDING
            } else {
                self.keys.intern(row)?
            };
            self.slots.push(slot);
        }
        self.core.grow(self.keys.slot_count());

        let result = match times {
            Some(times) => self.core.apply_rows(&input, &self.slots, &times, &mut self.rejects, None),
            // Processing time never runs backwards: an earlier `now` counts as the latest one.
            None => {
                let now = ConstTime(now.max(self.core.watermark));
                self.core.apply_rows(&input, &self.slots, &now, &mut self.rejects, None)
            }
        };
        drop(input);
        let rejected = self.rejects.take(batch)?;
        if let Some(r) = rejected {
            self.dead.fragments.push(r);
        }
        result?;
        if spilled.is_some() {
            self.buffer_pending(batch)?;
        }
        self.emit()
    }

    /// Processing time moved on (engine timer): emits the generations whose
    /// deadline is before `now`. In event-time mode this is a no-op
    /// returning `None`.
    pub fn advance(&mut self, now: Millis) -> Result<Option<RecordBatch>> {
        if self.plan.time.is_some() {
            return Ok(None);
        }
        self.core.watermark = self.core.watermark.max(now);
        self.core.sweep_if_due();
        self.emit()
    }

    /// Event time: the input as a whole (of which this accumulator may see
    /// only a hash shard) has reached `watermark`; generations whose
    /// deadline is before it are emitted. In processing mode a no-op.
    pub fn observe_watermark(&mut self, watermark: Millis) -> Result<Option<RecordBatch>> {
        if self.plan.time.is_none() || watermark <= self.core.watermark {
            return Ok(None);
        }
        self.core.watermark = watermark;
        self.core.sweep_if_due();
        self.emit()
    }

    /// End of input: every held generation is emitted (incomplete ones as
    /// partials with reason `end_of_input`), in arrival order. Afterwards no
    /// key is resident; the accumulator can take more input.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let mut out = Vec::new();
        self.finish_into(usize::MAX, &mut |b| out.push(b))?;
        match out.len() {
            0 => Ok(None),
            1 => Ok(out.pop()),
            _ => arrow_select::concat::concat_batches(&self.schema, &out)
                .map(Some)
                .map_err(Error::arrow("joining the rows of spilled partitions")),
        }
    }

    /// End of input, in batches of at most `rows_per_batch` rows (in the
    /// same order as [`finish`](Self::finish), spilled partitions first, one
    /// at a time): each batch's generations are brought back (when spilled),
    /// built and released before the next, so memory holds one batch's (or
    /// one partition's) worth of restored state at a time.
    pub fn finish_into(&mut self, rows_per_batch: usize, out: &mut dyn FnMut(RecordBatch)) -> Result<()> {
        self.finish_spilled_parts(rows_per_batch, out)?;
        let core = &mut self.core;
        let mut open: Vec<(u64, u32)> = core
            .arrival
            .iter()
            .enumerate()
            .filter(|&(s, &a)| a != NO_GEN && !core.done.get(s).copied().unwrap_or(false))
            .map(|(slot, &a)| (a, slot as u32))
            .collect();
        open.sort_unstable();
        core.deadlines.clear();
        // Rows staged by an earlier call (normally none) go out with the first part.
        for part in open.chunks(rows_per_batch.max(1)) {
            for &(_, slot) in part {
                self.core.close(slot, EmitReason::EndOfInput, true, false, self.core.watermark);
            }
            self.name_spill_errors()?;
            if let Some(batch) = self.take_output()? {
                out(batch);
            }
            self.core.acc.maintain();
        }
        if let Some(batch) = self.take_output()? {
            out(batch);
        }
        self.keys.clear();
        self.core.reset();
        Ok(())
    }

    /// End of input, a step at a time, so a caller can pass each step's
    /// rows on before the next: a step finishes one spilled partition, or a
    /// slice of the keys of a large one (it comes back, its fragments are
    /// replayed, what is open is emitted in batches of at most
    /// `rows_per_batch` rows) or, once none is left, the generations in
    /// memory. Returns whether another step remains; the
    /// steps together emit what [`finish_into`](Self::finish_into) does.
    pub fn finish_step(&mut self, rows_per_batch: usize, out: &mut dyn FnMut(RecordBatch)) -> Result<bool> {
        if self.finish_spilled_step(rows_per_batch, out)? {
            return Ok(true);
        }
        self.finish_into(rows_per_batch, out)?;
        Ok(false)
    }

    /// Rows sent to the dead-letter output since the last call.
    pub fn take_dead_letters(&mut self) -> DeadLetters {
        std::mem::take(&mut self.dead)
    }

    /// Counters since the accumulator was built.
    pub fn stats(&self) -> AccumStats {
        let mut stats = AccumStats {
            active_keys: self.core.active,
            completeness: self.core.completeness,
            latency: self.core.latency.clone(),
            evicted: self.core.evicted,
            late: self.core.late,
            dropped_after_complete: self.core.dropped_after_complete,
            completed_marks: self.core.tombstones,
            bytes_held: self.bytes_held(),
            spilled_keys: self.spilled_keys(),
            spill_writes: self.core.spill.as_ref().map_or(0, |s| s.writes),
            spill_reads: self.core.spill.as_ref().map_or(0, |s| s.reads),
            spill_corrupted: self.core.spill.as_ref().map_or(0, |s| s.corrupted),
            spill_failures: self.core.spill.as_ref().map_or(0, |s| s.failures),
            spilled_bytes: self.core.spill.as_ref().map_or(0, |s| s.stats().bytes_stored),
            ..self.stats.clone()
        };
        self.core.acc.add_stats(&mut stats);
        stats
    }

    /// Approximate bytes held by the state (as in [`AccumStats::bytes_held`]),
    /// without building the whole stats.
    ///
    /// When partitions have been spilled, the state's vectors keep the
    /// capacity of the most generations ever resident (reused by new ones),
    /// so this counts that capacity in proportion to the generations
    /// resident now: what is in use, and what spilling more would free.
    pub fn bytes_held(&self) -> u64 {
        let capacity = (self.keys.bytes_held() + self.core.bytes_held() + self.slots.capacity() * 4) as u64;
        match self.core.spill.as_ref().and_then(|s| s.parts.as_ref()) {
            Some(parts) if parts.high_water > 0 => {
                let whole = parts.piece_bytes as u64 + self.core.acc.live_bytes() as u64;
                let per_slot = capacity.saturating_sub(whole);
                let resident = self.resident_generations().min(parts.high_water);
                (per_slot as u128 * u128::from(resident) / u128::from(parts.high_water)) as u64 + whole
            }
            _ => capacity,
        }
    }

    /// Key generations currently held in memory (open, not spilled).
    pub fn resident_keys(&self) -> usize {
        self.core.active.saturating_sub(self.spilled_keys()) as usize
    }

    /// Step 4: builds the staged rows and frees emptied slots.
    fn emit(&mut self) -> Result<Option<RecordBatch>> {
        if self.core.spill.is_some() {
            self.reload_due_parts()?;
            self.note_high_water();
            let held = self.bytes_held();
            if self.partitioned() {
                self.maybe_spill_parts(held)?;
            } else {
                self.core.maybe_spill(held)?;
            }
            self.name_spill_errors()?;
        }
        let out = self.take_output()?;
        self.release_slots()?;
        self.core.acc.maintain();
        Ok(out)
    }

    /// Frees the slots emptied by this call.
    fn release_slots(&mut self) -> Result<()> {
        let (arrival, keys) = (&self.core.arrival, &self.keys);
        // A slot may be listed twice, or reopened since: free each empty one once.
        self.core.released.retain(|&s| arrival[s as usize] == NO_GEN && keys.in_use(s));
        self.core.released.sort_unstable();
        self.core.released.dedup();
        self.keys.free_all(&self.core.released)?;
        self.core.released.clear();
        self.keys.maybe_compact();
        Ok(())
    }

    /// Builds the staged rows into a batch, counts them and releases them.
    fn take_output(&mut self) -> Result<Option<RecordBatch>> {
        let core = &mut self.core;
        if core.staged.is_empty() {
            return Ok(None);
        }
        let built = build(&core.staged, &self.schema, &self.dead_schema, &self.keys, &mut core.acc)?;
        for row in &core.staged {
            match (row.reason, row.dead) {
                (_, true) => self.stats.expired_dead_lettered += 1,
                (EmitReason::Complete, _) => self.stats.complete += 1,
                _ => self.stats.partial += 1,
            }
        }
        core.staged.clear();
        core.acc.release_staged();
        if let Some(d) = built.dead {
            self.dead.partials.push(d);
        }
        if let Some(rows) = &built.rows {
            self.stats.rows_out += rows.num_rows() as u64;
        }
        Ok(built.rows)
    }
}

/// Policy values that cannot work.
fn check_policies(p: &Policies, event_time: bool) -> Result<()> {
    let bad = |policy, reason: &str| Err(Error::BadPolicy { policy, reason: reason.to_owned() });
    if p.max_items == Some(0) {
        return bad("max_items", "must be at least 1");
    }
    if p.max_bytes == Some(0) {
        return bad("max_bytes", "must be at least 1");
    }
    if p.max_keys == Some(0) {
        return bad("max_keys", "must be at least 1");
    }
    if p.allowed_lateness.is_some() && !event_time {
        return bad("allowed_lateness", "lateness needs event time (`time = \"event\"`)");
    }
    if p.partial_flush == Some(false) && p.partial_flush_after.is_none() {
        return bad("partial_flush", "`partial_flush = false` needs a TTL (`partial_flush_after`)");
    }
    Ok(())
}

impl<A: Accumulator> Core<A> {
    /// Makes room for `slots` slots.
    fn grow(&mut self, slots: usize) {
        if slots <= self.arrival.len() {
            return;
        }
        self.arrival.resize(slots, NO_GEN);
        self.first.resize(slots, Millis::MAX);
        if matches!(self.rule, Rule::Session { .. }) {
            self.last.resize(slots, Millis::MIN);
        }
        if self.track_sizes {
            self.items.resize(slots, 0);
            self.bytes.resize(slots, 0);
        }
        if let Some(lru) = &mut self.lru {
            lru.grow(slots);
        }
        if self.policies.after_complete == AfterComplete::Drop {
            self.done.resize(slots, false);
        }
        if let Some(spill) = &mut self.spill {
            spill.state.resize(slots, IN_MEMORY);
        }
        self.acc.reserve(slots);
    }

    /// The row loop (step 3 of the module docs).
    fn apply_rows<T: TimeSource>(
        &mut self,
        input: &A::Input<'_>,
        slots: &[u32],
        times: &T,
        rejects: &mut Rejects,
        replay: Option<&[Millis]>,
    ) -> Result<()> {
        for (row, &slot) in slots.iter().enumerate() {
            if let Some(&ahead) = slots.get(row + AHEAD) {
                self.prefetch(ahead);
            }
            if let Some(watermarks) = replay {
                // A buffered fragment comes back under the watermark it arrived under.
                self.watermark = watermarks[row];
                self.sweep_if_due();
            }
            if slot == PENDING {
                // Its partition is spilled: buffered with its arrival watermark and time.
                let time = times.time(row);
                if let Some(parts) = self.spill.as_mut().and_then(|s| s.parts.as_mut()) {
                    parts.rows.push((row as u32, self.watermark, time));
                }
                if let Some(time) = time {
                    if time > self.watermark {
                        self.watermark = time;
                        self.sweep_if_due();
                    }
                }
                continue;
            }
            if slot == SKIP {
                // An ignored row still says how far event time has come.
                if let Some(time) = times.time(row) {
                    if time > self.watermark {
                        self.watermark = time;
                        self.sweep_if_due();
                    }
                }
                continue;
            }
            let time = match times.time(row) {
                Some(t) => t,
                // A window needs the fragment's time; other rules take the watermark.
                None if matches!(self.rule, Rule::Tumbling { .. } | Rule::Session { .. }) => {
                    self.reject_late(slot, row, Rejection::NoTime, rejects);
                    continue;
                }
                None => self.watermark,
            };
            if self.is_late(time) {
                self.reject_late(slot, row, Rejection::Late, rejects);
                continue;
            }
            self.apply(slot, input, row, time, rejects)?;
            if time > self.watermark {
                self.watermark = time;
            }
            self.sweep_if_due();
        }
        Ok(())
    }

    /// Counts a late fragment and sends it to the dead-letter output; a key
    /// interned only for it is freed with the call's other emptied slots.
    fn reject_late(&mut self, slot: u32, row: usize, why: Rejection, rejects: &mut Rejects) {
        self.late += 1;
        rejects.push(row, why);
        if self.arrival[slot as usize] == NO_GEN {
            self.released.push(slot);
        }
    }

    /// Applies one fragment: `row` of `slot`'s key at `time`.
    #[inline(always)]
    fn apply(
        &mut self,
        slot: u32,
        input: &A::Input<'_>,
        row: usize,
        time: Millis,
        rejects: &mut Rejects,
    ) -> Result<()> {
        let s = slot as usize;
        if self.is_spilled(s) && !self.rehydrate(slot) {
            // Unreadable: what is known of the generation goes out as `corrupted`.
            self.close(slot, EmitReason::Corrupted, false, false, time);
        }
        if self.arrival[s] != NO_GEN {
            if !self.done.is_empty() && self.done[s] {
                if time <= self.deadline_of(s) {
                    self.dropped_after_complete += 1;
                    rejects.push(row, Rejection::AfterComplete);
                    return Ok(());
                }
                // The completed key's mark has expired: a new generation opens.
                self.done[s] = false;
                self.tombstones -= 1;
                self.arrival[s] = NO_GEN;
                self.forget_one();
            }
            match self.rule {
                _ if self.arrival[s] == NO_GEN => {} // opened below
                Rule::Tumbling { size } => {
                    let (open, this) = (window_start(self.first[s], size), window_start(time, size));
                    if this > open {
                        self.close(slot, EmitReason::Complete, false, true, time);
                    } else if this < open {
                        // One window per key at a time: a later one is open, so this one closed.
                        self.late += 1;
                        rejects.push(row, Rejection::Late);
                        return Ok(());
                    }
                }
                Rule::Session { gap } => {
                    let start = self.first[s];
                    if time > self.last[s].max(start).saturating_add(gap) {
                        self.close(slot, EmitReason::Complete, false, true, time);
                    } else if time < start.saturating_sub(gap) {
                        // More than a gap before the open session: a session of its own, closed.
                        self.late += 1;
                        rejects.push(row, Rejection::Late);
                        return Ok(());
                    } else if time < start {
                        self.first[s] = time;
                    }
                }
                _ if time > self.deadline_of(s) => self.close(slot, self.rule.reason(), false, true, time),
                _ => {}
            }
        }
        if self.arrival[s] == NO_GEN {
            if let (Some(max), Some(lru)) = (self.policies.max_keys, &self.lru) {
                if self.active >= max {
                    if let Some(victim) = lru.oldest() {
                        self.evicted += 1;
                        self.close(victim, EmitReason::Evicted, false, false, time);
                    }
                }
            }
            self.open(slot, time);
        }
        let update = self.acc.update(slot, input, row)?;
        if let Some(lru) = &mut self.lru {
            lru.touch(slot);
        }
        if let Rule::Session { .. } = self.rule {
            if time > self.last[s] {
                let had_entry = self.last[s] != Millis::MIN;
                self.last[s] = time;
                if had_entry {
                    self.forget_one();
                }
                let arrival = self.arrival[s];
                self.deadlines.push(Due { deadline: self.deadline_of(s), arrival, slot });
            }
        }
        if update.complete {
            self.close(slot, EmitReason::Complete, false, false, time);
            return Ok(());
        }
        if self.track_sizes {
            self.items[s] += 1;
            self.bytes[s] += update.bytes;
            let p = &self.policies;
            let reason = if self.predicate_holds(slot) {
                Some(EmitReason::Predicate)
            } else if p.max_items.is_some_and(|m| self.items[s] >= m) {
                Some(EmitReason::MaxItems)
            } else if p.max_bytes.is_some_and(|m| self.bytes[s] >= m) {
                Some(EmitReason::MaxBytes)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.close(slot, reason, false, false, time);
            }
        }
        Ok(())
    }

    /// Hints that `slot`'s state will be touched soon.
    #[inline(always)]
    fn prefetch(&self, slot: u32) {
        if slot < PENDING {
            prefetch(&self.arrival, slot as usize);
            prefetch(&self.first, slot as usize);
            self.acc.prefetch(slot);
        }
    }

    /// Whether a fragment at `time` is late: older than the watermark minus
    /// the allowed lateness, or (tumbling windows) of a window the watermark
    /// closed already.
    #[inline(always)]
    fn is_late(&self, time: Millis) -> bool {
        let horizon = self.watermark.saturating_sub(self.lateness.unwrap_or(0));
        match self.rule {
            Rule::Tumbling { size } => window_start(time, size).saturating_add(size - 1) < horizon,
            _ => self.lateness.is_some() && time < horizon,
        }
    }

    /// Whether the user predicate holds for `slot`'s generation.
    fn predicate_holds(&self, slot: u32) -> bool {
        let Some(p) = &self.policies.complete_when else { return false };
        let s = slot as usize;
        let has = |part: usize| self.acc.has_part(slot, part);
        let view = KeyView {
            fill: self.acc.fill(slot),
            items: self.items[s],
            bytes: self.bytes[s],
            first: self.first[s],
            names: self.acc.part_names(),
            has: &has,
        };
        (p.0)(&view)
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
        if let Some(spill) = &mut self.spill {
            let replaying = spill.parts.as_ref().is_some_and(|p| p.replaying);
            spill.state[s] = if replaying { RESTORED } else { IN_MEMORY };
        }
        match self.rule {
            Rule::Never => {}
            Rule::Session { .. } => self.last[s] = Millis::MIN,
            _ => self.deadlines.push(Due { deadline: self.deadline_of(s), arrival, slot }),
        }
    }

    /// When `slot`'s generation expires: a fragment later than this starts
    /// a new one, a watermark past it closes it.
    #[inline(always)]
    fn deadline_of(&self, s: usize) -> Millis {
        let last = self.last.get(s).copied().unwrap_or(Millis::MIN);
        deadline(self.rule, self.lateness, self.first[s], last)
    }

    /// A generation with a heap entry ended before its deadline.
    fn forget_one(&mut self) {
        let (arrival, first, last) = (&self.arrival, &self.first, &self.last);
        let (rule, lateness) = (self.rule, self.lateness);
        self.deadlines.forget_one(|d| is_live(d, rule, lateness, arrival, first, last));
    }

    /// Closes `slot`'s generation: stages it and empties the slot.
    /// `popped`: its deadline entry is already off the heap. `by_deadline`:
    /// its deadline (or window end) closed it, which orders it among the
    /// deadline closings. `now`: the time of the closing (the fragment,
    /// watermark or clock that did it).
    fn close(&mut self, slot: u32, mut reason: EmitReason, popped: bool, by_deadline: bool, now: Millis) {
        let s = slot as usize;
        if self.is_spilled(s) && !self.rehydrate(slot) {
            reason = EmitReason::Corrupted;
        }
        let spilled = self.spill.as_ref().is_some_and(|sp| sp.state[s] != IN_MEMORY);
        let fill = self.acc.fill(slot);
        let deadline = self.deadline_of(s);
        let first = self.first[s];
        let last = if self.last.is_empty() { first } else { self.last[s].max(first) };
        self.acc.stage(slot, &Generation { first, last, reason });
        let dead = reason == EmitReason::Ttl && !self.policies.flushes_partials();
        self.staged.push(StagedRow {
            slot,
            arrival: self.arrival[s],
            deadline,
            fill,
            reason,
            dead,
            by_deadline,
            spilled,
        });
        self.latency.record(now.saturating_sub(first));
        self.completeness[(fill.ratio() * 10.0) as usize] += 1;
        if self.track_sizes {
            self.items[s] = 0;
            self.bytes[s] = 0;
        }
        if let Some(lru) = &mut self.lru {
            lru.remove(slot);
        }
        self.active -= 1;
        let keep_mark = reason == EmitReason::Complete && !self.done.is_empty();
        if keep_mark {
            // The completed key stays interned, marked, until its deadline
            // (the heap entry stays live) or the end of input.
            self.done[s] = true;
            self.tombstones += 1;
            return;
        }
        self.arrival[s] = NO_GEN;
        self.released.push(slot);
        if !popped && !matches!(self.rule, Rule::Never) {
            self.forget_one();
        }
    }

    /// Whether `s`'s generation is out of memory.
    #[inline(always)]
    fn is_spilled(&self, s: usize) -> bool {
        self.spill.as_ref().is_some_and(|sp| sp.state[s] == SPILLED)
    }

    /// Brings `slot`'s spilled generation back; `false` when its record
    /// could not be read (counted; the slot is left empty).
    fn rehydrate(&mut self, slot: u32) -> bool {
        let Some(spill) = &mut self.spill else { return true };
        let s = slot as usize;
        spill.state[s] = RESTORED;
        let Some(handle) = spill.handles.remove(&slot) else {
            spill.corrupted += 1;
            spill.errors.push((slot, "memory".into(), "no record for a spilled generation".into()));
            return false;
        };
        spill.reads += 1;
        let failure = match spill.store.take(handle) {
            Ok(bytes) => match self.acc.restore(slot, &bytes) {
                Ok(()) => return true,
                Err(e) => (handle.tier().as_str().to_owned(), e.to_string()),
            },
            Err(SpillError::Corrupted { tier, reason }) => (tier.as_str().to_owned(), reason),
            Err(e) => (handle.tier().as_str().to_owned(), e.to_string()),
        };
        spill.corrupted += 1;
        spill.errors.push((slot, failure.0, failure.1));
        false
    }

    /// Spills open generations when the state holds more than the limit:
    /// lowest completeness first, then the oldest, down to the low-water
    /// mark. A generation the store has no room for is closed as a partial
    /// (reason `evicted`, counted in `spill_failures`): nothing is lost.
    fn maybe_spill(&mut self, held: u64) -> Result<()> {
        let Some(spill) = &self.spill else { return Ok(()) };
        if held <= spill.options.limit_bytes {
            return Ok(());
        }
        let target = spill.low_water();
        self.spill_down(held, target)
    }

    /// Spills victims until about `held - target` bytes are out.
    fn spill_down(&mut self, held: u64, target: u64) -> Result<()> {
        let Some(spill) = &self.spill else { return Ok(()) };
        let mut to_free = held.saturating_sub(target);
        if to_free == 0 {
            return Ok(());
        }
        let mut victims: Vec<(u32, u64, u32)> = (0..self.arrival.len())
            .filter(|&s| {
                self.arrival[s] != NO_GEN
                    && spill.state[s] != SPILLED
                    && !self.done.get(s).copied().unwrap_or(false)
            })
            .map(|s| (self.acc.fill(s as u32).present, self.arrival[s], s as u32))
            .collect();
        victims.sort_unstable();
        let mut buf = Vec::new();
        for (_, _, slot) in victims {
            if to_free == 0 {
                break;
            }
            buf.clear();
            if !self.acc.spill(slot, &mut buf)? {
                break; // this accumulator keeps everything in memory
            }
            let Some(spill) = &mut self.spill else { break };
            match spill.store.put(&buf) {
                Ok(handle) => {
                    spill.handles.insert(slot, handle);
                    spill.state[slot as usize] = SPILLED;
                    spill.writes += 1;
                    to_free = to_free.saturating_sub(buf.len() as u64 + 16);
                }
                Err(_) => {
                    // No tier has room: the generation stays whole and leaves as a partial.
                    spill.failures += 1;
                    self.acc.restore(slot, &buf)?;
                    self.evicted += 1;
                    let at = self.watermark;
                    self.close(slot, EmitReason::Evicted, false, false, at);
                    to_free = to_free.saturating_sub(buf.len() as u64);
                }
            }
        }
        self.acc.maintain();
        Ok(())
    }

    /// Closes every generation whose deadline is before the watermark.
    #[inline(always)]
    fn sweep_if_due(&mut self) {
        if self.deadlines.earliest().is_some_and(|d| d < self.watermark) {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        let reason = self.rule.reason();
        loop {
            let (arrival, first, last) = (&self.arrival, &self.first, &self.last);
            let (rule, lateness) = (self.rule, self.lateness);
            let live = |d: &Due| is_live(d, rule, lateness, arrival, first, last);
            let Some(due) = self.deadlines.pop_due(self.watermark, live) else {
                break;
            };
            let s = due.slot as usize;
            if !self.done.is_empty() && self.done[s] {
                // A completed key's mark expires with its deadline.
                self.done[s] = false;
                self.tombstones -= 1;
                self.arrival[s] = NO_GEN;
                self.released.push(due.slot);
            } else {
                self.close(due.slot, reason, true, true, self.watermark);
            }
        }
    }

    /// Drops every slot (after `finish`).
    fn reset(&mut self) {
        self.arrival.clear();
        self.first.clear();
        self.last.clear();
        self.items.clear();
        self.bytes.clear();
        self.done.clear();
        if let Some(lru) = &mut self.lru {
            lru.clear();
        }
        self.deadlines.clear();
        self.released.clear();
        if let Some(spill) = &mut self.spill {
            for (_, h) in spill.handles.drain() {
                spill.store.free(h);
            }
            if let Some(parts) = &mut spill.parts {
                let (handles, index) = parts.drain_handles();
                for block in index {
                    // The block's entries are records too.
                    if let Ok(entries) = spill.store.take(block).map(|b| spill_parts::decode_index(&b)) {
                        for e in entries.into_iter().flatten() {
                            spill.store.free(e.handle);
                        }
                    }
                }
                for h in handles {
                    spill.store.free(h);
                }
            }
            spill.state.clear();
        }
        self.active = 0;
        self.tombstones = 0;
        self.acc.reset();
    }

    fn bytes_held(&self) -> usize {
        (self.arrival.capacity() + self.first.capacity() + self.last.capacity()) * 8
            + (self.items.capacity() + self.bytes.capacity()) * 8
            + self.done.capacity()
            + self.lru.as_ref().map_or(0, Lru::bytes_held)
            + self.deadlines.bytes_held()
            + self.staged.capacity() * std::mem::size_of::<StagedRow>()
            + self.spill.as_ref().map_or(0, Spill::bytes_held)
            + self.acc.bytes_held()
    }
}

/// When a generation expires under `rule`: a fragment later than this
/// starts a new generation, a watermark past it closes it.
#[inline(always)]
fn deadline(rule: Rule, lateness: Option<Millis>, first: Millis, last: Millis) -> Millis {
    let lateness = lateness.unwrap_or(0);
    match rule {
        Rule::Never => Millis::MAX,
        Rule::AfterFirst { after, .. } => first.saturating_add(after),
        Rule::Tumbling { size } => {
            window_start(first, size).saturating_add(size - 1).saturating_add(lateness)
        }
        Rule::Session { gap } => last.max(first).saturating_add(gap).saturating_add(lateness),
    }
}

/// Whether a heap entry still stands for its slot's open generation (or a
/// completed key's mark). A session's entry is live only if it holds the
/// generation's current deadline (each fragment pushes a new one).
fn is_live(
    d: &Due,
    rule: Rule,
    lateness: Option<Millis>,
    arrival: &[u64],
    first: &[Millis],
    last: &[Millis],
) -> bool {
    let s = d.slot as usize;
    match rule {
        Rule::Session { .. } => {
            arrival[s] == d.arrival && deadline(rule, lateness, first[s], last[s]) == d.deadline
        }
        _ => arrival[s] == d.arrival,
    }
}
