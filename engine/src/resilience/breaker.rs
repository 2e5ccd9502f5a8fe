//! A circuit breaker for a stage: closed → open on its error rate and/or
//! p95 latency over the last calls, half-open after a minimum open time
//! with a limited number of trial batches, closed again after enough
//! successes; with hysteresis (a minimum closed time before it may open
//! again).

use std::collections::VecDeque;

use crate::Millis;

/// The breaker's state; [`CircuitState::gauge`] is the seed's
/// `stage_circuit_state` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; outcomes are watched.
    Closed,
    /// A limited number of trial calls go through.
    HalfOpen,
    /// Calls are refused.
    Open,
}

impl CircuitState {
    /// 0 = closed, 1 = half-open, 2 = open.
    pub fn gauge(self) -> u8 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }
}

/// How the error-rate and latency conditions combine (when both are set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Combine {
    /// Open when either condition holds.
    #[default]
    Any,
    /// Open only when both hold (the seed's `errorRate > E AND p95 > L`).
    All,
}

/// When a [`CircuitBreaker`] opens and closes.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// The last this many calls are watched.
    pub window: usize,
    /// No opening before the window holds this many calls.
    pub min_calls: usize,
    /// Open when the share of failed calls in the window is above this.
    pub error_rate: Option<f64>,
    /// Open when the window's p95 latency (ms) is above this.
    pub p95_latency_ms: Option<f64>,
    /// How the two conditions combine.
    pub combine: Combine,
    /// Stay open at least this long before trying again.
    pub min_open_ms: Millis,
    /// Trial calls let through while half-open.
    pub half_open_trials: u32,
    /// Successful trials that close the breaker (at most `half_open_trials`).
    pub close_after: u32,
    /// Once closed, do not open again for this long (hysteresis).
    pub min_closed_ms: Millis,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: 100,
            min_calls: 20,
            error_rate: Some(0.5),
            p95_latency_ms: None,
            combine: Combine::Any,
            min_open_ms: 5_000,
            half_open_trials: 5,
            close_after: 3,
            min_closed_ms: 1_000,
        }
    }
}

/// A [`BreakerConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker: {0}")]
pub struct BreakerError(String);

/// One watched call.
#[derive(Debug, Clone, Copy)]
struct Call {
    ok: bool,
    latency_ms: f64,
}

/// A circuit breaker: ask [`allow`](Self::allow) before a call, tell
/// [`record`](Self::record) how it went. Time is passed in.
///
/// ```
/// use garner_engine::resilience::{BreakerConfig, CircuitBreaker, CircuitState};
/// let config = BreakerConfig { window: 10, min_calls: 4, error_rate: Some(0.5), min_open_ms: 1_000,
///     half_open_trials: 2, close_after: 2, min_closed_ms: 0, ..BreakerConfig::default() };
/// let mut b = CircuitBreaker::new(config)?;
/// for t in 0..4 {
///     assert!(b.allow(t));
///     b.record(t, false, 1.0); // four failures
/// }
/// assert_eq!(b.state(), CircuitState::Open);
/// assert!(!b.allow(500)); // still open
/// assert!(b.allow(1_004)); // half-open: a trial
/// b.record(1_004, true, 1.0);
/// assert!(b.allow(1_005));
/// b.record(1_005, true, 1.0);
/// assert_eq!(b.state(), CircuitState::Closed);
/// # Ok::<(), garner_engine::resilience::BreakerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: CircuitState,
    /// When the current state began.
    since: Millis,
    calls: VecDeque<Call>,
    failures_in_window: usize,
    trials_admitted: u32,
    trial_successes: u32,
    transitions: u64,
    refused: u64,
}

impl CircuitBreaker {
    /// A closed breaker. Errors name what cannot work.
    pub fn new(config: BreakerConfig) -> Result<Self, BreakerError> {
        let bad = |m: &str| Err(BreakerError(m.to_owned()));
        if config.window == 0 || config.min_calls == 0 || config.min_calls > config.window {
            return bad("need 1 <= min_calls <= window");
        }
        if config.error_rate.is_none() && config.p95_latency_ms.is_none() {
            return bad("set error_rate and/or p95_latency_ms");
        }
        if config.error_rate.is_some_and(|r| !(0.0..1.0).contains(&r)) {
            return bad("error_rate must be in [0, 1)");
        }
        if config.p95_latency_ms.is_some_and(|l| l.is_nan() || l < 0.0) {
            return bad("p95_latency_ms must be >= 0");
        }
        if config.half_open_trials == 0
            || config.close_after == 0
            || config.close_after > config.half_open_trials
        {
            return bad("need 1 <= close_after <= half_open_trials");
        }
        if config.min_open_ms < 0 || config.min_closed_ms < 0 {
            return bad("intervals must be >= 0");
        }
        Ok(CircuitBreaker {
            calls: VecDeque::with_capacity(config.window),
            config,
            state: CircuitState::Closed,
            since: Millis::MIN,
            failures_in_window: 0,
            trials_admitted: 0,
            trial_successes: 0,
            transitions: 0,
            refused: 0,
        })
    }

    /// The state as of the last call of `allow` or `record`.
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// State changes so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Calls refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Whether a call may go now. An open breaker turns half-open once it
    /// has been open `min_open_ms`; a half-open one lets `half_open_trials`
    /// calls through, then refuses until they are recorded.
    pub fn allow(&mut self, now: Millis) -> bool {
        if self.state == CircuitState::Open && now.saturating_sub(self.since) >= self.config.min_open_ms {
            self.enter(CircuitState::HalfOpen, now);
        }
        let allowed = match self.state {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen => {
                if self.trials_admitted < self.config.half_open_trials {
                    self.trials_admitted += 1;
                    true
                } else {
                    false
                }
            }
        };
        if !allowed {
            self.refused += 1;
        }
        allowed
    }

    /// How an allowed call went: `ok` and its latency.
    pub fn record(&mut self, now: Millis, ok: bool, latency_ms: f64) {
        match self.state {
            CircuitState::Closed => {
                if self.calls.len() == self.config.window {
                    if let Some(old) = self.calls.pop_front() {
                        self.failures_in_window -= usize::from(!old.ok);
                    }
                }
                self.calls.push_back(Call { ok, latency_ms });
                self.failures_in_window += usize::from(!ok);
                let settled = now.saturating_sub(self.since) >= self.config.min_closed_ms;
                if settled && self.calls.len() >= self.config.min_calls && self.tripped() {
                    self.enter(CircuitState::Open, now);
                }
            }
            CircuitState::HalfOpen => {
                let slow = self.config.p95_latency_ms.is_some_and(|l| latency_ms > l);
                if !ok || slow {
                    self.enter(CircuitState::Open, now);
                } else {
                    self.trial_successes += 1;
                    if self.trial_successes >= self.config.close_after {
                        self.enter(CircuitState::Closed, now);
                    }
                }
            }
            // A call allowed before the breaker opened, finishing late: ignored.
            CircuitState::Open => {}
        }
    }

    /// Whether the window's figures call for opening.
    fn tripped(&self) -> bool {
        let n = self.calls.len() as f64;
        let errors = self.config.error_rate.map(|r| self.failures_in_window as f64 / n > r);
        let latency = self.config.p95_latency_ms.map(|l| self.p95() > l);
        match (errors, latency, self.config.combine) {
            (Some(e), Some(l), Combine::All) => e && l,
            (Some(e), Some(l), Combine::Any) => e || l,
            (Some(e), None, _) => e,
            (None, Some(l), _) => l,
            (None, None, _) => false,
        }
    }

    /// The 95th percentile latency of the window (nearest rank).
    fn p95(&self) -> f64 {
        let mut l: Vec<f64> = self.calls.iter().map(|c| c.latency_ms).collect();
        l.sort_by(f64::total_cmp);
        let rank = ((l.len() as f64) * 0.95).ceil() as usize;
        l[rank.clamp(1, l.len()) - 1]
    }

    fn enter(&mut self, state: CircuitState, now: Millis) {
        self.state = state;
        self.since = now;
        self.transitions += 1;
        self.trials_admitted = 0;
        self.trial_successes = 0;
        if state == CircuitState::Closed {
            self.calls.clear();
            self.failures_in_window = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: 10,
            min_calls: 5,
            error_rate: Some(0.4),
            p95_latency_ms: None,
            combine: Combine::Any,
            min_open_ms: 100,
            half_open_trials: 3,
            close_after: 2,
            min_closed_ms: 50,
        }
    }

    fn calls(b: &mut CircuitBreaker, now: Millis, outcomes: &[bool]) {
        for &ok in outcomes {
            assert!(b.allow(now));
            b.record(now, ok, 1.0);
        }
    }

    #[test]
    fn closed_open_half_open_closed() {
        let mut b = CircuitBreaker::new(config()).unwrap();
        calls(&mut b, 0, &[true, false, false, true]);
        assert_eq!(b.state(), CircuitState::Closed, "fewer than min_calls: never opens");
        calls(&mut b, 1, &[false]);
        assert_eq!(b.state(), CircuitState::Open, "3 of 5 failed > 40%");
        assert!(!b.allow(99));
        assert!(b.allow(101), "open for min_open_ms: a trial");
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.allow(101) && b.allow(101));
        assert!(!b.allow(101), "only half_open_trials go through");
        b.record(102, true, 1.0);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        b.record(103, true, 1.0);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.transitions(), 3);
        assert_eq!(b.refused(), 2);
    }

    #[test]
    fn a_failed_trial_opens_again_for_another_full_interval() {
        let mut b = CircuitBreaker::new(config()).unwrap();
        calls(&mut b, 0, &[false; 5]);
        assert!(b.allow(100));
        b.record(100, false, 1.0);
        assert_eq!(b.state(), CircuitState::Open);
        assert!(!b.allow(150), "the open interval starts again");
        assert!(b.allow(200));
    }

    #[test]
    fn after_closing_it_waits_min_closed_before_opening_again() {
        let mut b = CircuitBreaker::new(config()).unwrap();
        calls(&mut b, 0, &[false; 5]);
        assert!(b.allow(100) && b.allow(100));
        b.record(100, true, 1.0);
        b.record(100, true, 1.0);
        assert_eq!(b.state(), CircuitState::Closed);
        calls(&mut b, 120, &[false; 5]);
        assert_eq!(b.state(), CircuitState::Closed, "within min_closed_ms of closing");
        calls(&mut b, 151, &[false]);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let mut b = CircuitBreaker::new(BreakerConfig { min_calls: 10, ..config() }).unwrap();
        calls(&mut b, 100, &[false, false, false, true, true, true, true, true, true, true]);
        assert_eq!(b.state(), CircuitState::Closed, "3 of 10 failed, under 40%");
        calls(&mut b, 100, &[true, true, true]);
        calls(&mut b, 100, &[false, false]);
        assert_eq!(b.state(), CircuitState::Closed, "the first three failures left the window");
        calls(&mut b, 100, &[false, false, false]);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn p95_latency_opens_and_all_needs_both_conditions() {
        let latency_only = BreakerConfig { error_rate: None, p95_latency_ms: Some(50.0), ..config() };
        let mut b = CircuitBreaker::new(latency_only).unwrap();
        for i in 0..5 {
            assert!(b.allow(100));
            b.record(100, true, if i == 4 { 80.0 } else { 10.0 });
        }
        assert_eq!(b.state(), CircuitState::Open, "p95 of 5 calls is the slowest");

        let both = BreakerConfig { p95_latency_ms: Some(50.0), combine: Combine::All, ..config() };
        let mut b = CircuitBreaker::new(both.clone()).unwrap();
        calls(&mut b, 100, &[false; 5]);
        assert_eq!(b.state(), CircuitState::Closed, "errors but fast");
        let mut b = CircuitBreaker::new(both).unwrap();
        for _ in 0..5 {
            assert!(b.allow(100));
            b.record(100, false, 99.0);
        }
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(CircuitState::Open.gauge(), 2);
    }

    #[test]
    fn a_slow_trial_reopens() {
        let c = BreakerConfig { p95_latency_ms: Some(50.0), ..config() };
        let mut b = CircuitBreaker::new(c).unwrap();
        calls(&mut b, 0, &[false; 5]);
        assert!(b.allow(100));
        b.record(100, true, 70.0);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        for c in [
            BreakerConfig { window: 0, ..config() },
            BreakerConfig { min_calls: 11, ..config() },
            BreakerConfig { error_rate: None, p95_latency_ms: None, ..config() },
            BreakerConfig { error_rate: Some(1.0), ..config() },
            BreakerConfig { close_after: 4, ..config() },
            BreakerConfig { min_open_ms: -1, ..config() },
        ] {
            assert!(CircuitBreaker::new(c).is_err());
        }
    }
}
