//! The Prometheus text exposition format (version 0.0.4): writing a
//! [`MetricsSnapshot`], and reading an exposition back (for tests and
//! tools).
//!
//! Every family has `# HELP` and `# TYPE`; stage series carry the label
//! `stage="<id>"`; histograms are written as cumulative `_bucket{le=".."}`
//! series ending with `le="+Inf"`, then `_sum` and `_count`.

use std::collections::BTreeMap;
use std::fmt::{Display, Write};

use super::{Histogram, MetricsSnapshot, StageMetrics};

/// The `Content-Type` of the text exposition, for an HTTP response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes `snapshot` in the Prometheus text exposition format.
pub(crate) fn render(s: &MetricsSnapshot) -> String {
    let mut w = Writer { out: String::with_capacity(4096 + s.stages.len() * 4096) };
    let p = [("pipeline", s.pipeline.as_str()), ("engine", s.engine.as_str())];
    w.family("pipeline_info", "gauge", "The pipeline and the engine running it (always 1).");
    w.sample("pipeline_info", &p, 1);
    w.family("pipeline_uptime_seconds", "gauge", "Seconds since the run started.");
    w.sample("pipeline_uptime_seconds", &[], s.uptime_seconds);
    w.family("pipeline_finished", "gauge", "1 once the run has ended.");
    w.sample("pipeline_finished", &[], u8::from(s.finished));
    w.family("pipeline_rows_in_total", "counter", "Rows read by all sources.");
    w.sample("pipeline_rows_in_total", &[], s.pipeline_rows_in_total);
    w.family("pipeline_rows_out_total", "counter", "Rows written by all sinks.");
    w.sample("pipeline_rows_out_total", &[], s.pipeline_rows_out_total);

    type Get = fn(&StageMetrics) -> f64;
    let stage_families: [(&str, &str, &str, Get); 13] = [
        ("stage_instances", "gauge", "Instances of the stage.", |m| m.instances as f64),
        ("stage_rows_in_total", "counter", "Rows received.", |m| m.stage_rows_in_total as f64),
        ("stage_rows_out_total", "counter", "Rows emitted.", |m| m.stage_rows_out_total as f64),
        ("stage_batches_in_total", "counter", "Batches received.", |m| m.stage_batches_in_total as f64),
        ("stage_batches_out_total", "counter", "Batches emitted.", |m| m.stage_batches_out_total as f64),
        ("stage_errors_total", "counter", "Batches whose processing failed.", |m| {
            m.stage_errors_total as f64
        }),
        ("stage_rows_dropped_total", "counter", "Rows discarded by design.", |m| {
            m.stage_rows_dropped_total as f64
        }),
        ("stage_throughput", "gauge", "Items per second since the run started.", |m| m.stage_throughput),
        ("stage_input_queue_depth", "gauge", "Units waiting in the stage's input links.", |m| {
            m.stage_input_queue_depth as f64
        }),
        ("stage_output_queue_depth", "gauge", "Units waiting in the stage's output links.", |m| {
            m.stage_output_queue_depth as f64
        }),
        ("stage_error_rate", "gauge", "Failed batches / batches received.", |m| m.stage_error_rate),
        ("stage_circuit_state", "gauge", "Circuit breaker: 0 = closed, 1 = half-open, 2 = open.", |m| {
            m.stage_circuit_state as f64
        }),
        ("stage_batch_size", "gauge", "Mean rows per emitted batch.", |m| m.stage_batch_size),
    ];
    for (name, kind, help, get) in stage_families {
        w.family(name, kind, help);
        for m in &s.stages {
            w.sample(name, &[("stage", &m.stage)], get(m));
        }
    }
    w.family("stage_latency", "histogram", "Seconds spent in the stage's own code per batch.");
    for m in &s.stages {
        w.histogram("stage_latency", &m.stage, &m.stage_latency_bucket);
    }

    let accumulators: Vec<(&str, &super::AccumulatorMetrics)> =
        s.stages.iter().filter_map(|m| Some((m.stage.as_str(), m.accumulator.as_ref()?))).collect();
    type GetAcc = fn(&super::AccumulatorMetrics) -> u64;
    let acc_families: [(&str, &str, &str, GetAcc); 9] = [
        ("accumulator_active_keys", "gauge", "Key generations resident in memory.", |a| {
            a.accumulator_active_keys
        }),
        ("accumulator_spilled_keys", "gauge", "Key generations spilled out of memory.", |a| {
            a.accumulator_spilled_keys
        }),
        ("accumulator_partial_flush_total", "counter", "Rows emitted with some variable missing.", |a| {
            a.accumulator_partial_flush_total
        }),
        ("accumulator_complete_total", "counter", "Rows emitted complete.", |a| a.accumulator_complete_total),
        ("accumulator_memory_bytes", "gauge", "Bytes held by the state.", |a| a.accumulator_memory_bytes),
        (
            "accumulator_spill_io_bytes",
            "gauge",
            "Bytes held by the spill store (the read/write volume is not counted yet).",
            |a| a.accumulator_spill_io_bytes,
        ),
        ("accumulator_spill_writes_total", "counter", "Key generations written to the spill store.", |a| {
            a.accumulator_spill_writes_total
        }),
        (
            "accumulator_spill_reads_total",
            "counter",
            "Key generations read back from the spill store.",
            |a| a.accumulator_spill_reads_total,
        ),
        (
            "accumulator_deadlock_incidents",
            "counter",
            "TTL expirations without completeness sent to the dead-letter output.",
            |a| a.accumulator_deadlock_incidents,
        ),
    ];
    for (name, kind, help, get) in acc_families {
        w.family(name, kind, help);
        for (stage, a) in &accumulators {
            w.sample(name, &[("stage", stage)], get(a));
        }
    }
    w.family("accumulator_completeness_ratio", "histogram", "Emitted rows by present / required variables.");
    for (stage, a) in &accumulators {
        w.histogram("accumulator_completeness_ratio", stage, &a.accumulator_completeness_ratio);
    }
    w.family(
        "accumulator_flush_latency",
        "histogram",
        "Seconds from a key generation's first fragment to its emission.",
    );
    for (stage, a) in &accumulators {
        w.histogram("accumulator_flush_latency", stage, &a.accumulator_flush_latency);
    }

    w.family("backpressure_events_total", "counter", "Times the stage's output was refused, by strategy.");
    for m in &s.stages {
        let b = &m.flow.backpressure_events_total;
        for (strategy, n) in [
            ("block", b.block),
            ("drop_newest", b.drop_newest),
            ("drop_oldest", b.drop_oldest),
            ("fail", b.fail),
        ] {
            w.sample("backpressure_events_total", &[("stage", &m.stage), ("strategy", strategy)], n);
        }
    }
    w.family("credit_tokens_available", "gauge", "Credits the stage may spend now.");
    for m in &s.stages {
        w.sample("credit_tokens_available", &[("stage", &m.stage)], m.flow.credit_tokens_available);
    }
    w.family("adaptive_batch_adjustments", "counter", "Adaptive batch-size adjustments, by direction.");
    for m in &s.stages {
        let a = &m.flow.adaptive_batch_adjustments;
        for (direction, n) in [("increment", a.increment), ("decrement", a.decrement)] {
            w.sample("adaptive_batch_adjustments", &[("stage", &m.stage), ("direction", direction)], n);
        }
    }
    w.family("effective_queue_size", "gauge", "Input queue plus state and spills, in queued units.");
    for m in &s.stages {
        w.sample("effective_queue_size", &[("stage", &m.stage)], m.flow.effective_queue_size);
    }
    w.out
}

struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_into(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, stage: &str, h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let cumulative = h.cumulative();
        for (i, n) in cumulative.iter().enumerate() {
            let le = h.bounds.get(i).map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            self.sample(&bucket, &[("stage", stage), ("le", &le)], n);
        }
        self.sample(&format!("{name}_sum"), &[("stage", stage)], h.sum);
        self.sample(&format!("{name}_count"), &[("stage", stage)], h.count());
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One sample of an exposition: a series name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (`stage_latency_bucket`, `stage_throughput`, ...).
    pub name: String,
    /// The labels, by name.
    pub labels: BTreeMap<String, String>,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

/// An exposition read back by [`parse`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// `# TYPE` of each family, by family name.
    pub types: BTreeMap<String, String>,
    /// `# HELP` of each family, by family name.
    pub help: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The value of series `name` with exactly the labels `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
    }

    /// Whether any sample of series `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// A line of an exposition that [`parse`] could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ExpositionError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads a text exposition: `# HELP` and `# TYPE` comments and samples
/// `name{label="value",...} value` (timestamps, if any, are ignored).
/// Enough for checking what [`MetricsSnapshot::to_prometheus`] writes, and
/// what a scrape of `/metrics` returns.
///
/// ```
/// use garner_engine::telemetry::prometheus;
/// let text = "# TYPE up gauge\nup{job=\"a\\\"b\"} 1\n";
/// let e = prometheus::parse(text).unwrap();
/// assert_eq!(e.types["up"], "gauge");
/// assert_eq!(e.value("up", &[("job", "a\"b")]), Some(1.0));
/// ```
pub fn parse(text: &str) -> Result<Exposition, ExpositionError> {
    let mut e = Exposition::default();
    for (i, line) in text.lines().enumerate() {
        let err = |reason: &str| ExpositionError { line: i + 1, reason: reason.to_owned() };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    e.types.insert(name.to_owned(), kind.trim().to_owned());
                }
                (Some("HELP"), Some(name), help) => {
                    e.help.insert(name.to_owned(), help.unwrap_or("").to_owned());
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("a sample without a value"))?;
        let name = &line[..name_end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            return Err(err("a bad series name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let mut end = None;
            loop {
                while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
                match chars.peek() {
                    Some(&(j, '}')) => {
                        end = Some(j);
                        break;
                    }
                    None => break,
                    _ => {}
                }
                let mut key = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(err("a label value without quotes"));
                }
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => break,
                        },
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(err("an unterminated label value"));
                }
                labels.insert(key.trim().to_owned(), value);
            }
            let end = end.ok_or_else(|| err("labels without `}`"))?;
            rest = &after[end + 1..];
        }
        let value = rest.split_whitespace().next().ok_or_else(|| err("a sample without a value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err("a value that is not a number"))?,
        };
        e.samples.push(Sample { name: name.to_owned(), labels, value });
    }
    Ok(e)
}
