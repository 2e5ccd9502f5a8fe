//! Policies as immutable snapshots (seed §11): a [`PolicyRegistry`] holds
//! the current [`PolicySet`] behind an `Arc`; a run takes a snapshot when
//! it starts and keeps it to the end, while an update swaps in a new set
//! for the runs that start after it.
//!
//! ```text
//!   registry ──► Arc<PolicySet v1> ◄── run A (started before the update)
//!       │
//!   update(v2)
//!       ▼
//!   registry ──► Arc<PolicySet v2> ◄── run B (started after)
//! ```
//!
//! A snapshot never changes: hot reload is "new runs pick up the new set",
//! and the old set lives as long as a run holds it (seed §11: "version bump
//! retains old instance until drain boundary").

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::{BreakerConfig, CircuitBreaker};

/// How many times a failing batch is tried and how long to wait between
/// tries; see [`Backoff`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included; 1 means no retry. At least 1.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each retry after.
    pub base_backoff: Duration,
    /// The longest wait; at least `base_backoff`.
    pub max_backoff: Duration,
    /// The share of each wait taken off at random, in `[0, 1]`: the wait is
    /// uniform in `[d·(1 − jitter), d]` for the capped exponential `d`.
    /// 0 is no jitter, 1 is "full jitter".
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Three tries, 100 ms doubling to at most 10 s, half jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// No retry: the first failure goes to the stage's error handling.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The waits before each retry, seeded so a test (or a replay) sees the
    /// same sequence.
    pub fn backoff(&self, seed: u64) -> Backoff {
        Backoff::new(self, seed)
    }

    fn check(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if self.base_backoff > self.max_backoff {
            return Err("retry.base_backoff must not exceed retry.max_backoff".into());
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!("retry.jitter {} must be in [0, 1]", self.jitter));
        }
        Ok(())
    }
}

/// The waits between the tries of a [`RetryPolicy`]: an iterator of
/// `max_attempts − 1` durations, the `k`-th (from 0) drawn from
/// `[d·(1 − jitter), d]` with `d = min(base·2^k, max)`.
///
/// The randomness is a small generator (splitmix64) seeded by the caller,
/// so the sequence is deterministic for a seed.
///
/// ```
/// use std::time::Duration;
/// use garner_engine::resilience::{Backoff, RetryPolicy};
///
/// let policy = RetryPolicy {
///     max_attempts: 5,
///     base_backoff: Duration::from_millis(100),
///     max_backoff: Duration::from_millis(500),
///     jitter: 0.0,
/// };
/// let waits: Vec<u64> = Backoff::new(&policy, 1).map(|d| d.as_millis() as u64).collect();
/// assert_eq!(waits, [100, 200, 400, 500]);
///
/// let jittered = RetryPolicy { jitter: 0.5, ..policy };
/// let a: Vec<_> = jittered.backoff(7).collect();
/// assert_eq!(a, jittered.backoff(7).collect::<Vec<_>>()); // same seed, same waits
/// assert!(a.iter().all(|d| *d <= Duration::from_millis(500)));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: f64,
    /// Retries left to yield.
    left: u32,
    /// The next retry's index.
    retry: u32,
    rng: u64,
}

impl Backoff {
    /// The waits of `policy`, with jitter seeded by `seed`.
    pub fn new(policy: &RetryPolicy, seed: u64) -> Self {
        Backoff {
            base: policy.base_backoff,
            max: policy.max_backoff,
            jitter: policy.jitter.clamp(0.0, 1.0),
            left: policy.max_attempts.saturating_sub(1),
            retry: 0,
            rng: seed,
        }
    }

    /// `min(base·2^k, max)`, without overflow.
    fn capped(&self, k: u32) -> Duration {
        let factor = 1u32.checked_shl(k).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }

    /// Uniform in `[0, 1)`, from splitmix64.
    fn unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let d = self.capped(self.retry);
        self.retry = self.retry.saturating_add(1);
        if self.jitter == 0.0 {
            return Some(d);
        }
        let cut = self.jitter * self.unit();
        // `d·(1 − cut) <= d`; the float round trip may round up, so cap it.
        let wait = Duration::try_from_secs_f64(d.as_secs_f64() * (1.0 - cut)).map_or(d, |w| w.min(d));
        Some(wait)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Backoff {}

/// What a producer does when the stage's mailbox is full (DESIGN §7). Drops
/// are counted, never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DropPolicy {
    /// The producer waits for room (backpressure).
    #[default]
    Block,
    /// The arriving batch is dropped.
    DropNewest,
    /// The oldest queued batch is dropped to make room.
    DropOldest,
    /// The run fails, naming the stage.
    Fail,
}

/// A stage's input mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxPolicy {
    /// Batches the mailbox holds; at least 1.
    pub capacity: usize,
    /// What happens when it is full.
    pub on_full: DropPolicy,
}

impl Default for MailboxPolicy {
    /// 16 batches, blocking.
    fn default() -> Self {
        MailboxPolicy { capacity: 16, on_full: DropPolicy::Block }
    }
}

/// What happens when a stage panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PanicPolicy {
    /// The run ends with an error naming the stage.
    #[default]
    Abort,
    /// The stage is taken out of the run; its input goes to the dead-letter
    /// output and the run goes on.
    Quarantine,
}

/// Every policy of one stage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StagePolicy {
    /// Retries of a failing batch before it goes to the dead-letter output.
    pub retry: RetryPolicy,
    /// A circuit breaker around the stage, if any.
    pub breaker: Option<BreakerConfig>,
    /// The stage's input mailbox.
    pub mailbox: MailboxPolicy,
    /// What a panic in the stage does.
    pub on_panic: PanicPolicy,
    /// The longest one batch may take; a batch over it counts as failed.
    pub time_quota: Option<Duration>,
}

impl StagePolicy {
    fn check(&self) -> Result<(), String> {
        self.retry.check()?;
        if self.mailbox.capacity == 0 {
            return Err("mailbox.capacity must be at least 1".into());
        }
        if self.time_quota == Some(Duration::ZERO) {
            return Err("time_quota must be positive".into());
        }
        if let Some(config) = &self.breaker {
            CircuitBreaker::new(config.clone()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A [`PolicySet`] that cannot work, naming the stage (or `*` for the
/// default policy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy for stage `{stage}`: {message}")]
pub struct PolicyError {
    /// The stage id, `*` for the default.
    pub stage: String,
    /// What is wrong.
    pub message: String,
}

/// The policies of a pipeline: a default and per-stage overrides. Immutable
/// once in a [`PolicyRegistry`]; build it with [`new`](Self::new) and
/// [`with_stage`](Self::with_stage).
///
/// ```
/// use garner_engine::resilience::{PanicPolicy, PolicySet, StagePolicy};
/// let set = PolicySet::new(StagePolicy::default())
///     .with_stage("parse", StagePolicy { on_panic: PanicPolicy::Quarantine, ..StagePolicy::default() });
/// assert_eq!(set.for_stage("parse").on_panic, PanicPolicy::Quarantine);
/// assert_eq!(set.for_stage("other").on_panic, PanicPolicy::Abort);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicySet {
    default: StagePolicy,
    stages: BTreeMap<String, StagePolicy>,
    version: u64,
}

impl PolicySet {
    /// A set where every stage has `default`.
    pub fn new(default: StagePolicy) -> Self {
        PolicySet { default, stages: BTreeMap::new(), version: 0 }
    }

    /// The set with `stage` overridden by `policy`.
    pub fn with_stage(mut self, stage: impl Into<String>, policy: StagePolicy) -> Self {
        self.stages.insert(stage.into(), policy);
        self
    }

    /// The policy of `stage`: its override or the default.
    pub fn for_stage(&self, stage: &str) -> &StagePolicy {
        self.stages.get(stage).unwrap_or(&self.default)
    }

    /// The default policy.
    pub fn default_policy(&self) -> &StagePolicy {
        &self.default
    }

    /// The stages with an override, by id.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &StagePolicy)> {
        self.stages.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The registry version this set was published as: 1 for the first,
    /// one more for each update; 0 for a set not yet in a registry.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Checks every policy.
    ///
    /// # Errors
    ///
    /// The first [`PolicyError`]: zero attempts or mailbox capacity, a base
    /// backoff over the max, jitter outside `[0, 1]`, a zero time quota, a
    /// breaker config [`CircuitBreaker::new`] refuses.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let policies = std::iter::once(("*", &self.default)).chain(self.overrides());
        for (stage, policy) in policies {
            policy.check().map_err(|message| PolicyError { stage: stage.to_owned(), message })?;
        }
        Ok(())
    }
}

/// The current [`PolicySet`], swapped atomically: a run takes a snapshot
/// at its start and keeps it; a later run picks up the new one.
///
/// Readers take the read lock only to clone the `Arc`, so a snapshot costs
/// one atomic increment and never waits on a run.
///
/// ```
/// use garner_engine::resilience::{PolicyRegistry, PolicySet, RetryPolicy, StagePolicy};
///
/// let registry = PolicyRegistry::new(PolicySet::default())?;
/// let running = registry.snapshot(); // a run starts
/// registry.update(PolicySet::new(StagePolicy { retry: RetryPolicy::none(), ..StagePolicy::default() }))?;
/// assert_eq!(running.for_stage("x").retry.max_attempts, 3); // it keeps its snapshot
/// assert_eq!(registry.snapshot().for_stage("x").retry.max_attempts, 1); // a new run sees the update
/// assert_eq!((running.version(), registry.version()), (1, 2));
/// # Ok::<(), garner_engine::resilience::PolicyError>(())
/// ```
#[derive(Debug)]
pub struct PolicyRegistry {
    current: RwLock<Arc<PolicySet>>,
}

impl PolicyRegistry {
    /// A registry publishing `set` as version 1.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] if `set` does not [validate](PolicySet::validate).
    pub fn new(mut set: PolicySet) -> Result<Self, PolicyError> {
        set.validate()?;
        set.version = 1;
        Ok(PolicyRegistry { current: RwLock::new(Arc::new(set)) })
    }

    /// The current set. Hold it for the length of a run.
    pub fn snapshot(&self) -> Arc<PolicySet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current set's version.
    pub fn version(&self) -> u64 {
        self.current.read().unwrap_or_else(PoisonError::into_inner).version
    }

    /// Publishes `set` as the next version; snapshots taken before keep
    /// the old set. Returns the new version.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] if `set` does not validate; the current set stays.
    pub fn update(&self, set: PolicySet) -> Result<u64, PolicyError> {
        self.modify(|current| *current = set)
    }

    /// Publishes a changed copy of the current set: `change` edits the copy
    /// under the write lock, so concurrent modifications do not lose each
    /// other's changes. Returns the new version.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] if the result does not validate; the current set stays.
    ///
    /// ```
    /// use garner_engine::resilience::{DropPolicy, PolicyRegistry, PolicySet, StagePolicy};
    /// let registry = PolicyRegistry::new(PolicySet::default())?;
    /// registry.modify(|set| {
    ///     let mut sink = set.for_stage("write").clone();
    ///     sink.mailbox.on_full = DropPolicy::DropOldest;
    ///     *set = std::mem::take(set).with_stage("write", sink);
    /// })?;
    /// assert_eq!(registry.snapshot().for_stage("write").mailbox.on_full, DropPolicy::DropOldest);
    /// # Ok::<(), garner_engine::resilience::PolicyError>(())
    /// ```
    pub fn modify(&self, change: impl FnOnce(&mut PolicySet)) -> Result<u64, PolicyError> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = PolicySet::clone(&current);
        change(&mut next);
        next.validate()?;
        next.version = current.version + 1;
        *current = Arc::new(next);
        Ok(current.version)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    use super::*;

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    fn policy(max_attempts: u32, base_ms: u64, max_ms: u64, jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_backoff: Duration::from_millis(base_ms),
            max_backoff: Duration::from_millis(max_ms),
            jitter,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_yields_one_wait_per_retry() {
        let waits: Vec<u64> = policy(8, 50, 1_000, 0.0).backoff(0).map(ms).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(policy(1, 50, 1_000, 0.0).backoff(0).count(), 0, "one attempt: no retry");
        assert_eq!(policy(4, 50, 1_000, 0.3).backoff(9).len(), 3);
    }

    #[test]
    fn backoff_does_not_overflow_after_many_retries() {
        let last = policy(200, 1, 60_000, 0.0).backoff(0).last().unwrap();
        assert_eq!(ms(last), 60_000);
        let huge =
            RetryPolicy { base_backoff: Duration::MAX, max_backoff: Duration::MAX, ..policy(70, 1, 1, 0.0) };
        assert!(huge.backoff(0).all(|d| d == Duration::MAX));
    }

    #[test]
    fn jitter_stays_in_its_band_and_is_deterministic_per_seed() {
        let p = policy(12, 100, 2_000, 0.5);
        let plain: Vec<_> = policy(12, 100, 2_000, 0.0).backoff(0).collect();
        for seed in 0..200 {
            let waits: Vec<_> = p.backoff(seed).collect();
            assert_eq!(waits, p.backoff(seed).collect::<Vec<_>>(), "seed {seed}");
            for (w, d) in waits.iter().zip(&plain) {
                assert!(
                    *w <= *d && *w >= d.mul_f64(0.5),
                    "seed {seed}: {w:?} outside [{:?}, {d:?}]",
                    d.mul_f64(0.5)
                );
            }
        }
        let a: Vec<_> = p.backoff(1).collect();
        let b: Vec<_> = p.backoff(2).collect();
        assert_ne!(a, b, "different seeds, different waits");
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_band() {
        // Over many seeds the first wait (d = 1000 ms) lands in every tenth of [0, d].
        let p = policy(2, 1_000, 1_000, 1.0);
        let mut tenths = [0u32; 10];
        for seed in 0..2_000 {
            let w = ms(p.backoff(seed).next().unwrap());
            tenths[(w / 100).min(9) as usize] += 1;
        }
        assert!(tenths.iter().all(|n| *n > 100), "{tenths:?}");
    }

    #[test]
    fn invalid_policies_are_refused_naming_the_stage() {
        let bad_retry = StagePolicy { retry: policy(0, 1, 2, 0.0), ..StagePolicy::default() };
        let e = PolicyRegistry::new(PolicySet::new(bad_retry)).unwrap_err();
        assert_eq!(e.to_string(), "policy for stage `*`: retry.max_attempts must be at least 1");

        let registry = PolicyRegistry::new(PolicySet::default()).unwrap();
        let cases = [
            StagePolicy { retry: policy(2, 10, 5, 0.0), ..StagePolicy::default() },
            StagePolicy { retry: policy(2, 1, 5, 1.5), ..StagePolicy::default() },
            StagePolicy {
                mailbox: MailboxPolicy { capacity: 0, on_full: DropPolicy::Block },
                ..StagePolicy::default()
            },
            StagePolicy { time_quota: Some(Duration::ZERO), ..StagePolicy::default() },
            StagePolicy {
                breaker: Some(BreakerConfig { window: 0, ..BreakerConfig::default() }),
                ..StagePolicy::default()
            },
        ];
        for policy in cases {
            let e = registry.update(PolicySet::default().with_stage("parse", policy.clone())).unwrap_err();
            assert_eq!(e.stage, "parse", "{policy:?}");
        }
        assert_eq!(registry.version(), 1, "refused updates publish nothing");
    }

    /// A stand-in for a run: takes a snapshot when it starts and reads only
    /// that until it ends.
    struct Run {
        policies: Arc<PolicySet>,
    }

    impl Run {
        fn start(registry: &PolicyRegistry) -> Self {
            Run { policies: registry.snapshot() }
        }

        fn attempts(&self, stage: &str) -> u32 {
            self.policies.for_stage(stage).retry.max_attempts
        }
    }

    #[test]
    fn a_running_holder_keeps_its_snapshot_and_a_new_one_picks_up_the_update() {
        let registry = PolicyRegistry::new(PolicySet::default()).unwrap();
        let first = Run::start(&registry);
        assert_eq!(first.attempts("parse"), 3);

        let five = StagePolicy { retry: policy(5, 10, 100, 0.0), ..StagePolicy::default() };
        assert_eq!(registry.update(PolicySet::default().with_stage("parse", five)).unwrap(), 2);
        let second = Run::start(&registry);

        assert_eq!(first.attempts("parse"), 3, "the running one keeps version 1");
        assert_eq!(second.attempts("parse"), 5, "the new one has version 2");
        assert_eq!((first.policies.version(), second.policies.version()), (1, 2));
        // The old set lives exactly as long as its holder.
        assert_eq!(Arc::strong_count(&first.policies), 1);
        assert_eq!(Arc::strong_count(&second.policies), 2, "the registry and the run");
    }

    #[test]
    fn snapshots_are_never_torn_while_updates_race() {
        // Writers publish sets whose every field is derived from one number;
        // readers check each snapshot is consistent and versions only grow.
        let registry = Arc::new(PolicyRegistry::new(PolicySet::default()).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (registry, stop) = (Arc::clone(&registry), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut last = 0;
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Relaxed) || seen == 0 {
                        let set = registry.snapshot();
                        assert!(set.version() >= last, "versions only grow");
                        last = set.version();
                        let n = set.default_policy().retry.max_attempts;
                        for (_, p) in set.overrides() {
                            assert_eq!(p.retry.max_attempts, n);
                            assert_eq!(p.mailbox.capacity, n as usize);
                        }
                        seen += 1;
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..2u32)
            .map(|w| {
                let registry = Arc::clone(&registry);
                thread::spawn(move || {
                    for i in 1..=200u32 {
                        let n = w * 1_000 + i;
                        let p = StagePolicy {
                            retry: RetryPolicy { max_attempts: n, ..RetryPolicy::default() },
                            mailbox: MailboxPolicy { capacity: n as usize, on_full: DropPolicy::DropNewest },
                            ..StagePolicy::default()
                        };
                        let set = PolicySet::new(p.clone()).with_stage("a", p.clone()).with_stage("b", p);
                        registry.update(set).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(registry.version(), 401, "every update published once");
    }

    #[test]
    fn concurrent_modifications_do_not_lose_each_other() {
        let registry = Arc::new(PolicyRegistry::new(PolicySet::default()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let registry = Arc::clone(&registry);
                thread::spawn(move || {
                    for i in 0..25 {
                        registry
                            .modify(|set| {
                                *set = std::mem::take(set)
                                    .with_stage(format!("s{t}-{i}"), StagePolicy::default())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(registry.snapshot().overrides().count(), 100);
    }
}
