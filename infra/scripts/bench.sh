#!/usr/bin/env bash
# The benchmark: bash infra/scripts/bench.sh [ROWS]   (default 1,000,000)
# Builds the release CLI, then runs infra/bench/bench.py: the first run, a no-change run and
# `retl plan` of a 10%/5%/5% change on ROWS rows, timed from the CLI with peak memory, beside
# the same diff in DuckDB when the dev virtualenv has it (bash infra/scripts/setup-warehouses.sh
# installs it). BENCH_RUNS sets the repetitions of the timed plan (default 5).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release -p retl-cli --quiet
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export RETL_BIN="$target/release/retl"
if [ -x .venv/bin/python ]; then export BENCH_PYTHON="$root/.venv/bin/python"; fi
exec python3 infra/bench/bench.py "$@"
