//! [`RateLimited`]: token-bucket rate shaping of a stage's input, in rows.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow_schema::SchemaRef;
use garner_accum::AccumStats;
use garner_columnar::Batch;

use super::{FlowError, TokenBucket};
use crate::{Clock, Emitter, ManualClock, Millis, Pressure, Result, Stage, StageContext, SystemClock};

/// Where a rate-limited stage reads the time and waits.
pub trait Pacer: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds.
    fn now(&self) -> Millis;
    /// Waits `ms` milliseconds.
    fn wait(&self, ms: Millis);
}

impl Pacer for SystemClock {
    fn now(&self) -> Millis {
        Clock::now(self)
    }
    fn wait(&self, ms: Millis) {
        std::thread::sleep(Duration::from_millis(ms.max(0) as u64));
    }
}

/// Waiting on a manual clock moves it on: tests see the exact schedule.
impl Pacer for ManualClock {
    fn now(&self) -> Millis {
        Clock::now(self)
    }
    fn wait(&self, ms: Millis) {
        self.advance(ms.max(0));
    }
}

/// A stage whose input is admitted at most `rows_per_sec` rows a second
/// (bursts up to `burst` rows): before a batch is processed, its rows are
/// taken from a [`TokenBucket`], waiting for them when there are too few (a
/// batch larger than the burst is admitted a burst at a time). The bucket is
/// shared by the stage's instances, so the rate holds for the stage.
///
/// ```
/// use garner_engine::flow::RateLimited;
/// use garner_engine::transforms::MapBatches;
/// use garner_engine::ManualClock;
/// use std::sync::Arc;
///
/// let clock = Arc::new(ManualClock::new(0));
/// let limited = RateLimited::new(MapBatches::new(Ok), 1000.0, 100).unwrap().pacer(clock.clone());
/// # let _ = limited;
/// ```
#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    bucket: Arc<Mutex<TokenBucket>>,
    pacer: Arc<dyn Pacer>,
    waited: Arc<Mutex<Millis>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimited<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimited").field("inner", &self.inner).field("pacer", &self.pacer).finish()
    }
}

impl<S: Stage> RateLimited<S> {
    /// `inner`, admitting `rows_per_sec` rows a second, bursts of `burst`.
    pub fn new(inner: S, rows_per_sec: f64, burst: u64) -> std::result::Result<Self, FlowError> {
        Ok(Self {
            inner,
            bucket: Arc::new(Mutex::new(TokenBucket::new(rows_per_sec, burst)?)),
            pacer: Arc::new(SystemClock),
            waited: Arc::default(),
        })
    }

    /// Reads the time from, and waits on, `pacer` (a [`ManualClock`] in tests).
    pub fn pacer(mut self, pacer: Arc<dyn Pacer>) -> Self {
        self.pacer = pacer;
        self
    }

    /// Milliseconds all instances have waited for tokens so far.
    pub fn waited_ms(&self) -> Millis {
        *self.waited.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `rows` tokens, waiting as needed.
    fn admit(&self, rows: u64) {
        let mut left = rows;
        while left > 0 {
            let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
            let take = left.min(bucket.burst());
            let now = self.pacer.now();
            if bucket.try_take(now, take) {
                left -= take;
                continue;
            }
            let wait = bucket.time_until(now, take).unwrap_or(1).max(1);
            drop(bucket);
            self.pacer.wait(wait);
            *self.waited.lock().unwrap_or_else(PoisonError::into_inner) += wait;
        }
    }
}

impl<S: Stage> Stage for RateLimited<S> {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        self.inner.open(ctx)
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.inner.output_schema(input)
    }
    fn output_ports(&self) -> Vec<String> {
        self.inner.output_ports()
    }
    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        self.admit(batch.num_rows() as u64);
        self.inner.process(batch, out)
    }
    fn on_time(&mut self, now: Millis, out: &mut Emitter) -> Result<()> {
        self.inner.on_time(now, out)
    }
    fn finish(&mut self, out: &mut Emitter) -> Result<()> {
        self.inner.finish(out)
    }
    fn finish_pending(&self) -> bool {
        self.inner.finish_pending()
    }
    fn pressure(&self) -> Pressure {
        self.inner.pressure()
    }
    fn key_columns(&self) -> Vec<String> {
        self.inner.key_columns()
    }
    fn event_time_column(&self) -> Option<String> {
        self.inner.event_time_column()
    }
    fn accum_stats(&self) -> Option<AccumStats> {
        self.inner.accum_stats()
    }
    fn dropped_rows(&self) -> u64 {
        self.inner.dropped_rows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use garner_columnar::{sink::CollectSink, source::MemorySource};

    #[test]
    fn the_stage_admits_the_configured_rate_on_a_manual_clock() {
        let clock = Arc::new(ManualClock::new(0));
        // 1000 rows a second, bursts of 100; 20 batches of 50 rows = 1000 rows.
        let limited = RateLimited::new(MapBatches::new(Ok), 1000.0, 100).unwrap().pacer(clock.clone());
        let handle = limited.clone();
        let batches: Vec<RecordBatch> = (0..20)
            .map(|_| {
                let x: ArrayRef = Arc::new(Int64Array::from_iter_values(0..50));
                RecordBatch::try_from_iter([("x", x)]).unwrap()
            })
            .collect();
        let (sink, out) = CollectSink::new();
        let graph = Pipeline::new("rate")
            .source("read", MemorySource::try_from_batches(batches).unwrap())
            .transform("limited", limited)
            .sink("out", sink)
            .build()
            .unwrap();
        SyncEngine::new().run(graph, RunOptions::default()).unwrap();
        assert_eq!(out.concat().unwrap().num_rows(), 1000);
        // The first 100 rows ride the burst; the other 900 take 0.9 s.
        assert_eq!(Clock::now(clock.as_ref()), 900);
        assert_eq!(handle.waited_ms(), 900);
    }

    #[test]
    fn a_batch_larger_than_the_burst_is_admitted_a_burst_at_a_time() {
        let clock = Arc::new(ManualClock::new(0));
        let limited = RateLimited::new(MapBatches::new(Ok), 100.0, 10).unwrap().pacer(clock.clone());
        limited.admit(35);
        assert_eq!(Clock::now(clock.as_ref()), 250, "10 at once, then 25 more at 100/s");
    }
}
