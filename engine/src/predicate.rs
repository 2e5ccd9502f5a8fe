//! Row predicates for filters and branches: a column compared with a
//! literal, null checks, and their combinations. Evaluated per batch with
//! Arrow's comparison kernels.
//!
//! ```
//! use garner_engine::col;
//! let p = col("limit").gt(1000).and(col("name").is_not_null());
//! assert_eq!(p.to_string(), "(limit > 1000 AND name IS NOT NULL)");
//! ```

use std::fmt;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar, StringArray};
use arrow_buffer::BooleanBuffer;
use arrow_cast::cast;
use arrow_schema::{DataType, Schema};

use crate::{Error, Result};

/// A literal value to compare a column with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string (also used for dates and timestamps: it is cast to the column's type).
    Str(String),
    /// A boolean.
    Bool(bool),
}

macro_rules! literal_from {
    ($($t:ty => $v:ident as $as:ty),*) => {$(
        impl From<$t> for Literal {
            fn from(x: $t) -> Self { Literal::$v(x as $as) }
        }
    )*};
}
literal_from!(i8 => Int as i64, i16 => Int as i64, i32 => Int as i64, i64 => Int as i64,
    u8 => UInt as u64, u16 => UInt as u64, u32 => UInt as u64, u64 => UInt as u64,
    f32 => Float as f64, f64 => Float as f64);

impl From<bool> for Literal {
    fn from(x: bool) -> Self {
        Literal::Bool(x)
    }
}
impl From<&str> for Literal {
    fn from(x: &str) -> Self {
        Literal::Str(x.to_owned())
    }
}
impl From<String> for Literal {
    fn from(x: String) -> Self {
        Literal::Str(x)
    }
}

impl Literal {
    fn to_array(&self) -> ArrayRef {
        match self {
            Literal::Int(v) => Arc::new(arrow_array::Int64Array::from(vec![*v])),
            Literal::UInt(v) => Arc::new(arrow_array::UInt64Array::from(vec![*v])),
            Literal::Float(v) => Arc::new(arrow_array::Float64Array::from(vec![*v])),
            Literal::Str(v) => Arc::new(StringArray::from(vec![v.as_str()])),
            Literal::Bool(v) => Arc::new(BooleanArray::from(vec![*v])),
        }
    }

    /// The literal as a one-element array of `data_type`, or why it cannot be.
    fn cast_to(&self, data_type: &DataType) -> std::result::Result<ArrayRef, String> {
        let target = match data_type {
            DataType::Dictionary(_, v) => v.as_ref(),
            t => t,
        };
        let a = cast(&self.to_array(), target).map_err(|e| e.to_string())?;
        if a.is_null(0) {
            return Err(format!("{self} is not a valid {target}"));
        }
        Ok(a)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            Literal::UInt(v) => write!(f, "{v}"),
            Literal::Float(v) => write!(f, "{v}"),
            Literal::Str(v) => write!(f, "{v:?}"),
            Literal::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl CmpOp {
    /// The operator as written in specs: `=`, `!=`, `<`, `<=`, `>`, `>=`.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "!=",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }

    /// Parses a symbol (`==` is accepted for `=`).
    pub fn parse(s: &str) -> Option<CmpOp> {
        Some(match s {
            "=" | "==" => CmpOp::Eq,
            "!=" | "<>" => CmpOp::NotEq,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::LtEq,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::GtEq,
            _ => return None,
        })
    }
}

/// A row predicate. A row for which a comparison is null (a null value)
/// does not match.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `column op literal`.
    Cmp {
        /// The column.
        column: String,
        /// The operator.
        op: CmpOp,
        /// The literal, cast to the column's type.
        value: Literal,
    },
    /// The column is null.
    IsNull(String),
    /// The column is not null.
    IsNotNull(String),
    /// Both hold.
    And(Box<Predicate>, Box<Predicate>),
    /// Either holds.
    Or(Box<Predicate>, Box<Predicate>),
    /// Does not hold.
    Not(Box<Predicate>),
}

/// A column reference, to start a predicate: `col("x").gt(3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef(String);

/// Refers to a column by name.
pub fn col(name: impl Into<String>) -> ColumnRef {
    ColumnRef(name.into())
}

impl ColumnRef {
    fn cmp(self, op: CmpOp, value: impl Into<Literal>) -> Predicate {
        Predicate::Cmp { column: self.0, op, value: value.into() }
    }
    /// `column = value`
    pub fn eq(self, value: impl Into<Literal>) -> Predicate {
        self.cmp(CmpOp::Eq, value)
    }
    /// `column != value`
    pub fn not_eq(self, value: impl Into<Literal>) -> Predicate {
        self.cmp(CmpOp::NotEq, value)
    }
    /// `column < value`
    pub fn lt(self, value: impl Into<Literal>) -> Predicate {
        self.cmp(CmpOp::Lt, value)
    }
    /// `column <= value`
    pub fn lt_eq(self, value: impl Into<Literal>) -> Predicate {
        self.cmp(CmpOp::LtEq, value)
    }
    /// `column > value`
    pub fn gt(self, value: impl Into<Literal>) -> Predicate {
        self.cmp(CmpOp::Gt, value)
    }
    /// `column >= value`
    pub fn gt_eq(self, value: impl Into<Literal>) -> Predicate {
        self.cmp(CmpOp::GtEq, value)
    }
    /// `column IS NULL`
    pub fn is_null(self) -> Predicate {
        Predicate::IsNull(self.0)
    }
    /// `column IS NOT NULL`
    pub fn is_not_null(self) -> Predicate {
        Predicate::IsNotNull(self.0)
    }
}

impl Predicate {
    /// Both `self` and `other`.
    pub fn and(self, other: Predicate) -> Predicate {
        Predicate::And(Box::new(self), Box::new(other))
    }
    /// Either `self` or `other`.
    pub fn or(self, other: Predicate) -> Predicate {
        Predicate::Or(Box::new(self), Box::new(other))
    }
    /// Not `self`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Predicate {
        Predicate::Not(Box::new(self))
    }

    /// Checks the predicate against a schema: every column exists and every
    /// literal can be cast to its column's type.
    pub fn check(&self, stage: &str, schema: &Schema) -> Result<()> {
        match self {
            Predicate::Cmp { column, op, value } => {
                let field = field(stage, schema, column)?;
                value.cast_to(field.data_type()).map_err(|why| Error::InvalidStage {
                    stage: stage.to_owned(),
                    message: format!(
                        "cannot compare column `{column}` ({}) {} {value}: {why}",
                        field.data_type(),
                        op.symbol()
                    ),
                })?;
                Ok(())
            }
            Predicate::IsNull(c) | Predicate::IsNotNull(c) => field(stage, schema, c).map(|_| ()),
            Predicate::And(a, b) | Predicate::Or(a, b) => {
                a.check(stage, schema)?;
                b.check(stage, schema)
            }
            Predicate::Not(a) => a.check(stage, schema),
        }
    }

    /// The rows of `batch` that match, as a bitmap.
    ///
    /// Logic is SQL's three-valued logic: a comparison with a null value is
    /// unknown, `NOT unknown` is unknown, and a row matches only when the
    /// predicate is definitely true.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanBuffer> {
        Ok(self.tri(batch)?.is_true)
    }

    fn tri(&self, batch: &RecordBatch) -> Result<Tri> {
        Ok(match self {
            Predicate::Cmp { column, op, value } => {
                let array = column_of(batch, column)?;
                let lit = value.cast_to(array.data_type()).map_err(|why| Error::InvalidStage {
                    stage: String::new(),
                    message: format!("cannot compare `{column}` with {value}: {why}"),
                })?;
                let rhs = Scalar::new(lit);
                let lhs: &dyn arrow_array::Datum = array;
                let result = match op {
                    CmpOp::Eq => arrow_ord::cmp::eq(lhs, &rhs),
                    CmpOp::NotEq => arrow_ord::cmp::neq(lhs, &rhs),
                    CmpOp::Lt => arrow_ord::cmp::lt(lhs, &rhs),
                    CmpOp::LtEq => arrow_ord::cmp::lt_eq(lhs, &rhs),
                    CmpOp::Gt => arrow_ord::cmp::gt(lhs, &rhs),
                    CmpOp::GtEq => arrow_ord::cmp::gt_eq(lhs, &rhs),
                }
                .map_err(|e| Error::arrow(format!("evaluating {self}"), e))?;
                match result.nulls() {
                    Some(valid) => Tri {
                        is_true: result.values() & valid.inner(),
                        is_false: &!result.values() & valid.inner(),
                    },
                    None => Tri { is_true: result.values().clone(), is_false: !result.values() },
                }
            }
            Predicate::IsNull(c) | Predicate::IsNotNull(c) => {
                let a = column_of(batch, c)?;
                let valid = match a.logical_nulls() {
                    Some(n) => n.inner().clone(),
                    None => BooleanBuffer::new_set(a.len()),
                };
                let null = !&valid;
                if matches!(self, Predicate::IsNull(_)) {
                    Tri { is_true: null, is_false: valid }
                } else {
                    Tri { is_true: valid, is_false: null }
                }
            }
            Predicate::And(a, b) => {
                let (a, b) = (a.tri(batch)?, b.tri(batch)?);
                Tri { is_true: &a.is_true & &b.is_true, is_false: &a.is_false | &b.is_false }
            }
            Predicate::Or(a, b) => {
                let (a, b) = (a.tri(batch)?, b.tri(batch)?);
                Tri { is_true: &a.is_true | &b.is_true, is_false: &a.is_false & &b.is_false }
            }
            Predicate::Not(a) => {
                let a = a.tri(batch)?;
                Tri { is_true: a.is_false, is_false: a.is_true }
            }
        })
    }
}

/// A three-valued result: rows definitely true, rows definitely false; the
/// rest are unknown (null).
struct Tri {
    is_true: BooleanBuffer,
    is_false: BooleanBuffer,
}

fn field<'a>(stage: &str, schema: &'a Schema, column: &str) -> Result<&'a arrow_schema::Field> {
    schema.field_with_name(column).map_err(|_| Error::UnknownColumn {
        stage: stage.to_owned(),
        column: column.to_owned(),
        available: schema.fields().iter().map(|f| f.name().clone()).collect(),
    })
}

fn column_of<'a>(batch: &'a RecordBatch, column: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(column).ok_or_else(|| Error::UnknownColumn {
        stage: String::new(),
        column: column.to_owned(),
        available: batch.schema().fields().iter().map(|f| f.name().clone()).collect(),
    })
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Cmp { column, op, value } => write!(f, "{column} {} {value}", op.symbol()),
            Predicate::IsNull(c) => write!(f, "{c} IS NULL"),
            Predicate::IsNotNull(c) => write!(f, "{c} IS NOT NULL"),
            Predicate::And(a, b) => write!(f, "({a} AND {b})"),
            Predicate::Or(a, b) => write!(f, "({a} OR {b})"),
            Predicate::Not(a) => write!(f, "NOT {a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("x", Arc::new(Int64Array::from(vec![Some(1), None, Some(5), Some(9)])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec![Some("a"), Some("b"), None, Some("a")])) as ArrayRef),
        ])
        .unwrap()
    }

    fn rows(p: &Predicate) -> Vec<usize> {
        p.evaluate(&batch()).unwrap().set_indices().collect()
    }

    #[test]
    fn comparisons_treat_null_as_no_match() {
        assert_eq!(rows(&col("x").gt(3)), [2, 3]);
        assert_eq!(rows(&col("x").not_eq(5)), [0, 3]);
        assert_eq!(rows(&col("x").lt_eq(5).not()), [3], "NOT of unknown stays unknown, as in SQL");
        assert_eq!(rows(&col("s").eq("a")), [0, 3]);
    }

    #[test]
    fn null_checks_and_combinations() {
        assert_eq!(rows(&col("x").is_null()), [1]);
        assert_eq!(rows(&col("s").is_not_null().and(col("x").gt_eq(1))), [0, 3]);
        assert_eq!(rows(&col("x").is_null().or(col("s").is_null())), [1, 2]);
        assert_eq!(rows(&col("x").gt(3).or(col("s").eq("b"))), [1, 2, 3], "unknown OR true is true");
    }

    #[test]
    fn check_names_missing_columns_and_bad_literals() {
        let schema = batch().schema();
        let err = col("nope").gt(1).check("f", &schema).unwrap_err();
        assert!(matches!(err, Error::UnknownColumn { ref column, .. } if column == "nope"), "{err}");
        let err = col("x").gt("abc").check("f", &schema).unwrap_err();
        assert!(err.to_string().contains("cannot compare column `x`"), "{err}");
    }
}
