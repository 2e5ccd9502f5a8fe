//! Casting columns to other types.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_cast::{can_cast_types, cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use garner_columnar::Batch;

use super::column_index;
use crate::validate::same_columns;
use crate::{Emitter, Error, Result, Stage, StageContext};

/// Casts columns to new types. A value that does not convert (`"abc"` to
/// Int64) is an error naming the column, never a silent null.
///
/// ```
/// use arrow_schema::DataType;
/// use garner_engine::transforms::Cast;
/// let c = Cast::column("limit", DataType::Int64).and("score", DataType::Float64);
/// ```
#[derive(Debug, Clone)]
pub struct Cast {
    casts: Vec<(String, DataType)>,
    /// Resolved against the input schema once (in `open`, or on the first
    /// batch and again if the columns change), not per batch.
    plan: Option<Plan>,
}

#[derive(Debug, Clone)]
struct Plan {
    input: SchemaRef,
    /// Per cast, the column's index.
    indices: Vec<usize>,
    output: SchemaRef,
}

impl Cast {
    /// Casts `column` to `to`.
    pub fn column(column: impl Into<String>, to: DataType) -> Self {
        Self { casts: vec![(column.into(), to)], plan: None }
    }

    /// Also casts `column` to `to`.
    pub fn and(mut self, column: impl Into<String>, to: DataType) -> Self {
        self.casts.push((column.into(), to));
        self
    }

    fn resolve(&self, input: &SchemaRef) -> Result<Plan> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut indices = Vec::with_capacity(self.casts.len());
        for (column, to) in &self.casts {
            let i = column_index("", input, column)?;
            if !can_cast_types(fields[i].data_type(), to) {
                return Err(Error::InvalidStage {
                    stage: String::new(),
                    message: format!("cannot cast column `{column}` from {} to {to}", fields[i].data_type()),
                });
            }
            fields[i] = fields[i].clone().with_data_type(to.clone());
            indices.push(i);
        }
        let output = Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()));
        Ok(Plan { input: input.clone(), indices, output })
    }
}

impl Stage for Cast {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        self.plan = Some(self.resolve(&ctx.input_schema)?);
        Ok(())
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.resolve(input)?.output)
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let input = batch.data.schema_ref();
        let plan = match &self.plan {
            Some(plan) if same_columns(&plan.input, input) => plan,
            _ => self.plan.insert(self.resolve(input)?),
        };
        let mut columns = batch.data.columns().to_vec();
        let options = CastOptions { safe: false, ..Default::default() };
        for (&i, (column, to)) in plan.indices.iter().zip(&self.casts) {
            columns[i] = cast_with_options(&columns[i], to, &options)
                .map_err(|e| Error::arrow(format!("casting column `{column}` to {to}"), e))?;
        }
        let data = RecordBatch::try_new(plan.output.clone(), columns).map_err(|e| Error::arrow("cast", e))?;
        out.emit(batch.with_data(data));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::test_util::{batch, run};
    use arrow_array::{ArrayRef, StringArray};

    #[test]
    fn casts_types() {
        let out = run(&mut Cast::column("id", DataType::Utf8), batch());
        assert_eq!(out[0].schema().field(0).data_type(), &DataType::Utf8);
    }

    #[test]
    fn unconvertible_value_is_an_error_naming_the_column() {
        let data =
            RecordBatch::try_from_iter([("n", Arc::new(StringArray::from(vec!["1", "x"])) as ArrayRef)])
                .unwrap();
        let mut cast = Cast::column("n", DataType::Int64);
        let mut out = Emitter::new(0);
        let err = cast.process(Batch::new(0, data), &mut out).unwrap_err();
        assert!(err.to_string().contains("casting column `n` to Int64"), "{err}");
    }

    #[test]
    fn the_output_schema_is_built_once_per_input_schema() {
        // Caught: the output schema was rebuilt for every batch.
        let mut cast = Cast::column("id", DataType::Utf8);
        let first = run(&mut cast, batch());
        let second = run(&mut cast, batch());
        assert!(Arc::ptr_eq(first[0].schema_ref(), second[0].schema_ref()));
    }

    #[test]
    fn impossible_cast_is_caught_at_build() {
        let err = Cast::column("score", DataType::Struct(vec![Field::new("x", DataType::Int8, true)].into()))
            .output_schema(&batch().schema())
            .unwrap_err();
        assert!(err.to_string().contains("cannot cast column `score`"), "{err}");
    }
}
