//! Row predicates for filters and branches: a column compared with a
//! literal, null checks, and their combinations. A [`Predicate`] is bound
//! to its input's schema once ([`Predicate::bind`], which converts every
//! literal to its column's type without loss, see [`BoundPredicate`]), then
//! evaluated per batch with Arrow's comparison kernels.
//!
//! ```
//! use garner_engine::col;
//! let p = col("limit").gt(1000).and(col("name").is_not_null());
//! assert_eq!(p.to_string(), "(limit > 1000 AND name IS NOT NULL)");
//! ```

mod bound;

use std::fmt;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{Schema, SchemaRef};

pub use self::bound::BoundPredicate;
use crate::Result;

/// A literal value to compare a column with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string: compared with text columns, or parsed as the column's type
    /// (numbers, dates, timestamps).
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
        /// The literal, converted to the column's type without loss when the
        /// predicate is bound (see [`BoundPredicate`]).
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

    /// Resolves the predicate against `schema`: every column must exist and
    /// every literal must have an exact meaning against its column (a
    /// number is not compared with a text column). Errors name `stage`
    /// (empty: filled in by the engine) and the column.
    pub fn bind(&self, stage: &str, schema: &SchemaRef) -> Result<BoundPredicate> {
        BoundPredicate::new(self, stage, schema)
    }

    /// The predicate bound to `schema`: `cache` if it was bound to these
    /// columns already, else bound afresh and kept in `cache`.
    pub(crate) fn bind_cached<'a>(
        &self,
        cache: &'a mut Option<BoundPredicate>,
        schema: &SchemaRef,
    ) -> Result<&'a BoundPredicate> {
        if !cache.as_ref().is_some_and(|bound| bound.matches(schema)) {
            *cache = Some(self.bind("", schema)?);
        }
        cache.as_ref().ok_or_else(|| crate::Error::Internal("predicate not bound".into()))
    }

    /// Checks the predicate against a schema, as [`bind`](Self::bind) does.
    pub fn check(&self, stage: &str, schema: &Schema) -> Result<()> {
        bound::check(self, stage, schema)
    }

    /// The rows of `batch` that match, as a bitmap (see
    /// [`BoundPredicate::evaluate`]). Binds the predicate on every call:
    /// stages that see many batches bind once and keep the result.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanBuffer> {
        self.bind("", batch.schema_ref())?.evaluate(batch)
    }
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
    use crate::Error;
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
