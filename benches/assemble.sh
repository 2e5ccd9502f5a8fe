#!/usr/bin/env bash
# The `assemble` benchmark (DESIGN §10) as whole processes: generate the
# input once (10M fragments from 2.5M subjects by default), then
# `garner run` each locality with the given engine, printing rows/s and
# peak RSS. Usage: benches/assemble.sh [SUBJECTS] [ENGINE] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
subjects=${1:-2500000}
engine=${2:-sync}
threads=${3:-2}
cargo build --release -q -p garner-tools
bin=${CARGO_TARGET_DIR:-target}/release/garner
mkdir -p target/bench-data
for locality in window random; do
  data=target/bench-data/$locality.arrow
  stamp=target/bench-data/$locality.subjects
  if [ ! -f "$data" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$subjects" ]; then
    "$bin" gen --subjects "$subjects" --locality "$locality" --format ipc --out "$data" --quiet
    echo "$subjects" > "$stamp"
  fi
  echo "== $locality locality, $subjects subjects, engine $engine, $threads threads"
  "$bin" run "benches/specs/assemble-$locality.toml" --engine "$engine" --threads "$threads" 2>&1 | tail -1
done
