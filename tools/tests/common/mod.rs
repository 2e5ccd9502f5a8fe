//! Helpers shared by the `garner` binary's tests.

#![allow(dead_code)] // each test file uses a part

use std::path::Path;
use std::process::{Command, Output};

/// Runs `garner args` in `dir`.
pub(crate) fn garner(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_garner")).args(args).current_dir(dir).output().expect("runs garner")
}

/// A run's standard error as text.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An assemble pipeline over `fragments.arrow`, spilling, into `assembled.parquet`.
pub(crate) const ASSEMBLE_SPEC: &str = r#"
[pipeline]
name = "assemble"

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

/// `subjects` subjects' fragments and [`ASSEMBLE_SPEC`] as `p.toml`, in `dir`.
pub(crate) fn gen_assemble(dir: &Path, subjects: &str) {
    let o = garner(
        &["gen", "--subjects", subjects, "--locality", "random", "--out", "fragments.arrow", "--quiet"],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.join("p.toml"), ASSEMBLE_SPEC).unwrap();
}

/// The `N` of the summary's `N rows out` line.
pub(crate) fn rows_out(err: &str) -> u64 {
    let line = err.lines().find(|l| l.contains(" rows out in ")).unwrap_or_else(|| panic!("{err}"));
    line.split(" rows in, ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap()
}
