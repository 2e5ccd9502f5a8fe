//! A checked spec → a validated pipeline graph: sources are opened, sinks
//! created (a temporary file, renamed into place only when the run
//! succeeds), stages connected in file order unless `inputs` says otherwise.

use anyhow::{anyhow, Context, Result};
use garner::accum::{RepeatPolicy, TimeMode, VarSet};
use garner::columnar::source::{
    CsvOptions, CsvSource, IpcFileSource, IpcStreamSource, JsonlOptions, JsonlSource, ParquetSource,
};
use garner::columnar::{BatchSource, Format};
use garner::engine::stages::Branch;
use garner::engine::transforms::{Cast, DropNulls, Filter, Rename, Select};
use garner::engine::{col, CmpOp, Literal, Pipeline, PipelineGraph, Predicate};

use crate::spec::{Condition, RepeatKind, Scalar, SourceSpec, Spec, StageSpec, TimeKind};

const DEFAULT_BATCH_ROWS: usize = 65_536;

fn literal(s: &Scalar) -> Literal {
    match s {
        Scalar::Bool(b) => Literal::Bool(*b),
        Scalar::Int(i) => Literal::Int(*i),
        Scalar::Float(f) => Literal::Float(*f),
        Scalar::Str(s) => Literal::Str(s.clone()),
    }
}

/// The predicate of a checked condition.
fn predicate(c: &Condition) -> Predicate {
    match (&c.op, &c.value, c.is_null) {
        (Some(op), Some(v), _) => {
            let op = CmpOp::parse(op).expect("checked by spec::parse");
            Predicate::Cmp { column: c.column.clone(), op, value: literal(v) }
        }
        (_, _, Some(true)) => col(&c.column).is_null(),
        _ => col(&c.column).is_not_null(),
    }
}

fn open_source(spec: &Spec, s: &SourceSpec) -> Result<Box<dyn BatchSource>> {
    let path = spec.resolve(&s.path);
    let format = match &s.format {
        Some(f) => f.parse::<Format>()?,
        None => {
            Format::from_path(&path).ok_or_else(|| anyhow!("cannot tell the format of {}", path.display()))?
        }
    };
    let batch_rows = s.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS);
    let source: Box<dyn BatchSource> = match format {
        Format::Ipc => Box::new(IpcFileSource::open(&path)?),
        Format::IpcStream => Box::new(IpcStreamSource::open(&path)?),
        Format::Parquet => Box::new(ParquetSource::open_with(&path, batch_rows)?),
        Format::Csv => {
            let options = CsvOptions {
                has_header: s.has_header.unwrap_or(true),
                delimiter: s.delimiter.as_deref().map(|d| d.as_bytes()[0]).unwrap_or(b','),
                batch_size: batch_rows,
                ..CsvOptions::default()
            };
            Box::new(CsvSource::open(&path, options)?)
        }
        Format::Jsonl => Box::new(JsonlSource::open(
            &path,
            JsonlOptions { batch_size: batch_rows, ..JsonlOptions::default() },
        )?),
    };
    Ok(source)
}

fn varset(a: &crate::spec::AccumulateSpec) -> VarSet {
    let key = match &a.key {
        crate::spec::OneOrMany::One(k) => vec![k.clone()],
        crate::spec::OneOrMany::Many(k) => k.clone(),
    };
    let mut v = VarSet::keyed(key)
        .var_column(a.var_column.clone().unwrap_or_else(|| "var".into()))
        .value_column(a.value_column.clone().unwrap_or_else(|| "value".into()))
        .require(a.require.iter().cloned());
    v = match a.time.unwrap_or(TimeKind::Processing) {
        TimeKind::Event => {
            v.time(TimeMode::Event { column: a.time_column.clone().unwrap_or_else(|| "ts".into()) })
        }
        TimeKind::Processing => v.time(TimeMode::Processing),
    };
    if let Some(d) = a.partial_flush_after {
        v = v.partial_flush_after(d.0);
    }
    if let Some(d) = a.max_latency {
        v = v.max_latency(d.0);
    }
    if let Some(r) = a.on_repeat {
        v = v.on_repeat(match r {
            RepeatKind::KeepFirst => RepeatPolicy::KeepFirst,
            RepeatKind::KeepLast => RepeatPolicy::KeepLast,
        });
    }
    v.spill_on_pressure(a.spill.unwrap_or(false))
}

/// Builds the graph. Errors name the stage (`stage[1] (assemble)`).
pub(crate) fn build(spec: &Spec) -> Result<PipelineGraph> {
    let name = spec.pipeline.name.clone().unwrap_or_else(|| "pipeline".into());
    let mut p = Pipeline::new(name);
    for (i, stage) in spec.stages.iter().enumerate() {
        let at = || format!("stage[{i}] ({})", stage.id());
        if let Some(inputs) = stage.inputs() {
            p = p.from(inputs.to_vec());
        }
        p = match stage {
            StageSpec::Source(s) => p.source(&s.id, open_source(spec, s).with_context(at)?),
            StageSpec::Sink(s) => {
                let path = spec.resolve(&s.path);
                let format = match &s.format {
                    Some(f) => f.parse::<Format>()?,
                    None => Format::from_path(&path)
                        .ok_or_else(|| anyhow!("cannot tell the format of {}", path.display()))?,
                };
                let sink = garner::columnar::sink::create_sink(format, &path).with_context(at)?;
                p.sink(&s.id, sink)
            }
            StageSpec::Accumulate(a) => p.accumulate(&a.id, varset(a)),
            StageSpec::Filter(f) => {
                let c = Condition {
                    column: f.column.clone(),
                    op: f.op.clone(),
                    value: f.value.clone(),
                    is_null: f.is_null,
                };
                p.transform(&f.id, Filter::new(predicate(&c)))
            }
            StageSpec::DropNulls(c) => p.transform(&c.id, DropNulls::on(c.columns.iter().cloned())),
            StageSpec::Select(c) => p.transform(&c.id, Select::columns(c.columns.iter().cloned())),
            StageSpec::Rename(m) => p.transform(&m.id, Rename::new(m.columns.clone())),
            StageSpec::Cast(m) => {
                let mut casts =
                    m.columns.iter().map(|(c, t)| (c.clone(), t.parse().expect("checked by spec::parse")));
                let (c0, t0) =
                    casts.next().ok_or_else(|| anyhow!("{}: a cast needs at least one column", at()))?;
                p.transform(&m.id, casts.fold(Cast::column(c0, t0), |acc, (c, t)| acc.and(c, t)))
            }
            StageSpec::Branch(b) => {
                let mut branch = Branch::new();
                for r in &b.routes {
                    let c = Condition {
                        column: r.column.clone(),
                        op: r.op.clone(),
                        value: r.value.clone(),
                        is_null: r.is_null,
                    };
                    branch = branch.route(&r.name, predicate(&c));
                }
                if let Some(o) = &b.otherwise {
                    branch = branch.otherwise(o);
                }
                p.branch(&b.id, branch)
            }
            StageSpec::Merge(m) => p.merge(&m.id, m.inputs.clone()),
        };
    }
    p.build().map_err(|e| {
        // Point at the stage's place in the spec.
        let text = e.to_string();
        match spec.stages.iter().position(|s| text.starts_with(&format!("stage `{}`", s.id()))) {
            Some(i) => anyhow!("stage[{i}]: {text}"),
            None => anyhow!(text),
        }
    })
}
