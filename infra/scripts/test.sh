#!/usr/bin/env bash
# The whole test suite, in one command: bash infra/scripts/test.sh
# Installs/starts what it needs (infra/scripts/setup-dev.sh), then runs formatting and lint
# checks, every test of the workspace against real PostgreSQL, real HTTP servers and a local
# AWS emulator (moto server), and the infrastructure checks (infra/scripts/check-infra.sh).
# Prints the wall time of each stage at the end, also when a stage fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

# Stage timing: `stage NAME` ends the previous stage and starts the next; the EXIT trap
# prints the table whatever ends the script.
stages=()
stage_name=""
stage_start=0
script_start=$SECONDS
end_stage() {
  if [ -n "$stage_name" ]; then
    stages+=("$(printf '%-24s %4ds%s' "$stage_name" $((SECONDS - stage_start)) "${1:-}")")
    stage_name=""
  fi
}
stage() {
  end_stage
  stage_name="$1"
  stage_start=$SECONDS
  echo "==> [$1] ${2:-}"
}
report() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then end_stage "  FAILED (exit $rc)"; else end_stage; fi
  echo
  echo "==> stage times (wall clock)"
  for line in "${stages[@]}"; do echo "    $line"; done
  printf '    %-24s %4ds\n' "total" $((SECONDS - script_start))
  if [ "$rc" -eq 0 ]; then echo "==> all tests passed"; fi
}
trap report EXIT

stage setup "infra/scripts/setup-dev.sh"
bash infra/scripts/setup-dev.sh
export RETL_PYTHON="$root/.venv/bin/python"

stage fmt "cargo fmt --check"
cargo fmt --all -- --check

stage clippy "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

# One feature set for everything built from here on (the same as clippy's), so that the
# binaries, the test binaries and the test runs share every compiled dependency.
stage build "the binaries the end-to-end tests run, and the test binaries"
cargo build --workspace --bins --all-features
cargo test --workspace --all-features --no-run

stage tests "every test of the workspace"
if cargo nextest --version >/dev/null 2>&1; then
  # Tests of all binaries run side by side; doc tests are not nextest's, so cargo runs them.
  cargo nextest run --workspace --all-features --no-fail-fast
  cargo test --workspace --all-features --doc
else
  echo "note: cargo-nextest is not installed (cargo install cargo-nextest --locked);" \
    "running the tests with cargo test, one test binary at a time"
  cargo test --workspace --all-features --no-fail-fast
fi

stage infrastructure "infra/scripts/check-infra.sh"
bash infra/scripts/check-infra.sh
