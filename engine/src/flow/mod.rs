//! Flow control: pure, deterministic building blocks that decide how fast and
//! in what batch sizes rows may move between stages (DESIGN §7, seed §6).
//!
//! Nothing here spawns a thread, and nothing but
//! [`CreditGate::acquire_timeout`] reads a clock. Time is passed in as
//! [`Millis`](crate::Millis), so an engine feeds the components from its
//! [`Clock`](crate::Clock) and a test drives them from a
//! [`ManualClock`](crate::ManualClock) or plain integers.
//!
//! - [`TokenBucket`] — rate shaping (seed §6.1 "Rate Shaping": `rate`,
//!   `burst`). Tokens refill continuously at `rate_per_sec` up to `burst`;
//!   a stage asks to take `n` tokens before emitting `n` rows.
//! - [`AdaptiveBatch`] — adaptive batch sizing (seed §14 "Adaptive
//!   Algorithm"). After each batch the caller reports the batch latency and
//!   how full the downstream queue is:
//!
//!   1. the latency is EMA-smoothed (`ema = alpha·x + (1 − alpha)·ema`; the
//!      first sample sets it);
//!   2. if `ema < 0.7·target` and `queue_fill > 0.5`, the size grows ×1.5
//!      (capped at `max`);
//!   3. else if `ema > target` or `queue_fill < 0.2`, the size halves
//!      (floored at `min`);
//!   4. otherwise it stays.
//!
//!   A stage set up with [`Batching`] (`Pipeline::batching`) gets its input
//!   batches cut by a [`BatchSizer`] in the sync, steal, dataflow and
//!   hybrid engines, which report each slice's latency and the stage's
//!   input fill to it.
//!
//! - [`CreditGate`] — a credit-based link (seed §6.1 "Credit-Based"): the
//!   receiver grants credits, the sender spends one per unit and announces
//!   its backlog so the receiver can grant ahead. Unlike the other two it is
//!   a thread-safe component (a mutex and two condition variables) shared by
//!   the two ends of a link; its protocol is in its module docs and checked
//!   over every interleaving of small programs in the tests. The parallel
//!   engines' links between stage instances run the same state machine
//!   (the gate's `Ledger`) under their own lock, granting by a
//!   [`GrantRule`]: exclusive credit up to the link's capacity less the
//!   receiver's load, floating credit for a backlog when the receiver is
//!   idle, and never none on an empty link.
//!
//! Both constructors of the pure components validate their parameters and
//! return [`FlowError`].
//!
//! ```
//! use garner_engine::flow::{AdaptiveBatch, AdaptiveConfig, TokenBucket};
//!
//! let mut bucket = TokenBucket::new(1_000.0, 100).unwrap();
//! assert!(bucket.try_take(0, 100));
//! assert!(!bucket.try_take(0, 1));
//! assert_eq!(bucket.time_until(0, 10), Some(10));
//!
//! let config = AdaptiveConfig { min: 16, max: 1024, initial: 128, target_latency_ms: 50.0, alpha: 0.5 };
//! let mut batch = AdaptiveBatch::new(config).unwrap();
//! assert_eq!(batch.observe(10.0, 0.9), 192);
//! ```

mod adaptive;
mod batching;
mod credit;
#[cfg(test)]
mod credit_model;
mod effective;
#[cfg(test)]
mod link_model;
mod rate_limit;
mod token_bucket;

pub use adaptive::{AdaptiveBatch, AdaptiveConfig};
pub use batching::{BatchSizer, Batching};
pub(crate) use credit::Ledger;
pub use credit::{Acquire, CreditGate, CreditStats, GateClosed, GrantRule, ReceiverView};
pub use effective::EffectiveQueue;
pub use rate_limit::{Pacer, RateLimited};
pub use token_bucket::TokenBucket;

/// Invalid flow-control parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// A token-bucket rate that is not a finite number in the supported range.
    #[error(
        "invalid token-bucket rate {rate_per_sec}/s: must be finite, at least {} and at most {}",
        TokenBucket::MIN_RATE_PER_SEC,
        TokenBucket::MAX_RATE_PER_SEC
    )]
    InvalidRate {
        /// The rejected rate, in tokens per second.
        rate_per_sec: f64,
    },
    /// A token bucket that can never hold a token.
    #[error("invalid token-bucket burst 0: must be at least 1")]
    ZeroBurst,
    /// Adaptive batch bounds that do not satisfy `1 <= min <= initial <= max`.
    #[error("invalid adaptive batch bounds min={min}, initial={initial}, max={max}: need 1 <= min <= initial <= max")]
    InvalidBatchBounds {
        /// The smallest batch size.
        min: usize,
        /// The starting batch size.
        initial: usize,
        /// The largest batch size.
        max: usize,
    },
    /// A target latency that is not a finite, positive number of milliseconds.
    #[error("invalid adaptive target latency {target_latency_ms} ms: must be finite and > 0")]
    InvalidTargetLatency {
        /// The rejected target, in milliseconds.
        target_latency_ms: f64,
    },
    /// An EMA smoothing factor outside `(0, 1]`.
    #[error("invalid adaptive EMA alpha {alpha}: must be in (0, 1]")]
    InvalidAlpha {
        /// The rejected smoothing factor.
        alpha: f64,
    },
}
