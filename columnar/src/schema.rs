//! The one schema rule shared by sources, sinks and the coalescer: when a
//! batch may stand where a schema was promised.

use arrow_schema::Schema;

use crate::{Error, Result};

/// Checks that batches of schema `found` may go where `expected` was
/// promised: the same number of fields, and each expected field
/// [contains](arrow_schema::Field::contains) the found one (same name and
/// type; a nullable expected field accepts a non-nullable one; the expected
/// field's metadata is a superset). Schema-level metadata is ignored: it
/// describes a file, not the rows.
///
/// `context` names the sink or source for the error and is only called on a
/// mismatch.
pub(crate) fn ensure_compatible(
    context: impl FnOnce() -> String,
    expected: &Schema,
    found: &Schema,
) -> Result<()> {
    // Batches of one stream usually share the schema `Arc`; the caller's
    // pointer check and this loop are then both trivial.
    let compatible = expected.fields().len() == found.fields().len()
        && expected.fields().iter().zip(found.fields()).all(|(e, f)| e == f || e.contains(f));
    if compatible {
        Ok(())
    } else {
        Err(Error::SchemaMismatch {
            context: context(),
            expected: expected.to_string(),
            found: found.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn nullable_field_accepts_non_nullable_but_not_the_reverse() {
        let nullable = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let required = Schema::new(vec![Field::new("x", DataType::Int64, false)]);
        assert!(ensure_compatible(|| "t".into(), &nullable, &required).is_ok());
        let err = ensure_compatible(|| "t".into(), &required, &nullable).unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    }

    #[test]
    fn names_types_and_arity_must_agree() {
        let base = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let renamed = Schema::new(vec![Field::new("y", DataType::Int64, true)]);
        let retyped = Schema::new(vec![Field::new("x", DataType::Utf8, true)]);
        let wider =
            Schema::new(vec![Field::new("x", DataType::Int64, true), Field::new("y", DataType::Int64, true)]);
        for other in [&renamed, &retyped, &wider] {
            assert!(ensure_compatible(|| "t".into(), &base, other).is_err(), "{other}");
        }
    }

    #[test]
    fn schema_metadata_is_ignored() {
        let plain = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let tagged = plain.clone().with_metadata([("origin".to_owned(), "file".to_owned())]);
        assert!(ensure_compatible(|| "t".into(), &plain, &tagged).is_ok());
        assert!(ensure_compatible(|| "t".into(), &tagged, &plain).is_ok());
    }
}
