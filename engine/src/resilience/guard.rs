//! [`Guarded`]: a stage run under its error policy.
//!
//! For each batch:
//! 1. If the stage is quarantined (it panicked, with
//!    [`PanicPolicy::Quarantine`]) or its circuit breaker is open, the batch
//!    goes straight to the dead-letter output.
//! 2. Otherwise the stage processes it into a scratch emitter, under
//!    `catch_unwind`. Success (within the time quota, if any) passes the
//!    output on. A failure (an error, or a batch over its quota, whose
//!    output is discarded) is retried after the [`Backoff`] wait, up to
//!    `retry.max_attempts` tries in all; then the batch goes to the
//!    dead-letter output with the last error, and the run goes on.
//! 3. A panic ends the run with [`Error::Panicked`] naming the stage
//!    ([`PanicPolicy::Abort`]), or quarantines the stage: this batch and
//!    every later one go to the dead-letter output.
//!
//! Without a [`DeadLetterQueue`], what would be dead-lettered ends the run
//! with the error instead (nothing is dropped silently). Every outcome is
//! counted: [`GuardStats`].
//!
//! A retry runs the whole batch again. That is exact for stateless stages
//! (transforms, which is what retries are for); a stateful stage (an
//! accumulator) keeps whatever a failed attempt changed, so its retried
//! fragments count as repeats (its `on_repeat` policy decides which value
//! stays).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use garner_accum::AccumStats;
use garner_columnar::Batch;

use super::{Backoff, CircuitBreaker, PanicPolicy, StagePolicy};
use crate::{DeadLetterQueue, Emitter, Error, Millis, Pressure, Result, Stage, StageContext};

/// What a guarded stage did with its batches (summed over instances).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Batches processed successfully (perhaps after retries).
    pub ok_batches: u64,
    /// Retries made.
    pub retries: u64,
    /// Batches and rows sent to the dead-letter output.
    pub dead_batches: u64,
    /// Rows sent to the dead-letter output.
    pub dead_rows: u64,
    /// Panics caught.
    pub panics: u64,
    /// Batches refused by an open circuit breaker.
    pub refused: u64,
}

/// A stage wrapped in a [`StagePolicy`]: retries with backoff, a circuit
/// breaker, a time quota, panic containment, and the dead-letter output.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::{sink::CollectSink, source::MemorySource};
/// use garner_engine::prelude::*;
/// use garner_engine::resilience::{Guarded, RetryPolicy, StagePolicy};
/// use garner_engine::DeadLetterQueue;
///
/// // Fails every other call: each batch succeeds on its retry.
/// let calls = Arc::new(AtomicUsize::new(0));
/// let flaky = MapBatches::new(move |b: RecordBatch| {
///     if calls.fetch_add(1, Ordering::SeqCst) % 2 == 0 { Err("transient".into()) } else { Ok(b) }
/// });
/// let retry = RetryPolicy { max_attempts: 3, base_backoff: Duration::ZERO, max_backoff: Duration::ZERO, jitter: 0.0 };
/// let dlq = DeadLetterQueue::new();
/// let guarded = Guarded::new(flaky, StagePolicy { retry, ..StagePolicy::default() }).dead_letters(dlq.clone());
///
/// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
/// let (sink, out) = CollectSink::new();
/// let graph = Pipeline::new("retry")
///     .source("read", MemorySource::try_from_batches(vec![data.clone(), data]).unwrap())
///     .transform("flaky", guarded)
///     .sink("out", sink)
///     .build()
///     .unwrap();
/// SyncEngine::new().run(graph, RunOptions::default()).unwrap();
/// assert_eq!(out.concat().unwrap().num_rows(), 6);
/// assert_eq!(dlq.rows(), 0);
/// ```
pub struct Guarded {
    /// In a mutex only so the guard is `Sync` (engines share factories);
    /// calls with `&mut self` reach it without locking.
    inner: Mutex<Box<dyn Stage>>,
    factory: Arc<dyn Fn() -> Box<dyn Stage> + Send + Sync>,
    policy: StagePolicy,
    dead_letters: Option<DeadLetterQueue>,
    stage_id: String,
    backoff: Option<Backoff>,
    breaker: Option<CircuitBreaker>,
    quarantined: Option<String>,
    stats: GuardStats,
    shared: Arc<Mutex<GuardStats>>,
    observer: Option<crate::ObserverRef>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("stage", &self.stage_id)
            .field("policy", &self.policy)
            .field("quarantined", &self.quarantined)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Clone for Guarded {
    /// A fresh instance (a fresh inner stage) with the same policy, queue
    /// and shared counters.
    fn clone(&self) -> Self {
        Self {
            inner: Mutex::new((self.factory)()),
            factory: self.factory.clone(),
            policy: self.policy.clone(),
            dead_letters: self.dead_letters.clone(),
            stage_id: self.stage_id.clone(),
            backoff: None,
            breaker: None,
            quarantined: None,
            stats: GuardStats::default(),
            shared: self.shared.clone(),
            observer: None,
        }
    }
}

impl Guarded {
    /// `stage` under `policy`.
    pub fn new(stage: impl Stage + Clone + Sync + 'static, policy: StagePolicy) -> Self {
        let template = stage.clone();
        Self {
            inner: Mutex::new(Box::new(stage)),
            factory: Arc::new(move || Box::new(template.clone())),
            policy,
            dead_letters: None,
            stage_id: String::new(),
            backoff: None,
            breaker: None,
            quarantined: None,
            stats: GuardStats::default(),
            shared: Arc::new(Mutex::new(GuardStats::default())),
            observer: None,
        }
    }

    fn inner_mut(&mut self) -> &mut Box<dyn Stage> {
        self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn inner_ref(&self) -> std::sync::MutexGuard<'_, Box<dyn Stage>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stages `factory` makes, under `policy` (what
    /// [`PipelineGraph::with_policies`](crate::PipelineGraph::with_policies) wraps).
    pub fn from_factory(factory: Arc<dyn crate::StageFactory>, policy: StagePolicy) -> GuardedFactory {
        GuardedFactory { factory, policy, dead_letters: None, shared: Arc::default() }
    }

    /// Sends what fails for good to `queue` (without one, it ends the run).
    pub fn dead_letters(mut self, queue: DeadLetterQueue) -> Self {
        self.dead_letters = Some(queue);
        self
    }

    /// A handle on the counters of every instance of this stage.
    pub fn stats_handle(&self) -> GuardStatsHandle {
        GuardStatsHandle(self.shared.clone())
    }

    fn publish(&self, before: GuardStats) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let (now, then) = (self.stats, before);
        shared.ok_batches += now.ok_batches - then.ok_batches;
        shared.retries += now.retries - then.retries;
        shared.dead_batches += now.dead_batches - then.dead_batches;
        shared.dead_rows += now.dead_rows - then.dead_rows;
        shared.panics += now.panics - then.panics;
        shared.refused += now.refused - then.refused;
    }

    /// Tells the breaker how a try went; a change of state goes to the observer.
    fn record_outcome(&mut self, now: Millis, ok: bool, took: Duration) {
        let Some(b) = &mut self.breaker else { return };
        let before = b.state();
        b.record(now, ok, took.as_secs_f64() * 1e3);
        let after = b.state();
        if after != before {
            tracing::warn!(stage = %self.stage_id, ?before, ?after, "circuit breaker changed state");
            if let Some(o) = &self.observer {
                o.on_circuit_change(&self.stage_id, after);
            }
        }
    }

    /// Sends `batch` to the dead-letter output with `error`, or fails the run.
    fn dead_letter(&mut self, batch: &Batch, error: String) -> Result<()> {
        let Some(queue) = &self.dead_letters else {
            return Err(Error::Stage {
                stage: self.stage_id.clone(),
                source: Box::new(Error::Internal(error)),
            });
        };
        queue.push_failed(&self.stage_id, &batch.data, &error)?;
        self.stats.dead_batches += 1;
        self.stats.dead_rows += batch.num_rows() as u64;
        Ok(())
    }

    fn attempt(&mut self, batch: &Batch, now: Millis) -> Attempt {
        let mut scratch = Emitter::new(now);
        let started = Instant::now();
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        let outcome = catch_unwind(AssertUnwindSafe(|| inner.process(batch.clone(), &mut scratch)));
        let took = started.elapsed();
        match outcome {
            Ok(Ok(())) => match self.policy.time_quota {
                Some(quota) if took > quota => {
                    Attempt::Failed(format!("took {took:?}, over the time quota of {quota:?}"), took)
                }
                _ => Attempt::Done(scratch, took),
            },
            Ok(Err(e)) => Attempt::Failed(e.to_string(), took),
            Err(payload) => Attempt::Panicked(panic_message(payload.as_ref())),
        }
    }

    fn process_guarded(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        if let Some(why) = self.quarantined.clone() {
            return self.dead_letter(&batch, why);
        }
        let now = out.now();
        if let Some(b) = &mut self.breaker {
            let before = b.state();
            let allowed = b.allow(now);
            let after = b.state();
            if after != before {
                if let Some(o) = &self.observer {
                    o.on_circuit_change(&self.stage_id, after);
                }
            }
            if !allowed {
                self.stats.refused += 1;
                return self.dead_letter(&batch, "circuit breaker open".into());
            }
        }
        let attempts = self.policy.retry.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.attempt(&batch, now) {
                Attempt::Done(mut scratch, took) => {
                    self.record_outcome(now, true, took);
                    for (port, b) in scratch.drain() {
                        out.emit_to(port, b);
                    }
                    self.stats.ok_batches += 1;
                    return Ok(());
                }
                Attempt::Failed(error, took) => {
                    self.record_outcome(now, false, took);
                    last = error;
                    if attempt < attempts {
                        self.stats.retries += 1;
                        let wait = self.backoff.as_mut().and_then(Iterator::next).unwrap_or(Duration::ZERO);
                        if !wait.is_zero() {
                            std::thread::sleep(wait);
                        }
                    }
                }
                Attempt::Panicked(message) => {
                    self.stats.panics += 1;
                    return match self.policy.on_panic {
                        PanicPolicy::Abort => Err(Error::Panicked { stage: self.stage_id.clone(), message }),
                        PanicPolicy::Quarantine => {
                            let why = format!("quarantined: the stage panicked: {message}");
                            tracing::error!(stage = %self.stage_id, %message, "stage panicked; quarantined, its input goes to the dead-letter output");
                            self.quarantined = Some(why.clone());
                            self.dead_letter(&batch, why)
                        }
                    };
                }
            }
        }
        self.dead_letter(&batch, format!("failed after {attempts} attempt(s): {last}"))
    }
}

enum Attempt {
    Done(Emitter, Duration),
    Failed(String, Duration),
    Panicked(String),
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The counters of every instance of a [`Guarded`] stage.
#[derive(Debug, Clone)]
pub struct GuardStatsHandle(Arc<Mutex<GuardStats>>);

impl GuardStatsHandle {
    /// The counters now.
    pub fn get(&self) -> GuardStats {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Stage for Guarded {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        self.stage_id = ctx.stage_id.clone();
        self.observer = ctx.observer.clone();
        self.backoff = Some(self.policy.retry.backoff(ctx.partition as u64 + 1));
        self.breaker = match &self.policy.breaker {
            Some(config) => Some(CircuitBreaker::new(config.clone()).map_err(|e| Error::Stage {
                stage: ctx.stage_id.clone(),
                source: Box::new(Error::Internal(e.to_string())),
            })?),
            None => None,
        };
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        match catch_unwind(AssertUnwindSafe(|| inner.open(ctx))) {
            Ok(result) => result,
            Err(payload) => {
                Err(Error::Panicked { stage: ctx.stage_id.clone(), message: panic_message(payload.as_ref()) })
            }
        }
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.inner_ref().output_schema(input)
    }

    fn output_ports(&self) -> Vec<String> {
        self.inner_ref().output_ports()
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let before = self.stats;
        let result = self.process_guarded(batch, out);
        self.publish(before);
        result
    }

    fn on_time(&mut self, now: Millis, out: &mut Emitter) -> Result<()> {
        if self.quarantined.is_some() {
            return Ok(());
        }
        self.inner_mut().on_time(now, out)
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<()> {
        if self.quarantined.is_some() {
            return Ok(());
        }
        self.inner_mut().finish(out)
    }

    fn finish_pending(&self) -> bool {
        self.quarantined.is_none() && self.inner_ref().finish_pending()
    }

    fn pressure(&self) -> Pressure {
        let circuit_state = self.breaker.as_ref().map_or(0, |b| b.state().gauge());
        Pressure { circuit_state, ..self.inner_ref().pressure() }
    }

    fn key_columns(&self) -> Vec<String> {
        self.inner_ref().key_columns()
    }

    fn event_time_column(&self) -> Option<String> {
        self.inner_ref().event_time_column()
    }

    fn accum_stats(&self) -> Option<AccumStats> {
        self.inner_ref().accum_stats()
    }

    /// The inner stage's drops plus the rows dead-lettered here.
    fn dropped_rows(&self) -> u64 {
        self.inner_ref().dropped_rows() + self.stats.dead_rows
    }
}

/// Makes a [`Guarded`] instance of another factory's stage per partition.
pub struct GuardedFactory {
    factory: Arc<dyn crate::StageFactory>,
    policy: StagePolicy,
    dead_letters: Option<DeadLetterQueue>,
    shared: Arc<Mutex<GuardStats>>,
}

impl GuardedFactory {
    /// Sends what fails for good to `queue`.
    pub fn dead_letters(mut self, queue: DeadLetterQueue) -> Self {
        self.dead_letters = Some(queue);
        self
    }

    /// A handle on the counters of every instance.
    pub fn stats_handle(&self) -> GuardStatsHandle {
        GuardStatsHandle(self.shared.clone())
    }
}

impl crate::StageFactory for GuardedFactory {
    fn create(&self, partition: usize) -> Box<dyn Stage> {
        let factory = self.factory.clone();
        Box::new(Guarded {
            inner: Mutex::new(factory.create(partition)),
            factory: Arc::new(move || factory.create(partition)),
            policy: self.policy.clone(),
            dead_letters: self.dead_letters.clone(),
            stage_id: String::new(),
            backoff: None,
            breaker: None,
            quarantined: None,
            stats: GuardStats::default(),
            shared: self.shared.clone(),
            observer: None,
        })
    }
}
