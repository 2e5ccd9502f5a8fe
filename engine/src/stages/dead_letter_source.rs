//! A source whose bad rows go to the run's dead-letter output.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use garner_columnar::source::BadRowStats;
use garner_columnar::{BatchSource, Result};

use crate::DeadLetterQueue;

/// Wraps a source that sets bad rows aside (CSV or JSON lines with
/// [`OnBadRow::DeadLetter`](garner_columnar::source::OnBadRow::DeadLetter)):
/// after every batch, the rows it set aside go to `queue` under the
/// source's id. Everything else is the inner source's.
pub struct DeadLetterSource {
    inner: Box<dyn BatchSource>,
    stage: String,
    queue: DeadLetterQueue,
}

impl DeadLetterSource {
    /// `source`, known as `stage`, sending its bad rows to `queue`.
    pub fn new(source: Box<dyn BatchSource>, stage: &str, queue: DeadLetterQueue) -> Self {
        Self { inner: source, stage: stage.to_owned(), queue }
    }

    fn pass_on(&mut self) -> Result<()> {
        if let Some(dead) = self.inner.take_dead_letters() {
            self.queue.push(&self.stage, dead).map_err(|e| garner_columnar::Error::SchemaMismatch {
                context: format!("dead letters of `{}`", self.stage),
                expected: "an `_error` column".into(),
                found: e.to_string(),
            })?;
        }
        Ok(())
    }
}

impl BatchSource for DeadLetterSource {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let next = self.inner.next_batch();
        self.pass_on()?;
        next
    }

    fn rows_hint(&self) -> Option<u64> {
        self.inner.rows_hint()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn bad_rows(&self) -> BadRowStats {
        self.inner.bad_rows()
    }
}
