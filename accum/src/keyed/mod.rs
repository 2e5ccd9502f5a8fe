//! The generic keyed accumulator: the [`Accumulator`] contract and the
//! [`KeyedAccumulator`] driver that runs one.
//!
//! The driver owns everything every accumulator needs: key extraction and
//! interning to dense `u32` slots (one hash pass per batch), key generations
//! (open, closed, their arrival order and first-fragment time), deadlines
//! in a time-ordered heap, the [`Policies`] (max items, max bytes, max
//! latency, TTL, partial flush, after-complete, max keys with LRU eviction,
//! allowed lateness, a user predicate), the dead-letter output, spilling
//! (see [`SpillOptions`]), statistics and the output batch with its key and
//! `acc_*` columns. An
//! [`Accumulator`] owns only its per-slot state: it binds each batch's
//! columns once ([`Accumulator::bind`]), folds one fragment into one slot
//! ([`Accumulator::update`], monomorphized into the driver's row loop: no
//! virtual call per row) and builds its output columns for all the rows of
//! a call at once ([`Accumulator::build`]).
//!
//! # Semantics
//!
//! Rows are applied in row order, batch after batch; for each row:
//!
//! 1. A row with a null key is ignored (`null_key_fragments`); a row the
//!    accumulator does not [accept](Accumulator::accepts) is ignored
//!    (`unknown_var_fragments`). Its event time still moves the watermark.
//! 2. With [`allowed_lateness`](Policies::allowed_lateness), a row whose event
//!    time is before `watermark - lateness` is *late*: counted and sent to the
//!    dead-letter output. With [`AfterComplete::Drop`], a row of a key whose
//!    generation completed is rejected the same way.
//! 3. A row later than its generation's deadline first closes that
//!    generation (reason `ttl`/`max_latency`). For windows (reason
//!    `complete`): a row of a later tumbling window closes the key's open
//!    one, and a row of an earlier one is late; a row more than the gap
//!    after a session's latest fragment closes it, one more than the gap
//!    before its first is late, one within the gap before extends it. A
//!    window fragment without an event time is late.
//! 4. A key without an open generation opens one; with
//!    [`max_keys`](Policies::max_keys) open generations already, the least
//!    recently touched one is first closed (reason `evicted`).
//! 5. The accumulator folds the row in. The generation closes when the
//!    accumulator says it is complete (`complete`), else when the predicate
//!    holds (`predicate`), else at `max_items` fragments (`max_items`), else
//!    at `max_bytes` bytes (`max_bytes`).
//! 6. The watermark moves to the row's time; every generation whose deadline
//!    is before it closes.
//!
//! Generations closed by the TTL go to the dead-letter output instead of the
//! output when [`partial_flush`](Policies::partial_flush) is `false`.
//! Everything else is emitted: one output row per key generation, in the
//! order: closed by their content or an eviction (in closing order), closed
//! by a deadline or a window's end (by deadline, then arrival), flushed by
//! [`finish`](KeyedAccumulator::finish) (by arrival).
//!
//! # Writing an accumulator
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{cast::AsArray, types::Int64Type, ArrayRef, Int64Array, RecordBatch, UInt64Array};
//! use arrow_schema::{DataType, Field, FieldRef, Schema};
//! use garner_accum::{Accumulator, Fill, Generation, KeyedAccumulator, Policies, TimeMode, Update};
//!
//! /// Sums `amount` per key; complete once the sum reaches 100.
//! #[derive(Debug, Default)]
//! struct Sum { sums: Vec<i64>, staged: Vec<i64> }
//!
//! impl Accumulator for Sum {
//!     type Input<'a> = &'a Int64Array;
//!     fn fields(&self) -> Vec<FieldRef> {
//!         vec![Arc::new(Field::new("total", DataType::Int64, false))]
//!     }
//!     fn bind<'a>(&mut self, batch: &'a RecordBatch) -> garner_accum::Result<&'a Int64Array> {
//!         Ok(batch.column_by_name("amount").unwrap().as_primitive::<Int64Type>())
//!     }
//!     fn reserve(&mut self, slots: usize) { self.sums.resize(slots.max(self.sums.len()), 0) }
//!     fn update(&mut self, slot: u32, input: &&Int64Array, row: usize) -> garner_accum::Result<Update> {
//!         self.sums[slot as usize] += input.value(row);
//!         Ok(Update { bytes: 8, complete: self.sums[slot as usize] >= 100 })
//!     }
//!     fn fill(&self, slot: u32) -> Fill {
//!         Fill { present: self.sums[slot as usize].clamp(0, 100) as u32, required: 100 }
//!     }
//!     fn stage(&mut self, slot: u32, _generation: &Generation) {
//!         self.staged.push(std::mem::take(&mut self.sums[slot as usize]));
//!     }
//!     fn build(&mut self, order: &[usize], columns: &mut Vec<ArrayRef>) -> garner_accum::Result<()> {
//!         columns.push(Arc::new(Int64Array::from_iter_values(order.iter().map(|&i| self.staged[i]))));
//!         Ok(())
//!     }
//!     fn release_staged(&mut self) { self.staged.clear() }
//!     fn reset(&mut self) { self.sums.clear() }
//!     fn bytes_held(&self) -> usize { (self.sums.capacity() + self.staged.capacity()) * 8 }
//! }
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("k", DataType::UInt64, false),
//!     Field::new("amount", DataType::Int64, false),
//! ]));
//! let key = ["k".to_owned()];
//! let mut acc = KeyedAccumulator::new(Sum::default(), &key, &TimeMode::Processing, Policies::default(), &schema)?;
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(UInt64Array::from(vec![1, 2, 1])),
//!     Arc::new(Int64Array::from(vec![60, 5, 50])),
//! ])?;
//! let out = acc.push(&batch, 0)?.expect("key 1 reached 100");
//! assert_eq!(out.column_by_name("total").unwrap().as_primitive::<Int64Type>().value(0), 110);
//! let rest = acc.finish()?.expect("key 2 is flushed at the end");
//! assert_eq!(rest.column_by_name("acc_reason").unwrap().as_string::<i32>().value(0), "end_of_input");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod driver;
mod dynamic;
mod lru;
mod policy;
mod rejects;
mod spill;
mod spill_parts;
mod staging;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::FieldRef;

pub use driver::{DeadLetters, KeyedAccumulator};
pub use dynamic::{AccumulatorSpec, RunningAccumulator};
pub(crate) use policy::keyed_builder;
pub use policy::{AfterComplete, Policies, Predicate, WithPolicies};
pub use spill::SpillOptions;

use crate::{error::Result, time::Millis};

pub use rejects::ERROR_COLUMN;

/// Why a row was emitted (the `acc_reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EmitReason {
    /// The accumulator's completeness condition holds (every required
    /// variable arrived; a count reached; a window closed by the watermark).
    Complete,
    /// The user predicate ([`Policies::complete_when`]) held first.
    Predicate,
    /// The generation reached [`Policies::max_items`] fragments.
    MaxItems,
    /// The generation reached [`Policies::max_bytes`] bytes.
    MaxBytes,
    /// Evicted to keep at most [`Policies::max_keys`] open generations.
    Evicted,
    /// The TTL ([`Policies::partial_flush_after`]) expired first.
    Ttl,
    /// The [`Policies::max_latency`] expired first.
    MaxLatency,
    /// [`KeyedAccumulator::finish`] flushed it.
    EndOfInput,
    /// Its spilled state could not be read back: what the driver knows of
    /// it (the key) is emitted, its values are missing.
    Corrupted,
}

impl EmitReason {
    /// The value written to `acc_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmitReason::Complete => "complete",
            EmitReason::Predicate => "predicate",
            EmitReason::MaxItems => "max_items",
            EmitReason::MaxBytes => "max_bytes",
            EmitReason::Evicted => "evicted",
            EmitReason::Ttl => "ttl",
            EmitReason::MaxLatency => "max_latency",
            EmitReason::EndOfInput => "end_of_input",
            EmitReason::Corrupted => "corrupted",
        }
    }
}

/// What one fragment did to its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// Bytes the fragment added to the generation (for `max_bytes`).
    pub bytes: u64,
    /// The accumulator's completeness condition now holds.
    pub complete: bool,
}

/// How complete a generation is: `acc_completeness` is `present / required`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fill {
    /// Parts present (variables, items).
    pub present: u32,
    /// Parts required; `0` counts as complete.
    pub required: u32,
}

impl Fill {
    /// `present / required`, `1.0` when nothing is required.
    pub fn ratio(self) -> f64 {
        if self.required == 0 {
            1.0
        } else {
            f64::from(self.present.min(self.required)) / f64::from(self.required)
        }
    }
}

/// The driver's facts about a generation being closed, passed to
/// [`Accumulator::stage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    /// Time of its first fragment.
    pub first: Millis,
    /// Time of its latest fragment (tracked for session windows; else `first`).
    pub last: Millis,
    /// Why it closes.
    pub reason: EmitReason,
}

/// A key generation's state as a [predicate](Policies::complete_when) sees it.
pub struct KeyView<'a> {
    /// How complete it is.
    pub fill: Fill,
    /// Fragments applied to it (duplicates included).
    pub items: u64,
    /// Bytes its fragments added.
    pub bytes: u64,
    /// Time of its first fragment.
    pub first: Millis,
    names: &'a [String],
    has: &'a dyn Fn(usize) -> bool,
}

impl KeyView<'_> {
    /// Whether the named part (a VarSet variable) is present.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().position(|n| n == name).is_some_and(|i| (self.has)(i))
    }
}

/// How a window accumulator's generations end, instead of the policy
/// deadline (see [`Accumulator::window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRule {
    /// Tumbling windows of `size` ms aligned to the epoch: a generation
    /// holds the fragments of one window and closes when the watermark
    /// passes its end; a fragment of an earlier window is late.
    Tumbling {
        /// Window length in milliseconds.
        size: Millis,
    },
    /// Session windows: a generation closes once no fragment came for `gap` ms.
    Session {
        /// Inactivity gap in milliseconds.
        gap: Millis,
    },
}

/// Per-key state folded from fragments, run by a [`KeyedAccumulator`].
/// See the [module docs](self) for the call sequence and an example.
///
/// Slots are dense `u32` indices; state is best kept as struct-of-arrays
/// indexed by slot. A slot's state is emptied by [`stage`](Self::stage),
/// which moves it into the accumulator's staging area; the staged rows of a
/// call are built at once by [`build`](Self::build) and dropped by
/// [`release_staged`](Self::release_staged).
pub trait Accumulator: Send + Sync + std::fmt::Debug {
    /// The columns of one batch, resolved once per batch by
    /// [`bind`](Self::bind).
    type Input<'a>;

    /// The output columns this accumulator adds (between the key columns
    /// and the `acc_*` columns).
    fn fields(&self) -> Vec<FieldRef>;

    /// Resolves the columns of `batch`; an error means the batch does not
    /// fit (nothing is applied).
    fn bind<'a>(&mut self, batch: &'a RecordBatch) -> Result<Self::Input<'a>>;

    /// Whether `row` is a fragment this accumulator takes (default: all).
    /// Rows it does not take are ignored and counted.
    #[inline(always)]
    fn accepts(&self, _input: &Self::Input<'_>, _row: usize) -> bool {
        true
    }

    /// Makes room for slots `0..slots` (new slots are empty).
    fn reserve(&mut self, slots: usize);

    /// Hints that `slot`'s state will be updated soon (called some rows
    /// ahead of [`update`](Self::update), so cache misses overlap). Default:
    /// nothing.
    #[inline(always)]
    fn prefetch(&self, _slot: u32) {}

    /// Folds fragment `row` into `slot`'s open generation.
    fn update(&mut self, slot: u32, input: &Self::Input<'_>, row: usize) -> Result<Update>;

    /// How complete `slot`'s open generation is.
    fn fill(&self, slot: u32) -> Fill;

    /// Whether part `part` (an index into [`part_names`](Self::part_names))
    /// of `slot`'s generation is present (for predicates).
    fn has_part(&self, _slot: u32, _part: usize) -> bool {
        false
    }

    /// Names of the parts [`has_part`](Self::has_part) answers for (a
    /// VarSet's required variables).
    fn part_names(&self) -> &[String] {
        &[]
    }

    /// Moves `slot`'s generation into the staging area (its staged index is
    /// the number of `stage` calls since the last `release_staged`) and
    /// empties the slot.
    fn stage(&mut self, slot: u32, generation: &Generation);

    /// Appends this accumulator's output columns (as [`fields`](Self::fields))
    /// for the staged rows `order` (staged indices, in output order).
    fn build(&mut self, order: &[usize], columns: &mut Vec<ArrayRef>) -> Result<()>;

    /// Calls `name` with each missing part of staged row `staged`, sorted
    /// (the `acc_missing_vars` list; default: none).
    fn missing(&self, _staged: usize, _name: &mut dyn FnMut(&str)) {}

    /// Drops the staged rows (after `build`).
    fn release_staged(&mut self);

    /// Drops every slot's state (after the end of input).
    fn reset(&mut self);

    /// Approximate bytes held.
    fn bytes_held(&self) -> usize;

    /// Of [`bytes_held`](Self::bytes_held), the bytes that follow the live
    /// generations (an arena compacted to what is live, per-generation
    /// lists), as opposed to per-slot capacity sized for the most
    /// generations ever resident. Spilling partitions uses it to tell what
    /// is in use; the default counts everything as per-slot capacity.
    fn live_bytes(&self) -> usize {
        0
    }

    /// Called once per call after the output is built: a chance to compact.
    fn maintain(&mut self) {}

    /// Serializes `slot`'s open generation, appending to `out`, and empties
    /// the slot (as [`stage`](Self::stage) does, without staging), so the
    /// generation can leave memory; [`restore`](Self::restore) brings it
    /// back. Returns `false` (and changes nothing) when this accumulator
    /// cannot spill, the default.
    fn spill(&mut self, _slot: u32, _out: &mut Vec<u8>) -> Result<bool> {
        Ok(false)
    }

    /// Restores into the empty `slot` a generation that
    /// [`spill`](Self::spill) wrote as `bytes`. An error means the bytes
    /// are not a spilled generation of this accumulator (the slot stays
    /// empty).
    fn restore(&mut self, _slot: u32, _bytes: &[u8]) -> Result<()> {
        Err(crate::Error::Internal("restore called on an accumulator that does not spill".into()))
    }

    /// Adds the accumulator's own counters (say, `duplicate_fragments`).
    fn add_stats(&self, _stats: &mut crate::AccumStats) {}

    /// A window rule replacing the TTL/max-latency deadline (default: none).
    fn window(&self) -> Option<WindowRule> {
        None
    }
}
