//! A checked spec → a validated pipeline graph: sources are opened, sinks
//! created (a temporary file, renamed into place only when the whole run
//! succeeds), stages connected in file order unless `inputs` says otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use garner::accum::{
    AfterComplete, CountAccumulator, RepeatPolicy, TimeMode, VarSet, WindowAccumulator, WithPolicies,
};
use garner::columnar::sink::{create_sink, ParquetOptions, ParquetSink};
use garner::columnar::source::{CsvOptions, OnBadRow, SourceOptions};
use garner::columnar::{open_source_with, BatchSource};
use garner::engine::resilience::{DropPolicy, Guarded, MailboxPolicy, PanicPolicy, RetryPolicy, StagePolicy};
use garner::engine::stages::DeadLetterSource;
use garner::engine::stages::{AccumulateStage, Branch};
use garner::engine::transforms::{Cast, DropNulls, Filter, Rename, Select};
use garner::engine::{
    col, CmpOp, DeadLetterQueue, Literal, Pipeline, PipelineGraph, Predicate, Stage, StageKind,
};

use crate::spec::{
    AccumulateSpec, AccumulatorKind, AfterCompleteKind, Condition, OnBadRowKind, OnErrorSpec, OnFullKind,
    OneOrMany, PanicKind, RepeatKind, Scalar, SourceSpec, Spec, StageSpec, TimeKind, WindowKind,
    DEFAULT_TIME_COLUMN,
};

/// Rows per batch for the sources that cut their own (Parquet, CSV, JSON
/// lines), unless a stage sets `batch_rows`.
const DEFAULT_BATCH_ROWS: usize = 65_536;

fn literal(s: &Scalar) -> Literal {
    match s {
        Scalar::Bool(b) => Literal::Bool(*b),
        Scalar::Int(i) => Literal::Int(*i),
        Scalar::Float(f) => Literal::Float(*f),
        Scalar::Str(s) => Literal::Str(s.clone()),
    }
}

/// The predicate of a checked condition (a filter's or a branch route's).
fn predicate(c: Condition<'_>) -> Predicate {
    match (c.op, c.value, c.is_null) {
        (Some(op), Some(v), _) => {
            let op = CmpOp::parse(op).expect("checked by spec::parse");
            Predicate::Cmp { column: c.column.to_owned(), op, value: literal(v) }
        }
        (_, _, Some(true)) => col(c.column).is_null(),
        _ => col(c.column).is_not_null(),
    }
}

fn open_source(
    spec: &Spec,
    s: &SourceSpec,
    dead_letters: Option<&DeadLetterQueue>,
) -> Result<Box<dyn BatchSource>> {
    let csv = CsvOptions {
        has_header: s.has_header.unwrap_or(true),
        // Checked by spec::parse: one ASCII character.
        delimiter: s.delimiter.as_deref().map_or(b',', |d| d.as_bytes()[0]),
        ..CsvOptions::default()
    };
    let on_bad_row = match s.on_bad_row {
        None | Some(OnBadRowKind::Fail) => OnBadRow::Fail,
        Some(OnBadRowKind::Skip) => OnBadRow::Skip,
        Some(OnBadRowKind::DeadLetter) if dead_letters.is_none() => bail!(
            "stage `{}`: on_bad_row = \"dead_letter\" needs the pipeline's dead-letter output: \
             add `dead_letter = {{ path = \"dlq.parquet\" }}` under [pipeline] (or use \"skip\" or \"fail\")",
            s.id
        ),
        Some(OnBadRowKind::DeadLetter) => OnBadRow::DeadLetter,
    };
    let options = SourceOptions {
        batch_rows: s.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS),
        csv,
        on_bad_row,
        stage_id: s.id.clone(),
    };
    let source = open_source_with(s.format(), &spec.resolve(&s.path), &options)?;
    Ok(match (on_bad_row, dead_letters) {
        (OnBadRow::DeadLetter, Some(queue)) => Box::new(DeadLetterSource::new(source, &s.id, queue.clone())),
        _ => source,
    })
}

/// A stage's error policy from its `on_error` table.
fn stage_policy(e: &OnErrorSpec) -> StagePolicy {
    let base = e.backoff.map_or(Duration::from_millis(10), |d| d.0);
    StagePolicy {
        retry: RetryPolicy {
            max_attempts: e.retries.unwrap_or(0).saturating_add(1),
            base_backoff: base,
            max_backoff: e.max_backoff.map_or(base.max(Duration::from_secs(1)), |d| d.0),
            jitter: 0.5,
        },
        time_quota: e.time_quota.map(|d| d.0),
        on_panic: match e.panic {
            Some(PanicKind::Quarantine) => PanicPolicy::Quarantine,
            _ => PanicPolicy::Abort,
        },
        ..StagePolicy::default()
    }
}

/// Adds `stage` under its error policy, if it has one.
fn add(
    p: Pipeline,
    id: &str,
    kind: StageKind,
    stage: impl Stage + Clone + Sync + 'static,
    on_error: Option<&OnErrorSpec>,
    dead_letters: Option<&DeadLetterQueue>,
) -> Pipeline {
    match on_error {
        Some(e) => {
            let mut guarded = Guarded::new(stage, stage_policy(e));
            if let Some(q) = dead_letters {
                guarded = guarded.dead_letters(q.clone());
            }
            p.stage(id, kind, Arc::new(guarded))
        }
        None => p.stage(id, kind, Arc::new(stage)),
    }
}

/// The accumulator an accumulate stage runs, with its policies.
fn accumulator(a: &AccumulateSpec) -> AccumulateStage {
    let key = match &a.key {
        OneOrMany::One(k) => vec![k.clone()],
        OneOrMany::Many(k) => k.clone(),
    };
    let time = match a.time_kind() {
        TimeKind::Event => {
            TimeMode::Event { column: a.time_column.clone().unwrap_or_else(|| DEFAULT_TIME_COLUMN.into()) }
        }
        TimeKind::Processing => TimeMode::Processing,
    };
    match a.accumulator.unwrap_or_default() {
        AccumulatorKind::Varset => {
            let mut v = VarSet::keyed(key)
                .var_column(a.var_column.clone().unwrap_or_else(|| "var".into()))
                .value_column(a.value_column.clone().unwrap_or_else(|| "value".into()))
                .require(a.require.iter().cloned())
                .time(time);
            if let Some(r) = a.on_repeat {
                v = v.on_repeat(match r {
                    RepeatKind::KeepFirst => RepeatPolicy::KeepFirst,
                    RepeatKind::KeepLast => RepeatPolicy::KeepLast,
                });
            }
            policies(v, a).into()
        }
        AccumulatorKind::Count => {
            // Checked by spec::parse: `every` is set.
            let mut c = CountAccumulator::keyed(key).every(a.every.unwrap_or(1)).time(time);
            if let Some(v) = &a.value_column {
                c = c.value_column(v.clone());
            }
            policies(c, a).into()
        }
        AccumulatorKind::Window => {
            let column = a.time_column.clone().unwrap_or_else(|| DEFAULT_TIME_COLUMN.into());
            // Checked by spec::parse: tumbling windows have a size, sessions a gap.
            let mut w = match a.window {
                Some(WindowKind::Session) => {
                    WindowAccumulator::session(key, column, a.gap.map(|d| d.0).unwrap_or_default())
                }
                _ => WindowAccumulator::tumbling(key, column, a.size.map(|d| d.0).unwrap_or_default()),
            };
            if let Some(v) = &a.value_column {
                w = w.value_column(v.clone());
            }
            policies(w, a).into()
        }
    }
}

/// The spec's policy keys, on any accumulator builder.
fn policies<P: WithPolicies>(mut p: P, a: &AccumulateSpec) -> P {
    let policies = p.policies_mut();
    policies.partial_flush_after = a.partial_flush_after.map(|d| d.0);
    policies.max_latency = a.max_latency.map(|d| d.0);
    policies.max_items = a.max_items;
    policies.max_bytes = a.max_bytes.map(|b| b.0);
    policies.partial_flush = a.partial_flush;
    policies.max_keys = a.max_keys;
    policies.allowed_lateness = a.allowed_lateness.map(|d| d.0);
    policies.spill = a.spill.unwrap_or(false);
    policies.after_complete = match a.after_complete {
        Some(AfterCompleteKind::Drop) => AfterComplete::Drop,
        _ => AfterComplete::Restart,
    };
    p
}

/// `path` as the file system names it, so `out.csv` and `./out.csv` compare
/// equal: canonical when it exists, else its canonical directory and name.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()).join(name)
        }
        _ => path.to_owned(),
    }
}

/// No two sinks write one file, and no sink writes a source's file: the run
/// would overwrite one output with another, or its own input.
fn check_paths(spec: &Spec) -> Result<()> {
    // (stage index, id, is a sink, file)
    let mut files: Vec<(usize, &str, bool, PathBuf)> = Vec::new();
    for (i, stage) in spec.stages.iter().enumerate() {
        let (id, path, sink) = match stage {
            StageSpec::Source(s) => (s.id.as_str(), &s.path, false),
            StageSpec::Sink(s) => (s.id.as_str(), &s.path, true),
            _ => continue,
        };
        let file = canonical(&spec.resolve(path));
        let clash = files.iter().find(|(_, _, other_sink, f)| (sink || *other_sink) && *f == file);
        if let Some((j, other, other_sink, _)) = clash {
            let (this, that) = match (sink, other_sink) {
                (true, true) => {
                    (format!("sink `{id}`"), format!("sink `{other}` (stage[{j}]) writes it too"))
                }
                (true, false) => {
                    (format!("sink `{id}`"), format!("it is the input of source `{other}` (stage[{j}])"))
                }
                _ => (format!("source `{id}`"), format!("sink `{other}` (stage[{j}]) writes it")),
            };
            bail!("stage[{i}].path: {this} uses {}, but {that}", path.display());
        }
        files.push((i, id, sink, file));
    }
    Ok(())
}

/// Builds the graph. Errors name the stage (`stage[1]: ...`) or the key
/// (`stage[0].path: ...`). With `dead_letters`, CSV and JSON-lines sources
/// with `on_bad_row = "dead_letter"`, stages with `on_error` and
/// accumulators send what they reject there.
pub(crate) fn build(spec: &Spec, dead_letters: Option<&DeadLetterQueue>) -> Result<PipelineGraph> {
    check_paths(spec)?;
    let name = spec.pipeline.name.clone().unwrap_or_else(|| "pipeline".into());
    let mut p = Pipeline::new(name);
    for (i, stage) in spec.stages.iter().enumerate() {
        let at_path = || format!("stage[{i}].path");
        if let Some(inputs) = stage.inputs() {
            p = p.from(inputs.to_vec());
        }
        p = match stage {
            StageSpec::Source(s) => {
                p.source(&s.id, open_source(spec, s, dead_letters).with_context(at_path)?)
            }
            StageSpec::Sink(s) => {
                let path = spec.resolve(&s.path);
                let sink = match s.row_group_rows {
                    Some(rows) => {
                        let options = ParquetOptions { row_group_rows: rows, ..ParquetOptions::default() };
                        Box::new(ParquetSink::create_with(&path, options).with_context(at_path)?)
                    }
                    None => create_sink(s.format(), &path).with_context(at_path)?,
                };
                p.sink(&s.id, sink)
            }
            StageSpec::Accumulate(a) => {
                let mut acc = accumulator(a);
                if let Some(q) = dead_letters {
                    acc = acc.dead_letters(q.clone());
                }
                add(p, &a.id, StageKind::Accumulator, acc, stage.on_error(), dead_letters)
            }
            StageSpec::Filter(f) => {
                let filter = Filter::new(predicate(f.condition()));
                add(p, &f.id, StageKind::Transform, filter, stage.on_error(), dead_letters)
            }
            StageSpec::DropNulls(c) => {
                let drop = DropNulls::on(c.columns.iter().cloned());
                add(p, &c.id, StageKind::Transform, drop, stage.on_error(), dead_letters)
            }
            StageSpec::Select(c) => {
                let select = Select::columns(c.columns.iter().cloned());
                add(p, &c.id, StageKind::Transform, select, stage.on_error(), dead_letters)
            }
            StageSpec::Rename(m) => {
                let rename = Rename::new(m.columns.clone());
                add(p, &m.id, StageKind::Transform, rename, stage.on_error(), dead_letters)
            }
            StageSpec::Cast(m) => {
                let mut casts =
                    m.columns.iter().map(|(c, t)| (c.clone(), t.parse().expect("checked by spec::parse")));
                let (c0, t0) = casts.next().expect("spec::parse checks that a cast names a column");
                let cast = casts.fold(Cast::column(c0, t0), |acc, (c, t)| acc.and(c, t));
                add(p, &m.id, StageKind::Transform, cast, stage.on_error(), dead_letters)
            }
            StageSpec::Branch(b) => {
                let mut branch = Branch::new();
                for r in &b.routes {
                    branch = branch.route(&r.name, predicate(r.condition()));
                }
                if let Some(o) = &b.otherwise {
                    branch = branch.otherwise(o);
                }
                p.branch(&b.id, branch)
            }
            StageSpec::Merge(m) => p.merge(&m.id, m.inputs.clone()),
        };
        if let Some(b) = stage.batching() {
            p = p.batching(b.batching());
        }
        if let Some(m) = stage.mailbox() {
            if m.capacity == Some(0) {
                bail!("stage[{i}].mailbox.capacity: must be at least 1");
            }
            p = p.mailbox(MailboxPolicy {
                capacity: m.capacity.unwrap_or(MailboxPolicy::default().capacity),
                on_full: match m.on_full {
                    None | Some(OnFullKind::Block) => DropPolicy::Block,
                    Some(OnFullKind::DropNewest) => DropPolicy::DropNewest,
                    Some(OnFullKind::DropOldest) => DropPolicy::DropOldest,
                    Some(OnFullKind::Fail) => DropPolicy::Fail,
                },
            });
        }
    }
    p.build().map_err(|e| explain(spec, &e))
}

/// A build error pointed at the stage's place in the spec, with a hint when
/// an accumulator misses a column the spec did not name (a default).
fn explain(spec: &Spec, e: &garner::engine::Error) -> anyhow::Error {
    let mut text = e.to_string();
    if let Some(hint) = default_column_hint(spec, e) {
        text = format!("{text} ({hint})");
    }
    match spec.stages.iter().position(|s| text.starts_with(&format!("stage `{}`", s.id()))) {
        Some(i) => anyhow!("stage[{i}]: {text}"),
        None => anyhow!(text),
    }
}

/// `ts` is the default time column; set time_column`, when the missing
/// column of an accumulator is one the spec left to its default.
fn default_column_hint(spec: &Spec, e: &garner::engine::Error) -> Option<String> {
    let garner::engine::Error::Stage { stage, source } = e else { return None };
    let garner::engine::Error::Accum(garner::accum::Error::UnknownColumn { column, role, .. }) =
        source.as_ref()
    else {
        return None;
    };
    let a = spec.stages.iter().find_map(|s| match s {
        StageSpec::Accumulate(a) if a.id == *stage => Some(a),
        _ => None,
    })?;
    let key = match *role {
        "time" if a.time_column.is_none() => "time_column, or time = \"processing\"",
        "var" if a.var_column.is_none() => "var_column",
        "value" if a.value_column.is_none() => "value_column",
        _ => return None,
    };
    Some(format!("`{column}` is the default {role} column; set {key}"))
}
