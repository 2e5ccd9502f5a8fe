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
//! The built-in accumulator is [`VarSet`], which assembles `(key, var,
//! value)` fragments into one row per key with one column per required
//! variable; its [module docs](varset) are the contract.
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
    KeyedAccumulator, Policies, Predicate, RunningAccumulator, Update, WindowRule, WithPolicies,
    ERROR_COLUMN,
};
pub use stats::{AccumStats, LatencyHistogram};
pub use time::{max_event_time, Millis, TimeMode};
pub use varset::{KeyColumns, RepeatPolicy, VarSet, VarSetAssembler};
pub use window::{WindowAccumulator, WindowAssembler};
