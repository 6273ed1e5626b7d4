#!/usr/bin/env bash
# Installs and starts what the test suite needs, idempotently:
#   - PostgreSQL on 127.0.0.1:5432 (started if installed but not running)
#   - a Python virtualenv at .venv with moto server (the local AWS emulator), cfn-lint, the
#     SAM CLI, cargo-lambda and ziglang (infra/local/requirements.txt)
#   - asl-validator (npm, infra/local/node_modules) and the aarch64 rustup target
# Safe to run again; prints what it does.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

log() { printf '==> %s\n' "$*"; }

# PostgreSQL: tests use postgres://postgres@127.0.0.1:5432/test (override: RETL_TEST_PG_URL).
if [ -z "${RETL_TEST_PG_URL:-}" ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      version="$(ls /etc/postgresql | sort -V | tail -n1)"
      log "starting PostgreSQL $version"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    for _ in $(seq 1 30); do
      pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && break
      sleep 1
    done
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "error: PostgreSQL is not reachable on 127.0.0.1:5432; install and start it, or set RETL_TEST_PG_URL" >&2
    exit 1
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    log "creating database test"
    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
  fi
fi

# Python tools in a virtualenv: moto server (pinned: the Step Functions bridge relies on its
# internals), cfn-lint, the SAM CLI, cargo-lambda and zig.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
log "installing Python tools (moto, cfn-lint, aws-sam-cli, aws-sam-translator, cargo-lambda, ziglang) if missing"
.venv/bin/pip install --quiet -r infra/local/requirements.txt

# Node tools: asl-validator.
if [ ! -x infra/local/node_modules/.bin/asl-validator ]; then
  log "installing asl-validator"
  (cd infra/local && npm install --no-audit --no-fund --silent)
fi

# The functions are built for arm64 (Lambda Graviton).
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  log "adding the rustup target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu || {
    echo "error: the Rust target aarch64-unknown-linux-gnu is needed for the arm64 build of the functions (rustup target add aarch64-unknown-linux-gnu)" >&2
    exit 1
  }
fi
bash infra/scripts/setup-warehouses.sh
log "dev dependencies ready"
