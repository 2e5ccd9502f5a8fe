//! Projection: keep some columns, in a given order.

use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use garner_columnar::Batch;

use super::column_index;
use crate::{Emitter, Error, Result, Stage};

/// Keeps the named columns, in the order given (zero-copy).
///
/// ```
/// use garner_engine::transforms::Select;
/// let keep = Select::columns(["subject_id", "value"]);
/// ```
#[derive(Debug, Clone)]
pub struct Select {
    columns: Vec<String>,
    indices: Vec<usize>,
}

impl Select {
    /// Keeps `columns`.
    pub fn columns<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        Self { columns: columns.into_iter().map(Into::into).collect(), indices: Vec::new() }
    }

    fn resolve(&self, input: &Schema) -> Result<Vec<usize>> {
        self.columns.iter().map(|c| column_index("", input, c)).collect()
    }
}

impl Stage for Select {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let indices = self.resolve(input)?;
        Ok(Arc::new(input.project(&indices).map_err(|e| Error::arrow("select", e))?))
    }

    fn open(&mut self, ctx: &crate::StageContext) -> Result<()> {
        self.indices = self.resolve(&ctx.input_schema)?;
        Ok(())
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        if self.indices.is_empty() && !self.columns.is_empty() {
            self.indices = self.resolve(&batch.data.schema())?;
        }
        let data = batch.data.project(&self.indices).map_err(|e| Error::arrow("select", e))?;
        out.emit(batch.with_data(data));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::test_util::{batch, run};

    #[test]
    fn keeps_columns_in_the_given_order() {
        let out = run(&mut Select::columns(["score", "id"]), batch());
        let names: Vec<_> = out[0].schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["score", "id"]);
        assert_eq!(out[0].num_rows(), 3);
    }

    #[test]
    fn unknown_column_is_named() {
        let err = Select::columns(["nope"]).output_schema(&batch().schema()).unwrap_err();
        assert!(matches!(err, Error::UnknownColumn { ref column, ref available, .. }
            if column == "nope" && available.len() == 3));
    }
}
