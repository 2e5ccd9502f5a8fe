//! What the user sees: a live progress bar on a terminal, a summary table
//! at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use garner::engine::exec::RunMonitor;
use garner::engine::telemetry::Histogram;
use garner::engine::{Progress, RunReport, StageKind};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar fed from the engine's counters by a small thread. Shown
/// only on a terminal and without `--quiet`.
pub(crate) struct LiveProgress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveProgress {
    pub(crate) fn start(progress: Arc<Progress>, quiet: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet || !std::io::stderr().is_terminal() {
            return Self { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows in  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let expected = Progress::get(&progress.rows_expected);
                if expected > 0 {
                    bar.set_length(expected);
                }
                let rows_in = Progress::get(&progress.rows_in);
                bar.set_position(rows_in);
                let rate = rows_in as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let memory = garner::pools::resident_bytes()
                    .map_or_else(|| "n/a".to_owned(), |b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)));
                bar.set_message(format!(
                    "| {} rows out | {}/s | {} keys resident | {} spilled | {memory} resident",
                    human(Progress::get(&progress.rows_out)),
                    human(rate as u64),
                    human(Progress::get(&progress.keys_resident)),
                    human(Progress::get(&progress.keys_spilled)),
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Self { stop, thread: Some(thread) }
    }

    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `12.3M`, `45.6k`, `789`.
pub(crate) fn human(n: u64) -> String {
    match n {
        n if n >= 10_000_000_000 => format!("{:.1}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Samples the input queue depth of every stage from a running pipeline's
/// live metrics every [`QueueSampler::EVERY`] and keeps the highest seen:
/// the engines report the depth of the moment, not a maximum, so the
/// summary's "max queue" is a sampled maximum (a peak shorter than the
/// interval can be missed).
pub(crate) struct QueueSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<MaxQueue>>,
}

/// The highest input queue depth seen per stage, in units (batches).
pub(crate) type MaxQueue = BTreeMap<String, u64>;

impl QueueSampler {
    /// Time between two samples.
    pub(crate) const EVERY: Duration = Duration::from_millis(50);

    /// Starts sampling `monitor` on a small thread.
    pub(crate) fn start(monitor: RunMonitor) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut max = MaxQueue::new();
            loop {
                for s in monitor.metrics().stages {
                    let seen = max.entry(s.stage).or_default();
                    *seen = (*seen).max(s.stage_input_queue_depth);
                }
                if flag.load(Ordering::Relaxed) {
                    return max;
                }
                std::thread::sleep(Self::EVERY);
            }
        });
        Self { stop, thread: Some(thread) }
    }

    /// Stops sampling and returns the maxima.
    pub(crate) fn finish(mut self) -> MaxQueue {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

/// Columns of the summary table, with a two-line header.
const COLUMNS: usize = 12;
const HEADER: [[&str; COLUMNS]; 2] = [
    ["", "", "rows", "rows", "rows/s", "batch", "batch", "max", "", "", "", "rows"],
    [
        "stage", "kind", "in", "out", "of run", "p50", "p99", "queue", "complete", "partial", "spills",
        "dropped",
    ],
];
/// Notes are wrapped to this width.
const WIDTH: usize = 118;

/// The end-of-run table, one line per stage, without queue depths (see
/// [`summary_with`]).
pub(crate) fn summary(report: &RunReport) -> String {
    summary_with(report, None)
}

/// The end-of-run table, one line per stage: rows in and out, rows/s over
/// the run's wall-clock time, p50 and p99 batch latency, the highest input
/// queue depth in `max_queue` (sampled; `-` without samples, for sources,
/// and for the sync and rayon engines, which have no queues), complete and
/// partial rows and spills of accumulators, rows dropped or dead-lettered.
/// A legend and per-stage notes (accumulator details, sink bytes, why rows
/// were dropped) follow.
pub(crate) fn summary_with(report: &RunReport, max_queue: Option<&MaxQueue>) -> String {
    let elapsed = report.elapsed.as_secs_f64();
    let has_queues = !matches!(report.engine, "sync" | "rayon");
    let mut rows: Vec<[String; COLUMNS]> = HEADER.iter().map(|h| h.map(str::to_owned)).collect();
    let mut notes = Vec::new();
    for s in &report.stages {
        let source = s.kind == StageKind::Source;
        let items = if source { s.rows_out } else { s.rows_in };
        let latency = s.latency.histogram();
        let queue = match max_queue.and_then(|m| m.get(&s.id)) {
            Some(q) if has_queues && !source => q.to_string(),
            _ => "-".to_owned(),
        };
        let (complete, partial, spills) = match &s.accum {
            Some(a) => (a.complete.to_string(), a.partial.to_string(), a.spill_writes.to_string()),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        rows.push([
            s.id.clone(),
            s.kind.name().to_owned(),
            if source { "-".to_owned() } else { s.rows_in.to_string() },
            if s.kind == StageKind::Sink { "-".to_owned() } else { s.rows_out.to_string() },
            human((items as f64 / elapsed.max(1e-9)) as u64),
            latency_text(&latency, 0.5),
            latency_text(&latency, 0.99),
            queue,
            complete,
            partial,
            spills,
            (s.rows_dropped + s.mailbox_dropped).to_string(),
        ]);
        let text = stage_notes(s);
        if !text.is_empty() {
            notes.push(wrap(&format!("{}: {text}", s.id), "  ", "    "));
        }
    }
    let widths: Vec<usize> =
        (0..COLUMNS).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> =
            r.iter()
                .enumerate()
                .map(|(c, v)| {
                    if c < 2 {
                        format!("{v:<w$}", w = widths[c])
                    } else {
                        format!("{v:>w$}", w = widths[c])
                    }
                })
                .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == HEADER.len() - 1 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (COLUMNS - 1)));
            out.push('\n');
        }
    }
    let queue_legend = if has_queues {
        format!(
            "max queue: most units waiting at the stage's input, sampled every {} ms",
            QueueSampler::EVERY.as_millis()
        )
    } else {
        format!("max queue: - (the {} engine has no queues)", report.engine)
    };
    out.push_str(&wrap(
        &format!(
            "rows/s: rows in (sources: out) per second of the run's {elapsed:.2}s, not of the stage's busy time; \
             p50/p99: time per batch in the stage's own code (upper bound of its histogram bucket); {queue_legend}; \
             dropped: rows discarded or dead-lettered"
        ),
        "",
        "",
    ));
    for n in notes {
        out.push_str(&n);
    }
    out
}

/// The `q` quantile of a batch-latency histogram as the upper bound of
/// its bucket (`<4µs`), `-` without batches.
fn latency_text(h: &Histogram, q: f64) -> String {
    let count = h.count();
    if count == 0 {
        return "-".to_owned();
    }
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let bucket = h.cumulative().iter().position(|&c| c >= rank).unwrap_or(h.bounds.len());
    let Some(&top) = h.bounds.get(bucket) else {
        return format!(">{:.0}s", h.bounds.last().copied().unwrap_or(0.0));
    };
    let micros = top * 1e6;
    match micros {
        m if m < 1e3 => format!("<{m:.0}µs"),
        m if m < 1e4 => format!("<{:.1}ms", m / 1e3),
        m if m < 1e6 => format!("<{:.0}ms", m / 1e3),
        m if m < 1e7 => format!("<{:.1}s", m / 1e6),
        m => format!("<{:.0}s", m / 1e6),
    }
}

/// What the table has no column for: accumulator details, what a sink
/// wrote, errors, backpressure, and why rows were dropped.
fn stage_notes(s: &garner::engine::StageReport) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(a) = &s.accum {
        parts.push(format!(
            "{} resident, {} duplicate, {} unknown var",
            a.active_keys, a.duplicate_fragments, a.unknown_var_fragments
        ));
        for (n, what) in [
            (a.evicted, "evicted"),
            (a.late, "late"),
            (a.dropped_after_complete, "after completion"),
            (a.expired_dead_lettered, "expired to dead letter"),
            (a.spill_reads, "restored"),
            (a.spill_corrupted, "spill records corrupted"),
            (a.spill_failures, "spill store full"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if let (Some(p50), Some(p99)) = (a.latency.quantile(0.5), a.latency.quantile(0.99)) {
            // Bucket tops: the quantile is at most this.
            parts.push(format!("first-to-emit p50 ≤{p50} ms, p99 ≤{p99} ms"));
        }
    }
    if let Some(b) = s.sink.as_ref().and_then(|k| k.bytes) {
        parts.push(format!("{:.1} MiB written", b as f64 / (1024.0 * 1024.0)));
    }
    if s.errors > 0 {
        parts.push(format!("{} failed batches", s.errors));
    }
    if s.backpressure_events > 0 {
        parts.push(format!("{} waits on a full output", s.backpressure_events));
    }
    if s.rows_dropped > 0 {
        let why = if s.accum.is_some() {
            "dead-lettered by the accumulator's policies"
        } else {
            "no route matched or dead-lettered by its error policy"
        };
        parts.push(format!("{} dropped ({why})", s.rows_dropped));
    }
    if s.mailbox_dropped > 0 {
        parts.push(format!("{} dropped by its full input mailbox", s.mailbox_dropped));
    }
    parts.join(", ")
}

/// `text` wrapped at spaces to [`WIDTH`] columns, the first line indented
/// by `first`, the others by `rest`; ends with a newline.
fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use garner::accum::AccumStats;
    use garner::prelude::*;

    use super::*;

    /// `read` → `split` (rows with x > 4) → `write`, run by the sync engine.
    fn branch_report() -> RunReport {
        let batch =
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 5, 9])) as ArrayRef)])
                .unwrap();
        let graph = Pipeline::new("p")
            .source("read", MemorySource::try_from_batches(vec![batch]).unwrap())
            .branch("split", Branch::new().route("big", col("x").gt(4)))
            .from("split.big")
            .sink("write", CollectSink::new().0)
            .build()
            .unwrap();
        SyncEngine::new().run(graph, RunOptions::default()).unwrap()
    }

    /// The cells of the table row of `stage`.
    fn row<'a>(text: &'a str, stage: &str) -> Vec<&'a str> {
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(stage)).unwrap();
        line.split_whitespace().collect()
    }

    #[test]
    fn the_summary_notes_rows_a_branch_dropped() {
        let text = summary(&branch_report());
        assert_eq!(row(&text, "split")[11], "1", "{text}");
        assert!(text.contains("\n  split: 1 dropped (no route matched"), "{text}");
        assert!(!text.lines().any(|l| l.contains("read:")), "{text}");
        // Sync engine: no queues to sample.
        assert_eq!(row(&text, "split")[7], "-", "{text}");
        assert!(text.contains("the sync engine has no queues"), "{text}");
    }

    #[test]
    fn the_summary_has_rates_latency_quantiles_queue_maxima_and_accumulator_counts() {
        // A real report, figures then set by hand as a steal run of 2 s would have them.
        let mut report = branch_report();
        report.engine = "steal";
        report.elapsed = Duration::from_secs(2);
        report.stages[0].latency = Default::default();
        let split = &mut report.stages[1];
        (split.rows_in, split.rows_out) = (4000, 3000);
        split.latency = Default::default();
        for micros in [3, 3, 3, 700, 5000] {
            split.latency.record(Duration::from_micros(micros));
        }
        split.accum =
            Some(AccumStats { complete: 2400, partial: 600, spill_writes: 7, ..Default::default() });
        let max_queue = MaxQueue::from([("split".to_owned(), 6), ("read".to_owned(), 9)]);
        let text = summary_with(&report, Some(&max_queue));

        let header = text.lines().nth(1).unwrap();
        assert!(
            header.starts_with("stage") && header.ends_with("complete  partial  spills  dropped"),
            "{text}"
        );
        // rows in, rows out, rows/s of the run, p50, p99, max queue, complete, partial, spills.
        assert_eq!(
            row(&text, "split")[2..11],
            ["4000", "3000", "2000", "<4µs", "<8.2ms", "6", "2400", "600", "7"],
            "{text}"
        );
        // A source has no input: no rows in, no queue; its rate is of rows read.
        assert_eq!(row(&text, "read")[2..8], ["-", "3", "1", "-", "-", "-"], "{text}");
        assert!(text.contains("per second of the run's 2.00s, not of the stage's busy time"), "{text}");
        assert!(text.contains("sampled every 50 ms"), "{text}");
        // Readable on a 120-column terminal.
        assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
    }

    #[test]
    fn latency_quantiles_are_bucket_tops() {
        let mut l = garner::engine::telemetry::BatchLatency::default();
        assert_eq!(latency_text(&l.histogram(), 0.5), "-");
        l.record(Duration::from_micros(1500)); // [1024, 2048) µs
        assert_eq!(latency_text(&l.histogram(), 0.5), "<2.0ms");
        l.record(Duration::from_secs(100)); // beyond the last bound
        assert_eq!(latency_text(&l.histogram(), 0.99), ">67s");
        assert_eq!(latency_text(&l.histogram(), 0.5), "<2.0ms");
    }

    #[test]
    fn notes_wrap_at_the_table_width() {
        let text = wrap(&"word ".repeat(60), "  ", "    ");
        assert!(text.lines().count() > 1 && text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.lines().skip(1).all(|l| l.starts_with("    word")), "{text}");
    }
}
