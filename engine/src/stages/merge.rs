//! Union of several inputs.

use arrow_schema::SchemaRef;
use garner_columnar::Batch;

use crate::{Emitter, Result, Stage};

/// Passes on every batch of every input. The graph checks at build that all
/// inputs share one schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct Merge;

impl Stage for Merge {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        out.emit(batch);
        Ok(())
    }
}
