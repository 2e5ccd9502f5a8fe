//! Resilience primitives, as pure state machines driven by the caller's
//! time (so tests control it): the [`CircuitBreaker`].

mod breaker;

pub use breaker::{BreakerConfig, BreakerError, CircuitBreaker, CircuitState, Combine};
