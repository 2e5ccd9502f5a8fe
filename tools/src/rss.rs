//! Peak resident memory of this process.

/// Peak RSS in bytes (Linux `VmHWM`), if the platform tells.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak RSS for humans: `123.4 MiB`, or `n/a`.
pub(crate) fn peak_rss_text() -> String {
    match peak_rss_bytes() {
        Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        None => "n/a".into(),
    }
}
