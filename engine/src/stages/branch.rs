//! Routing rows to named outputs by predicate.

use arrow_array::BooleanArray;
use arrow_buffer::BooleanBuffer;
use arrow_schema::SchemaRef;
use garner_columnar::Batch;

use crate::{Emitter, Error, Predicate, Result, Stage};

/// Routes each row to the first route whose predicate holds, or to the
/// `otherwise` output. Every row goes to exactly one output; a row that
/// matches no route and has no `otherwise` output is dropped and counted
/// (see [`Branch::unrouted_rows`]).
///
/// ```
/// use garner_engine::{col, stages::Branch};
/// let b = Branch::new().route("large", col("limit").gt(1_000_000)).otherwise("rest");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Branch {
    routes: Vec<(String, Predicate)>,
    otherwise: Option<String>,
    unrouted: u64,
}

impl Branch {
    /// A branch with no routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds output `name` for rows matching `predicate` (and no earlier route).
    pub fn route(mut self, name: impl Into<String>, predicate: Predicate) -> Self {
        self.routes.push((name.into(), predicate));
        self
    }

    /// Adds output `name` for rows no route matched.
    pub fn otherwise(mut self, name: impl Into<String>) -> Self {
        self.otherwise = Some(name.into());
        self
    }

    /// Rows that matched no route and had no `otherwise` output.
    pub fn unrouted_rows(&self) -> u64 {
        self.unrouted
    }
}

impl Stage for Branch {
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
        let mut taken = BooleanBuffer::new_unset(n);
        for (port, (_, predicate)) in self.routes.iter().enumerate() {
            let mask = &predicate.evaluate(&batch.data)? & &!&taken;
            emit_rows(&batch, &mask, port, out)?;
            taken = &taken | &mask;
        }
        let rest = !&taken;
        match &self.otherwise {
            Some(_) => emit_rows(&batch, &rest, self.routes.len(), out)?,
            None => self.unrouted += rest.count_set_bits() as u64,
        }
        Ok(())
    }
}

fn emit_rows(batch: &Batch, mask: &BooleanBuffer, port: usize, out: &mut Emitter) -> Result<()> {
    let count = mask.count_set_bits();
    if count == batch.num_rows() {
        out.emit_to(port, batch.clone());
    } else if count > 0 {
        let data =
            arrow_select::filter::filter_record_batch(&batch.data, &BooleanArray::new(mask.clone(), None))
                .map_err(|e| Error::arrow("branch", e))?;
        out.emit_to(port, batch.with_data(data));
    }
    Ok(())
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
    fn unrouted_rows_are_counted() {
        let mut b = Branch::new().route("hi", col("score").gt(2.0));
        let mut out = Emitter::new(0);
        b.process(Batch::new(0, batch()), &mut out).unwrap();
        assert_eq!(b.unrouted_rows(), 2);
    }

    #[test]
    fn duplicate_output_names_are_rejected() {
        let b = Branch::new().route("a", col("id").gt(1)).otherwise("a");
        assert!(b.output_schema(&batch().schema()).is_err());
    }
}
