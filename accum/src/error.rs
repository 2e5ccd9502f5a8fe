//! The crate's error type.
//!
//! Configuration mistakes are reported when a [`VarSet`](crate::VarSet) is
//! validated against an input schema (`output_schema` / `build`), so a pipeline
//! never starts with a bad accumulator. Errors while running are limited to
//! batches that do not match the schema the assembler was built for, state that
//! outgrows the 32-bit arena offsets, and Arrow failures.

use arrow_schema::{ArrowError, DataType};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of `garner-accum`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured column is not in the input schema.
    #[error("no {role} column `{column}` in the input; available columns: [{}]", available.join(", "))]
    UnknownColumn {
        /// The missing column's name.
        column: String,
        /// What the column was configured as: `"key"`, `"var"`, `"value"` or `"time"`.
        role: &'static str,
        /// The columns the input does have, in schema order.
        available: Vec<String>,
    },

    /// A key column's type cannot be used as a key.
    #[error(
        "key column `{column}` has type {data_type}, which cannot be a key \
         (expected an integer or string type, or a dictionary of those)"
    )]
    UnhashableKey {
        /// The key column.
        column: String,
        /// Its type in the input.
        data_type: DataType,
    },

    /// A var, value or time column has a type the assembler does not support.
    #[error("{role} column `{column}` has type {data_type}; expected {expected}")]
    BadColumnType {
        /// The column.
        column: String,
        /// `"var"`, `"value"` or `"time"`.
        role: &'static str,
        /// Its type in the input.
        data_type: DataType,
        /// The types accepted for this role.
        expected: &'static str,
    },

    /// `keyed` was given no column.
    #[error("a VarSet needs at least one key column")]
    NoKeyColumns,

    /// `require` was never called, or only with an empty list.
    #[error("a VarSet needs at least one required variable")]
    NoRequiredVars,

    /// A variable was listed twice in `require`.
    #[error("required variable `{var}` is listed more than once")]
    DuplicateRequiredVar {
        /// The repeated variable.
        var: String,
    },

    /// More required variables than the assembler supports.
    #[error("{count} required variables; at most {max} are supported")]
    TooManyVars {
        /// How many were required.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// Two output columns would have the same name (a key column listed twice,
    /// a variable named like a key column, or a variable named like one of the
    /// `acc_*` columns).
    #[error("output column `{column}` would appear twice")]
    DuplicateOutputColumn {
        /// The clashing name.
        column: String,
    },

    /// A pushed batch's column has another type than the schema the assembler
    /// was built for.
    #[error(
        "{role} column `{column}` has type {found} in this batch, but the assembler was built for {expected}"
    )]
    SchemaChanged {
        /// The column.
        column: String,
        /// `"key"`, `"var"`, `"value"` or `"time"`.
        role: &'static str,
        /// The type at build time.
        expected: DataType,
        /// The type in the batch.
        found: DataType,
    },

    /// Held state would exceed a fixed limit (values or keys are addressed by
    /// 32-bit offsets, slots by 32-bit ids). Compaction was tried first.
    #[error("accumulator state too large: {what} would exceed {limit} bytes")]
    StateTooLarge {
        /// Which structure overflowed.
        what: &'static str,
        /// The limit in bytes (or entries, for slots).
        limit: u64,
    },

    /// An Arrow kernel failed.
    #[error("arrow error while {context}: {source}")]
    Arrow {
        /// What the assembler was doing.
        context: &'static str,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },

    /// A policy value that cannot work (zero limits, lateness without
    /// event time, ...).
    #[error("policy `{policy}`: {reason}")]
    BadPolicy {
        /// The policy's name, as in the spec.
        policy: &'static str,
        /// What is wrong, and what would work.
        reason: String,
    },

    /// A spilled generation could not be read back (a damaged record): it
    /// was emitted with reason `corrupted` and the run went on.
    #[error("spilled state of key {key} unreadable in the {tier} tier: {reason}")]
    Serialization {
        /// The key, as text (several columns joined by ", ").
        key: String,
        /// The spill tier that held the record (`memory`, `mapped`, `file`).
        tier: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The spill store failed (I/O, or it could not be set up).
    #[error("spill: {0}")]
    Spill(String),

    /// A broken invariant: a bug in this crate.
    #[error("internal error (a bug in garner-accum): {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an [`ArrowError`] with what was being done.
    pub(crate) fn arrow(context: &'static str) -> impl FnOnce(ArrowError) -> Error {
        move |source| Error::Arrow { context, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_column_lists_the_available_ones() {
        let e = Error::UnknownColumn {
            column: "subject".into(),
            role: "key",
            available: vec!["id".into(), "var".into()],
        };
        assert_eq!(e.to_string(), "no key column `subject` in the input; available columns: [id, var]");
    }

    #[test]
    fn arrow_errors_carry_their_context() {
        let e = Error::arrow("casting keys")(ArrowError::ComputeError("boom".into()));
        assert_eq!(e.to_string(), "arrow error while casting keys: Compute error: boom");
    }
}
