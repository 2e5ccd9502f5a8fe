//! Telemetry: the seed's metrics (§10.1–10.3) as a [`MetricsSnapshot`],
//! exported as Prometheus text or JSON.
//!
//! 1. The engines count per batch, never per row: rows and batches in and
//!    out, errors, time per batch ([`BatchLatency`]), times a full output
//!    link parked the stage (backpressure). The actor engines keep these in
//!    per-actor atomics that only the running actor writes; the sync and
//!    rayon engines in their [`StageReport`](crate::StageReport)s.
//! 2. A snapshot reads them when asked, adds the gauges of the moment
//!    (queue depths from the links, keys and state bytes from each stage's
//!    [`Pressure`](crate::Pressure), accumulator counters from
//!    `AccumStats`) and derives the rest (throughput, error rate, mean
//!    batch size, effective queue). Nothing runs in the background.
//! 3. [`RunHandle::metrics`](crate::RunHandle::metrics) (or a
//!    [`RunMonitor`](crate::exec::RunMonitor) on another thread) takes one
//!    while the run goes on, [`RunReport::metrics`](crate::RunReport::metrics)
//!    at its end; their counters agree with the report.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int64Array, RecordBatch};
//! use garner_columnar::sink::CollectSink;
//! use garner_columnar::source::MemorySource;
//! use garner_engine::prelude::*;
//! use garner_engine::telemetry::prometheus;
//!
//! let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 5, 9])) as _)]).unwrap();
//! let (sink, _out) = CollectSink::new();
//! let graph = Pipeline::new("demo")
//!     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
//!     .transform("big", Filter::new(col("x").gt(3)))
//!     .sink("collect", sink)
//!     .build()
//!     .unwrap();
//! let report = SyncEngine::new().run(graph, RunOptions::default()).unwrap();
//! let text = report.metrics().to_prometheus();
//! assert!(text.contains("# TYPE stage_latency histogram"));
//! let scraped = prometheus::parse(&text).unwrap();
//! assert_eq!(scraped.value("stage_rows_out_total", &[("stage", "big")]), Some(2.0));
//! assert_eq!(scraped.value("stage_latency_count", &[("stage", "big")]), Some(1.0));
//! ```

mod alert;
mod histogram;
#[cfg(test)]
mod live_tests;
pub mod prometheus;
mod redact;
mod snapshot;

pub use alert::{PartialAlert, PartialFlushAlert};
pub(crate) use histogram::AtomicBatchLatency;
pub use histogram::{BatchLatency, Histogram, LATENCY_BUCKETS};
pub use redact::{Redactor, MIN_SCRUBBED_LEN, REDACTED};
pub(crate) use snapshot::LiveGauges;
pub use snapshot::{
    AccumulatorMetrics, BackpressureEvents, BatchAdjustments, FlowMetrics, MetricsSnapshot, StageMetrics,
    EFFECTIVE_QUEUE_BYTES_UNIT, EFFECTIVE_QUEUE_SPILL_PENALTY,
};

impl MetricsSnapshot {
    /// The snapshot in the Prometheus text exposition format (see
    /// [`prometheus`]); serve it with [`prometheus::CONTENT_TYPE`].
    pub fn to_prometheus(&self) -> String {
        prometheus::render(self)
    }
}

/// Every metric name of the seed's tables (§10.1–10.3), as exported: a
/// histogram's name is that of its `_bucket` series for `stage_latency`
/// (the seed names the series), the family name for the others.
pub const SEED_METRICS: [&str; 19] = [
    "stage_throughput",
    "stage_input_queue_depth",
    "stage_output_queue_depth",
    "stage_latency_bucket",
    "stage_error_rate",
    "stage_circuit_state",
    "stage_batch_size",
    "accumulator_active_keys",
    "accumulator_spilled_keys",
    "accumulator_completeness_ratio",
    "accumulator_flush_latency",
    "accumulator_partial_flush_total",
    "accumulator_memory_bytes",
    "accumulator_spill_io_bytes",
    "accumulator_deadlock_incidents",
    "backpressure_events_total",
    "credit_tokens_available",
    "adaptive_batch_adjustments",
    "effective_queue_size",
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use garner_accum::AccumStats;

    use super::*;
    use crate::{RunReport, StageKind, StageReport};

    /// A finished three-stage run, figures set by hand.
    fn report() -> RunReport {
        let mut read = StageReport::new("read", StageKind::Source);
        read.rows_out = 1000;
        read.batches_out = 4;
        let mut acc = StageReport::new("assemble", StageKind::Accumulator);
        acc.instances = 2;
        (acc.rows_in, acc.batches_in, acc.rows_out, acc.batches_out) = (1000, 4, 250, 2);
        acc.latency.record(Duration::from_micros(3));
        acc.latency.record(Duration::from_micros(3));
        acc.latency.record(Duration::from_millis(2));
        acc.backpressure_events = 7;
        let mut stats = AccumStats {
            complete: 240,
            partial: 10,
            spill_writes: 3,
            bytes_held: 4096,
            ..Default::default()
        };
        stats.completeness[7] = 10;
        stats.completeness[10] = 240;
        stats.latency.record(5);
        acc.accum = Some(stats);
        let mut write = StageReport::new("write \"out\"", StageKind::Sink);
        (write.rows_in, write.batches_in) = (250, 2);
        RunReport {
            pipeline: "p".into(),
            engine: "steal",
            elapsed: Duration::from_secs(2),
            stages: vec![read, acc, write],
        }
    }

    #[test]
    fn the_exposition_parses_back_with_every_seed_metric_and_stage_labels() {
        let text = report().metrics().to_prometheus();
        let e = prometheus::parse(&text).unwrap();
        for name in SEED_METRICS {
            let series = if e.types.get(name).is_some_and(|t| t == "histogram") {
                format!("{name}_bucket")
            } else {
                name.to_owned()
            };
            assert!(e.has(&series), "{series} missing:\n{text}");
            let family = name.strip_suffix("_bucket").unwrap_or(name);
            assert!(e.types.contains_key(family) && e.help.contains_key(family), "{family}: HELP/TYPE");
        }
        assert_eq!(e.types["stage_latency"], "histogram");
        assert_eq!(e.types["accumulator_partial_flush_total"], "counter");
        // Every sample of a stage family names its stage; the quote survives escaping.
        for s in e.samples.iter().filter(|s| s.name.starts_with("stage_")) {
            assert!(s.labels.contains_key("stage"), "{s:?}");
        }
        assert_eq!(e.value("stage_rows_in_total", &[("stage", "write \"out\"")]), Some(250.0));
        // Throughput: source rows out / 2 s; others rows in / 2 s.
        assert_eq!(e.value("stage_throughput", &[("stage", "read")]), Some(500.0));
        assert_eq!(e.value("stage_throughput", &[("stage", "assemble")]), Some(500.0));
        assert_eq!(e.value("stage_batch_size", &[("stage", "assemble")]), Some(125.0));
        assert_eq!(e.value("stage_batch_size", &[("stage", "write \"out\"")]), Some(125.0));
        assert_eq!(e.value("pipeline_rows_in_total", &[]), Some(1000.0));
        assert_eq!(e.value("pipeline_rows_out_total", &[]), Some(250.0));
        assert_eq!(e.value("pipeline_info", &[("pipeline", "p"), ("engine", "steal")]), Some(1.0));
        // Histograms are cumulative and end at +Inf = _count.
        let st = |le: &str| e.value("stage_latency_bucket", &[("stage", "assemble"), ("le", le)]);
        assert_eq!(st("0.000002"), Some(0.0));
        assert_eq!(st("0.000004"), Some(2.0));
        assert_eq!(st("0.001024"), Some(2.0));
        assert_eq!(st("0.002048"), Some(3.0)); // 2 ms is in [1024, 2048) µs
        assert_eq!(st("+Inf"), Some(3.0));
        assert_eq!(e.value("stage_latency_count", &[("stage", "assemble")]), Some(3.0));
        let sum = e.value("stage_latency_sum", &[("stage", "assemble")]).unwrap();
        assert!((sum - 0.002006).abs() < 1e-12, "{sum}");
        let acc = |name: &str| e.value(name, &[("stage", "assemble")]);
        assert_eq!(acc("accumulator_partial_flush_total"), Some(10.0));
        assert_eq!(acc("accumulator_memory_bytes"), Some(4096.0));
        assert_eq!(acc("accumulator_spill_writes_total"), Some(3.0));
        assert_eq!(acc("accumulator_completeness_ratio_count"), Some(250.0));
        let cr =
            |le: &str| e.value("accumulator_completeness_ratio_bucket", &[("stage", "assemble"), ("le", le)]);
        assert_eq!(
            (cr("0.7"), cr("0.8"), cr("0.99"), cr("1")),
            (Some(0.0), Some(10.0), Some(10.0), Some(250.0))
        );
        let fl = |le: &str| e.value("accumulator_flush_latency_bucket", &[("stage", "assemble"), ("le", le)]);
        assert_eq!((fl("0.004"), fl("0.008")), (Some(0.0), Some(1.0)));
        assert_eq!(acc("accumulator_active_keys"), Some(0.0));
        assert_eq!(e.value("accumulator_active_keys", &[("stage", "read")]), None, "only accumulators");
        let bp = |strategy: &str| {
            e.value("backpressure_events_total", &[("stage", "assemble"), ("strategy", strategy)])
        };
        assert_eq!((bp("block"), bp("fail")), (Some(7.0), Some(0.0)));
        let adj = e.value("adaptive_batch_adjustments", &[("stage", "read"), ("direction", "increment")]);
        assert_eq!(adj, Some(0.0));
        // No guarded stage: closed.
        assert_eq!(acc("stage_circuit_state"), Some(0.0));
        assert_eq!(acc("credit_tokens_available"), Some(0.0));
        // Effective queue at the end: no queue, 4 KiB of state.
        assert_eq!(acc("effective_queue_size"), Some(4096.0 / (1 << 20) as f64));
    }

    #[test]
    fn json_round_trips_and_uses_the_seed_names_as_keys() {
        let m = report().metrics();
        let json = m.to_json();
        for key in ["\"stage_throughput\"", "\"accumulator_flush_latency\"", "\"effective_queue_size\""] {
            assert!(json.contains(key), "{key}");
        }
        assert_eq!(MetricsSnapshot::from_json(&json).unwrap(), m);
        assert!(!m.to_json_line().contains('\n'));
    }

    #[test]
    fn the_parser_rejects_what_it_cannot_read() {
        assert_eq!(prometheus::parse("x{a=\"1} 2").unwrap_err().line, 1);
        assert!(prometheus::parse("\nx{a=1} 2").unwrap_err().to_string().starts_with("line 2"));
        assert!(prometheus::parse("x abc").is_err());
        assert!(prometheus::parse("x").is_err());
        let e = prometheus::parse("x{a=\"1\",b=\"two\\nlines\"} 2.5 1700000000\n").unwrap();
        assert_eq!(e.value("x", &[("a", "1"), ("b", "two\nlines")]), Some(2.5));
    }
}
