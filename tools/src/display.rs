//! What the user sees: a live progress bar on a terminal, a summary table
//! at the end.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
                bar.set_message(format!(
                    "| {} rows out | {}/s | {} keys resident | {} spilled",
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

/// The end-of-run table, one line per stage.
pub(crate) fn summary(report: &RunReport) -> String {
    let mut rows = vec![[
        "stage".to_owned(),
        "kind".to_owned(),
        "rows in".to_owned(),
        "rows out".to_owned(),
        "batches".to_owned(),
        "busy".to_owned(),
        "notes".to_owned(),
    ]];
    for s in &report.stages {
        let notes = match (&s.accum, &s.sink) {
            (Some(a), _) => {
                let mut text = format!(
                    "{} complete, {} partial, {} resident, {} duplicate, {} unknown var",
                    a.complete, a.partial, a.active_keys, a.duplicate_fragments, a.unknown_var_fragments
                );
                for (n, what) in [
                    (a.evicted, "evicted"),
                    (a.late, "late"),
                    (a.dropped_after_complete, "after completion"),
                    (a.expired_dead_lettered, "expired to dead letter"),
                    (a.spill_writes, "spilled"),
                    (a.spill_reads, "restored"),
                    (a.spill_corrupted, "spill records corrupted"),
                    (a.spill_failures, "spill store full"),
                ] {
                    if n > 0 {
                        text.push_str(&format!(", {n} {what}"));
                    }
                }
                if let (Some(p50), Some(p99)) = (a.latency.quantile(0.5), a.latency.quantile(0.99)) {
                    // Bucket tops: the quantile is at most this.
                    text.push_str(&format!(", first-to-emit p50 ≤{p50} ms, p99 ≤{p99} ms"));
                }
                text
            }
            (_, Some(k)) => match k.bytes {
                Some(b) => format!("{:.1} MiB written", b as f64 / (1024.0 * 1024.0)),
                None => String::new(),
            },
            _ => String::new(),
        };
        let why = if s.accum.is_some() {
            "dead-lettered by the accumulator's policies"
        } else {
            "no route matched"
        };
        let notes = match (s.rows_dropped, notes.is_empty()) {
            (0, _) => notes,
            (n, true) => format!("{n} dropped ({why})"),
            (n, false) => format!("{notes}; {n} rows dropped ({why})"),
        };
        let (rows_in, batches) = match s.kind {
            StageKind::Source => ("-".to_owned(), s.batches_out),
            _ => (s.rows_in.to_string(), s.batches_in),
        };
        let rows_out = if s.kind == StageKind::Sink { "-".to_owned() } else { s.rows_out.to_string() };
        rows.push([
            s.id.clone(),
            s.kind.name().to_owned(),
            rows_in,
            rows_out,
            batches.to_string(),
            format!("{:.2}s", s.busy.as_secs_f64()),
            notes,
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if (2..6).contains(&c) {
                    format!("{v:>w$}", w = widths[c])
                } else {
                    format!("{v:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 12));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use garner::prelude::*;

    use super::*;

    #[test]
    fn the_summary_notes_rows_a_branch_dropped() {
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
        let report = SyncEngine::new().run(graph, RunOptions::default()).unwrap();
        let text = summary(&report);
        let line = text.lines().find(|l| l.starts_with("split")).unwrap();
        assert!(line.ends_with("1 dropped (no route matched)"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("read") && l.contains("dropped")), "{text}");
    }
}
