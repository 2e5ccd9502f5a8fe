//! `garner-accum`: conditional accumulation.
//!
//! Records are assembled from fragments that arrive in any order, keyed by
//! subject, and emitted the moment a completeness condition holds, or flushed
//! as a *partial* record naming what is missing once a deadline passes or the
//! input ends.
//!
//! The crate is a pure, single-threaded, deterministic state machine: no
//! threads, no clocks (time is passed in by the caller), no I/O. The engine
//! owns threads and timers and drives an accumulator through three calls:
//!
//! ```text
//!  push(batch, now) ──► rows completed / expired by this batch
//!  advance(now)     ──► rows whose processing-time deadline passed
//!  finish()         ──► every held row, as partials where incomplete
//! ```
//!
//! Every accumulator runs on one driver, [`KeyedAccumulator`]: it interns
//! keys, tracks key generations and their deadlines, applies the
//! [`Policies`] (max items, max bytes, max latency, TTL, partial flush,
//! after-complete, max keys with LRU eviction, allowed lateness, a user
//! predicate), keeps the dead-letter output and builds the output batches
//! with their `acc_*` columns. An [`Accumulator`] supplies only the per-key
//! state; the [`keyed`] module docs are the contract and show how to write
//! one.
//!
//! Built in:
//!
//! - [`VarSet`] assembles `(key, var, value)` fragments into one row per
//!   key with one column per required variable ([module docs](varset));
//! - [`CountAccumulator`] emits every N fragments per key (a keyed
//!   micro-batcher);
//! - [`WindowAccumulator`] collects tumbling or session windows per key in
//!   event time, closed by the watermark.
//!
//! Counters are plain structs ([`AccumStats`]) that the engine's telemetry
//! turns into metrics.

mod arena;
mod collect;
mod columns;
mod count;
mod deadlines;
mod error;
mod hash;
pub mod keyed;
mod keys;
mod prefetch;
mod slot_table;
mod spill_codec;
mod stats;
mod time;
mod values;
pub mod varset;
mod window;

pub use collect::{CollectInput, CollectState};
pub use columns::ACC_COLUMNS;
pub use count::{CountAccumulator, CountAssembler};
pub use error::{Error, Result};
pub use keyed::{
    Accumulator, AccumulatorSpec, AfterComplete, DeadLetters, EmitReason, Fill, Generation, KeyView,
    KeyedAccumulator, Policies, Predicate, RunningAccumulator, SpillOptions, Update, WindowRule,
    WithPolicies, ERROR_COLUMN,
};
pub use stats::{AccumStats, LatencyHistogram};
pub use time::{max_event_time, Millis, TimeMode};
pub use varset::{KeyColumns, RepeatPolicy, VarSet, VarSetAssembler};
pub use window::{WindowAccumulator, WindowAssembler};
