//! The `garner` binary end to end: gen → run → Parquet with one row per
//! subject; bad specs and bad input give a clear error, a non-zero exit and
//! no output file.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{garner, stderr};

const SPEC: &str = r#"
[pipeline]
name = "assemble"
engine = "sync"
threads = 2
memory_budget = "512MiB"

[[stage]]
id = "read"
kind = "source"
format = "ipc"
path = "fragments.arrow"

[[stage]]
id = "assemble"
kind = "accumulate"
key = ["subject_id"]
var_column = "var"
value_column = "value"
require = ["id", "name", "riskClass", "limit"]
time = "event"
partial_flush_after = "10s"
spill = true

[[stage]]
id = "write"
kind = "sink"
format = "parquet"
path = "assembled.parquet"
"#;

fn gen(dir: &Path, out: &str, format: &str) {
    let o = garner(
        &["gen", "--subjects", "2000", "--locality", "random", "--format", format, "--out", out, "--quiet"],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

fn run_spec(dir: &Path, spec: &str) -> Output {
    std::fs::write(dir.join("p.toml"), spec).unwrap();
    garner(&["run", "p.toml"], dir)
}

#[test]
fn gen_then_run_the_design_spec_for_each_input_format() {
    for (file, format) in
        [("fragments.arrow", "ipc"), ("fragments.parquet", "parquet"), ("fragments.csv", "csv")]
    {
        let dir = tempfile::tempdir().unwrap();
        gen(dir.path(), file, format);
        let spec = SPEC
            .replace("format = \"ipc\"", &format!("format = \"{format}\""))
            .replace("fragments.arrow", file);
        let o = run_spec(dir.path(), &spec);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("2000 rows out"), "{format}: one row per subject: {err}");
        assert!(dir.path().join("assembled.parquet").exists());
    }
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let dir = tempfile::tempdir().unwrap();
    gen(dir.path(), "fragments.arrow", "ipc");
    std::fs::write(dir.path().join("p.toml"), SPEC).unwrap();
    let o = garner(&["graph", "p.toml", "--format", "mermaid"], dir.path());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.starts_with("flowchart LR") && text.contains("hash(subject_id)"),
        "{text}"
    );
    let o = garner(&["graph", "p.toml", "--format", "dot"], dir.path());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("digraph"));
    assert!(!dir.path().join("assembled.parquet").exists(), "drawing writes nothing");
    // SVG through Graphviz when it is installed; a clear error when not.
    let o = garner(&["graph", "p.toml", "--format", "svg", "--out", "g.svg"], dir.path());
    let has_dot = std::process::Command::new("dot").arg("-V").output().is_ok();
    if has_dot {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(std::fs::read_to_string(dir.path().join("g.svg")).unwrap().contains("<svg"));
    } else {
        assert!(!o.status.success());
        assert!(stderr(&o).contains("needs Graphviz's `dot`"), "{}", stderr(&o));
        assert!(!dir.path().join("g.svg").exists());
    }
}

/// Runs a spec expected to fail; returns stderr after checking the exit
/// code and that no output file is left.
fn fails(dir: &Path, spec: &str) -> String {
    let o = run_spec(dir, spec);
    assert!(!o.status.success(), "should fail");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("assembled") || n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    err
}

#[test]
fn bad_specs_and_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "fragments.arrow", "ipc");

    let err = fails(d, &SPEC.replace("key = [\"subject_id\"]", "key = [\"subject\"]"));
    assert!(err.contains("no key column `subject`") && err.contains("stage[1]"), "{err}");

    let err = fails(d, &SPEC.replace("kind = \"accumulate\"", "kind = \"acumulate\""));
    assert!(err.contains("stage[1].kind: unknown stage kind \"acumulate\""), "{err}");

    let err = fails(d, &SPEC.replace("fragments.arrow", "missing.arrow"));
    assert!(err.contains("stage[0].path: ") && err.contains("missing.arrow"), "{err}");

    let err = fails(d, &SPEC.replace("partial_flush_after = \"10s\"", "partial_flush_after = 10"));
    assert!(err.contains("stage[1].partial_flush_after"), "{err}");

    let err = fails(d, &SPEC.replace("engine = \"sync\"", "engine = \"warp\""));
    assert!(err.contains("pipeline.engine: unknown engine `warp`"), "{err}");

    // A truncated IPC file.
    let full = std::fs::read(d.join("fragments.arrow")).unwrap();
    std::fs::write(d.join("cut.arrow"), &full[..full.len() / 2]).unwrap();
    let err = fails(d, &SPEC.replace("fragments.arrow", "cut.arrow"));
    assert!(err.contains("cut.arrow") && err.contains("invalid ipc input"), "{err}");

    // A CSV row with too many fields, found while running.
    std::fs::write(d.join("bad.csv"), "subject_id,var,value,ts\n1,id,a,1\n1,name,b,2,9\n").unwrap();
    let spec = SPEC.replace("format = \"ipc\"", "format = \"csv\"").replace("fragments.arrow", "bad.csv");
    let err = fails(d, &spec);
    assert!(err.contains("bad.csv") && err.contains("line 3"), "{err}");

    let o = garner(&["run", "nope.toml"], d);
    assert!(!o.status.success() && stderr(&o).contains("cannot read spec nope.toml"));
}

#[test]
fn bad_command_line_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), SPEC).unwrap();
    let o = garner(&["run", "p.toml", "--engine", "warp"], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown engine `warp`"), "{}", stderr(&o));
    // Caught: --threads 0 was quietly raised to 1.
    let o = garner(&["run", "p.toml", "--threads", "0"], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--threads: must be at least 1"), "{}", stderr(&o));
}

#[test]
fn two_stages_on_one_file_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "fragments.arrow", "ipc");
    let second_sink = "\n[[stage]]\nid = \"copy\"\nkind = \"sink\"\ninputs = [\"assemble\"]\npath = \"./assembled.parquet\"\n";
    let err = fails(d, &format!("{SPEC}{second_sink}"));
    assert!(
        err.contains(
            "stage[3].path: sink `copy` uses ./assembled.parquet, but sink `write` (stage[2]) writes it too"
        ),
        "{err}"
    );
    let err = fails(
        d,
        &SPEC
            .replace("assembled.parquet", "fragments.arrow")
            .replace("format = \"parquet\"", "format = \"ipc\""),
    );
    assert!(err.contains("stage[2].path: sink `write` uses fragments.arrow, but it is the input of source `read` (stage[0])"), "{err}");
    assert!(d.join("fragments.arrow").exists(), "the input is untouched");
}

#[test]
fn notes_and_warnings_say_what_the_spec_does_not_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "fragments.arrow", "ipc");
    // The design spec has `spill = true` and a budget: nothing to note.
    let o = run_spec(d, SPEC);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    // `spill = true` without a budget does nothing: noted.
    let o = run_spec(d, &SPEC.replace("memory_budget = \"512MiB\"\n", ""));
    assert!(
        stderr(&o).contains("note: stage[1].spill = true has no effect without a memory budget"),
        "{}",
        stderr(&o)
    );
    let o = garner(&["run", "p.toml", "--quiet"], d);
    assert!(o.status.success() && !stderr(&o).contains("note:"), "{}", stderr(&o));
    // A budget with nothing that may spill: noted.
    let o = run_spec(d, &SPEC.replace("spill = true", "spill = false"));
    assert!(stderr(&o).contains("no accumulate stage has spill = true"), "{}", stderr(&o));

    // A branch without `otherwise`: warned at build, counted in the summary.
    let branch = SPEC.replace(
        "[[stage]]\nid = \"write\"",
        "[[stage]]\nid = \"split\"\nkind = \"branch\"\nroutes = [{ name = \"done\", column = \"acc_completeness\", op = \"=\", value = 1.0 }]\n\n[[stage]]\nid = \"write\"\ninputs = [\"split.done\"]",
    );
    let o = run_spec(d, &branch);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: stage[2] (branch `split`) has no `otherwise`"), "{err}");
    let row: Vec<&str> =
        err.lines().find(|l| l.starts_with("split ")).unwrap_or_default().split_whitespace().collect();
    assert!(row.last().is_some_and(|n| *n != "0"), "the dropped column counts them: {err}");
    assert!(err.contains("\n  split: ") && err.contains("dropped (no route matched"), "{err}");
}

#[test]
fn a_missing_default_column_says_it_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "fragments.arrow", "ipc");
    let no_ts = SPEC.replace(
        "[[stage]]\nid = \"assemble\"",
        "[[stage]]\nid = \"drop-ts\"\nkind = \"select\"\ncolumns = [\"subject_id\", \"var\", \"value\"]\n\n[[stage]]\nid = \"assemble\"",
    );
    let err = fails(d, &no_ts);
    assert!(
        err.contains("stage[2]: stage `assemble`: no time column `ts` in the input")
            && err.contains("(`ts` is the default time column; set time_column"),
        "{err}"
    );
}

#[test]
fn a_small_memory_budget_spills_and_changes_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "fragments.arrow", "ipc");
    let o = run_spec(d, SPEC);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = garner(&["run", "p.toml", "--memory-budget", "64KiB", "--engine", "steal", "--threads", "2"], d);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("2000 rows out"), "{err}");
    let row: Vec<&str> =
        err.lines().find(|l| l.starts_with("assemble ")).unwrap_or_default().split_whitespace().collect();
    assert!(row.get(10).is_some_and(|n| *n != "0" && *n != "-"), "the summary reports the spills: {err}");
}

#[test]
fn count_and_window_accumulators_run_from_a_spec() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "fragments.arrow", "ipc");
    let keys_start = SPEC.find("var_column").unwrap();
    let keys_end = SPEC.find("spill = true").unwrap() + "spill = true".len();
    let with = |keys: &str| format!("{}{keys}{}", &SPEC[..keys_start], &SPEC[keys_end..]);

    let o =
        run_spec(d, &with("accumulator = \"count\"\nevery = 2\nvalue_column = \"value\"\nmax_keys = 500"));
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // Every subject has 3 or 4 fragments: `every = 2` gives at least one row
    // each, evictions more, and never more rows than fragments.
    let last = err.lines().find(|l| l.contains(" rows out in ")).unwrap_or_else(|| panic!("{err}"));
    let number = |after: &str| -> u64 {
        last.split(after).next().unwrap().rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (rows_in, rows_out) = (number(" rows in"), number(" rows out"));
    assert!(rows_out >= 2000 && rows_out <= rows_in, "{err}");
    assert!(err.contains("evicted"), "a key limit below the subject count evicts: {err}");

    let o = run_spec(
        d,
        &with("accumulator = \"window\"\nwindow = \"tumbling\"\nsize = \"1s\"\ntime_column = \"ts\""),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    std::fs::remove_file(d.join("assembled.parquet")).unwrap();
    let err = fails(d, &with("accumulator = \"count\""));
    assert!(err.contains("stage[1].every: missing"), "{err}");
}

/// Starts `garner run` on a slow run (everything spills under a tiny
/// budget) and sends it SIGINT `presses` times once it catches SIGINT.
#[cfg(unix)]
fn interrupted(presses: usize) -> (std::process::Output, tempfile::TempDir) {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = garner(
        &["gen", "--subjects", "200000", "--locality", "random", "--out", "fragments.arrow", "--quiet"],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(d.join("p.toml"), SPEC).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_garner"))
        .args(["run", "p.toml", "--engine", "steal", "--threads", "2", "--memory-budget", "64KiB"])
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run is under way once garner catches SIGINT (bit 1 of SigCgt).
    let started = std::time::Instant::now();
    let catches_sigint = || {
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok().and_then(|s| {
            let mask = s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?.trim().to_owned();
            u64::from_str_radix(&mask, 16).ok().map(|m| m & 0b10 != 0)
        })
    };
    while catches_sigint() == Some(false) {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if catches_sigint().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(500)); // no /proc: give it time
    }
    for _ in 0..presses {
        let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    (child.wait_with_output().unwrap(), dir)
}

#[cfg(unix)]
#[test]
fn a_first_ctrl_c_drains_and_keeps_what_was_processed() {
    let (o, dir) = interrupted(1);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: draining"), "{err}");
    assert!(err.contains("stopped: interrupted by Ctrl-C"), "{err}");
    assert!(dir.path().join("assembled.parquet").exists(), "the drained output is committed: {err}");
    let last = err.lines().find(|l| l.contains(" rows out in ")).unwrap_or_else(|| panic!("{err}"));
    let rows_in: u64 = last.split(" rows in").next().unwrap().parse().unwrap();
    assert!(rows_in < 789_000, "the source stopped early: {last}");
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_aborts_and_leaves_no_output() {
    let (o, dir) = interrupted(2);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("aborting"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("assembled") || n.starts_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}: {err}");
}

/// The CSV pipeline of the dead-letter test, reading `input`.
fn csv_spec(input: &str, out: &str, dead_letter: bool) -> String {
    let (bad_row, dlq) =
        if dead_letter { ("dead_letter", "dead_letter = { path = \"dlq.jsonl\" }") } else { ("fail", "") };
    format!(
        r#"
[pipeline]
engine = "steal"
threads = 2
{dlq}

[[stage]]
id = "read"
kind = "source"
path = "{input}"
on_bad_row = "{bad_row}"

[[stage]]
id = "assemble"
kind = "accumulate"
key = "subject_id"
require = ["id", "name", "riskClass", "limit"]

[[stage]]
id = "write"
kind = "sink"
path = "{out}"
"#
    )
}

#[test]
fn bad_csv_rows_go_to_the_dead_letter_file_and_the_good_ones_assemble_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "all.csv", "csv");
    let text = std::fs::read_to_string(d.join("all.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut good, mut mixed, mut bad) = (vec![header.to_owned()], vec![header.to_owned()], 0);
    for (i, line) in lines.enumerate() {
        good.push(line.to_owned());
        mixed.push(line.to_owned());
        // About 1% bad rows: too few fields, or too many.
        if i % 100 == 7 {
            mixed.push(if i % 200 == 7 { "garbage".to_owned() } else { format!("{line},extra") });
            bad += 1;
        }
    }
    std::fs::write(d.join("good.csv"), good.join("\n") + "\n").unwrap();
    std::fs::write(d.join("mixed.csv"), mixed.join("\n") + "\n").unwrap();

    std::fs::write(d.join("strict.toml"), csv_spec("mixed.csv", "strict.csv", false)).unwrap();
    let o = garner(&["run", "strict.toml"], d);
    assert!(!o.status.success(), "on_bad_row = \"fail\" stops at the first bad row");
    assert!(stderr(&o).contains("line"), "{}", stderr(&o));

    std::fs::write(d.join("good.toml"), csv_spec("good.csv", "expected.csv", false)).unwrap();
    let o = garner(&["run", "good.toml"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(d.join("dlq.toml"), csv_spec("mixed.csv", "got.csv", true)).unwrap();
    let o = garner(&["run", "dlq.toml"], d);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("{bad} dead-lettered rows written")), "{err}");

    let sorted = |f: &str| {
        let mut l: Vec<String> =
            std::fs::read_to_string(d.join(f)).unwrap().lines().map(str::to_owned).collect();
        l.sort();
        l
    };
    assert_eq!(sorted("got.csv"), sorted("expected.csv"), "the good rows assemble exactly");
    let dlq = std::fs::read_to_string(d.join("dlq.jsonl")).unwrap();
    let rows: Vec<&str> = dlq.lines().collect();
    assert_eq!(rows.len(), bad);
    assert!(
        rows.iter()
            .all(|r| r.contains("\"_error\"") && r.contains("line") && r.contains("\"_stage\":\"read\"")),
        "{dlq}"
    );
    assert!(rows.iter().any(|r| r.contains("garbage")), "the raw line is kept: {dlq}");
}

/// Subject 1 completes, then two of its fragments come again (dead
/// letters, `after_complete = "drop"`); subjects 2, 3 and 4 stay partial.
const MOSTLY_PARTIAL: &str = "subject_id,var,value,ts
1,id,A1,1
1,name,Alice Smith,2
1,riskClass,high,3
1,limit,5000,4
1,name,Alice Smith,5
1,limit,7000,6
2,name,Bob Jones,7
3,name,Carol Brown,8
4,limit,100,9
";

fn mostly_partial_spec(pipeline: &str) -> String {
    format!(
        r#"
[pipeline]
engine = "steal"
threads = 2
dead_letter = {{ path = "dlq.jsonl" }}
{pipeline}

[[stage]]
id = "read"
kind = "source"
path = "in.csv"

[[stage]]
id = "assemble"
kind = "accumulate"
key = "subject_id"
require = ["id", "name", "riskClass", "limit"]
after_complete = "drop"

[[stage]]
id = "write"
kind = "sink"
path = "out.csv"
"#
    )
}

#[test]
fn a_stage_flushing_mostly_partials_raises_the_alert_even_when_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), MOSTLY_PARTIAL).unwrap();
    let alert = "alert: stage assemble flushed 75% of its records as partials (threshold 20%)";
    for quiet in [false, true] {
        std::fs::write(d.join("p.toml"), mostly_partial_spec("alert_partial_ratio = 0.2")).unwrap();
        let o = garner(if quiet { &["run", "p.toml", "--quiet"] } else { &["run", "p.toml"] }, d);
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(err.lines().any(|l| l == alert), "{err}");
        if !quiet {
            // The summary's accumulate row: 1 complete, 3 partial.
            let row: Vec<&str> =
                err.lines().find(|l| l.starts_with("assemble ")).unwrap().split_whitespace().collect();
            assert_eq!(row[8..10], ["1", "3"], "{err}");
        }
    }
    // Under the threshold, or none set: no alert.
    for pipeline in ["alert_partial_ratio = 0.8", ""] {
        std::fs::write(d.join("p.toml"), mostly_partial_spec(pipeline)).unwrap();
        let o = garner(&["run", "p.toml"], d);
        assert!(o.status.success() && !stderr(&o).contains("alert:"), "{}", stderr(&o));
    }
}

#[test]
fn redacted_variables_are_kept_out_of_the_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), MOSTLY_PARTIAL).unwrap();
    let run = |pipeline: &str| {
        std::fs::write(d.join("p.toml"), mostly_partial_spec(pipeline)).unwrap();
        let o = garner(&["run", "p.toml"], d);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(d.join("dlq.jsonl")).unwrap()
    };
    let plain = run("");
    assert!(plain.contains("Alice Smith") && plain.contains("7000"), "{plain}");
    let redacted = run("redact = [\"name\", \"limit\"]");
    assert_eq!(redacted.lines().count(), 2, "{redacted}");
    assert!(!redacted.contains("Alice Smith") && !redacted.contains("7000"), "{redacted}");
    assert_eq!(redacted.matches("\"value\":\"<redacted>\"").count(), 2, "{redacted}");
    assert!(redacted.contains("\"var\":\"name\"") && redacted.contains("after_complete"), "{redacted}");
    // The assembled output is data, not telemetry: untouched.
    assert!(std::fs::read_to_string(d.join("out.csv")).unwrap().contains("Alice Smith"));
}

#[test]
fn a_batching_key_cuts_the_stage_input_and_changes_no_row() {
    // A fixed size of 100 rows: the accumulator is called at least once per
    // 100 fragments, and assembles the same 2000 subjects; an adaptive size
    // with a 1 ns target only ever halves.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "fragments.arrow", "ipc");
    for (batching, engine) in [
        (r#"{ mode = "fixed", size = 100 }"#, "sync"),
        (r#"{ mode = "fixed", size = 100 }"#, "steal"),
        (r#"{ mode = "adaptive", min = 50, max = 4096, target_latency = "1ns" }"#, "dataflow"),
    ] {
        let spec = SPEC.replace("spill = true", &format!("spill = true\nbatching = {batching}"));
        std::fs::write(d.join("p.toml"), spec).unwrap();
        let o = garner(&["run", "p.toml", "--engine", engine, "--metrics-out", "m.json"], d);
        let err = stderr(&o);
        assert!(o.status.success(), "{engine}: {err}");
        assert!(err.contains("2000 rows out"), "{engine}: {err}");
        let text = std::fs::read_to_string(d.join("m.json")).unwrap();
        let m = garner::engine::telemetry::MetricsSnapshot::from_json(&text).unwrap();
        let stage = m.stage("assemble").unwrap();
        let adj = stage.flow.adaptive_batch_adjustments;
        if batching.contains("fixed") {
            let (rows, batches) = (stage.stage_rows_in_total, stage.stage_batches_in_total);
            assert!(rows > 7000 && batches * 100 >= rows, "{engine}: {rows} rows in {batches} calls");
            assert_eq!((adj.increment, adj.decrement), (0, 0), "{engine}");
        } else {
            assert_eq!(adj.increment, 0, "{engine}");
            assert!(adj.decrement > 0, "{engine}: {stage:?}");
        }
    }
}
