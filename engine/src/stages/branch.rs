//! Routing rows to named outputs by predicate.

use arrow_buffer::BooleanBuffer;
use arrow_schema::SchemaRef;
use garner_columnar::Batch;

use crate::{BoundPredicate, Emitter, Error, Predicate, Result, Stage, StageContext};

/// Routes each row to the first route whose predicate holds, or to the
/// `otherwise` output. Every row goes to at most one output; a row that
/// matches no route when there is no `otherwise` output is dropped and
/// counted ([`Stage::dropped_rows`], reported as the stage's
/// `rows_dropped`).
///
/// ```
/// use garner_engine::{col, stages::Branch};
/// let b = Branch::new().route("large", col("limit").gt(1_000_000)).otherwise("rest");
/// ```
#[derive(Debug, Default)]
pub struct Branch {
    routes: Vec<(String, Predicate)>,
    otherwise: Option<String>,
    /// Per route, its predicate bound to the input schema (in `open` or on
    /// the first batch).
    bound: Vec<Option<BoundPredicate>>,
    /// Rows that matched no route and had no `otherwise` output.
    dropped: u64,
}

impl Clone for Branch {
    /// A clone is a fresh instance: same routes, nothing dropped yet.
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
            otherwise: self.otherwise.clone(),
            bound: self.bound.clone(),
            dropped: 0,
        }
    }
}

impl Branch {
    /// A branch with no routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds output `name` for rows matching `predicate` (and no earlier route).
    pub fn route(mut self, name: impl Into<String>, predicate: Predicate) -> Self {
        self.routes.push((name.into(), predicate));
        self.bound.push(None);
        self
    }

    /// Adds output `name` for rows no route matched.
    pub fn otherwise(mut self, name: impl Into<String>) -> Self {
        self.otherwise = Some(name.into());
        self
    }
}

impl Stage for Branch {
    fn open(&mut self, ctx: &StageContext) -> Result<()> {
        for ((_, predicate), bound) in self.routes.iter().zip(&mut self.bound) {
            *bound = Some(predicate.bind("", &ctx.input_schema)?);
        }
        Ok(())
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        if self.routes.is_empty() {
            return Err(Error::InvalidStage {
                stage: String::new(),
                message: "a branch needs at least one route".into(),
            });
        }
        let ports = self.output_ports();
        for (i, p) in ports.iter().enumerate() {
            if p.is_empty() || p.contains('.') || ports[..i].contains(p) {
                return Err(Error::InvalidStage {
                    stage: String::new(),
                    message: format!("output name `{p}` is empty, contains '.' or is used twice"),
                });
            }
        }
        for (_, p) in &self.routes {
            p.check("", input)?;
        }
        Ok(input.clone())
    }

    fn output_ports(&self) -> Vec<String> {
        self.routes.iter().map(|(n, _)| n.clone()).chain(self.otherwise.clone()).collect()
    }

    fn process(&mut self, batch: Batch, out: &mut Emitter) -> Result<()> {
        let n = batch.num_rows();
        let schema = batch.data.schema_ref();
        let mut taken = BooleanBuffer::new_unset(n);
        for (port, ((_, predicate), bound)) in self.routes.iter().zip(&mut self.bound).enumerate() {
            let matched = predicate.bind_cached(bound, schema)?.evaluate(&batch.data)?;
            let mask = &matched & &!&taken;
            out.emit_selected(port, &batch, &mask)?;
            taken = &taken | &mask;
        }
        let rest = !&taken;
        match &self.otherwise {
            Some(_) => out.emit_selected(self.routes.len(), &batch, &rest)?,
            None => self.dropped += rest.count_set_bits() as u64,
        }
        Ok(())
    }

    fn dropped_rows(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::col;
    use crate::transforms::test_util::batch;

    #[test]
    fn each_row_goes_to_the_first_matching_route() {
        let mut b = Branch::new()
            .route("hi", col("score").gt(1.0))
            .route("all", col("score").gt(0.0))
            .otherwise("rest");
        let mut out = Emitter::new(0);
        b.process(Batch::new(0, batch()), &mut out).unwrap();
        let routed: Vec<(usize, usize)> = out.drain().map(|(p, b)| (p, b.num_rows())).collect();
        assert_eq!(routed, [(0, 2), (1, 1)], "nothing left for `rest`");
    }

    #[test]
    fn unrouted_rows_are_counted_and_a_clone_starts_at_zero() {
        let mut b = Branch::new().route("hi", col("score").gt(2.0));
        let mut out = Emitter::new(0);
        b.process(Batch::new(0, batch()), &mut out).unwrap();
        assert_eq!(b.dropped_rows(), 2);
        // Caught: a clone (a new partition's instance) inherited the count.
        assert_eq!(b.clone().dropped_rows(), 0);
        let mut with_rest = Branch::new().route("hi", col("score").gt(2.0)).otherwise("rest");
        with_rest.process(Batch::new(0, batch()), &mut out).unwrap();
        assert_eq!(with_rest.dropped_rows(), 0);
    }

    #[test]
    fn duplicate_output_names_are_rejected() {
        let b = Branch::new().route("a", col("id").gt(1)).otherwise("a");
        assert!(b.output_schema(&batch().schema()).is_err());
    }
}
