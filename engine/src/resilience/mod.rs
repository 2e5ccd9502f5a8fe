//! Resilience primitives, as pure state machines driven by the caller's
//! time (so tests control it): the [`CircuitBreaker`]; and the policies
//! that configure a run, published as immutable snapshots by a
//! [`PolicyRegistry`] (retries with [`Backoff`], breaker, mailbox drop
//! policy, panic policy, time quota per stage).

mod breaker;
mod guard;
mod registry;

pub use breaker::{BreakerConfig, BreakerError, CircuitBreaker, CircuitState, Combine};
pub use guard::{GuardStats, GuardStatsHandle, Guarded, GuardedFactory};
pub use registry::{
    Backoff, DropPolicy, MailboxPolicy, PanicPolicy, PolicyError, PolicyRegistry, PolicySet, RetryPolicy,
    StagePolicy,
};
