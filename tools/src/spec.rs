//! The TOML pipeline spec, parsed at the edge in two steps (ripgrep's
//! low/high args): TOML → typed sections with every value checked, each
//! error naming its key path (`stage[1].partial_flush_after`) and a hint.
//! Nothing is opened here; `plan.rs` turns a checked spec into a pipeline.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use garner::columnar::Format;
use garner::engine::exec::EngineKind;
use garner::engine::flow::{AdaptiveConfig, Batching, FlowError};
use garner::pools::ByteSize;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A spec error: where (key path) and what.
#[derive(Debug)]
pub(crate) struct SpecError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for SpecError {}

fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { path: path.into(), message: message.into() }
}

/// `[pipeline]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineSection {
    pub(crate) name: Option<String>,
    pub(crate) engine: Option<String>,
    pub(crate) threads: Option<usize>,
    pub(crate) memory_budget: Option<ByteSize>,
    /// `dead_letter = { format = "parquet", path = "dlq.parquet" }`.
    pub(crate) dead_letter: Option<DeadLetterSpec>,
    /// `alert_partial_ratio = 0.2`: alert when an accumulate stage flushes
    /// more than this share of its rows as partials (checked by [`parse`]).
    pub(crate) alert_partial_ratio: Option<f64>,
    /// `redact = ["name", "limit"]`: columns whose values dead letters and
    /// messages do not show.
    #[serde(default)]
    pub(crate) redact: Vec<String>,
}

/// Where the run's dead letters go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLetterSpec {
    pub(crate) path: PathBuf,
    pub(crate) format: Option<String>,
    /// `format`, or the one the path's extension names: set by [`parse`].
    #[serde(skip)]
    checked_format: Option<Format>,
}

impl DeadLetterSpec {
    /// The file's format (checked by [`parse`]).
    pub(crate) fn format(&self) -> Format {
        self.checked_format.expect("spec::parse sets the dead-letter format")
    }
}

/// A stage's error policy: `on_error = { retries = 3, backoff = "10ms",
/// max_backoff = "1s", time_quota = "5s", panic = "quarantine" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnErrorSpec {
    /// Retries after the first try (default 0).
    pub(crate) retries: Option<u32>,
    pub(crate) backoff: Option<Dur>,
    pub(crate) max_backoff: Option<Dur>,
    pub(crate) time_quota: Option<Dur>,
    pub(crate) panic: Option<PanicKind>,
}

/// `mailbox = { capacity = 4, on_full = "block" | "drop_newest" | "drop_oldest" | "fail" }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MailboxSpec {
    pub(crate) capacity: Option<usize>,
    pub(crate) on_full: Option<OnFullKind>,
}

/// `batching = { mode = "adaptive", min = 256, max = 65536, initial = 1024,
/// target_latency = "5ms", alpha = 0.3 }` or `batching = { mode = "fixed",
/// size = 4096 }`: how the engines cut the stage's input batches.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum BatchingSpec {
    /// Slices of at most `size` rows.
    Fixed { size: usize },
    /// The seed's adaptive rule; `min` defaults to 1, `max` to 65536,
    /// `initial` to `max`, `alpha` to 0.3.
    Adaptive {
        min: Option<usize>,
        max: Option<usize>,
        initial: Option<usize>,
        target_latency: Dur,
        alpha: Option<f64>,
    },
}

impl BatchingSpec {
    /// The engine's batching (checked by [`parse`]).
    pub(crate) fn batching(&self) -> Batching {
        match *self {
            BatchingSpec::Fixed { size } => Batching::Fixed(size),
            BatchingSpec::Adaptive { min, max, initial, target_latency, alpha } => {
                let (min, max) = (min.unwrap_or(1), max.unwrap_or(65_536));
                Batching::Adaptive(AdaptiveConfig {
                    min,
                    max,
                    initial: initial.unwrap_or(max),
                    target_latency_ms: target_latency.0.as_secs_f64() * 1e3,
                    alpha: alpha.unwrap_or(0.3),
                })
            }
        }
    }

    /// Checks the values; errors name the key under `path`.
    fn check(&self, path: &str) -> Result<(), SpecError> {
        let key = |k: &str| format!("{path}.batching.{k}");
        match self.batching().validate() {
            Ok(()) => Ok(()),
            Err(_) if matches!(self, BatchingSpec::Fixed { .. }) => {
                Err(err(key("size"), "must be at least 1"))
            }
            Err(FlowError::InvalidTargetLatency { .. }) => {
                Err(err(key("target_latency"), "must be more than 0"))
            }
            Err(FlowError::InvalidAlpha { alpha }) => {
                Err(err(key("alpha"), format!("{alpha} is not in (0, 1] (the weight of the newest latency)")))
            }
            Err(e) => Err(err(format!("{path}.batching"), e.to_string())),
        }
    }
}

/// What a full mailbox does.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnFullKind {
    Block,
    DropNewest,
    DropOldest,
    Fail,
}

/// `panic = "abort" | "quarantine"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PanicKind {
    Abort,
    Quarantine,
}

/// A duration written as `"250ms"`, `"10s"`, `"30m"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. \"250ms\", \"10s\", \"30m\")"
            ))
        })
    }
}

/// One key column or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) path: PathBuf,
    pub(crate) format: Option<String>,
    /// Parquet, CSV, JSON lines: rows per batch (IPC keeps its stored batches).
    pub(crate) batch_rows: Option<usize>,
    /// CSV: whether the first line names the columns (default true).
    pub(crate) has_header: Option<bool>,
    /// CSV: field delimiter, one ASCII character (default ",").
    pub(crate) delimiter: Option<String>,
    /// CSV, JSON lines: what a row that cannot be read does (default fail).
    pub(crate) on_bad_row: Option<OnBadRowKind>,
    /// `format`, or the one the path's extension names: set by [`parse`].
    #[serde(skip)]
    checked_format: Option<Format>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinkSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) inputs: Option<Vec<String>>,
    /// The stage's input mailbox (parallel engines).
    pub(crate) mailbox: Option<MailboxSpec>,
    pub(crate) path: PathBuf,
    pub(crate) format: Option<String>,
    /// Parquet: rows per row group (each is buffered while it is encoded).
    pub(crate) row_group_rows: Option<usize>,
    /// `format`, or the one the path's extension names: set by [`parse`].
    #[serde(skip)]
    checked_format: Option<Format>,
}

impl SourceSpec {
    /// The file's format (checked by [`parse`]).
    pub(crate) fn format(&self) -> Format {
        self.checked_format.expect("spec::parse sets the format of every source")
    }
}

impl SinkSpec {
    /// The file's format (checked by [`parse`]).
    pub(crate) fn format(&self) -> Format {
        self.checked_format.expect("spec::parse sets the format of every sink")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccumulateSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) inputs: Option<Vec<String>>,
    /// The stage's input mailbox (parallel engines).
    pub(crate) mailbox: Option<MailboxSpec>,
    /// How the engines cut the stage's input batches.
    pub(crate) batching: Option<BatchingSpec>,
    /// The stage's error policy (retries, time quota, panics).
    pub(crate) on_error: Option<OnErrorSpec>,
    pub(crate) key: OneOrMany,
    /// `varset` (the default), `count` or `window`.
    pub(crate) accumulator: Option<AccumulatorKind>,
    pub(crate) var_column: Option<String>,
    pub(crate) value_column: Option<String>,
    #[serde(default)]
    pub(crate) require: Vec<String>,
    /// Event or processing time; `time_column` alone implies event time.
    pub(crate) time: Option<TimeKind>,
    pub(crate) time_column: Option<String>,
    pub(crate) partial_flush_after: Option<Dur>,
    pub(crate) max_latency: Option<Dur>,
    pub(crate) max_items: Option<u64>,
    pub(crate) max_bytes: Option<ByteSize>,
    pub(crate) partial_flush: Option<bool>,
    pub(crate) after_complete: Option<AfterCompleteKind>,
    pub(crate) max_keys: Option<u64>,
    pub(crate) allowed_lateness: Option<Dur>,
    /// Count accumulator: fragments per generation.
    pub(crate) every: Option<u64>,
    /// Window accumulator: `tumbling` or `session`.
    pub(crate) window: Option<WindowKind>,
    /// Tumbling window length.
    pub(crate) size: Option<Dur>,
    /// Session inactivity gap.
    pub(crate) gap: Option<Dur>,
    pub(crate) on_repeat: Option<RepeatKind>,
    pub(crate) spill: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AccumulatorKind {
    #[default]
    Varset,
    Count,
    Window,
}

/// `on_bad_row` of a CSV or JSON lines source.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnBadRowKind {
    Fail,
    Skip,
    DeadLetter,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AfterCompleteKind {
    Restart,
    Drop,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WindowKind {
    Tumbling,
    Session,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TimeKind {
    Event,
    Processing,
}

/// The time column used when `time = "event"` names none.
pub(crate) const DEFAULT_TIME_COLUMN: &str = "ts";

impl AccumulateSpec {
    /// `time`, or event time when only `time_column` is given, or processing time.
    pub(crate) fn time_kind(&self) -> TimeKind {
        match (self.time, &self.time_column) {
            (Some(t), _) => t,
            (None, Some(_)) => TimeKind::Event,
            (None, None) => TimeKind::Processing,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RepeatKind {
    KeepFirst,
    KeepLast,
}

/// A literal in a filter or route: any TOML scalar.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// `column op value`, or a null check: the keys a filter and a branch
/// route share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Condition<'a> {
    pub(crate) column: &'a str,
    pub(crate) op: Option<&'a str>,
    pub(crate) value: Option<&'a Scalar>,
    pub(crate) is_null: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) inputs: Option<Vec<String>>,
    /// The stage's input mailbox (parallel engines).
    pub(crate) mailbox: Option<MailboxSpec>,
    /// How the engines cut the stage's input batches.
    pub(crate) batching: Option<BatchingSpec>,
    /// The stage's error policy (retries, time quota, panics).
    pub(crate) on_error: Option<OnErrorSpec>,
    pub(crate) column: String,
    pub(crate) op: Option<String>,
    pub(crate) value: Option<Scalar>,
    pub(crate) is_null: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColumnsSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) inputs: Option<Vec<String>>,
    /// The stage's input mailbox (parallel engines).
    pub(crate) mailbox: Option<MailboxSpec>,
    /// How the engines cut the stage's input batches.
    pub(crate) batching: Option<BatchingSpec>,
    /// The stage's error policy (retries, time quota, panics).
    pub(crate) on_error: Option<OnErrorSpec>,
    pub(crate) columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MappingSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) inputs: Option<Vec<String>>,
    /// The stage's input mailbox (parallel engines).
    pub(crate) mailbox: Option<MailboxSpec>,
    /// How the engines cut the stage's input batches.
    pub(crate) batching: Option<BatchingSpec>,
    /// The stage's error policy (retries, time quota, panics).
    pub(crate) on_error: Option<OnErrorSpec>,
    /// rename: old → new; cast: column → Arrow type name.
    pub(crate) columns: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) column: String,
    pub(crate) op: Option<String>,
    pub(crate) value: Option<Scalar>,
    pub(crate) is_null: Option<bool>,
}

impl FilterSpec {
    pub(crate) fn condition(&self) -> Condition<'_> {
        Condition {
            column: &self.column,
            op: self.op.as_deref(),
            value: self.value.as_ref(),
            is_null: self.is_null,
        }
    }
}

impl Route {
    pub(crate) fn condition(&self) -> Condition<'_> {
        Condition {
            column: &self.column,
            op: self.op.as_deref(),
            value: self.value.as_ref(),
            is_null: self.is_null,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BranchSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) inputs: Option<Vec<String>>,
    pub(crate) routes: Vec<Route>,
    pub(crate) otherwise: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MergeSpec {
    pub(crate) id: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) inputs: Vec<String>,
}

/// A stage, by kind.
#[derive(Debug)]
pub(crate) enum StageSpec {
    Source(SourceSpec),
    Sink(SinkSpec),
    Accumulate(AccumulateSpec),
    Filter(FilterSpec),
    DropNulls(ColumnsSpec),
    Select(ColumnsSpec),
    Rename(MappingSpec),
    Cast(MappingSpec),
    Branch(BranchSpec),
    Merge(MergeSpec),
}

pub(crate) const KINDS: &str =
    "source, sink, accumulate, filter, drop_nulls, select, rename, cast, branch, merge";

impl StageSpec {
    pub(crate) fn id(&self) -> &str {
        match self {
            StageSpec::Source(s) => &s.id,
            StageSpec::Sink(s) => &s.id,
            StageSpec::Accumulate(s) => &s.id,
            StageSpec::Filter(s) => &s.id,
            StageSpec::DropNulls(s) | StageSpec::Select(s) => &s.id,
            StageSpec::Rename(s) | StageSpec::Cast(s) => &s.id,
            StageSpec::Branch(s) => &s.id,
            StageSpec::Merge(s) => &s.id,
        }
    }

    pub(crate) fn inputs(&self) -> Option<&[String]> {
        match self {
            StageSpec::Source(_) => None,
            StageSpec::Sink(s) => s.inputs.as_deref(),
            StageSpec::Accumulate(s) => s.inputs.as_deref(),
            StageSpec::Filter(s) => s.inputs.as_deref(),
            StageSpec::DropNulls(s) | StageSpec::Select(s) => s.inputs.as_deref(),
            StageSpec::Rename(s) | StageSpec::Cast(s) => s.inputs.as_deref(),
            StageSpec::Branch(s) => s.inputs.as_deref(),
            StageSpec::Merge(s) => Some(&s.inputs),
        }
    }

    /// The stage's mailbox, if it sets one.
    pub(crate) fn mailbox(&self) -> Option<MailboxSpec> {
        match self {
            StageSpec::Accumulate(s) => s.mailbox,
            StageSpec::Filter(s) => s.mailbox,
            StageSpec::DropNulls(s) | StageSpec::Select(s) => s.mailbox,
            StageSpec::Rename(s) | StageSpec::Cast(s) => s.mailbox,
            StageSpec::Sink(s) => s.mailbox,
            StageSpec::Source(_) | StageSpec::Branch(_) | StageSpec::Merge(_) => None,
        }
    }

    /// The stage's batching, if it sets one.
    pub(crate) fn batching(&self) -> Option<BatchingSpec> {
        match self {
            StageSpec::Accumulate(s) => s.batching,
            StageSpec::Filter(s) => s.batching,
            StageSpec::DropNulls(s) | StageSpec::Select(s) => s.batching,
            StageSpec::Rename(s) | StageSpec::Cast(s) => s.batching,
            StageSpec::Source(_) | StageSpec::Sink(_) | StageSpec::Branch(_) | StageSpec::Merge(_) => None,
        }
    }

    /// The stage's error policy, if it has one.
    pub(crate) fn on_error(&self) -> Option<&OnErrorSpec> {
        match self {
            StageSpec::Accumulate(s) => s.on_error.as_ref(),
            StageSpec::Filter(s) => s.on_error.as_ref(),
            StageSpec::DropNulls(s) | StageSpec::Select(s) => s.on_error.as_ref(),
            StageSpec::Rename(s) | StageSpec::Cast(s) => s.on_error.as_ref(),
            StageSpec::Source(_) | StageSpec::Sink(_) | StageSpec::Branch(_) | StageSpec::Merge(_) => None,
        }
    }
}

/// A whole spec, with every value checked.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) pipeline: PipelineSection,
    pub(crate) stages: Vec<StageSpec>,
    /// The directory relative paths are resolved against.
    pub(crate) base_dir: PathBuf,
}

impl Spec {
    pub(crate) fn engine(&self) -> Result<Option<EngineKind>, SpecError> {
        self.pipeline
            .engine
            .as_deref()
            .map(|e| e.parse::<EngineKind>().map_err(|x| err("pipeline.engine", x.to_string())))
            .transpose()
    }

    /// Resolves a spec path against the spec file's directory.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }
}

fn typed<T: DeserializeOwned>(path: &str, value: toml::Value) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let full = if inner == "." || inner.is_empty() { path.to_owned() } else { format!("{path}.{inner}") };
        err(full, e.into_inner().to_string())
    })
}

/// Parses and checks a spec's text. `base_dir` is where relative paths start.
pub(crate) fn parse(text: &str, base_dir: &Path) -> Result<Spec, SpecError> {
    let mut table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| err("", format!("not valid TOML: {e}")))?;
    if let Some(key) = table.keys().find(|k| *k != "pipeline" && *k != "stage") {
        return Err(err(key.clone(), "unknown key (the spec has [pipeline] and [[stage]] sections)"));
    }
    let pipeline: PipelineSection = match table.remove("pipeline") {
        Some(v) => typed("pipeline", v)?,
        None => PipelineSection {
            name: None,
            engine: None,
            threads: None,
            memory_budget: None,
            dead_letter: None,
            alert_partial_ratio: None,
            redact: Vec::new(),
        },
    };
    let mut pipeline = pipeline;
    if let Some(d) = &mut pipeline.dead_letter {
        d.checked_format = Some(check_format("pipeline.dead_letter", d.format.as_deref(), &d.path)?);
    }
    if pipeline.threads == Some(0) {
        return Err(err("pipeline.threads", "must be at least 1"));
    }
    if let Some(r) = pipeline.alert_partial_ratio.filter(|r| !(0.0..=1.0).contains(r)) {
        return Err(err(
            "pipeline.alert_partial_ratio",
            format!("{r} is not a ratio in [0, 1] (write 0.2 for 20%)"),
        ));
    }
    if pipeline.redact.iter().any(String::is_empty) {
        return Err(err("pipeline.redact", "a column name is empty"));
    }
    let stages = match table.remove("stage") {
        Some(toml::Value::Array(items)) => items,
        Some(_) => return Err(err("stage", "write stages as [[stage]] tables")),
        None => {
            return Err(err(
                "stage",
                "the spec has no [[stage]]: a pipeline needs at least a source and a sink",
            ))
        }
    };
    let mut out = Vec::with_capacity(stages.len());
    for (i, v) in stages.into_iter().enumerate() {
        let path = format!("stage[{i}]");
        let kind = match v.get("kind") {
            Some(toml::Value::String(k)) => k.clone(),
            Some(_) => return Err(err(format!("{path}.kind"), format!("must be a string, one of: {KINDS}"))),
            None => return Err(err(format!("{path}.kind"), format!("missing; one of: {KINDS}"))),
        };
        let stage = match kind.as_str() {
            "source" => StageSpec::Source(typed(&path, v)?),
            "sink" => StageSpec::Sink(typed(&path, v)?),
            "accumulate" => StageSpec::Accumulate(typed(&path, v)?),
            "filter" => StageSpec::Filter(typed(&path, v)?),
            "drop_nulls" => StageSpec::DropNulls(typed(&path, v)?),
            "select" => StageSpec::Select(typed(&path, v)?),
            "rename" => StageSpec::Rename(typed(&path, v)?),
            "cast" => StageSpec::Cast(typed(&path, v)?),
            "branch" => StageSpec::Branch(typed(&path, v)?),
            "merge" => StageSpec::Merge(typed(&path, v)?),
            other => {
                return Err(err(
                    format!("{path}.kind"),
                    format!("unknown stage kind {other:?}; one of: {KINDS}"),
                ))
            }
        };
        let mut stage = stage;
        check_stage(&path, &mut stage)?;
        out.push(stage);
    }
    let spec = Spec { pipeline, stages: out, base_dir: base_dir.to_owned() };
    spec.engine()?;
    Ok(spec)
}

/// Checks an accumulate stage: the keys its accumulator reads are there,
/// the ones it would ignore are not, and the values can work.
fn check_accumulate(path: &str, a: &AccumulateSpec) -> Result<(), SpecError> {
    let kind = a.accumulator.unwrap_or_default();
    let key = |k: &str| format!("{path}.{k}");
    let not_for = |k: &str, what: &str| Err(err(key(k), format!("not used by {what}")));
    if a.time_column.is_some() && a.time == Some(TimeKind::Processing) {
        return Err(err(key("time_column"), "only used with time = \"event\""));
    }
    match kind {
        AccumulatorKind::Varset => {
            if a.require.is_empty() {
                return Err(err(key("require"), "name at least one variable"));
            }
            for (k, set) in [
                ("every", a.every.is_some()),
                ("window", a.window.is_some()),
                ("size", a.size.is_some()),
                ("gap", a.gap.is_some()),
            ] {
                if set {
                    return not_for(k, "accumulator = \"varset\"");
                }
            }
        }
        AccumulatorKind::Count => {
            match a.every {
                None => {
                    return Err(err(
                        key("every"),
                        "missing: a count accumulator emits every N fragments per key",
                    ))
                }
                Some(0) => return Err(err(key("every"), "must be at least 1")),
                Some(_) => {}
            }
            for (k, set) in [
                ("require", !a.require.is_empty()),
                ("var_column", a.var_column.is_some()),
                ("on_repeat", a.on_repeat.is_some()),
                ("window", a.window.is_some()),
                ("size", a.size.is_some()),
                ("gap", a.gap.is_some()),
            ] {
                if set {
                    return not_for(k, "accumulator = \"count\"");
                }
            }
        }
        AccumulatorKind::Window => {
            if a.time == Some(TimeKind::Processing) {
                return Err(err(key("time"), "windows need event time: time = \"event\""));
            }
            match (a.window, a.size, a.gap) {
                (None, ..) => return Err(err(key("window"), "missing: \"tumbling\" or \"session\"")),
                (Some(WindowKind::Tumbling), None, _) => {
                    return Err(err(key("size"), "missing: the tumbling window's length, e.g. \"1m\""))
                }
                (Some(WindowKind::Tumbling), _, Some(_)) => {
                    return not_for("gap", "tumbling windows (use size)")
                }
                (Some(WindowKind::Session), _, None) => {
                    return Err(err(key("gap"), "missing: the session's inactivity gap, e.g. \"30s\""))
                }
                (Some(WindowKind::Session), Some(_), _) => {
                    return not_for("size", "session windows (use gap)")
                }
                _ => {}
            }
            if a.size.is_some_and(|d| d.0.is_zero()) {
                return Err(err(key("size"), "must be longer than 0"));
            }
            for (k, set) in [
                ("require", !a.require.is_empty()),
                ("var_column", a.var_column.is_some()),
                ("on_repeat", a.on_repeat.is_some()),
                ("every", a.every.is_some()),
                ("partial_flush_after", a.partial_flush_after.is_some()),
                ("max_latency", a.max_latency.is_some()),
                ("partial_flush", a.partial_flush.is_some()),
                ("after_complete", a.after_complete.is_some()),
            ] {
                if set {
                    return not_for(k, "accumulator = \"window\" (windows end with their window)");
                }
            }
        }
    }
    for (k, v) in
        [("max_items", a.max_items), ("max_keys", a.max_keys), ("max_bytes", a.max_bytes.map(|b| b.0))]
    {
        if v == Some(0) {
            return Err(err(key(k), "must be at least 1"));
        }
    }
    if a.allowed_lateness.is_some() && a.time_kind() != TimeKind::Event && kind != AccumulatorKind::Window {
        return Err(err(key("allowed_lateness"), "lateness needs event time: time = \"event\""));
    }
    if a.partial_flush == Some(false) && a.partial_flush_after.is_none() {
        return Err(err(
            key("partial_flush"),
            "partial_flush = false needs partial_flush_after (the TTL that expires keys)",
        ));
    }
    Ok(())
}

fn check_format(path: &str, format: Option<&str>, file: &Path) -> Result<Format, SpecError> {
    match format {
        Some(f) => f.parse::<Format>().map_err(|e| err(format!("{path}.format"), e.to_string())),
        None => Format::from_path(file).ok_or_else(|| {
            err(format!("{path}.format"), format!("missing, and the extension of {} does not tell: write format = \"ipc\" | \"parquet\" | \"csv\" | \"jsonl\"", file.display()))
        }),
    }
}

/// Checks a stage's values, and rejects keys that would be ignored.
fn check_stage(path: &str, stage: &mut StageSpec) -> Result<(), SpecError> {
    if let Some(b) = stage.batching() {
        b.check(path)?;
    }
    match stage {
        StageSpec::Source(s) => {
            let format = check_format(path, s.format.as_deref(), &s.path)?;
            s.checked_format = Some(format);
            if format != Format::Csv {
                let only_csv = format!("only for CSV sources (this one is {format})");
                if s.has_header.is_some() {
                    return Err(err(format!("{path}.has_header"), only_csv));
                }
                if s.delimiter.is_some() {
                    return Err(err(format!("{path}.delimiter"), only_csv));
                }
            }
            if s.on_bad_row.is_some() && !matches!(format, Format::Csv | Format::Jsonl) {
                return Err(err(
                    format!("{path}.on_bad_row"),
                    format!("only for CSV and JSON lines sources (this one is {format}: bad input there is always an error)"),
                ));
            }
            if let Some(d) = &s.delimiter {
                if d.len() != 1 || !d.is_ascii() {
                    return Err(err(format!("{path}.delimiter"), "must be one ASCII character"));
                }
            }
            match s.batch_rows {
                Some(0) => return Err(err(format!("{path}.batch_rows"), "must be at least 1")),
                Some(_) if matches!(format, Format::Ipc | Format::IpcStream) => {
                    return Err(err(
                        format!("{path}.batch_rows"),
                        "not used for Arrow IPC: its batches are read as stored (for parquet, csv and jsonl sources)",
                    ))
                }
                _ => {}
            }
        }
        StageSpec::Sink(s) => {
            let format = check_format(path, s.format.as_deref(), &s.path)?;
            s.checked_format = Some(format);
            match s.row_group_rows {
                Some(_) if format != Format::Parquet => {
                    return Err(err(
                        format!("{path}.row_group_rows"),
                        format!("only for Parquet sinks (this one is {format})"),
                    ))
                }
                Some(0) => return Err(err(format!("{path}.row_group_rows"), "must be at least 1")),
                _ => {}
            }
        }
        StageSpec::Accumulate(a) => check_accumulate(path, a)?,
        StageSpec::Filter(f) => f.condition().check(path)?,
        StageSpec::Branch(b) => {
            if b.routes.is_empty() {
                return Err(err(format!("{path}.routes"), "a branch needs at least one route"));
            }
            for (i, r) in b.routes.iter().enumerate() {
                r.condition().check(&format!("{path}.routes[{i}]"))?;
            }
        }
        StageSpec::Merge(m) => {
            if m.inputs.len() < 2 {
                return Err(err(format!("{path}.inputs"), "a merge needs at least two inputs"));
            }
        }
        StageSpec::DropNulls(c) | StageSpec::Select(c) => {
            if c.columns.is_empty() {
                return Err(err(format!("{path}.columns"), "name at least one column"));
            }
        }
        StageSpec::Rename(m) => check_mapping(path, m)?,
        StageSpec::Cast(m) => {
            check_mapping(path, m)?;
            for (column, ty) in &m.columns {
                ty.parse::<arrow_schema::DataType>().map_err(|e| {
                    err(
                        format!("{path}.columns.{column}"),
                        format!("unknown Arrow type {ty:?}: {e} (e.g. \"Int64\", \"Utf8\", \"Float64\")"),
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// A rename or cast names at least one column (an empty table would do nothing).
fn check_mapping(path: &str, m: &MappingSpec) -> Result<(), SpecError> {
    if m.columns.is_empty() {
        return Err(err(format!("{path}.columns"), "name at least one column (an empty table does nothing)"));
    }
    Ok(())
}

impl Condition<'_> {
    /// Either `op` and `value` (a comparison) or `is_null`.
    fn check(&self, path: &str) -> Result<(), SpecError> {
        match (self.op, self.value.is_some(), self.is_null) {
            (Some(op), true, None) => {
                garner::engine::CmpOp::parse(op).ok_or_else(|| {
                    err(format!("{path}.op"), format!("unknown operator {op:?}; one of = != < <= > >="))
                })?;
                Ok(())
            }
            (None, false, Some(_)) => Ok(()),
            _ => Err(err(path, "write either `op` and `value` (a comparison) or `is_null = true|false`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[pipeline]
name = "assemble"
engine = "sync"
threads = 2
memory_budget = "512MiB"

[[stage]]
id = "read"
kind = "source"
format = "ipc"
path = "fragments.arrow"

[[stage]]
id = "assemble"
kind = "accumulate"
key = ["subject_id"]
var_column = "var"
value_column = "value"
require = ["id", "name", "riskClass", "limit"]
time = "event"
partial_flush_after = "10s"
spill = true

[[stage]]
id = "write"
kind = "sink"
format = "parquet"
path = "assembled.parquet"
"#;

    fn parse_err(text: &str) -> String {
        parse(text, Path::new(".")).unwrap_err().to_string()
    }

    #[test]
    fn dead_letter_outputs_and_error_policies_parse_and_bad_ones_name_their_key() {
        let with = |pipeline: &str, stage: &str| {
            GOOD.replace("memory_budget = \"512MiB\"", pipeline).replace("spill = true", stage)
        };
        let spec = parse(
            &with(
                "dead_letter = { path = \"dlq.parquet\" }",
                "spill = true\non_error = { retries = 2, backoff = \"5ms\", panic = \"quarantine\" }",
            ),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(spec.pipeline.dead_letter.as_ref().unwrap().format(), Format::Parquet);
        let e = spec.stages[1].on_error().unwrap();
        assert_eq!((e.retries, e.backoff.map(|d| d.0)), (Some(2), Some(Duration::from_millis(5))));
        assert!(matches!(e.panic, Some(PanicKind::Quarantine)));
        let e = parse_err(&with("dead_letter = { path = \"dlq.what\" }", "spill = true"));
        assert!(e.starts_with("pipeline.dead_letter.format: missing"), "{e}");
        let e = parse_err(&with("dead_letter = { file = \"dlq.parquet\" }", "spill = true"));
        assert!(e.starts_with("pipeline.dead_letter"), "{e}");
        let e = parse_err(&with("memory_budget = \"1MiB\"", "spill = true\non_error = { retry = 2 }"));
        assert!(e.starts_with("stage[1]") && e.contains("retry"), "{e}");
        let e =
            parse_err(&with("memory_budget = \"1MiB\"", "spill = true\non_error = { panic = \"explode\" }"));
        assert!(e.starts_with("stage[1].on_error.panic"), "{e}");
    }

    #[test]
    fn batching_parses_and_bad_values_name_their_key() {
        let with =
            |batching: &str| GOOD.replace("spill = true", &format!("spill = true\nbatching = {batching}"));
        let spec = parse(
            &with(r#"{ mode = "adaptive", min = 256, max = 65536, target_latency = "5ms" }"#),
            Path::new("."),
        )
        .unwrap();
        let want =
            AdaptiveConfig { min: 256, max: 65536, initial: 65536, target_latency_ms: 5.0, alpha: 0.3 };
        assert_eq!(spec.stages[1].batching().unwrap().batching(), Batching::Adaptive(want));
        let spec = parse(&with(r#"{ mode = "fixed", size = 512 }"#), Path::new(".")).unwrap();
        assert_eq!(spec.stages[1].batching().unwrap().batching(), Batching::Fixed(512));
        let e = parse_err(&with(r#"{ mode = "fixed", size = 0 }"#));
        assert!(e.starts_with("stage[1].batching.size: must be at least 1"), "{e}");
        let e = parse_err(&with(r#"{ mode = "adaptive", min = 10, max = 5, target_latency = "5ms" }"#));
        assert!(e.starts_with("stage[1].batching: invalid adaptive batch bounds"), "{e}");
        let e = parse_err(&with(r#"{ mode = "adaptive", target_latency = "0ms" }"#));
        assert!(e.starts_with("stage[1].batching.target_latency: must be more than 0"), "{e}");
        let e = parse_err(&with(r#"{ mode = "adaptive", target_latency = "5ms", alpha = 2.0 }"#));
        assert!(e.starts_with("stage[1].batching.alpha: 2 is not in (0, 1]"), "{e}");
        let e = parse_err(&with(r#"{ mode = "adaptive" }"#));
        assert!(e.starts_with("stage[1].batching") && e.contains("target_latency"), "{e}");
        let e = parse_err(&with(r#"{ mode = "adaptive", target_latency = "5ms", maxx = 3 }"#));
        assert!(e.starts_with("stage[1].batching") && e.contains("maxx"), "{e}");
        let e = parse_err(&with(r#"{ mode = "sometimes" }"#));
        assert!(e.starts_with("stage[1].batching") && e.contains("sometimes"), "{e}");
    }

    #[test]
    fn the_design_spec_parses() {
        let spec = parse(GOOD, Path::new("/data")).unwrap();
        assert_eq!(spec.stages.len(), 3);
        assert_eq!(spec.pipeline.memory_budget, Some(ByteSize::mib(512)));
        assert_eq!(spec.resolve(Path::new("x.arrow")), Path::new("/data/x.arrow"));
        match &spec.stages[1] {
            StageSpec::Accumulate(a) => assert_eq!(a.partial_flush_after.unwrap().0, Duration::from_secs(10)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alert_and_redaction_keys_parse_and_bad_values_name_their_key() {
        let with = |keys: &str| GOOD.replace("memory_budget = \"512MiB\"", keys);
        let spec = parse(&with("alert_partial_ratio = 0.2\nredact = [\"name\", \"limit\"]"), Path::new("."))
            .unwrap();
        assert_eq!(spec.pipeline.alert_partial_ratio, Some(0.2));
        assert_eq!(spec.pipeline.redact, ["name", "limit"]);
        let spec = parse(GOOD, Path::new(".")).unwrap();
        assert!(spec.pipeline.alert_partial_ratio.is_none() && spec.pipeline.redact.is_empty());
        let e = parse_err(&with("alert_partial_ratio = 20"));
        assert!(e.starts_with("pipeline.alert_partial_ratio: 20 is not a ratio in [0, 1]"), "{e}");
        let e = parse_err(&with("redact = \"name\""));
        assert!(e.starts_with("pipeline.redact: invalid type"), "{e}");
        let e = parse_err(&with("redact = [\"\"]"));
        assert!(e.starts_with("pipeline.redact: a column name is empty"), "{e}");
    }

    #[test]
    fn errors_name_the_key_path() {
        let e =
            parse_err(&GOOD.replace("partial_flush_after = \"10s\"", "partial_flush_after = \"10 parsecs\""));
        assert!(e.starts_with("stage[1].partial_flush_after: invalid duration"), "{e}");
        let e = parse_err(&GOOD.replace("spill = true", "spil = true"));
        assert!(e.starts_with("stage[1].spil: unknown field `spil`, expected one of"), "{e}");
        let e = parse_err(&GOOD.replace("kind = \"accumulate\"", "kind = \"acumulate\""));
        assert!(e.starts_with("stage[1].kind: unknown stage kind \"acumulate\"; one of: source"), "{e}");
        let e = parse_err(&GOOD.replace("threads = 2", "threads = \"two\""));
        assert!(e.starts_with("pipeline.threads: invalid type"), "{e}");
        let e = parse_err(&GOOD.replace("memory_budget = \"512MiB\"", "memory_budget = \"512 parsecs\""));
        assert!(e.starts_with("pipeline.memory_budget: invalid size"), "{e}");
        let e = parse_err(&GOOD.replace("engine = \"sync\"", "engine = \"warp\""));
        assert!(e.starts_with("pipeline.engine: unknown engine `warp`"), "{e}");
        let e = parse_err(&GOOD.replace("format = \"parquet\"", "format = \"xlsx\""));
        assert!(e.starts_with("stage[2].format: unknown format"), "{e}");
        let e = parse_err(
            &GOOD.replace("require = [\"id\", \"name\", \"riskClass\", \"limit\"]", "require = []"),
        );
        assert!(e.starts_with("stage[1].require:"), "{e}");
        let e = parse_err("[pipeline]\nname = \"x\"\n");
        assert!(e.starts_with("stage: the spec has no [[stage]]"), "{e}");
        let e = parse_err("[pipeline\n");
        assert!(e.starts_with("not valid TOML"), "{e}");
    }

    /// GOOD with the accumulate stage's keys after `key` replaced by `keys`.
    fn accumulate(keys: &str) -> String {
        let start = GOOD.find("var_column").unwrap();
        let end = GOOD.find("spill = true").unwrap() + "spill = true".len();
        format!("{}{keys}{}", &GOOD[..start], &GOOD[end..])
    }

    #[test]
    fn every_accumulator_and_policy_key_parses() {
        let text = accumulate(
            "var_column = \"var\"\nrequire = [\"a\"]\ntime = \"event\"\nmax_items = 3\nmax_bytes = \"1KiB\"\n\
             max_latency = \"5s\"\npartial_flush_after = \"10s\"\npartial_flush = false\n\
             after_complete = \"drop\"\nmax_keys = 100\nallowed_lateness = \"2s\"",
        );
        let spec = parse(&text, Path::new(".")).unwrap();
        let StageSpec::Accumulate(a) = &spec.stages[1] else { panic!() };
        assert_eq!((a.max_items, a.max_keys, a.max_bytes), (Some(3), Some(100), Some(ByteSize(1024))));
        assert_eq!(a.after_complete, Some(AfterCompleteKind::Drop));
        assert_eq!(a.partial_flush, Some(false));
        let count = accumulate("accumulator = \"count\"\nevery = 5\nvalue_column = \"value\"");
        parse(&count, Path::new(".")).unwrap();
        let window =
            accumulate("accumulator = \"window\"\nwindow = \"session\"\ngap = \"30s\"\ntime_column = \"ts\"");
        parse(&window, Path::new(".")).unwrap();
    }

    #[test]
    fn accumulator_keys_that_cannot_work_are_refused_with_their_path() {
        let cases = [
            ("accumulator = \"count\"", "stage[1].every: missing"),
            ("accumulator = \"count\"\nevery = 0", "stage[1].every: must be at least 1"),
            (
                "accumulator = \"count\"\nevery = 2\nrequire = [\"a\"]",
                "stage[1].require: not used by accumulator = \"count\"",
            ),
            ("accumulator = \"window\"", "stage[1].window: missing"),
            ("accumulator = \"window\"\nwindow = \"tumbling\"", "stage[1].size: missing"),
            (
                "accumulator = \"window\"\nwindow = \"tumbling\"\nsize = \"1m\"\ngap = \"1s\"",
                "stage[1].gap: not used by",
            ),
            (
                "accumulator = \"window\"\nwindow = \"session\"\ngap = \"1s\"\npartial_flush_after = \"1s\"",
                "stage[1].partial_flush_after: not used by",
            ),
            (
                "accumulator = \"window\"\nwindow = \"session\"\ngap = \"1s\"\ntime = \"processing\"",
                "stage[1].time: windows need event time",
            ),
            ("accumulator = \"cube\"", "stage[1].accumulator: unknown variant `cube`"),
            ("require = [\"a\"]\nmax_items = 0", "stage[1].max_items: must be at least 1"),
            ("require = [\"a\"]\nmax_keys = 0", "stage[1].max_keys: must be at least 1"),
            (
                "require = [\"a\"]\nallowed_lateness = \"1s\"",
                "stage[1].allowed_lateness: lateness needs event time",
            ),
            (
                "require = [\"a\"]\npartial_flush = false",
                "stage[1].partial_flush: partial_flush = false needs partial_flush_after",
            ),
            (
                "require = [\"a\"]\nafter_complete = \"sometimes\"",
                "stage[1].after_complete: unknown variant `sometimes`",
            ),
            ("require = [\"a\"]\nevery = 3", "stage[1].every: not used by accumulator = \"varset\""),
        ];
        for (keys, expected) in cases {
            let e = parse_err(&accumulate(keys));
            assert!(e.starts_with(expected), "{keys}: {e}");
        }
        let csv = GOOD.replace("format = \"parquet\"", "format = \"csv\"\nrow_group_rows = 10");
        assert!(parse_err(&csv).starts_with("stage[2].row_group_rows: only for Parquet sinks"));
        let zero = GOOD.replace("format = \"parquet\"", "format = \"parquet\"\nrow_group_rows = 0");
        assert!(parse_err(&zero).starts_with("stage[2].row_group_rows: must be at least 1"));
    }

    /// A source stage of `format` at `path` plus `extra` keys.
    fn source(format: &str, path: &str, extra: &str) -> String {
        format!("[[stage]]\nid = \"read\"\nkind = \"source\"\nformat = \"{format}\"\npath = \"{path}\"\n{extra}\n")
    }

    #[test]
    fn the_format_is_resolved_once_from_the_key_or_the_extension() {
        let spec = parse(
            &(source("csv", "x.data", "") + "[[stage]]\nid = \"w\"\nkind = \"sink\"\npath = \"o.parquet\"\n"),
            Path::new("."),
        )
        .unwrap();
        match (&spec.stages[0], &spec.stages[1]) {
            (StageSpec::Source(s), StageSpec::Sink(k)) => {
                assert_eq!((s.format(), k.format()), (Format::Csv, Format::Parquet))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_that_would_be_ignored_are_rejected() {
        // Caught: these were accepted and silently had no effect.
        let e = parse_err(&source("parquet", "x.parquet", "has_header = false"));
        assert_eq!(e, "stage[0].has_header: only for CSV sources (this one is parquet)");
        let e = parse_err(&source("jsonl", "x.jsonl", "delimiter = \";\""));
        assert!(e.starts_with("stage[0].delimiter: only for CSV sources"), "{e}");
        let e = parse_err(&source("ipc", "x.arrow", "batch_rows = 1000"));
        assert!(
            e.starts_with("stage[0].batch_rows: not used for Arrow IPC: its batches are read as stored"),
            "{e}"
        );
        let e = parse_err(&source("ipc-stream", "x.arrows", "batch_rows = 1000"));
        assert!(e.starts_with("stage[0].batch_rows: not used for Arrow IPC"), "{e}");
        for kind in ["rename", "cast"] {
            let e = parse_err(&format!("[[stage]]\nid = \"m\"\nkind = \"{kind}\"\ncolumns = {{}}\n"));
            assert!(e.starts_with("stage[0].columns: name at least one column"), "{kind}: {e}");
        }
        assert!(parse(
            &source("csv", "x.csv", "has_header = false\ndelimiter = \";\"\nbatch_rows = 10"),
            Path::new(".")
        )
        .is_ok());
        assert!(parse(&source("parquet", "x.parquet", "batch_rows = 10"), Path::new(".")).is_ok());
    }

    #[test]
    fn on_bad_row_parses_for_text_sources_only() {
        for (value, expected) in [
            ("fail", OnBadRowKind::Fail),
            ("skip", OnBadRowKind::Skip),
            ("dead_letter", OnBadRowKind::DeadLetter),
        ] {
            for (format, path) in [("csv", "x.csv"), ("jsonl", "x.jsonl")] {
                let text = source(format, path, &format!("on_bad_row = \"{value}\""));
                match &parse(&text, Path::new(".")).unwrap().stages[0] {
                    StageSpec::Source(s) => assert_eq!(s.on_bad_row, Some(expected), "{format}"),
                    other => panic!("{other:?}"),
                }
            }
        }
        let e = parse_err(&source("csv", "x.csv", "on_bad_row = \"ignore\""));
        assert!(e.starts_with("stage[0].on_bad_row: unknown variant `ignore`, expected one of"), "{e}");
        assert!(e.contains("`dead_letter`"), "{e}");
        let e = parse_err(&source("csv", "x.csv", "on_bad_row = true"));
        assert!(e.starts_with("stage[0].on_bad_row: invalid type"), "{e}");
        let e = parse_err(&source("parquet", "x.parquet", "on_bad_row = \"skip\""));
        assert!(
            e.starts_with("stage[0].on_bad_row: only for CSV and JSON lines sources (this one is parquet"),
            "{e}"
        );
    }

    #[test]
    fn a_delimiter_is_one_ascii_character() {
        for d in ["ab", "é", ""] {
            let e = parse_err(&source("csv", "x.csv", &format!("delimiter = \"{d}\"")));
            assert_eq!(e, "stage[0].delimiter: must be one ASCII character", "{d:?}");
        }
    }

    #[test]
    fn a_time_column_alone_means_event_time() {
        // Caught: `time_column` without `time` ran in processing time, ignoring the column.
        let with = |keys: &str| {
            let text = format!(
                "[[stage]]\nid = \"a\"\nkind = \"accumulate\"\nkey = \"k\"\nrequire = [\"x\"]\n{keys}\n"
            );
            match parse(&text, Path::new(".")).unwrap().stages.remove(0) {
                StageSpec::Accumulate(a) => a.time_kind(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(with("time_column = \"when\""), TimeKind::Event);
        assert_eq!(with(""), TimeKind::Processing);
        assert_eq!(with("time = \"event\""), TimeKind::Event);
        let e = parse_err("[[stage]]\nid = \"a\"\nkind = \"accumulate\"\nkey = \"k\"\nrequire = [\"x\"]\ntime = \"processing\"\ntime_column = \"t\"\n");
        assert!(e.starts_with("stage[0].time_column: only used with time = \"event\""), "{e}");
    }

    #[test]
    fn conditions_need_op_and_value_or_a_null_check() {
        let text = "[[stage]]\nid = \"f\"\nkind = \"filter\"\ncolumn = \"x\"\nop = \"~\"\nvalue = 3\n";
        assert!(parse_err(text).starts_with("stage[0].op: unknown operator"));
        let text = "[[stage]]\nid = \"f\"\nkind = \"filter\"\ncolumn = \"x\"\n";
        assert!(parse_err(text).starts_with("stage[0]: write either"));
    }
}
