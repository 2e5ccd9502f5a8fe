//! A sink that keeps batches in memory, for tests and for library users who
//! want the output as Arrow.

use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::schema::ensure_compatible;
use crate::{BatchSink, Error, Result, SinkSummary};

/// Collects the batches written to it; read them through the [`Collected`]
/// handle returned alongside, which stays valid after the sink is moved
/// into a pipeline and dropped.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::BatchSink;
/// use garner_columnar::sink::CollectSink;
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2])) as _)]).unwrap();
/// let (mut sink, collected) = CollectSink::new();
/// sink.open(batch.schema()).unwrap();
/// sink.write(&batch).unwrap();
/// sink.write(&batch).unwrap();
/// assert_eq!(sink.finish().unwrap().rows, 4);
/// sink.commit().unwrap();
/// assert_eq!(collected.concat().unwrap().num_rows(), 4);
/// ```
#[derive(Debug)]
pub struct CollectSink {
    shared: Collected,
    state: State,
    rows: u64,
    batches: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Open,
    Finished,
    Committed,
    Aborted,
}

/// A cloneable handle on what a [`CollectSink`] received. Reading it while
/// the sink still writes sees the batches written so far.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    schema: Option<SchemaRef>,
    batches: Vec<RecordBatch>,
}

impl CollectSink {
    /// A new sink and the handle to read what it collects.
    pub fn new() -> (CollectSink, Collected) {
        let shared = Collected::default();
        (CollectSink { shared: shared.clone(), state: State::Ready, rows: 0, batches: 0 }, shared)
    }
}

impl Collected {
    /// The batches written so far, in order (cheap: columns are shared).
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.lock().batches.clone()
    }

    /// The schema the sink was opened with, if it was.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.lock().schema.clone()
    }

    /// All batches as one.
    ///
    /// # Errors
    ///
    /// [`Error::NotOpen`] if the sink was never opened (there is no schema).
    pub fn concat(&self) -> Result<RecordBatch> {
        let inner = self.lock();
        let schema =
            inner.schema.as_ref().ok_or_else(|| Error::NotOpen { context: "collect sink".into() })?;
        arrow_select::concat::concat_batches(schema, &inner.batches)
            .map_err(|e| Error::arrow("collect sink", e))
    }

    /// Total rows collected.
    pub fn num_rows(&self) -> usize {
        self.lock().batches.iter().map(RecordBatch::num_rows).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock is only held for plain Vec operations that cannot panic
        // half-way, so a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BatchSink for CollectSink {
    fn open(&mut self, schema: SchemaRef) -> Result<()> {
        match self.state {
            State::Ready => {
                self.shared.lock().schema = Some(schema);
                self.state = State::Open;
                Ok(())
            }
            State::Open => {
                let open = self.shared.schema().unwrap_or_else(|| schema.clone());
                ensure_compatible(|| self.describe(), &open, &schema)
                    .and_then(|()| ensure_compatible(|| self.describe(), &schema, &open))
            }
            State::Finished | State::Committed | State::Aborted => {
                Err(Error::Closed { context: self.describe() })
            }
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self.state {
            State::Ready => return Err(Error::NotOpen { context: self.describe() }),
            State::Finished | State::Committed | State::Aborted => {
                return Err(Error::Closed { context: self.describe() })
            }
            State::Open => {}
        }
        let mut inner = self.shared.lock();
        if let Some(schema) = &inner.schema {
            if !Arc::ptr_eq(schema, &batch.schema()) {
                ensure_compatible(|| "collect sink".into(), schema, &batch.schema())?;
            }
        }
        inner.batches.push(batch.clone());
        self.rows += batch.num_rows() as u64;
        self.batches += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        match self.state {
            State::Ready => Err(Error::NotOpen { context: self.describe() }),
            State::Finished | State::Committed | State::Aborted => {
                Err(Error::Closed { context: self.describe() })
            }
            State::Open => {
                self.state = State::Finished;
                Ok(SinkSummary { rows: self.rows, batches: self.batches, bytes: None })
            }
        }
    }

    /// The batches were visible through the handle all along; this only
    /// marks them as kept, so a later `abort` leaves them.
    fn commit(&mut self) -> Result<()> {
        match self.state {
            State::Finished => {
                self.state = State::Committed;
                Ok(())
            }
            State::Ready | State::Open => Err(Error::NotFinished { context: self.describe() }),
            State::Committed | State::Aborted => Err(Error::Closed { context: self.describe() }),
        }
    }

    /// Discards what was collected (the handle then holds no batches),
    /// unless it was committed.
    fn abort(&mut self) {
        if self.state != State::Committed {
            self.shared.lock().batches.clear();
            self.state = State::Aborted;
        }
    }

    fn describe(&self) -> String {
        "collect sink".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{project, samples};

    #[test]
    fn the_handle_sees_every_batch_and_the_concatenation() {
        let batches = samples();
        let (mut sink, collected) = CollectSink::new();
        assert!(collected.schema().is_none());
        sink.open(batches[0].schema()).unwrap();
        for batch in &batches {
            sink.write(batch).unwrap();
        }
        let summary = sink.finish().unwrap();
        assert_eq!(summary, SinkSummary { rows: 13, batches: 3, bytes: None });
        drop(sink);
        assert_eq!(collected.batches(), batches);
        assert_eq!(collected.schema(), Some(batches[0].schema()));
        assert_eq!(collected.num_rows(), 13);
        let all = collected.concat().unwrap();
        assert_eq!(all.slice(5, 7), batches[1]);
    }

    #[test]
    fn the_protocol_is_enforced() {
        let batch = samples().remove(0);
        let (mut sink, collected) = CollectSink::new();
        assert!(matches!(sink.write(&batch), Err(Error::NotOpen { .. })));
        assert!(matches!(collected.concat(), Err(Error::NotOpen { .. })));
        sink.open(batch.schema()).unwrap();
        sink.open(batch.schema()).unwrap();
        assert!(matches!(sink.open(project(&batch, &["id"]).schema()), Err(Error::SchemaMismatch { .. })));
        assert!(matches!(sink.write(&project(&batch, &["id"])), Err(Error::SchemaMismatch { .. })));
        assert!(matches!(sink.commit(), Err(Error::NotFinished { .. })));
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        assert!(matches!(sink.write(&batch), Err(Error::Closed { .. })));
        assert!(matches!(sink.finish(), Err(Error::Closed { .. })));
        sink.commit().unwrap();
        assert!(matches!(sink.commit(), Err(Error::Closed { .. })));
        sink.abort();
        assert_eq!(collected.num_rows(), 5, "abort after commit keeps the batches");
    }

    #[test]
    fn abort_after_an_uncommitted_finish_discards_the_batches() {
        // What an engine does when another sink of the run failed to finish.
        let batch = samples().remove(0);
        let (mut sink, collected) = CollectSink::new();
        sink.open(batch.schema()).unwrap();
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        sink.abort();
        assert!(collected.batches().is_empty());
    }

    #[test]
    fn abort_discards_the_batches() {
        let batch = samples().remove(0);
        let (mut sink, collected) = CollectSink::new();
        sink.open(batch.schema()).unwrap();
        sink.write(&batch).unwrap();
        sink.abort();
        sink.abort();
        assert!(collected.batches().is_empty());
        assert!(matches!(sink.write(&batch), Err(Error::Closed { .. })));
    }
}
