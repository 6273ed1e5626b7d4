#!/usr/bin/env bash
# The whole test suite, in one command: bash infra/scripts/test.sh
# Installs/starts what it needs (infra/scripts/setup-dev.sh), then runs formatting and lint
# checks, every test of the workspace against real PostgreSQL, real HTTP servers and a local
# AWS emulator (moto server), and the infrastructure checks (infra/scripts/check-infra.sh).
# Prints the wall and CPU time of each stage at the end, also when a stage fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

# Stage timing: `stage NAME` ends the previous stage and starts the next; the EXIT trap
# prints the table whatever ends the script. Besides wall time, the CPU time of the stage's
# processes (user + system, from bash's `times`): on a shared machine the wall time says how
# long it took today, the CPU time how much work it was.
stages=()
stage_name=""
stage_start=0
stage_cpu=0
script_start=$SECONDS
times_file="$(mktemp)"
cpu_now() {
  # Sets `cpu` to the children's line of `times` ("12m3.456s 0m7.890s") in whole seconds.
  # `times` must run in this shell: in a pipe or $(...) it runs in a subshell, which has no
  # children, so it writes to a file.
  times > "$times_file"
  cpu=$(awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); n += t[1] * 60 + t[2] }
                       printf "%d", n }' "$times_file")
}
end_stage() {
  if [ -n "$stage_name" ]; then
    cpu_now
    stages+=("$(printf '%-16s %6ds %6ds%s' "$stage_name" $((SECONDS - stage_start)) \
      $((cpu - stage_cpu)) "${1:-}")")
    stage_name=""
  fi
}
stage() {
  end_stage
  stage_name="$1"
  stage_start=$SECONDS
  cpu_now
  stage_cpu=$cpu
  echo "==> [$1] ${2:-}"
}
functions_pid=""
report() {
  local rc=$?
  if [ -n "$functions_pid" ]; then kill -- "-$functions_pid" 2>/dev/null || true; fi
  if [ "$rc" -ne 0 ]; then end_stage "  FAILED (exit $rc)"; else end_stage; fi
  cpu_now
  echo
  printf '==> %-16s %7s %7s\n' "stage" "wall" "cpu"
  for line in "${stages[@]}"; do echo "    $line"; done
  printf '    %-16s %6ds %6ds\n' "total" $((SECONDS - script_start)) "$cpu"
  rm -f "$times_file"
  if [ "$rc" -eq 0 ]; then echo "==> all tests passed"; fi
}
trap report EXIT

# One build from scratch: incremental compilation would only add gigabytes of caches to it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

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

# The functions' arm64 build is about half of this script's CPU time and shares nothing with
# the host build; the tests mostly wait on servers, so it runs beside them, niced so that the
# tests' servers come first, in its own process group so that an early exit can stop it.
stage tests "every test of the workspace (the functions' arm64 build runs beside them)"
functions_log="$root/target/build-functions.log"
setsid nice -n 10 bash infra/scripts/build-functions.sh > "$functions_log" 2>&1 &
functions_pid=$!
if cargo nextest --version >/dev/null 2>&1; then
  # Tests of all binaries run side by side, four at a time: most of a test's time is spent
  # waiting on servers (moto, PostgreSQL, fakes), about a quarter of two cores when two run.
  # Doc tests are not nextest's, so cargo runs them.
  export NEXTEST_TEST_THREADS="${NEXTEST_TEST_THREADS:-4}"
  cargo nextest run --workspace --all-features --no-fail-fast
  cargo test --workspace --all-features --doc
else
  echo "note: cargo-nextest is not installed (cargo install cargo-nextest --locked);" \
    "running the tests with cargo test, one test binary at a time"
  cargo test --workspace --all-features --no-fail-fast
fi

stage infrastructure "infra/scripts/check-infra.sh"
bash infra/scripts/check-infra.sh

stage functions "infra/scripts/build-functions.sh (started with the tests; log: target/build-functions.log)"
functions_rc=0
wait "$functions_pid" || functions_rc=$?
functions_pid=""
cat "$functions_log"
[ "$functions_rc" -eq 0 ] || exit "$functions_rc"
