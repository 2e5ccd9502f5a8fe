//! `garner run --timeline FILE`: the run's metrics as a JSON-lines
//! timeline, one [`MetricsSnapshot`] per line; and reading one back for
//! `garner report` and `garner graph --with-metrics`.
//!
//! 1. The file is created before the run starts, so a bad path fails
//!    before any work is done.
//! 2. Once the run has started, a thread takes a snapshot from the
//!    [`RunMonitor`] every interval (`--timeline-interval`, 1 s by default)
//!    and appends it as one line, flushed at once so the file can be
//!    followed while the run goes on.
//! 3. When the run ends, the thread stops and one last line is appended:
//!    the [`RunReport`]'s metrics, whose `finished` is true and whose
//!    counters are those of the summary. A run that fails leaves the lines
//!    taken so far.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use garner::engine::telemetry::MetricsSnapshot;
use garner::engine::{RunMonitor, RunReport};

/// Parses `--timeline-interval` (`250ms`, `1s`): a positive duration.
pub(crate) fn parse_interval(text: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text)
        .with_context(|| format!("{text:?}: not a duration such as 250ms or 1s"))?;
    ensure!(!d.is_zero(), "{text:?}: the interval must be above zero");
    Ok(d)
}

/// A timeline being written: created (with its sampling thread) by
/// [`create`](Self::create) before the run, fed a monitor by
/// [`record`](Self::record) once the run has started, closed by
/// [`finish`](Self::finish).
pub(crate) struct TimelineWriter {
    path: PathBuf,
    /// Hands the thread its monitor; dropping it stops the thread.
    start: Option<Sender<RunMonitor>>,
    thread: Option<JoinHandle<std::io::Result<BufWriter<File>>>>,
}

impl TimelineWriter {
    /// Creates (truncates) `path` and starts a thread that will take a
    /// snapshot every `interval` once [`record`](Self::record) gives it a
    /// run.
    pub(crate) fn create(path: PathBuf, interval: Duration) -> Result<Self> {
        let file =
            File::create(&path).with_context(|| format!("--timeline: cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        let (start, monitor) = mpsc::channel::<RunMonitor>();
        let thread = std::thread::Builder::new()
            .name("garner-timeline".into())
            .spawn(move || {
                // No run: nothing to sample (the final line comes from the report).
                let Ok(run) = monitor.recv() else { return Ok(out) };
                // Nothing else is sent: the sender's drop is the stop signal.
                while let Err(RecvTimeoutError::Timeout) = monitor.recv_timeout(interval) {
                    write_line(&mut out, &run.metrics())?;
                }
                Ok(out)
            })
            .context("cannot start the timeline thread")?;
        Ok(Self { path, start: Some(start), thread: Some(thread) })
    }

    /// Samples `monitor`'s run from now on, one line per interval.
    pub(crate) fn record(&self, monitor: RunMonitor) {
        if let Some(start) = &self.start {
            // Fails only if the thread has ended; `finish` reports why.
            let _ = start.send(monitor);
        }
    }

    /// Stops sampling and appends the final line, `report`'s metrics.
    pub(crate) fn finish(mut self, report: &RunReport) -> Result<()> {
        let mut out =
            self.stop().with_context(|| format!("--timeline: cannot write {}", self.path.display()))?;
        write_line(&mut out, &report.metrics())
            .with_context(|| format!("--timeline: cannot write {}", self.path.display()))
    }

    /// Stops the thread and takes the file back.
    fn stop(&mut self) -> Result<BufWriter<File>> {
        drop(self.start.take());
        let thread = self.thread.take().context("the timeline is already finished")?;
        Ok(thread.join().map_err(|_| anyhow::anyhow!("the timeline thread panicked"))??)
    }
}

impl Drop for TimelineWriter {
    /// Stops the sampling thread of a run that ended in an error; the lines
    /// written so far stay.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// Appends `snapshot` as one line and flushes it.
fn write_line(out: &mut BufWriter<File>, snapshot: &MetricsSnapshot) -> std::io::Result<()> {
    writeln!(out, "{}", snapshot.to_json_line())?;
    out.flush()
}

/// Reads a timeline: every non-blank line must be a snapshot, and there
/// must be at least one. Errors name the file and the line (1-based).
pub(crate) fn read(path: &Path) -> Result<Vec<MetricsSnapshot>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read timeline {}", path.display()))?;
    parse(&text).with_context(|| format!("timeline {}", path.display()))
}

/// [`read`] on text already in memory.
pub(crate) fn parse(text: &str) -> Result<Vec<MetricsSnapshot>> {
    let mut snapshots = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let snapshot = MetricsSnapshot::from_json(line)
            .with_context(|| format!("line {}: not a metrics snapshot", i + 1))?;
        snapshots.push(snapshot);
    }
    ensure!(
        !snapshots.is_empty(),
        "no snapshots: the file is empty (write one with `garner run SPEC --timeline FILE`)"
    );
    Ok(snapshots)
}

/// The snapshot in `path`: the JSON of `run --metrics-out FILE.json`, or
/// the last line of a `run --timeline` file.
pub(crate) fn read_last(path: &Path) -> Result<MetricsSnapshot> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(snapshot) = MetricsSnapshot::from_json(&text) {
        return Ok(snapshot);
    }
    let mut timeline = parse(&text).with_context(|| {
        format!(
            "{}: neither the JSON of `garner run --metrics-out FILE.json` nor a `--timeline` file",
            path.display()
        )
    })?;
    Ok(timeline.pop().expect("a timeline has a snapshot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(uptime_seconds: f64, finished: bool) -> MetricsSnapshot {
        MetricsSnapshot {
            pipeline: "p".into(),
            engine: "sync".into(),
            uptime_seconds,
            finished,
            pipeline_rows_in_total: 0,
            pipeline_rows_out_total: 0,
            stages: vec![],
        }
    }

    #[test]
    fn intervals_are_durations_above_zero() {
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert!(parse_interval("0s").unwrap_err().to_string().contains("above zero"));
        assert!(parse_interval("soon").unwrap_err().to_string().contains("250ms"));
    }

    #[test]
    fn a_timeline_reads_back_line_by_line_skipping_blank_lines() {
        let text =
            format!("{}\n\n{}\n", snapshot(0.5, false).to_json_line(), snapshot(1.0, true).to_json_line());
        let read = parse(&text).unwrap();
        assert_eq!(read, vec![snapshot(0.5, false), snapshot(1.0, true)]);
    }

    #[test]
    fn a_bad_line_is_named_and_an_empty_timeline_refused() {
        let text = format!("{}\n{{\"pipeline\": 3}}\n", snapshot(0.5, false).to_json_line());
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.starts_with("line 2: not a metrics snapshot"), "{err}");
        let err = parse(" \n\n").unwrap_err().to_string();
        assert!(err.contains("no snapshots"), "{err}");
    }
}
