//! `garner run --metrics-out FILE` and `--metrics-addr ADDR`: the run's
//! metrics written at the end (Prometheus text or JSON, by the file's
//! extension) and served at `/metrics` while it runs.
//!
//! 1. Both are checked before the run starts: the extension must be known,
//!    the address must bind (port 0 picks a free one; the address bound is
//!    printed on stderr as `metrics: serving http://ADDR/metrics`).
//! 2. The server answers `503` until the run has started, then renders a
//!    fresh snapshot per request from a
//!    [`RunMonitor`](garner::engine::RunMonitor); it stops when the run ends.
//! 3. The file is written from the [`RunReport`] (complete or drained).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use garner::engine::telemetry::prometheus;
use garner::engine::{RunMonitor, RunReport};

/// How `--metrics-out` writes, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricsFormat {
    /// `.prom` or `.txt`: the Prometheus text exposition.
    Prometheus,
    /// `.json`: the snapshot as a JSON object.
    Json,
}

impl MetricsFormat {
    /// The format `path`'s extension asks for.
    pub(crate) fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("prom" | "txt") => Ok(MetricsFormat::Prometheus),
            Some("json") => Ok(MetricsFormat::Json),
            _ => bail!(
                "--metrics-out {}: unknown format; name the file .prom or .txt (Prometheus text) or .json",
                path.display()
            ),
        }
    }
}

/// Where `--metrics-out` goes, checked before the run.
#[derive(Debug, Clone)]
pub(crate) struct MetricsOut {
    path: PathBuf,
    format: MetricsFormat,
}

impl MetricsOut {
    pub(crate) fn new(path: PathBuf) -> Result<Self> {
        let format = MetricsFormat::of(&path)?;
        Ok(Self { path, format })
    }

    /// Writes the final metrics of `report`.
    pub(crate) fn write(&self, report: &RunReport) -> Result<()> {
        let metrics = report.metrics();
        let text = match self.format {
            MetricsFormat::Prometheus => metrics.to_prometheus(),
            MetricsFormat::Json => metrics.to_json(),
        };
        std::fs::write(&self.path, text)
            .with_context(|| format!("--metrics-out: cannot write {}", self.path.display()))
    }
}

/// The `/metrics` endpoint of `--metrics-addr`.
pub(crate) struct MetricsServer {
    monitor: Arc<OnceLock<RunMonitor>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and starts answering (503 until [`serve`](Self::serve)).
    pub(crate) fn bind(addr: SocketAddr) -> Result<Self> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: cannot listen: {e}"))?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let monitor: Arc<OnceLock<RunMonitor>> = Arc::new(OnceLock::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (monitor.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("garner-metrics".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(50)) {
                        Ok(Some(request)) => {
                            // A client that went away is no concern of the run.
                            let response = respond(request.url(), m.get());
                            let _ = request.respond(response);
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })
            .context("cannot start the metrics thread")?;
        Ok(Self { monitor, stop, thread: Some(thread), addr })
    }

    /// The address bound (the port chosen, for port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `monitor`'s snapshots from now on.
    pub(crate) fn serve(&self, monitor: RunMonitor) {
        let _ = self.monitor.set(monitor);
    }
}

impl Drop for MetricsServer {
    /// Stops answering and waits for the server thread.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn respond(url: &str, monitor: Option<&RunMonitor>) -> Response {
    let path = url.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404);
    }
    let Some(monitor) = monitor else {
        return tiny_http::Response::from_string("the run has not started\n").with_status_code(503);
    };
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], prometheus::CONTENT_TYPE.as_bytes())
        .expect("a valid header");
    tiny_http::Response::from_string(monitor.metrics().to_prometheus()).with_header(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_picks_the_format() {
        assert_eq!(MetricsFormat::of(Path::new("m.prom")).unwrap(), MetricsFormat::Prometheus);
        assert_eq!(MetricsFormat::of(Path::new("m.TXT")).unwrap(), MetricsFormat::Prometheus);
        assert_eq!(MetricsFormat::of(Path::new("out/m.json")).unwrap(), MetricsFormat::Json);
        let err = MetricsFormat::of(Path::new("m.csv")).unwrap_err().to_string();
        assert!(err.contains(".prom") && err.contains("m.csv"), "{err}");
        assert!(MetricsFormat::of(Path::new("metrics")).is_err());
    }

    #[test]
    fn only_metrics_is_served_and_only_once_the_run_started() {
        assert_eq!(respond("/", None).status_code().0, 404);
        assert_eq!(respond("/metrics", None).status_code().0, 503);
    }
}
