//! The accumulator stage: adapts a `garner_accum` assembler to the stage
//! contract. The assembler is a pure state machine; this adapter passes it
//! batches and processing time and forwards what it emits.

use arrow_schema::SchemaRef;
use garner_accum::{AccumStats, TimeMode, VarSet, VarSetAssembler};
use garner_columnar::Batch;

use crate::{Emitter, Error, Millis, Pressure, Result, Stage, StageContext};

/// Runs a [`VarSet`] assembler as a pipeline stage. Built from a `VarSet`
/// with `.into()`, which is what [`Pipeline::accumulate`](crate::Pipeline::accumulate) does.
#[derive(Debug)]
pub struct AccumulateStage {
    spec: VarSet,
    assembler: Option<VarSetAssembler>,
}

impl Clone for AccumulateStage {
    /// A clone is a fresh instance with the same configuration and no state.
    fn clone(&self) -> Self {
        Self { spec: self.spec.clone(), assembler: None }
    }
}

impl From<VarSet> for AccumulateStage {
    fn from(spec: VarSet) -> Self {
        Self { spec, assembler: None }
    }
}

impl AccumulateStage {
    fn assembler(&mut self, batch_schema: &SchemaRef) -> Result<&mut VarSetAssembler> {
        if self.assembler.is_none() {
            self.assembler = Some(self.spec.build(batch_schema)?);
        }
        self.assembler.as_mut().ok_or_else(|| Error::Internal("assembler missing".into()))
    }

    fn forward(out: &mut Emitter, emitted: Option<arrow_array::RecordBatch>) {
        if let Some(data) = emitted {
            out.emit_data(data);
        }
    }
}

impl Stage for AccumulateStage {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        self.assembler = Some(self.spec.build(&ctx.input_schema)?);
        Ok(())
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.spec.output_schema(input)?)
    }

    fn key_columns(&self) -> Vec<String> {
        self.spec.key_columns().to_vec()
    }

    fn event_time_column(&self) -> Option<String> {
        match self.spec.time_mode() {
            TimeMode::Event { column } => Some(column.clone()),
            TimeMode::Processing => None,
        }
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let now = out.now();
        let assembler = self.assembler(&batch.data.schema())?;
        let emitted = assembler.push(&batch.data, now)?;
        Self::forward(out, emitted);
        if let Some(watermark) = batch.meta.watermark {
            let emitted = assembler.observe_watermark(watermark)?;
            Self::forward(out, emitted);
        }
        Ok(())
    }

    fn on_time(&mut self, now: Millis, out: &mut Emitter) -> Result<()> {
        if let Some(a) = self.assembler.as_mut() {
            Self::forward(out, a.advance(now)?);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<()> {
        if let Some(a) = self.assembler.as_mut() {
            Self::forward(out, a.finish()?);
        }
        Ok(())
    }

    fn pressure(&self) -> Pressure {
        match &self.assembler {
            Some(a) => Pressure {
                latent_bytes: a.bytes_held(),
                resident_keys: a.resident_keys() as u64,
                ..Default::default()
            },
            None => Pressure::default(),
        }
    }

    fn accum_stats(&self) -> Option<AccumStats> {
        self.assembler.as_ref().map(|a| a.stats())
    }
}
