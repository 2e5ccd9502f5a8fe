//! The rayon engine streams: a wave at a time, time between waves, a
//! stepped finish passed on step by step.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use garner_columnar::source::IterSource;
use garner_columnar::{Batch, BatchSink, SinkSummary};

use crate::transforms::MapBatches;
use crate::{Emitter, Engine, ManualClock, Millis, Pipeline, RayonEngine, Result, RunOptions, Stage};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]))
}

fn rows(values: &[i64]) -> RecordBatch {
    let x: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
    RecordBatch::try_new(schema(), vec![x]).unwrap()
}

/// `batches` one-row batches made as they are read, counted in `read`;
/// each read moves `clock` (if any) by `step` ms.
fn counted(batches: i64, read: Arc<AtomicU64>, clock: Option<(ManualClock, Millis)>) -> IterSource {
    let mut at = 0;
    let iter = std::iter::from_fn(move || {
        (at < batches).then(|| {
            at += 1;
            read.fetch_add(1, SeqCst);
            if let Some((c, step)) = &clock {
                c.advance(*step);
            }
            Ok::<_, ArrowError>(rows(&[at]))
        })
    });
    IterSource::new(schema(), iter)
}

/// Counts the rows it writes and, per write, how many batches the source
/// had read beyond those written (the most it ran ahead).
struct Counting {
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    lead: Arc<AtomicU64>,
}

impl BatchSink for Counting {
    fn open(&mut self, _schema: SchemaRef) -> garner_columnar::Result<()> {
        Ok(())
    }
    fn write(&mut self, batch: &RecordBatch) -> garner_columnar::Result<()> {
        let written = self.written.fetch_add(batch.num_rows() as u64, SeqCst);
        self.lead.fetch_max(self.read.load(SeqCst).saturating_sub(written), SeqCst);
        Ok(())
    }
    fn finish(&mut self) -> garner_columnar::Result<SinkSummary> {
        Ok(SinkSummary::default())
    }
    fn abort(&mut self) {}
    fn describe(&self) -> String {
        "counting sink".into()
    }
}

fn counting(read: &Arc<AtomicU64>) -> (Counting, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (written, lead) = (Arc::default(), Arc::default());
    let sink = Counting { read: read.clone(), written: Arc::clone(&written), lead: Arc::clone(&lead) };
    (sink, written, lead)
}

#[test]
fn the_source_runs_at_most_one_wave_ahead_of_the_sink() {
    let read = Arc::new(AtomicU64::new(0));
    let (sink, written, lead) = counting(&read);
    let graph = Pipeline::new("waves")
        .source("read", counted(100, read.clone(), None))
        .transform("pass", MapBatches::new(Ok))
        .sink("out", sink)
        .build()
        .unwrap();
    let report = RayonEngine::with_threads(2).wave_batches(4).run(graph, RunOptions::default()).unwrap();
    assert_eq!((written.load(SeqCst), report.stage("out").unwrap().rows_in), (100, 100));
    let lead = lead.load(SeqCst);
    assert!((1..=4).contains(&lead), "the source ran {lead} batches ahead of the sink");
}

/// Passes batches on; counts `on_time` calls; finishes in `steps` steps,
/// each emitting one row (-1) and noting how many rows the sink had
/// written by then.
#[derive(Clone)]
struct Steps {
    ticks: Arc<AtomicU64>,
    steps: u64,
    done: u64,
    written: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Stage for Steps {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }
    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        out.emit(batch);
        Ok(())
    }
    fn on_time(&mut self, _now: Millis, _out: &mut Emitter) -> Result<()> {
        self.ticks.fetch_add(1, SeqCst);
        Ok(())
    }
    fn finish(&mut self, out: &mut Emitter) -> Result<()> {
        self.seen.lock().unwrap().push(self.written.load(SeqCst));
        self.done += 1;
        out.emit_data(rows(&[-1]));
        Ok(())
    }
    fn finish_pending(&self) -> bool {
        self.done < self.steps
    }
}

fn steps(written: &Arc<AtomicU64>, steps: u64) -> Steps {
    Steps { ticks: Arc::default(), steps, done: 0, written: written.clone(), seen: Arc::default() }
}

#[test]
fn stages_are_told_when_processing_time_moves_between_waves() {
    let clock = ManualClock::new(0);
    let read = Arc::new(AtomicU64::new(0));
    let (sink, written, _) = counting(&read);
    let stage = steps(&written, 1);
    let ticks = stage.ticks.clone();
    let graph = Pipeline::new("ticks")
        .source("read", counted(10, read.clone(), Some((clock.clone(), 1_000))))
        .transform("steps", stage)
        .sink("out", sink)
        .build()
        .unwrap();
    let opts = RunOptions::default().with_clock(Arc::new(clock));
    let report = RayonEngine::with_threads(2).wave_batches(2).run(graph, opts).unwrap();
    // Five waves, each moving time by 2 s: a tick after each, to every instance.
    let instances = report.stage("steps").unwrap().instances as u64;
    assert_eq!(ticks.load(SeqCst), 5 * instances);
}

#[test]
fn each_finish_step_reaches_the_sink_before_the_next() {
    let read = Arc::new(AtomicU64::new(0));
    let (sink, written, _) = counting(&read);
    let stage = steps(&written, 3);
    let seen = stage.seen.clone();
    let graph = Pipeline::new("finish")
        .source("read", counted(5, read.clone(), None))
        .transform("steps", stage)
        .parallelism(1)
        .transform("pass", MapBatches::new(Ok))
        .sink("out", sink)
        .build()
        .unwrap();
    let report = RayonEngine::with_threads(2).wave_batches(2).run(graph, RunOptions::default()).unwrap();
    assert_eq!(*seen.lock().unwrap(), [5, 6, 7]);
    assert_eq!((written.load(SeqCst), report.stage("steps").unwrap().rows_out), (8, 8));
}
