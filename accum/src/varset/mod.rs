//! The `VarSet` assembler: records assembled from `(key, var, value)` fragments.
//!
//! A [`VarSet`] is the configuration (a cheap, cloneable builder); validated
//! against an input schema it [`build`](VarSet::build)s a [`VarSetAssembler`],
//! the state machine that takes fragment batches and emits one output row per
//! *key generation*.
//!
//! # Contract
//!
//! 1. **Fragments.** Each input row is one fragment: the key column(s), the
//!    var column (the variable's name), the value column and, in event-time
//!    mode, the time column. Rows are applied one by one in row order, batch
//!    after batch.
//! 2. **Ignored rows.** A row with a null in any key column is skipped and
//!    counted in `null_key_fragments`. A row whose variable is not required,
//!    or null, is skipped and counted in `unknown_var_fragments` (a row that
//!    is both counts as a null key). Skipped rows do not create, touch or
//!    extend a key generation; their event time (if not null) still moves
//!    the watermark, since it tells how far the input has come.
//! 3. **Values.** A null value counts as present: the variable arrived, with a
//!    null value (its output cell is null, but it is not listed as missing).
//! 4. **Generations.** The first applied fragment of a key opens a generation.
//!    When its last missing required variable arrives, the generation is
//!    emitted at once (reason `complete`) and closed; a later fragment of the
//!    same key opens a new generation, which becomes a new output row.
//! 5. **Repeats.** A variable arriving again within one generation is counted
//!    in `duplicate_fragments`; [`RepeatPolicy::KeepFirst`] (the default)
//!    keeps the first value, [`RepeatPolicy::KeepLast`] the latest.
//! 6. **Deadlines.** With a TTL
//!    ([`partial_flush_after`](crate::WithPolicies::partial_flush_after))
//!    and/or a [`max_latency`](crate::WithPolicies::max_latency), a
//!    generation's deadline is its first
//!    fragment's time plus the smaller of the two; the reason of a deadline
//!    emission is `ttl` when the TTL is the smaller (or they are equal),
//!    `max_latency` otherwise. With neither, generations wait for completeness
//!    or [`finish`](VarSetAssembler::finish).
//! 7. **Time.** In [`TimeMode::Processing`](crate::TimeMode) every row of a
//!    push happens at the `now` passed with it (never earlier than a `now`
//!    passed before: processing time does not run backwards). In
//!    [`TimeMode::Event`](crate::TimeMode) a row happens at its event time;
//!    a row whose event time is null happens at the current watermark
//!    (`i64::MIN` before any time was seen, which makes its generation expire
//!    with the first timed row past its deadline). In both modes the
//!    *watermark* is the largest row time seen so far (and, in processing
//!    mode, the largest `now` passed to `advance`).
//! 8. **Expiry.** A fragment whose time is later than its generation's
//!    deadline first closes that generation (a partial with the deadline's
//!    reason) and opens a new one. After every applied row, every generation
//!    whose deadline is *before* the watermark is emitted (a fragment at
//!    exactly the deadline may still join, so the two rules agree). Because
//!    expiry is evaluated row by row, the generations (and so the multiset of
//!    output rows) depend only on the sequence of rows, never on how it was
//!    cut into batches; and when event times do not decrease along the input,
//!    only on each key's own fragments, so an instance that sees just its
//!    hash shard of the rows closes exactly the generations a single instance
//!    would. In processing mode, [`advance`](VarSetAssembler::advance)
//!    moves the watermark to `now` and emits what is due; in event mode it
//!    does nothing.
//! 9. **Output order.** Each call returns at most one batch. In it, rows
//!    completed during the call come first, in completion order, then rows
//!    closed by a deadline, ordered by (deadline, generation arrival).
//!    [`finish`](VarSetAssembler::finish) emits every held generation as
//!    `end_of_input`, in arrival order (the order in which the generations
//!    were opened), and leaves no key resident.
//! 10. **Policies.** The other [`Policies`](crate::Policies) (max items,
//!     max bytes, partial flush off, after-complete drop, max keys, allowed
//!     lateness, a predicate) work as the [driver's contract](crate::keyed)
//!     says; with none of them set, the rules above are the whole story.
//! 11. **Errors.** An `Err` from `push` means the batch did not match the
//!     schema the assembler was built for (nothing was applied), or the state
//!     outgrew its 32-bit offsets part-way (the batch was partly applied).
//!
//! # Output
//!
//! One row per key generation, columns in this order:
//!
//! | column | type |
//! |---|---|
//! | the key column(s) | as input (a dictionary key as its value type), not null |
//! | one per required variable, named as the variable | the value column's type (a dictionary unpacked), null when missing |
//! | `acc_completeness` | `Float64`, present / required |
//! | `acc_missing_vars` | `List<Utf8>` (item field `"item"`), sorted ascending, empty when complete |
//! | `acc_spilled` | `Boolean`: the generation was spilled out of memory at least once |
//! | `acc_reason` | `Utf8`: `complete`, `predicate`, `max_items`, `max_bytes`, `evicted`, `ttl`, `max_latency` or `end_of_input` |

mod config;
mod plan;
mod presence;
mod state;
mod vars;

pub(crate) use plan::value_column;

pub use config::{KeyColumns, RepeatPolicy, VarSet};
pub use state::{VarInput, VarSetState};

/// The running VarSet assembler: a [`KeyedAccumulator`](crate::KeyedAccumulator)
/// over the VarSet's state.
pub type VarSetAssembler = crate::KeyedAccumulator<VarSetState>;
