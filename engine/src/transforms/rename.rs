//! Renaming columns.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use garner_columnar::Batch;

use super::column_index;
use crate::validate::same_columns;
use crate::{Emitter, Error, Result, Stage, StageContext};

/// Renames columns (zero-copy: only the schema changes).
///
/// ```
/// use garner_engine::transforms::Rename;
/// let r = Rename::new([("subj", "subject_id")]);
/// ```
#[derive(Debug, Clone)]
pub struct Rename {
    pairs: Vec<(String, String)>,
    /// (input, output) schemas, resolved in `open` or on the first batch
    /// (and again if the columns change).
    schemas: Option<(SchemaRef, SchemaRef)>,
}

impl Rename {
    /// Renames each `(from, to)`.
    pub fn new<I, A, B>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        Self { pairs: pairs.into_iter().map(|(a, b)| (a.into(), b.into())).collect(), schemas: None }
    }
}

impl Stage for Rename {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        // The input schema of the graph, not the first batch's: after a
        // merge, a field may be nullable in one input and not in another.
        self.schemas = Some((ctx.input_schema.clone(), self.output_schema(&ctx.input_schema)?));
        Ok(())
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (from, to) in &self.pairs {
            let i = column_index("", input, from)?;
            fields[i] = fields[i].clone().with_name(to);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = fields.iter().find(|f| !seen.insert(f.name().clone())) {
            return Err(Error::InvalidStage {
                stage: String::new(),
                message: format!("rename gives two columns the name `{}`", dup.name()),
            });
        }
        Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let input = batch.data.schema_ref();
        let schema = match &self.schemas {
            Some((from, to)) if same_columns(from, input) => to.clone(),
            _ => self.schemas.insert((input.clone(), self.output_schema(input)?)).1.clone(),
        };
        let data = RecordBatch::try_new(schema, batch.data.columns().to_vec())
            .map_err(|e| Error::arrow("rename", e))?;
        out.emit(batch.with_data(data));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::test_util::{batch, run};

    #[test]
    fn renames_and_keeps_data() {
        let out = run(&mut Rename::new([("name", "label")]), batch());
        assert_eq!(out[0].schema().field(1).name(), "label");
        assert_eq!(out[0].column(1), batch().column(1));
    }

    #[test]
    fn rejects_a_clash() {
        let err = Rename::new([("name", "id")]).output_schema(&batch().schema()).unwrap_err();
        assert!(err.to_string().contains("two columns the name `id`"), "{err}");
    }
}
