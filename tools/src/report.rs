//! `garner report TIMELINE --out report.html` (or `.svg`): pictures of a
//! run over time from the JSON-lines timeline `garner run --timeline`
//! writes.
//!
//! 1. The output's extension picks the format (`.html`/`.htm` or `.svg`);
//!    it is checked before the timeline is read.
//! 2. The timeline is read whole ([`timeline::read`]): a missing or empty
//!    file, or a line that is not a snapshot, is an error naming the file
//!    and the line.
//! 3. Four [`Chart`]s are drawn against the seconds since the run
//!    started: throughput per stage, input queue depth per stage, resident
//!    and spilled keys per accumulator, accumulator memory.
//! 4. Each chart is hand-written SVG (axes, grid, one `<polyline>` per
//!    series, a legend). The `.svg` stacks them in one picture; the
//!    `.html` page adds a heading and the run's figures. Neither loads
//!    anything from elsewhere (no scripts, no style sheets, no fonts).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use garner::engine::telemetry::{MetricsSnapshot, StageMetrics};

use crate::timeline;

#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// The timeline written by `garner run SPEC --timeline FILE`.
    pub(crate) timeline: PathBuf,
    /// Where to write the report: `.html` (a page) or `.svg` (a picture).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: PathBuf,
}

/// What `--out` writes, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportFormat {
    /// `.html` or `.htm`: a page with the charts inline.
    Html,
    /// `.svg`: the charts stacked in one picture.
    Svg,
}

impl ReportFormat {
    /// The format `path`'s extension asks for.
    pub(crate) fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("html" | "htm") => Ok(ReportFormat::Html),
            Some("svg") => Ok(ReportFormat::Svg),
            _ => bail!("--out {}: unknown format; name the file .html or .svg", path.display()),
        }
    }
}

/// `garner report`.
pub(crate) fn report(args: ReportArgs) -> Result<()> {
    let format = ReportFormat::of(&args.out)?;
    let snapshots = timeline::read(&args.timeline)?;
    let charts = charts(&snapshots);
    let text = match format {
        ReportFormat::Html => html(&snapshots, &charts),
        ReportFormat::Svg => svg(&charts),
    };
    std::fs::write(&args.out, text).with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("report: {} snapshots drawn to {}", snapshots.len(), args.out.display());
    Ok(())
}

/// The lines `garner graph --with-metrics` writes under stage `id`:
/// rows in and out, rows per second (none for a stage `metrics` lacks).
pub(crate) fn stage_notes(metrics: &MetricsSnapshot, id: &str) -> Vec<String> {
    let Some(m) = metrics.stage(id) else { return Vec::new() };
    vec![
        format!("rows in {}, out {}", m.stage_rows_in_total, m.stage_rows_out_total),
        format!("{} rows/s", value_text(m.stage_throughput, Unit::Count)),
    ]
}

/// How a chart's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Counts and rates: `12.3k`.
    Count,
    /// Bytes: `1.5 MiB`.
    Bytes,
}

/// One picture: a value over time for each of its series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chart {
    /// The heading, e.g. `Throughput (rows/s)`.
    pub(crate) title: String,
    /// What is drawn, naming the metrics it comes from.
    pub(crate) note: String,
    /// How the values read.
    pub(crate) unit: Unit,
    /// One line per stage (or per stage and gauge).
    pub(crate) series: Vec<Series>,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    /// The legend's text.
    pub(crate) name: String,
    /// `(seconds since the start, value)`, in timeline order.
    pub(crate) points: Vec<(f64, f64)>,
}

/// The four charts of a timeline.
pub(crate) fn charts(snapshots: &[MetricsSnapshot]) -> Vec<Chart> {
    let stages = stage_ids(snapshots);
    let kind =
        |id: &str| snapshots.iter().find_map(|s| s.stage(id)).map(|m| m.kind.clone()).unwrap_or_default();
    let accumulators: Vec<&String> = stages.iter().filter(|id| kind(id) == "accumulate").collect();
    let gauge = |name: String, id: &str, f: &dyn Fn(&StageMetrics) -> Option<f64>| Series {
        name,
        points: snapshots
            .iter()
            .filter_map(|s| s.stage(id).and_then(f).map(|v| (s.uptime_seconds, v)))
            .collect(),
    };
    let accum = |s: &StageMetrics, f: fn(&garner::engine::telemetry::AccumulatorMetrics) -> u64| {
        s.accumulator.as_ref().map(|a| f(a) as f64)
    };
    vec![
        Chart {
            title: "Throughput (rows/s)".into(),
            note: "rows per second between snapshots, per stage: rows emitted by a source, received by \
                   any other stage (stage_throughput is the mean since the start)"
                .into(),
            unit: Unit::Count,
            series: stages
                .iter()
                .map(|id| Series { name: id.clone(), points: throughput(snapshots, id) })
                .collect(),
        },
        Chart {
            title: "Input queue depth".into(),
            note: "stage_input_queue_depth: units waiting in each stage's input links".into(),
            unit: Unit::Count,
            series: stages
                .iter()
                .filter(|id| kind(id) != "source")
                .map(|id| gauge(id.clone(), id, &|s| Some(s.stage_input_queue_depth as f64)))
                .collect(),
        },
        Chart {
            title: "Keys".into(),
            note: "accumulator_active_keys (resident in memory) and accumulator_spilled_keys, per \
                   accumulator"
                .into(),
            unit: Unit::Count,
            series: accumulators
                .iter()
                .flat_map(|id| {
                    [
                        gauge(format!("{id} resident"), id, &|s| accum(s, |a| a.accumulator_active_keys)),
                        gauge(format!("{id} spilled"), id, &|s| accum(s, |a| a.accumulator_spilled_keys)),
                    ]
                })
                .collect(),
        },
        Chart {
            title: "Memory".into(),
            note: "accumulator_memory_bytes: state held by each accumulator".into(),
            unit: Unit::Bytes,
            series: accumulators
                .iter()
                .map(|id| gauge((*id).clone(), id, &|s| accum(s, |a| a.accumulator_memory_bytes)))
                .collect(),
        },
    ]
}

/// Every stage id of the timeline, in the order first seen.
fn stage_ids(snapshots: &[MetricsSnapshot]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for s in snapshots.iter().flat_map(|s| &s.stages) {
        if !ids.contains(&s.stage) {
            ids.push(s.stage.clone());
        }
    }
    ids
}

/// Stage `id`'s rows per second between consecutive snapshots (the first:
/// since the start). A snapshot no later than the one before gives no point.
fn throughput(snapshots: &[MetricsSnapshot], id: &str) -> Vec<(f64, f64)> {
    let items =
        |m: &StageMetrics| if m.kind == "source" { m.stage_rows_out_total } else { m.stage_rows_in_total };
    let mut points = Vec::new();
    let mut before = (0.0, 0u64);
    for s in snapshots {
        let Some(m) = s.stage(id) else { continue };
        let (t, n) = (s.uptime_seconds, items(m));
        let dt = t - before.0;
        if dt > 0.0 {
            points.push((t, n.saturating_sub(before.1) as f64 / dt));
            before = (t, n);
        }
    }
    points
}

/// The SVG picture: every chart, one under the other.
pub(crate) fn svg(charts: &[Chart]) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {WIDTH} {}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        HEIGHT * charts.len(),
        HEIGHT * charts.len()
    );
    for (i, chart) in charts.iter().enumerate() {
        s.push_str(&chart_svg(chart, 0, HEIGHT * i));
    }
    s.push_str("</svg>\n");
    s
}

/// The HTML page: a heading, the run's figures, the charts.
pub(crate) fn html(snapshots: &[MetricsSnapshot], charts: &[Chart]) -> String {
    let last = snapshots.last().expect("a timeline has a snapshot");
    let mut s = String::new();
    let title = format!("garner report: {}", escape(&last.pipeline));
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>body {{ font-family: sans-serif; margin: 2em; }} h2 {{ margin-bottom: 0.2em; }} \
         p.note {{ color: #555; margin-top: 0; }} td {{ padding: 0 1em 0 0; }}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<table>\n"
    );
    let status = if last.finished { "finished" } else { "still running at the last snapshot" };
    for (k, v) in [
        ("engine", escape(&last.engine)),
        ("run", status.to_owned()),
        ("elapsed", format!("{:.2} s", last.uptime_seconds)),
        ("snapshots", snapshots.len().to_string()),
        ("rows in", last.pipeline_rows_in_total.to_string()),
        ("rows out", last.pipeline_rows_out_total.to_string()),
    ] {
        let _ = writeln!(s, "<tr><td>{k}</td><td>{v}</td></tr>");
    }
    s.push_str("</table>\n");
    for chart in charts {
        let _ =
            writeln!(s, "<h2>{}</h2>\n<p class=\"note\">{}</p>", escape(&chart.title), escape(&chart.note));
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\">"
        );
        s.push_str(&chart_svg(chart, 0, 0));
        s.push_str("</svg>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// A chart's size in pixels.
const WIDTH: usize = 900;
const HEIGHT: usize = 280;
/// The plot area inside a chart.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 680.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 240.0;
/// Series colours, reused in turn.
const COLOURS: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// One chart as SVG elements in a `<g>` moved to `(x, y)`.
fn chart_svg(chart: &Chart, x: usize, y: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "<g transform=\"translate({x},{y})\">");
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        escape(&chart.title)
    );
    let _ = writeln!(s, "<title>{}</title>", escape(&chart.note));
    let points = chart.series.iter().flat_map(|s| &s.points);
    let (t_max, t_step) = axis(points.clone().map(|p| p.0).fold(0.0, f64::max));
    let v_top = points.map(|p| p.1).fold(0.0, f64::max);
    // Bytes step in round numbers of the unit shown (KiB, MiB, ...).
    let scale = match chart.unit {
        Unit::Bytes => (1..=4).map(|k| 1024f64.powi(k)).take_while(|&m| v_top >= m).last().unwrap_or(1.0),
        Unit::Count => 1.0,
    };
    let (v_max, v_step) = axis(v_top / scale);
    let (v_max, v_step) = (v_max * scale, v_step * scale);
    let px = |t: f64| LEFT + (RIGHT - LEFT) * t / t_max;
    let py = |v: f64| BOTTOM - (BOTTOM - TOP) * v / v_max;
    // Grid and tick labels.
    for v in ticks(v_max, v_step) {
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            py(v) + 4.0,
            value_text(v, chart.unit),
            y = py(v),
        );
    }
    for t in ticks(t_max, t_step) {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}s</text>",
            px(t),
            BOTTOM + 16.0,
            trim_float(t)
        );
    }
    let _ = writeln!(
        s,
        "<polyline points=\"{LEFT},{TOP} {LEFT},{BOTTOM} {RIGHT},{BOTTOM}\" fill=\"none\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">seconds since the start</text>",
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 32.0
    );
    if chart.series.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#777\" text-anchor=\"middle\">no such stage in this run</text>",
            (LEFT + RIGHT) / 2.0,
            (TOP + BOTTOM) / 2.0
        );
    }
    for (i, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let name = escape(&series.name);
        let coords: Vec<String> =
            series.points.iter().map(|&(t, v)| format!("{:.1},{:.1}", px(t), py(v))).collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"><title>{name}</title></polyline>",
            coords.join(" ")
        );
        // A lone point draws no line: mark it.
        if let [(t, v)] = series.points[..] {
            let _ =
                writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>", px(t), py(v));
        }
        let ly = TOP + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{name}</text>",
            RIGHT + 20.0,
            RIGHT + 40.0,
            RIGHT + 46.0,
            ly + 4.0
        );
    }
    s.push_str("</g>\n");
    s
}

/// An axis from 0 showing `max`: its end and the step between ticks, a
/// round number (see [`nice_ceiling`]) giving at most five steps.
fn axis(max: f64) -> (f64, f64) {
    let step = nice_ceiling(max / 5.0);
    let end = ((max / step).ceil() * step).max(step);
    (end, step)
}

/// The ticks of an axis: 0, `step`, 2 × `step`, … up to `end`.
fn ticks(end: f64, step: f64) -> impl Iterator<Item = f64> {
    let n = (end / step).round() as usize;
    (0..=n).map(move |i| i as f64 * step)
}

/// The smallest of 1, 2, 5 × 10^k at or above `x` (1 for nothing to draw),
/// so the axis ends on a round number.
fn nice_ceiling(x: f64) -> f64 {
    if !(x > 0.0 && x.is_finite()) {
        return 1.0;
    }
    let base = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|&v| v >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * base)
}

/// An axis label: `12.3k` or `1.5 MiB`; small values keep their fraction.
fn value_text(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => {
            let units = ["B", "KiB", "MiB", "GiB", "TiB"];
            let mut v = v;
            let mut i = 0;
            while v >= 1024.0 && i + 1 < units.len() {
                v /= 1024.0;
                i += 1;
            }
            format!("{} {}", trim_float(v), units[i])
        }
        Unit::Count => match v {
            v if v >= 1e9 => format!("{}G", trim_float(v / 1e9)),
            v if v >= 1e6 => format!("{}M", trim_float(v / 1e6)),
            v if v >= 1e4 => format!("{}k", trim_float(v / 1e3)),
            v => trim_float(v),
        },
    }
}

/// `2`, `2.5`, `0.25`: at most two decimals, no trailing zeros.
fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Text safe inside XML and HTML elements and attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-stage run (`read` → `write`) at `t` seconds with `rows` through.
    fn at(t: f64, rows: u64) -> MetricsSnapshot {
        let stage = |id: &str, kind: &str| {
            let mut json = format!(
                r#"{{"stage":"{id}","kind":"{kind}","instances":1,"stage_rows_in_total":{rows},
                "stage_rows_out_total":{rows},"stage_batches_in_total":1,"stage_batches_out_total":1,
                "stage_errors_total":0,"stage_rows_dropped_total":0,"stage_throughput":0.0,
                "stage_input_queue_depth":3,"stage_output_queue_depth":0,
                "stage_latency_bucket":{{"bounds":[],"counts":[0],"sum":0.0}},"stage_error_rate":0.0,
                "stage_circuit_state":0,"stage_batch_size":0.0,"accumulator":null,
                "flow":{{"backpressure_events_total":{{"block":0,"drop_newest":0,"drop_oldest":0,"fail":0}},
                "credit_tokens_available":0,"adaptive_batch_adjustments":{{"increment":0,"decrement":0}},
                "effective_queue_size":0.0}}}}"#
            );
            json.retain(|c| c != '\n');
            json
        };
        let json = format!(
            r#"{{"pipeline":"p","engine":"sync","uptime_seconds":{t},"finished":false,
            "pipeline_rows_in_total":{rows},"pipeline_rows_out_total":{rows},"stages":[{},{}]}}"#,
            stage("read", "source"),
            stage("write <out>", "sink")
        );
        MetricsSnapshot::from_json(&json).unwrap()
    }

    #[test]
    fn throughput_is_the_rate_between_snapshots() {
        let timeline = [at(1.0, 100), at(2.0, 400), at(2.0, 400), at(4.0, 500)];
        assert_eq!(throughput(&timeline, "read"), vec![(1.0, 100.0), (2.0, 300.0), (4.0, 50.0)]);
        assert_eq!(throughput(&timeline, "nowhere"), vec![]);
    }

    #[test]
    fn charts_have_a_series_per_stage_and_none_for_missing_accumulators() {
        let charts = charts(&[at(1.0, 100), at(2.0, 200)]);
        let names: Vec<Vec<&str>> =
            charts.iter().map(|c| c.series.iter().map(|s| s.name.as_str()).collect()).collect();
        assert_eq!(names, vec![vec!["read", "write <out>"], vec!["write <out>"], vec![], vec![]]);
        assert_eq!(charts[1].series[0].points, vec![(1.0, 3.0), (2.0, 3.0)]);
        let svg = svg(&charts);
        assert!(svg.contains("write &lt;out&gt;") && !svg.contains("write <out>"), "escaped");
        assert!(svg.contains("no such stage in this run"));
    }

    #[test]
    fn axes_end_on_round_numbers_and_read_in_units() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(20.0), 20.0);
        assert_eq!(nice_ceiling(0.07), 0.1);
        assert_eq!(axis(5.9), (6.0, 2.0));
        assert_eq!(axis(0.0), (1.0, 1.0));
        assert_eq!(axis(1_234_567.0), (1_500_000.0, 500_000.0));
        assert_eq!(ticks(6.0, 2.0).collect::<Vec<_>>(), vec![0.0, 2.0, 4.0, 6.0]);
        assert_eq!(value_text(1536.0, Unit::Bytes), "1.5 KiB");
        assert_eq!(value_text(12_345.0, Unit::Count), "12.35k");
        assert_eq!(value_text(2_000_000.0, Unit::Count), "2M");
        assert_eq!(value_text(2.5, Unit::Count), "2.5");
    }

    #[test]
    fn the_extension_picks_the_format() {
        assert_eq!(ReportFormat::of(Path::new("r.HTML")).unwrap(), ReportFormat::Html);
        assert_eq!(ReportFormat::of(Path::new("r.svg")).unwrap(), ReportFormat::Svg);
        assert!(ReportFormat::of(Path::new("r.png")).unwrap_err().to_string().contains(".html or .svg"));
    }
}
