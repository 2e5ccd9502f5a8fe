//! Stop and abort requests, and the live figures of a rayon run, published
//! once per wave.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::exec::runtime::RunControl;
use crate::exec::{StageReport, StageSnapshot};
use crate::telemetry::{LiveGauges, MetricsSnapshot};

/// What a [`RunHandle`](crate::RunHandle) asks of a rayon run, and what the
/// run tells it.
#[derive(Debug)]
pub(super) struct RayonControl {
    abort: AtomicBool,
    stop: AtomicBool,
    pipeline: String,
    started: Instant,
    live: Mutex<Live>,
}

/// The figures after the last wave: per stage, its report so far and its
/// gauges; whether the run ended.
#[derive(Debug, Default)]
struct Live {
    reports: Vec<StageReport>,
    gauges: Vec<LiveGauges>,
    finished: bool,
}

impl RayonControl {
    /// Control for a run of `pipeline`, starting now.
    pub(super) fn new(pipeline: &str) -> Self {
        Self {
            abort: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            pipeline: pipeline.to_owned(),
            started: Instant::now(),
            live: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the run was told to abort.
    pub(super) fn aborted(&self) -> bool {
        self.abort.load(Relaxed)
    }

    /// Whether the run was told to drain: read no more input, finish.
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Publishes the figures after a wave (copied with `clone_from_slice`,
    /// which reuses the previous copy's allocations).
    pub(super) fn publish(&self, reports: &[StageReport], gauges: impl Iterator<Item = LiveGauges>) {
        let mut live = self.lock();
        if live.reports.len() == reports.len() {
            live.reports.clone_from_slice(reports);
        } else {
            live.reports = reports.to_vec();
        }
        live.gauges.clear();
        live.gauges.extend(gauges);
    }

    /// The run ended: its final figures (after an error, the last published).
    pub(super) fn finish(&self, reports: Option<&[StageReport]>) {
        let mut live = self.lock();
        if let Some(r) = reports {
            live.reports = r.to_vec();
        }
        live.finished = true;
    }
}

impl RunControl for RayonControl {
    fn inspect(&self, stage_id: &str) -> Option<StageSnapshot> {
        let live = self.lock();
        let i = live.reports.iter().position(|r| r.id == stage_id)?;
        let g = live.gauges.get(i).copied().unwrap_or_default();
        Some(StageSnapshot {
            queue_depth: g.queue_in,
            resident_keys: g.pressure.resident_keys,
            spilled_keys: g.pressure.spilled_keys,
            state_bytes: g.pressure.latent_bytes,
            ..StageSnapshot::from_report(&live.reports[i])
        })
    }

    /// The figures after the last wave; there are no links, so queue gauges
    /// are 0.
    fn metrics(&self) -> MetricsSnapshot {
        let live = self.lock();
        let elapsed = self.started.elapsed().as_secs_f64();
        let gauges = live.gauges.iter().map(|&g| (!live.finished).then_some(g));
        let gauges = gauges.chain(std::iter::repeat(None));
        MetricsSnapshot::build(
            &self.pipeline,
            "rayon",
            elapsed,
            live.finished,
            live.reports.iter().zip(gauges),
        )
    }

    /// Reads no more input: the wave under way and what the stages hold
    /// still go out.
    fn stop(&self) {
        self.stop.store(true, Relaxed);
    }

    fn abort(&self) {
        self.abort.store(true, Relaxed);
    }
}
