#!/usr/bin/env bash
# The issue-5 figures: the `spill` workload (assemble, random locality,
# spill = true), StealEngine at 2 threads, RUNS interleaved runs of each of:
#   none     no budget (the unspilled throughput and peak)
#   58MiB    1/8 of the unspilled peak
#   1MiB     nothing of the state resident: the process's fixed overhead
# at 1x (2.5M subjects, 9.9M fragments) and 4x (10M subjects, 39.5M).
# Prints each run's summary line. Usage: benches/spill-matrix.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release -q -p garner-tools
bin=${CARGO_TARGET_DIR:-target}/release/garner
mkdir -p target/bench-data
[ -f target/bench-data/random.arrow ] || "$bin" gen --subjects 2500000 --locality random --format ipc --out target/bench-data/random.arrow --quiet
[ -f target/bench-data/random-4x.arrow ] || "$bin" gen --subjects 10000000 --locality random --format ipc --out target/bench-data/random-4x.arrow --quiet
for i in $(seq "$runs"); do
  for spec in spill-random spill-random-4x; do
    for budget in none 58MiB 1MiB; do
      flag=()
      [ "$budget" = none ] || flag=(--memory-budget "$budget")
      echo "$spec $budget: $("$bin" run "benches/specs/$spec.toml" --engine steal --threads 2 "${flag[@]}" 2>&1 | tail -1)"
    done
  done
done
