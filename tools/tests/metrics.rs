//! `garner run --metrics-addr` and `--metrics-out`: a scrape of `/metrics`
//! during a run has every seed metric; the file written at the end agrees
//! with the run's summary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{garner, gen_assemble, rows_out, stderr};
use garner::engine::telemetry::{prometheus, MetricsSnapshot, SEED_METRICS};

/// `GET path` over a plain TCP connection: the status code and the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

#[test]
fn metrics_addr_serves_every_seed_metric_while_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Slow enough to scrape: everything spills under a tiny budget.
    gen_assemble(d, "200000");
    let mut child = Command::new(env!("CARGO_BIN_EXE_garner"))
        .args(["run", "p.toml", "--engine", "steal", "--threads", "2", "--memory-budget", "64KiB"])
        .args(["--metrics-addr", "127.0.0.1:0", "--metrics-out", "final.json"])
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("garner says where it serves");
        if let Some(rest) = line.strip_prefix("metrics: serving http://") {
            break rest.strip_suffix("/metrics").unwrap().to_owned();
        }
    };
    assert_eq!(http_get(&addr, "/").unwrap().0, 404);
    // 503 until the run has started; then the live exposition.
    let start = Instant::now();
    let body = loop {
        let (status, body) = http_get(&addr, "/metrics").unwrap();
        if status == 200 {
            break body;
        }
        assert_eq!(status, 503, "{body}");
        assert!(start.elapsed() < Duration::from_secs(60), "never served");
        std::thread::sleep(Duration::from_millis(5));
    };
    let live = prometheus::parse(&body).unwrap();
    for name in SEED_METRICS {
        assert!(live.has(name) || live.has(&format!("{name}_bucket")), "{name} missing:\n{body}");
    }
    assert_eq!(live.value("pipeline_finished", &[]), Some(0.0), "scraped while running");
    assert_eq!(live.value("pipeline_info", &[("pipeline", "assemble"), ("engine", "steal")]), Some(1.0));
    for stage in ["read", "assemble", "write"] {
        assert!(live.value("stage_throughput", &[("stage", stage)]).is_some(), "{stage}");
    }
    let scraped_in = live.value("pipeline_rows_in_total", &[]).unwrap() as u64;

    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert!(status.success(), "{err}");
    let last = MetricsSnapshot::from_json(&std::fs::read_to_string(d.join("final.json")).unwrap()).unwrap();
    assert!(last.finished);
    assert_eq!(last.pipeline_rows_out_total, rows_out(&err));
    assert_eq!(last.pipeline_rows_out_total, 200_000, "one row per subject");
    assert!(scraped_in <= last.pipeline_rows_in_total);
    let acc = last.stage("assemble").unwrap();
    let a = acc.accumulator.as_ref().unwrap();
    assert_eq!(a.accumulator_complete_total + a.accumulator_partial_flush_total, acc.stage_rows_out_total);
    assert!(a.accumulator_spill_writes_total > 0, "the budget forced spilling");
    assert_eq!(a.accumulator_completeness_ratio.count(), acc.stage_rows_out_total);
    assert!(TcpStream::connect(&addr).is_err(), "the endpoint closes with the run");
}

#[test]
fn metrics_out_writes_prometheus_text_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen_assemble(d, "2000");
    let o = garner(&["run", "p.toml", "--engine", "sync", "--metrics-out", "m.prom"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = prometheus::parse(&std::fs::read_to_string(d.join("m.prom")).unwrap()).unwrap();
    assert_eq!(e.value("pipeline_rows_out_total", &[]), Some(2000.0));
    assert_eq!(e.value("pipeline_finished", &[]), Some(1.0));
    assert_eq!(e.value("stage_rows_in_total", &[("stage", "write")]), Some(2000.0));
    let complete = e.value("accumulator_complete_total", &[("stage", "assemble")]).unwrap();
    let partial = e.value("accumulator_partial_flush_total", &[("stage", "assemble")]).unwrap();
    assert_eq!(complete + partial, 2000.0);
    assert_eq!(e.value("accumulator_completeness_ratio_count", &[("stage", "assemble")]), Some(2000.0));
    // The sync engine times every batch.
    let batches = e.value("stage_batches_in_total", &[("stage", "assemble")]).unwrap();
    assert_eq!(e.value("stage_latency_count", &[("stage", "assemble")]), Some(batches));
}

#[test]
fn bad_metrics_options_fail_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen_assemble(d, "100");
    let o = garner(&["run", "p.toml", "--metrics-out", "m.csv"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(".prom or .txt"), "{}", stderr(&o));
    let o = garner(&["run", "p.toml", "--metrics-addr", "localhost"], d);
    assert!(!o.status.success());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = garner(&["run", "p.toml", "--metrics-addr", &addr], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot listen"), "{}", stderr(&o));
    assert!(!d.join("assembled.parquet").exists(), "nothing ran");
}
