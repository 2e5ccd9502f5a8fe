//! Row filters: by predicate, and the common "drop rows with nulls".

use arrow_schema::SchemaRef;
use garner_columnar::Batch;

use crate::{col, BoundPredicate, Emitter, Predicate, Result, Stage, StageContext};

/// Keeps the rows for which the predicate is true (null counts as false).
///
/// ```
/// use garner_engine::{col, transforms::Filter};
/// let f = Filter::new(col("limit").gt_eq(1000));
/// ```
#[derive(Debug, Clone)]
pub struct Filter {
    predicate: Predicate,
    /// The predicate bound to the input schema: in `open`, or on the first
    /// batch (and again if a batch comes with other columns).
    bound: Option<BoundPredicate>,
}

impl Filter {
    /// A filter keeping rows where `predicate` holds.
    pub fn new(predicate: Predicate) -> Self {
        Self { predicate, bound: None }
    }
}

impl Stage for Filter {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        self.bound = Some(self.predicate.bind("", &ctx.input_schema)?);
        Ok(())
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.predicate.check("", input)?;
        Ok(input.clone())
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let mask =
            self.predicate.bind_cached(&mut self.bound, batch.data.schema_ref())?.evaluate(&batch.data)?;
        out.emit_selected(0, &batch, &mask)
    }
}

/// Drops rows with a null in any of the named columns.
///
/// ```
/// use garner_engine::transforms::DropNulls;
/// let clean = DropNulls::on(["subject_id"]);
/// ```
#[derive(Debug, Clone)]
pub struct DropNulls(Filter);

impl DropNulls {
    /// Drops rows where any of `columns` is null.
    ///
    /// # Panics
    /// If `columns` is empty.
    pub fn on<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        let predicate = columns
            .into_iter()
            .map(|c| col(c).is_not_null())
            .reduce(Predicate::and)
            .expect("DropNulls::on needs at least one column");
        Self(Filter::new(predicate))
    }
}

impl Stage for DropNulls {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        self.0.open(ctx)
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.0.output_schema(input)
    }
    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        self.0.process(batch, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::test_util::{batch, run};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    #[test]
    fn keeps_matching_rows() {
        let out = run(&mut Filter::new(col("score").gt(1.0)), batch());
        let ids: Vec<_> = out[0].column(0).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(ids, [Some(2), None]);
    }

    #[test]
    fn emits_nothing_when_nothing_matches() {
        assert!(run(&mut Filter::new(col("score").gt(100)), batch()).is_empty());
    }

    #[test]
    fn a_fraction_against_an_integer_column_keeps_the_right_rows() {
        // Caught: `id < 2.5` was evaluated as `id < 2`.
        let out = run(&mut Filter::new(col("id").lt(2.5)), batch());
        let ids: Vec<_> = out[0].column(0).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(ids, [Some(1), Some(2)]);
    }

    #[test]
    fn a_filter_rebinds_when_the_columns_change() {
        let mut f = Filter::new(col("id").gt(1));
        run(&mut f, batch());
        let reordered = batch().project(&[2, 0]).unwrap();
        let out = run(&mut f, reordered);
        assert_eq!(out[0].num_rows(), 1);
    }

    #[test]
    fn drop_nulls_on_several_columns() {
        let out = run(&mut DropNulls::on(["id", "name"]), batch());
        assert_eq!(out[0].num_rows(), 1);
    }
}
