#!/usr/bin/env bash
# The issue-4 figures: the `assemble` workload at 1x (u64 and IRI keys,
# window and random locality) and 4x (window), StealEngine at 2 threads,
# RUNS runs of each, interleaved; prints each run's summary line. Generates
# the inputs once into target/bench-data/. Usage: benches/assemble-matrix.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-6}
cargo build --release -q -p garner-tools
bin=${CARGO_TARGET_DIR:-target}/release/garner
mkdir -p target/bench-data
make() { # file subjects locality key
  [ -f "target/bench-data/$1" ] || "$bin" gen --subjects "$2" --locality "$3" --key "$4" --format ipc --out "target/bench-data/$1" --quiet
}
make window.arrow 2500000 window u64
make random.arrow 2500000 random u64
make window-4x.arrow 10000000 window u64
make window-utf8.arrow 2500000 window iri
make random-utf8.arrow 2500000 random iri
for i in $(seq "$runs"); do
  for spec in window random window-4x window-iri random-iri; do
    echo "$spec: $("$bin" run "benches/specs/assemble-$spec.toml" --engine steal --threads 2 2>&1 | tail -1)"
  done
done
