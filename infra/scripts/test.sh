#!/usr/bin/env bash
# The whole test suite, in one command: bash infra/scripts/test.sh
# Installs/starts what it needs (infra/scripts/setup-dev.sh), then runs formatting and lint
# checks and every test of the workspace against real PostgreSQL, real HTTP servers and a
# local AWS emulator (moto server).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bash infra/scripts/setup-dev.sh
export RETL_PYTHON="$root/.venv/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (all targets, all features)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "==> building binaries used by the end-to-end tests"
cargo build --workspace --bins --all-features
echo "==> cargo test"
cargo test --workspace --all-features --no-fail-fast
bash infra/scripts/check-infra.sh
echo "==> all tests passed"
