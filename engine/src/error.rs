//! The engine's error type: graph validation errors name the stage and the
//! column; run-time errors name the stage that failed.

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong building or running a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two stages share an id.
    #[error("duplicate stage id `{stage}`")]
    DuplicateStage {
        /// The id.
        stage: String,
    },
    /// A stage id is empty or contains a character reserved for port names.
    #[error("invalid stage id `{stage}`: ids are non-empty and may not contain '.'")]
    InvalidStageId {
        /// The id.
        stage: String,
    },
    /// A stage names an input that does not exist.
    #[error("stage `{stage}`: unknown input `{input}`")]
    UnknownInput {
        /// The stage.
        stage: String,
        /// The reference that does not resolve (`stage` or `stage.port`).
        input: String,
    },
    /// The graph has a cycle.
    #[error("the pipeline has a cycle through stages {}", stages.join(" -> "))]
    Cycle {
        /// The stages on the cycle.
        stages: Vec<String>,
    },
    /// A port is not connected: a stage without input, or an output nobody reads.
    #[error("stage `{stage}`: {port} is not connected{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    UnconnectedPort {
        /// The stage.
        stage: String,
        /// `input` or `output` or `output \`name\``.
        port: String,
        /// What to do about it.
        hint: Option<&'static str>,
    },
    /// The pipeline has no source.
    #[error("the pipeline has no source stage")]
    NoSource,
    /// A stage's inputs have different schemas, or a batch came with an unexpected schema.
    #[error("stage `{stage}`: schema mismatch on input from `{input}`: expected {expected}, found {found}")]
    SchemaMismatch {
        /// The stage.
        stage: String,
        /// Where the batch came from.
        input: String,
        /// The schema expected, printed.
        expected: String,
        /// The schema found, printed.
        found: String,
    },
    /// A stage refers to a column its input does not have.
    #[error("stage `{stage}`: unknown column `{column}` (available: {})", available.join(", "))]
    UnknownColumn {
        /// The stage.
        stage: String,
        /// The column asked for.
        column: String,
        /// The columns the input has.
        available: Vec<String>,
    },
    /// A key column's type cannot be hashed.
    #[error("stage `{stage}`: key column `{column}` has type {data_type}, which cannot be a key (use an integer or string column)")]
    UnhashableKey {
        /// The stage.
        stage: String,
        /// The column.
        column: String,
        /// Its type, printed.
        data_type: String,
    },
    /// A stage's configuration is invalid for its input.
    #[error("stage `{stage}`: {message}")]
    InvalidStage {
        /// The stage.
        stage: String,
        /// What is wrong.
        message: String,
    },
    /// A stage rejected its configuration or input, or failed while running;
    /// `source` says why (an accumulator's own error keeps the role of a
    /// missing or mistyped column: key, var, value or time).
    #[error("stage `{stage}`: {source}")]
    Stage {
        /// The stage.
        stage: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A stage panicked; the run was stopped.
    #[error("stage `{stage}` panicked: {message}")]
    Panicked {
        /// The stage.
        stage: String,
        /// The panic's message.
        message: String,
    },
    /// A stage's mailbox was full and its policy is to fail
    /// ([`DropPolicy::Fail`](crate::resilience::DropPolicy::Fail)).
    #[error("stage `{stage}`: mailbox full (on_full = fail): {rows} rows refused")]
    MailboxFull {
        /// The stage whose mailbox was full.
        stage: String,
        /// Rows of the refused unit.
        rows: u64,
    },
    /// The run was aborted by its handle.
    #[error("the run was aborted")]
    Aborted,
    /// Reading or writing data failed.
    #[error(transparent)]
    Columnar(#[from] garner_columnar::Error),
    /// The accumulator rejected its configuration or input.
    #[error(transparent)]
    Accum(#[from] garner_accum::Error),
    /// An Arrow kernel failed.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A user-supplied function failed.
    #[error("{0}")]
    User(Box<dyn std::error::Error + Send + Sync>),
    /// The named engine does not exist (yet).
    #[error("unknown engine `{name}`: available: {available}")]
    UnknownEngine {
        /// What was asked for.
        name: String,
        /// The engines this build has.
        available: &'static str,
    },
    /// A broken invariant inside garner: a bug.
    #[error("internal error (a bug in garner): {0}")]
    Internal(String),
}

impl Error {
    /// An Arrow error with context.
    pub fn arrow(context: impl Into<String>, source: arrow_schema::ArrowError) -> Self {
        Error::Arrow { context: context.into(), source }
    }

    /// `column` is not in `schema`: names the stage (empty: filled in by
    /// [`in_stage`](Self::in_stage)) and lists the columns there are.
    pub(crate) fn unknown_column(stage: &str, column: &str, schema: &arrow_schema::Schema) -> Self {
        Error::UnknownColumn {
            stage: stage.to_owned(),
            column: column.to_owned(),
            available: schema.fields().iter().map(|f| f.name().clone()).collect(),
        }
    }

    /// Names `stage` as the place of this error, unless it already names one.
    ///
    /// An accumulator's errors are kept whole as the source of an
    /// [`Error::Stage`]: its `UnknownColumn` and `BadColumnType` say which
    /// role the column plays (`no time column `ts` in the input`), which
    /// this crate's [`Error::UnknownColumn`] has no field for.
    pub fn in_stage(self, stage: &str) -> Self {
        let fill = |s: String| if s.is_empty() { stage.to_owned() } else { s };
        match self {
            Error::UnknownColumn { stage: s, column, available } => {
                Error::UnknownColumn { stage: fill(s), column, available }
            }
            Error::UnhashableKey { stage: s, column, data_type } => {
                Error::UnhashableKey { stage: fill(s), column, data_type }
            }
            Error::InvalidStage { stage: s, message } => Error::InvalidStage { stage: fill(s), message },
            Error::SchemaMismatch { stage: s, input, expected, found } => {
                Error::SchemaMismatch { stage: fill(s), input, expected, found }
            }
            e @ (Error::Stage { .. } | Error::Panicked { .. } | Error::Aborted) => e,
            Error::Accum(garner_accum::Error::UnhashableKey { column, data_type }) => {
                Error::UnhashableKey { stage: stage.to_owned(), column, data_type: data_type.to_string() }
            }
            e => Error::Stage { stage: stage.to_owned(), source: Box::new(e) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accumulator_column_error_keeps_its_role() {
        // Caught: `in_stage` turned this into a plain "unknown column `ts`",
        // hiding that `ts` is the (default) event-time column.
        let e = Error::Accum(garner_accum::Error::UnknownColumn {
            column: "ts".into(),
            role: "time",
            available: vec!["k".into(), "var".into()],
        })
        .in_stage("assemble");
        assert_eq!(
            e.to_string(),
            "stage `assemble`: no time column `ts` in the input; available columns: [k, var]"
        );
        match e {
            Error::Stage { stage, source } => {
                assert_eq!(stage, "assemble");
                assert!(matches!(
                    *source,
                    Error::Accum(garner_accum::Error::UnknownColumn { role: "time", .. })
                ));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_stage_fills_an_empty_stage_and_keeps_a_named_one() {
        let schema = arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "a",
            arrow_schema::DataType::Int8,
            true,
        )]);
        let e = Error::unknown_column("", "b", &schema).in_stage("f");
        assert_eq!(e.to_string(), "stage `f`: unknown column `b` (available: a)");
        let e = Error::unknown_column("g", "b", &schema).in_stage("f");
        assert!(matches!(e, Error::UnknownColumn { ref stage, .. } if stage == "g"));
    }
}
