//! Row filters: by predicate, and the common "drop rows with nulls".

use arrow_array::BooleanArray;
use arrow_schema::SchemaRef;
use garner_columnar::Batch;

use crate::{col, Emitter, Error, Predicate, Result, Stage};

/// Keeps the rows for which the predicate is true (null counts as false).
///
/// ```
/// use garner_engine::{col, transforms::Filter};
/// let f = Filter::new(col("limit").gt_eq(1000));
/// ```
#[derive(Debug, Clone)]
pub struct Filter {
    predicate: Predicate,
}

impl Filter {
    /// A filter keeping rows where `predicate` holds.
    pub fn new(predicate: Predicate) -> Self {
        Self { predicate }
    }
}

impl Stage for Filter {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.predicate.check("", input)?;
        Ok(input.clone())
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let mask = self.predicate.evaluate(&batch.data)?;
        let kept = mask.count_set_bits();
        if kept == batch.num_rows() {
            out.emit(batch);
        } else if kept > 0 {
            let data = arrow_select::filter::filter_record_batch(&batch.data, &BooleanArray::new(mask, None))
                .map_err(|e| Error::arrow("filter", e))?;
            out.emit(batch.with_data(data));
        }
        Ok(())
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
    fn drop_nulls_on_several_columns() {
        let out = run(&mut DropNulls::on(["id", "name"]), batch());
        assert_eq!(out[0].num_rows(), 1);
    }
}
