//! A predicate bound to a schema: columns resolved to indices and every
//! literal converted to its column's type once, so evaluating a batch is
//! only Arrow kernel calls.
//!
//! How a literal meets its column in `column op literal`:
//!
//! 1. Kinds must agree. A number is not compared with a text or boolean
//!    column, a boolean only with a boolean column; the error names the
//!    column and suggests a cast stage. A string is parsed as the column's
//!    type (numbers, dates, timestamps) and must parse.
//! 2. Integer columns: a numeric literal becomes an exact integer bound. A
//!    fraction rounds the way the operator needs (`x < 2.5` is `x <= 2`,
//!    `x > 2.5` is `x >= 3`, `x = 2.5` is false and `x != 2.5` true for
//!    every non-null row); a bound outside the column type's range gives
//!    the same answer for every non-null row (`u8_column < 300`).
//! 3. Other columns: the literal is cast to the column's type and back. If
//!    it comes back unchanged the column is compared as it is. If not and
//!    the column is numeric (`0.1` against Float32, `2.555` against a
//!    decimal of scale 2), both sides are compared as Float64, casting the
//!    column per batch; otherwise it is an error.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, RecordBatch, Scalar, UInt64Array,
};
use arrow_buffer::BooleanBuffer;
use arrow_cast::cast;
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};

use super::{CmpOp, Literal, Predicate};
use crate::validate::{same_columns, schema_str};
use crate::{Error, Result};

/// A [`Predicate`] resolved against one schema, made by
/// [`Predicate::bind`]: evaluate it on every batch of that schema.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_engine::col;
///
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
/// // 2.5 against an integer column: x < 2.5 is x <= 2, not x < 2.
/// let p = col("x").lt(2.5).bind("example", batch.schema_ref()).unwrap();
/// assert_eq!(p.evaluate(&batch).unwrap().set_indices().collect::<Vec<_>>(), [0, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct BoundPredicate {
    schema: SchemaRef,
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Cmp { column: usize, test: Test },
    IsNull { column: usize, null: bool },
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

/// How one comparison is computed.
#[derive(Debug, Clone)]
enum Test {
    /// The column as it is against a literal of its (value) type.
    Direct { op: CmpOp, literal: Scalar<ArrayRef> },
    /// The column cast to Float64 against a Float64 literal: the literal
    /// has no exact value in the column's type.
    AsFloat64 { op: CmpOp, literal: Scalar<ArrayRef> },
    /// The same answer for every non-null row.
    Constant(bool),
}

/// A three-valued result: rows definitely true, rows definitely false; the
/// rest are unknown (null).
struct Tri {
    is_true: BooleanBuffer,
    is_false: BooleanBuffer,
}

impl BoundPredicate {
    pub(super) fn new(predicate: &Predicate, stage: &str, schema: &SchemaRef) -> Result<Self> {
        Ok(Self { schema: schema.clone(), root: node(predicate, stage, schema)? })
    }

    /// The schema it was bound to.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether batches of `schema` can be evaluated: the same field names
    /// and types, in the same order, as the schema it was bound to
    /// (nullability and metadata do not matter to a predicate, so the
    /// inputs of a merge share one binding).
    pub fn matches(&self, schema: &SchemaRef) -> bool {
        same_columns(&self.schema, schema)
    }

    /// The rows of `batch` that match, as a bitmap.
    ///
    /// Logic is SQL's three-valued logic: a comparison with a null value is
    /// unknown, `NOT unknown` is unknown, and a row matches only when the
    /// predicate is definitely true.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaMismatch`] if `batch` does not have the schema the
    /// predicate was bound to.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanBuffer> {
        if !self.matches(batch.schema_ref()) {
            return Err(Error::SchemaMismatch {
                stage: String::new(),
                input: "a predicate's input".into(),
                expected: schema_str(&self.schema),
                found: schema_str(batch.schema_ref()),
            });
        }
        Ok(self.root.tri(batch)?.is_true)
    }
}

/// Checks `predicate` against `schema` as binding does, keeping nothing.
pub(super) fn check(predicate: &Predicate, stage: &str, schema: &Schema) -> Result<()> {
    node(predicate, stage, schema).map(drop)
}

/// Binds one node of the predicate tree.
fn node(p: &Predicate, stage: &str, schema: &Schema) -> Result<Node> {
    let index =
        |column: &str| schema.index_of(column).map_err(|_| Error::unknown_column(stage, column, schema));
    Ok(match p {
        Predicate::Cmp { column, op, value } => {
            let i = index(column)?;
            let data_type = schema.field(i).data_type();
            let test = test(*op, value, data_type).map_err(|why| Error::InvalidStage {
                stage: stage.to_owned(),
                message: format!(
                    "cannot compare column `{column}` ({data_type}) {} {value}: {why}",
                    op.symbol()
                ),
            })?;
            Node::Cmp { column: i, test }
        }
        Predicate::IsNull(c) => Node::IsNull { column: index(c)?, null: true },
        Predicate::IsNotNull(c) => Node::IsNull { column: index(c)?, null: false },
        Predicate::And(a, b) => {
            Node::And(Box::new(node(a, stage, schema)?), Box::new(node(b, stage, schema)?))
        }
        Predicate::Or(a, b) => Node::Or(Box::new(node(a, stage, schema)?), Box::new(node(b, stage, schema)?)),
        Predicate::Not(a) => Node::Not(Box::new(node(a, stage, schema)?)),
    })
}

const CAST_HINT: &str = "or convert the column first with a cast stage";

/// How to compare a column of `column_type` with `literal` (see the module
/// docs); `Err` says why they cannot be compared.
fn test(op: CmpOp, literal: &Literal, column_type: &DataType) -> Result<Test, String> {
    let target = match column_type {
        DataType::Dictionary(_, values) => values.as_ref(),
        t => t,
    };
    let text = matches!(target, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let boolean = *target == DataType::Boolean;
    let number = match *literal {
        Literal::Int(v) => Number::Int(i128::from(v)),
        Literal::UInt(v) => Number::Int(i128::from(v)),
        Literal::Float(v) => Number::Float(v),
        Literal::Str(_) => {
            // Parsed as the column's type: exact or not at all.
            let value = cast_literal(literal, target)?.ok_or_else(|| {
                format!("{literal} is not a valid {target}; write a literal of that type, {CAST_HINT}")
            })?;
            return Ok(Test::Direct { op, literal: Scalar::new(value) });
        }
        Literal::Bool(_) if boolean => {
            return Ok(Test::Direct { op, literal: Scalar::new(literal.to_array()) })
        }
        Literal::Bool(_) => return Err(format!("a boolean against a non-boolean column; {CAST_HINT}")),
    };
    if text {
        return Err(format!(
            "a number against a text column; write the value as a string (\"{literal}\"), {CAST_HINT}"
        ));
    }
    if boolean {
        return Err(format!("a number against a boolean column; write true or false, {CAST_HINT}"));
    }
    if let Some((min, max)) = integer_range(target) {
        return integer_test(op, number, min, max, target);
    }
    // Floats, decimals, temporal types: the literal must survive the round trip.
    let original = literal.to_array();
    let exact = match cast_literal(literal, target)? {
        Some(value) => {
            let back = cast(&value, original.data_type()).map_err(|e| e.to_string())?;
            (back.to_data() == original.to_data()).then_some(value)
        }
        None => None,
    };
    match exact {
        Some(value) => Ok(Test::Direct { op, literal: Scalar::new(value) }),
        None if target.is_numeric() => Ok(as_float64(op, number.as_f64())),
        None => Err(format!("{literal} has no exact {target} value; {CAST_HINT}")),
    }
}

/// A numeric literal, integers exactly.
#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(v) => v as f64,
            Number::Float(v) => v,
        }
    }
}

/// `literal` as a one-element array of `target`, `None` if it has no value there.
fn cast_literal(literal: &Literal, target: &DataType) -> Result<Option<ArrayRef>, String> {
    let value = cast(&literal.to_array(), target).map_err(|e| e.to_string())?;
    Ok((!value.is_null(0)).then_some(value))
}

fn as_float64(op: CmpOp, value: f64) -> Test {
    Test::AsFloat64 { op, literal: Scalar::new(Arc::new(Float64Array::from(vec![value])) as ArrayRef) }
}

/// The range of an integer type.
fn integer_range(t: &DataType) -> Option<(i128, i128)> {
    Some(match t {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        DataType::UInt8 => (0, u8::MAX.into()),
        DataType::UInt16 => (0, u16::MAX.into()),
        DataType::UInt32 => (0, u32::MAX.into()),
        DataType::UInt64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// A number against an integer column of range `min..=max`: an exact
/// integer bound, or a constant answer.
fn integer_test(op: CmpOp, number: Number, min: i128, max: i128, target: &DataType) -> Result<Test, String> {
    let (op, bound) = match number {
        Number::Int(v) => (op, v),
        // NaN and infinities: compare as floats (Arrow orders NaN above all).
        Number::Float(v) if !v.is_finite() => return Ok(as_float64(op, v)),
        // `as` saturates; a saturated bound is out of range either way.
        Number::Float(v) if v.fract() == 0.0 => (op, v as i128),
        Number::Float(v) => match op {
            CmpOp::Eq => return Ok(Test::Constant(false)),
            CmpOp::NotEq => return Ok(Test::Constant(true)),
            CmpOp::Lt | CmpOp::LtEq => (CmpOp::LtEq, v.floor() as i128),
            CmpOp::Gt | CmpOp::GtEq => (CmpOp::GtEq, v.ceil() as i128),
        },
    };
    if bound < min {
        return Ok(Test::Constant(matches!(op, CmpOp::NotEq | CmpOp::Gt | CmpOp::GtEq)));
    }
    if bound > max {
        return Ok(Test::Constant(matches!(op, CmpOp::NotEq | CmpOp::Lt | CmpOp::LtEq)));
    }
    // In range, so it fits i64 or u64 and casts to `target` exactly.
    let wide: ArrayRef = match i64::try_from(bound) {
        Ok(v) => Arc::new(Int64Array::from(vec![v])),
        Err(_) => Arc::new(UInt64Array::from(vec![bound as u64])),
    };
    let literal = cast(&wide, target).map_err(|e| e.to_string())?;
    Ok(Test::Direct { op, literal: Scalar::new(literal) })
}

impl Node {
    fn tri(&self, batch: &RecordBatch) -> Result<Tri> {
        Ok(match self {
            Node::Cmp { column, test } => test.tri(batch.column(*column))?,
            Node::IsNull { column, null } => {
                let valid = validity(batch.column(*column));
                let invalid = !&valid;
                if *null {
                    Tri { is_true: invalid, is_false: valid }
                } else {
                    Tri { is_true: valid, is_false: invalid }
                }
            }
            Node::And(a, b) => {
                let (a, b) = (a.tri(batch)?, b.tri(batch)?);
                Tri { is_true: &a.is_true & &b.is_true, is_false: &a.is_false | &b.is_false }
            }
            Node::Or(a, b) => {
                let (a, b) = (a.tri(batch)?, b.tri(batch)?);
                Tri { is_true: &a.is_true | &b.is_true, is_false: &a.is_false & &b.is_false }
            }
            Node::Not(a) => {
                let a = a.tri(batch)?;
                Tri { is_true: a.is_false, is_false: a.is_true }
            }
        })
    }
}

impl Test {
    fn tri(&self, column: &ArrayRef) -> Result<Tri> {
        let result = match self {
            Test::Direct { op, literal } => compare(*op, column, literal),
            Test::AsFloat64 { op, literal } => {
                cast(column, &DataType::Float64).and_then(|c| compare(*op, &c, literal))
            }
            Test::Constant(answer) => {
                let valid = validity(column);
                let none = BooleanBuffer::new_unset(column.len());
                return Ok(if *answer {
                    Tri { is_true: valid, is_false: none }
                } else {
                    Tri { is_true: none, is_false: valid }
                });
            }
        }
        .map_err(|e| Error::arrow("evaluating a predicate", e))?;
        Ok(match result.nulls() {
            Some(valid) => {
                Tri { is_true: result.values() & valid.inner(), is_false: &!result.values() & valid.inner() }
            }
            None => Tri { is_true: result.values().clone(), is_false: !result.values() },
        })
    }
}

fn compare(op: CmpOp, lhs: &dyn Datum, rhs: &dyn Datum) -> Result<BooleanArray, ArrowError> {
    match op {
        CmpOp::Eq => arrow_ord::cmp::eq(lhs, rhs),
        CmpOp::NotEq => arrow_ord::cmp::neq(lhs, rhs),
        CmpOp::Lt => arrow_ord::cmp::lt(lhs, rhs),
        CmpOp::LtEq => arrow_ord::cmp::lt_eq(lhs, rhs),
        CmpOp::Gt => arrow_ord::cmp::gt(lhs, rhs),
        CmpOp::GtEq => arrow_ord::cmp::gt_eq(lhs, rhs),
    }
}

/// The rows where `array` is not null.
fn validity(array: &ArrayRef) -> BooleanBuffer {
    match array.logical_nulls() {
        Some(n) => n.inner().clone(),
        None => BooleanBuffer::new_set(array.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::col;
    use arrow_array::{Decimal128Array, Float32Array, StringArray, UInt8Array};

    fn rows(p: Predicate, column: ArrayRef) -> Vec<usize> {
        let batch = RecordBatch::try_from_iter([("x", column)]).unwrap();
        p.bind("f", batch.schema_ref()).unwrap().evaluate(&batch).unwrap().set_indices().collect()
    }

    fn ints() -> ArrayRef {
        Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3), None]))
    }

    #[test]
    fn a_fraction_against_an_integer_column_is_not_truncated() {
        // Caught: 2.5 was cast to 2, so `x < 2.5` dropped x = 2.
        assert_eq!(rows(col("x").lt(2.5), ints()), [0, 1]);
        assert_eq!(rows(col("x").lt_eq(2.5), ints()), [0, 1]);
        assert_eq!(rows(col("x").gt(2.5), ints()), [2]);
        assert_eq!(rows(col("x").gt_eq(2.5), ints()), [2]);
        assert_eq!(rows(col("x").eq(2.5), ints()), Vec::<usize>::new());
        assert_eq!(rows(col("x").not_eq(2.5), ints()), [0, 1, 2], "null stays unknown");
        assert_eq!(rows(col("x").lt(-0.5), ints()), Vec::<usize>::new());
        assert_eq!(rows(col("x").eq(2.0), ints()), [1], "an integral float is exact");
    }

    #[test]
    fn a_bound_outside_the_column_type_gives_a_constant_answer() {
        let small: ArrayRef = Arc::new(UInt8Array::from(vec![Some(0), Some(255), None]));
        assert_eq!(rows(col("x").lt(300), small.clone()), [0, 1]);
        assert_eq!(rows(col("x").gt(-1), small.clone()), [0, 1]);
        assert_eq!(rows(col("x").eq(-1), small.clone()), Vec::<usize>::new());
        assert_eq!(rows(col("x").not_eq(1000), small.clone()), [0, 1]);
        assert_eq!(rows(col("x").gt(255), small.clone()), Vec::<usize>::new());
        assert_eq!(rows(col("x").gt_eq(255), small), [1]);
        assert_eq!(rows(col("x").lt(u64::MAX), ints()), [0, 1, 2]);
    }

    #[test]
    fn an_inexact_literal_on_a_float_or_decimal_column_compares_as_float64() {
        let f32s: ArrayRef = Arc::new(Float32Array::from(vec![0.1f32, 0.5]));
        // 0.1f32 is 0.100000001..., above 0.1f64.
        assert_eq!(rows(col("x").gt(0.1), f32s.clone()), [0, 1]);
        assert_eq!(rows(col("x").eq(0.1), f32s.clone()), Vec::<usize>::new());
        assert_eq!(rows(col("x").eq(0.5), f32s), [1]);
        let decimals: ArrayRef =
            Arc::new(Decimal128Array::from(vec![255, 256]).with_precision_and_scale(10, 2).unwrap());
        assert_eq!(rows(col("x").lt(2.555), decimals.clone()), [0]);
        assert_eq!(rows(col("x").eq(2), decimals.clone()), Vec::<usize>::new());
        assert_eq!(rows(col("x").lt(3), decimals), [0, 1]);
    }

    #[test]
    fn strings_are_parsed_as_the_column_type() {
        assert_eq!(rows(col("x").gt("1"), ints()), [1, 2]);
        let err = col("x").gt("2.5").bind("f", &schema(ints())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidStage { .. }), "{err}");
        assert!(
            text.contains("column `x`")
                && text.contains("is not a valid Int64")
                && text.contains("cast stage"),
            "{text}"
        );
    }

    #[test]
    fn a_number_against_a_text_column_is_refused_with_a_hint() {
        // Caught: 5 was cast to "5" and compared as text ("10" < "5").
        let text: ArrayRef = Arc::new(StringArray::from(vec!["10", "5"]));
        let err = col("x").lt(5).bind("f", &schema(text.clone())).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::InvalidStage { ref stage, .. } if stage == "f"), "{err}");
        assert!(
            message.contains("column `x` (Utf8)")
                && message.contains("(\"5\")")
                && message.contains("cast stage"),
            "{message}"
        );
        assert_eq!(rows(col("x").eq("5"), text), [1]);
        assert!(col("x").eq(true).bind("f", &schema(ints())).is_err(), "a boolean against integers");
    }

    #[test]
    fn a_batch_of_another_schema_is_refused() {
        let p = col("x").gt(1).bind("f", &schema(ints())).unwrap();
        let other = RecordBatch::try_from_iter([("y", ints())]).unwrap();
        assert!(matches!(p.evaluate(&other), Err(Error::SchemaMismatch { .. })));
    }

    fn schema(column: ArrayRef) -> SchemaRef {
        RecordBatch::try_from_iter([("x", column)]).unwrap().schema()
    }
}
