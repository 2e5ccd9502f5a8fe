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
    /// A stage failed while running.
    #[error("stage `{stage}`: {source}")]
    Stage {
        /// The stage.
        stage: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
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

    /// Names `stage` as the place of this error, unless it already names one.
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
            e @ Error::Stage { .. } => e,
            Error::Accum(garner_accum::Error::UnknownColumn { column, available, .. }) => {
                Error::UnknownColumn { stage: stage.to_owned(), column, available }
            }
            Error::Accum(garner_accum::Error::UnhashableKey { column, data_type }) => {
                Error::UnhashableKey { stage: stage.to_owned(), column, data_type: data_type.to_string() }
            }
            e => Error::Stage { stage: stage.to_owned(), source: Box::new(e) },
        }
    }
}
