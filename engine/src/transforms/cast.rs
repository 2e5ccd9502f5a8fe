//! Casting columns to other types.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_cast::{can_cast_types, cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use garner_columnar::Batch;

use super::column_index;
use crate::{Emitter, Error, Result, Stage};

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
}

impl Cast {
    /// Casts `column` to `to`.
    pub fn column(column: impl Into<String>, to: DataType) -> Self {
        Self { casts: vec![(column.into(), to)] }
    }

    /// Also casts `column` to `to`.
    pub fn and(mut self, column: impl Into<String>, to: DataType) -> Self {
        self.casts.push((column.into(), to));
        self
    }
}

impl Stage for Cast {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (column, to) in &self.casts {
            let i = column_index("", input, column)?;
            if !can_cast_types(fields[i].data_type(), to) {
                return Err(Error::InvalidStage {
                    stage: String::new(),
                    message: format!("cannot cast column `{column}` from {} to {to}", fields[i].data_type()),
                });
            }
            fields[i] = fields[i].clone().with_data_type(to.clone());
        }
        Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let input = batch.data.schema();
        let schema = self.output_schema(&input)?;
        let mut columns = batch.data.columns().to_vec();
        let options = CastOptions { safe: false, ..Default::default() };
        for (column, to) in &self.casts {
            let i = column_index("", &input, column)?;
            columns[i] = cast_with_options(&columns[i], to, &options)
                .map_err(|e| Error::arrow(format!("casting column `{column}` to {to}"), e))?;
        }
        let data = RecordBatch::try_new(schema, columns).map_err(|e| Error::arrow("cast", e))?;
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
    fn impossible_cast_is_caught_at_build() {
        let err = Cast::column("score", DataType::Struct(vec![Field::new("x", DataType::Int8, true)].into()))
            .output_schema(&batch().schema())
            .unwrap_err();
        assert!(err.to_string().contains("cannot cast column `score`"), "{err}");
    }
}
