//! [`PartialAlert`]: an alert when an accumulate stage flushes too many of
//! its records as partials (some required variable missing).
//!
//! 1. The threshold is a ratio in `[0, 1]` of
//!    `partial / (complete + partial)` rows emitted by one accumulate stage
//!    (the counters `accumulator_partial_flush_total` and
//!    `accumulator_complete_total` of a [`MetricsSnapshot`]).
//! 2. [`PartialAlert::evaluate`] compares every accumulate stage of a
//!    snapshot with it; [`PartialAlert::check`] does the same and emits one
//!    `tracing::warn!` event per stage over the threshold (fields `stage`,
//!    `ratio`, `threshold`, `partial`, `emitted`).
//! 3. Who checks: every engine, with the final snapshot
//!    ([`RunReport::metrics`](crate::RunReport::metrics)), when the run's
//!    [`RunOptions::partial_alert`](crate::RunOptions::partial_alert) is set
//!    (the `tracing` event); `garner run` also prints each alert's
//!    [`Display`](std::fmt::Display) text. A live snapshot
//!    ([`RunMonitor::metrics`](crate::exec::RunMonitor::metrics)) can be
//!    checked too, but early in a run few rows have been emitted and most
//!    partials come at the end (TTL, end of input), so the ratio is
//!    provisional until the run ends.
//!
//! ```
//! use garner_engine::telemetry::PartialAlert;
//! use garner_engine::RunOptions;
//!
//! let options = RunOptions::default().with_partial_alert(0.2);
//! assert_eq!(options.partial_alert.map(|a| a.threshold()), Some(0.2));
//! assert!(PartialAlert::try_new(1.5).is_none());
//! ```

use std::fmt;

use super::MetricsSnapshot;

/// An alert threshold on the share of an accumulate stage's emitted rows
/// that were flushed as partials. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartialAlert {
    threshold: f64,
}

impl PartialAlert {
    /// Alerts when more than `threshold` (a ratio in `[0, 1]`, e.g. `0.2`
    /// for 20%) of a stage's rows are partials; `None` when `threshold` is
    /// outside `[0, 1]` or not a number.
    pub fn try_new(threshold: f64) -> Option<Self> {
        (0.0..=1.0).contains(&threshold).then_some(Self { threshold })
    }

    /// As [`try_new`](Self::try_new).
    ///
    /// # Panics
    ///
    /// If `threshold` is outside `[0, 1]` or not a number.
    pub fn new(threshold: f64) -> Self {
        Self::try_new(threshold).unwrap_or_else(|| {
            panic!("a partial-flush alert threshold is a ratio in [0, 1], not {threshold}")
        })
    }

    /// The threshold, a ratio in `[0, 1]`.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The accumulate stages of `snapshot` whose partial ratio is above
    /// the threshold, in the graph's order. Stages that emitted nothing
    /// never alert.
    pub fn evaluate(&self, snapshot: &MetricsSnapshot) -> Vec<PartialFlushAlert> {
        snapshot
            .stages
            .iter()
            .filter_map(|s| {
                let a = s.accumulator.as_ref()?;
                let partial = a.accumulator_partial_flush_total;
                let emitted = partial + a.accumulator_complete_total;
                let ratio = if emitted == 0 { 0.0 } else { partial as f64 / emitted as f64 };
                (emitted > 0 && ratio > self.threshold).then(|| PartialFlushAlert {
                    stage: s.stage.clone(),
                    partial,
                    emitted,
                    ratio,
                    threshold: self.threshold,
                })
            })
            .collect()
    }

    /// As [`evaluate`](Self::evaluate), and emits a `tracing::warn!` event
    /// per alert.
    pub fn check(&self, snapshot: &MetricsSnapshot) -> Vec<PartialFlushAlert> {
        let alerts = self.evaluate(snapshot);
        for a in &alerts {
            tracing::warn!(
                stage = %a.stage,
                ratio = a.ratio,
                threshold = a.threshold,
                partial = a.partial,
                emitted = a.emitted,
                finished = snapshot.finished,
                "partial-flush ratio above the alert threshold"
            );
        }
        alerts
    }
}

/// One accumulate stage over its [`PartialAlert`] threshold. Displays as
/// `stage X flushed N% of its records as partials (threshold M%)`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialFlushAlert {
    /// The stage id.
    pub stage: String,
    /// Rows it emitted as partials.
    pub partial: u64,
    /// Rows it emitted, complete or partial.
    pub emitted: u64,
    /// `partial / emitted`.
    pub ratio: f64,
    /// The threshold exceeded.
    pub threshold: f64,
}

impl fmt::Display for PartialFlushAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage {} flushed {} of its records as partials (threshold {})",
            self.stage,
            percent(self.ratio),
            percent(self.threshold)
        )
    }
}

/// `0.25` as `25%`, `0.125` as `12.5%`: no decimals unless they matter.
fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use garner_accum::AccumStats;

    use super::*;
    use crate::{RunReport, StageKind, StageReport};

    /// A run whose accumulator emitted `complete` and `partial` rows.
    fn report(complete: u64, partial: u64) -> RunReport {
        let mut acc = StageReport::new("assemble", StageKind::Accumulator);
        acc.accum = Some(AccumStats { complete, partial, ..Default::default() });
        RunReport {
            pipeline: "p".into(),
            engine: "sync",
            elapsed: Duration::from_secs(1),
            stages: vec![StageReport::new("read", StageKind::Source), acc],
        }
    }

    #[test]
    fn a_stage_over_the_threshold_alerts_and_says_so_in_percent() {
        let alert = PartialAlert::new(0.2);
        let alerts = alert.evaluate(&report(3, 7).metrics());
        assert_eq!(alerts.len(), 1);
        assert_eq!((alerts[0].partial, alerts[0].emitted), (7, 10));
        assert_eq!(
            alerts[0].to_string(),
            "stage assemble flushed 70% of its records as partials (threshold 20%)"
        );
        // At or under the threshold, or nothing emitted: quiet.
        assert!(alert.evaluate(&report(8, 2).metrics()).is_empty());
        assert!(alert.evaluate(&report(0, 0).metrics()).is_empty());
        assert_eq!(percent(0.125), "12.5%");
    }

    #[test]
    fn thresholds_outside_zero_to_one_are_refused() {
        assert!(PartialAlert::try_new(-0.1).is_none());
        assert!(PartialAlert::try_new(f64::NAN).is_none());
        assert_eq!(PartialAlert::try_new(1.0).map(|a| a.threshold()), Some(1.0));
        assert!(std::panic::catch_unwind(|| PartialAlert::new(2.0)).is_err());
    }

    /// Records the fields of every event as `name=value` text.
    #[derive(Default, Clone)]
    struct Events(Arc<Mutex<Vec<String>>>);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push(format!("{}={value:?}", field.name()));
        }
    }
    struct Fields<'a>(&'a mut Vec<String>);

    impl tracing::Subscriber for Events {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut fields = vec![format!("level={}", event.metadata().level())];
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields.join(" "));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn check_emits_a_warning_event_with_stage_ratio_and_threshold() {
        let events = Events::default();
        let alerts = tracing::subscriber::with_default(events.clone(), || {
            PartialAlert::new(0.5).check(&report(1, 3).metrics())
        });
        assert_eq!(alerts.len(), 1);
        let seen = events.0.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        for field in ["level=WARN", "stage=assemble", "ratio=0.75", "threshold=0.5", "partial=3", "emitted=4"]
        {
            assert!(seen[0].contains(field), "{field} in {}", seen[0]);
        }
    }
}
