//! `garner run --timeline` writes a JSON-lines timeline whose last line is
//! the run's final metrics; `garner report` draws it as HTML or SVG and
//! names the line of a timeline it cannot read; `garner graph
//! --with-metrics` annotates the stages with a run's figures.

use std::path::Path;

mod common;

use common::{garner, gen_assemble, rows_out, stderr};
use garner::engine::telemetry::MetricsSnapshot;

/// Runs the spec in `dir` with a timeline to `timeline.jsonl` sampled
/// every 10 ms; returns the run's stderr.
fn run_with_timeline(dir: &Path) -> String {
    let o = garner(
        &[
            "run",
            "p.toml",
            "--engine",
            "steal",
            "--threads",
            "2",
            "--memory-budget",
            "256KiB",
            "--timeline",
            "timeline.jsonl",
            "--timeline-interval",
            "10ms",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    stderr(&o)
}

#[test]
fn timeline_has_a_snapshot_per_line_and_ends_with_the_final_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen_assemble(d, "20000");
    let err = run_with_timeline(d);
    let text = std::fs::read_to_string(d.join("timeline.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());
    let snapshots: Vec<MetricsSnapshot> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| MetricsSnapshot::from_json(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1)))
        .collect();
    let last = snapshots.last().unwrap();
    assert!(last.finished);
    assert_eq!(last.pipeline_rows_out_total, rows_out(&err));
    assert_eq!(last.pipeline_rows_out_total, 20_000, "one row per subject");
    // Counters only grow along the timeline.
    for pair in snapshots.windows(2) {
        assert!(pair[0].pipeline_rows_in_total <= pair[1].pipeline_rows_in_total);
    }
    for s in &snapshots {
        assert_eq!(s.pipeline, "assemble");
        assert_eq!(s.stages.len(), 3);
    }
}

#[test]
fn timeline_interval_must_be_a_positive_duration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen_assemble(d, "100");
    for bad in ["0s", "often"] {
        let o = garner(&["run", "p.toml", "--timeline", "t.jsonl", "--timeline-interval", bad], d);
        assert!(!o.status.success(), "{bad}");
        assert!(stderr(&o).contains("--timeline-interval"), "{}", stderr(&o));
    }
    assert!(!d.join("assembled.parquet").exists(), "nothing ran");
}

#[test]
fn report_draws_the_timeline_as_html_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen_assemble(d, "5000");
    run_with_timeline(d);
    for out in ["report.html", "report.svg"] {
        let o = garner(&["report", "timeline.jsonl", "--out", out], d);
        assert!(o.status.success(), "{out}: {}", stderr(&o));
        let text = std::fs::read_to_string(d.join(out)).unwrap();
        for needle in [
            "<svg",
            "<polyline",
            "Throughput (rows/s)",
            "stage_input_queue_depth",
            "accumulator_active_keys",
            "accumulator_spilled_keys",
            "accumulator_memory_bytes",
            "assemble resident",
            "assemble spilled",
            ">read<",
            ">write<",
        ] {
            assert!(text.contains(needle), "{out}: {needle} missing");
        }
        // Self-contained: nothing is fetched from elsewhere.
        for outside in ["<script", "<link", "@import", "src=", "href="] {
            assert!(!text.contains(outside), "{out}: {outside}");
        }
    }
    let html = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<td>rows out</td><td>5000</td>"), "the run's figures");
    assert!(std::fs::read_to_string(d.join("report.svg")).unwrap().starts_with("<svg"));
}

#[test]
fn report_names_what_is_wrong_with_a_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let report = |timeline: &str, out: &str| garner(&["report", timeline, "--out", out], d);

    let o = report("missing.jsonl", "r.html");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read timeline missing.jsonl"), "{}", stderr(&o));

    std::fs::write(d.join("empty.jsonl"), "\n").unwrap();
    let o = report("empty.jsonl", "r.html");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no snapshots"), "{}", stderr(&o));

    gen_assemble(d, "100");
    run_with_timeline(d);
    let good = std::fs::read_to_string(d.join("timeline.jsonl")).unwrap();
    let n = good.lines().count();
    std::fs::write(d.join("bad.jsonl"), format!("{good}{{\"uptime_seconds\": \"soon\"}}\n")).unwrap();
    let o = report("bad.jsonl", "r.svg");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("timeline bad.jsonl: line {}: not a metrics snapshot", n + 1)), "{err}");

    let o = report("timeline.jsonl", "r.png");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(".html or .svg"), "{}", stderr(&o));
    assert!(!d.join("r.html").exists() && !d.join("r.svg").exists() && !d.join("r.png").exists());
}

#[test]
fn graph_with_metrics_annotates_each_stage_with_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen_assemble(d, "2000");
    let o = garner(&["run", "p.toml", "--engine", "sync", "--metrics-out", "m.json", "--quiet"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = MetricsSnapshot::from_json(&std::fs::read_to_string(d.join("m.json")).unwrap()).unwrap();
    let fragments = m.pipeline_rows_in_total;
    let expected = [
        format!("rows in 0, out {fragments}"),
        format!("rows in {fragments}, out 2000"),
        "rows in 2000, out 0".to_owned(),
    ];
    for format in ["mermaid", "dot"] {
        let o = garner(&["graph", "p.toml", "--format", format, "--with-metrics", "m.json"], d);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        for figures in &expected {
            assert!(out.contains(figures.as_str()), "{format}: {figures} missing:\n{out}");
        }
        assert_eq!(out.matches(" rows/s").count(), 3, "{format}:\n{out}");
        // Without figures, no annotation.
        let plain = garner(&["graph", "p.toml", "--format", format], d);
        assert!(!String::from_utf8(plain.stdout).unwrap().contains("rows/s"));
    }
    let mermaid =
        String::from_utf8(garner(&["graph", "p.toml", "--with-metrics", "m.json"], d).stdout).unwrap();
    assert!(mermaid.contains("write<br/><i>sink</i><br/>rows in 2000, out 0<br/>"), "{mermaid}");

    // A timeline's last line serves as well.
    let o = garner(&["run", "p.toml", "--engine", "sync", "--timeline", "t.jsonl", "--quiet"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = garner(&["graph", "p.toml", "--format", "dot", "--with-metrics", "t.jsonl"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8(o.stdout).unwrap().contains("rows in 2000, out 0"));

    // Figures that are not metrics, or are another pipeline's, are refused.
    std::fs::write(d.join("m.prom"), "pipeline_rows_in_total 3\n").unwrap();
    let o = garner(&["graph", "p.toml", "--with-metrics", "m.prom"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("m.prom: neither the JSON of"), "{}", stderr(&o));
    let other = std::fs::read_to_string(d.join("m.json"))
        .unwrap()
        .replace("\"read\"", "\"r\"")
        .replace("\"assemble\"", "\"a\"");
    std::fs::write(d.join("other.json"), other.replace("\"write\"", "\"w\"")).unwrap();
    let o = garner(&["graph", "p.toml", "--with-metrics", "other.json"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no stage of p.toml is in it"), "{}", stderr(&o));
}
