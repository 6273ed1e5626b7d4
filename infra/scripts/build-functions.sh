#!/usr/bin/env bash
# `sam build` of the seven functions for arm64 (the root Makefile: one cargo-lambda build with
# zig of the binary every function deploys), and checks that each function's bootstrap is an
# aarch64 ELF, stripped; prints their sizes. Expects the tools of infra/scripts/setup-dev.sh
# (.venv: the SAM CLI, cargo-lambda, ziglang).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

echo "==> sam build (one arm64 release binary for the seven functions: root Makefile, cargo-lambda)"
sam build --template template.yaml
for fn in TriggerFunction ExtractFunction PlanFunction ApprovalFunction ApplyFunction FinalizeFunction DbtWebhookFunction; do
  bin=".aws-sam/build/$fn/bootstrap"
  test -x "$bin" || { echo "error: $fn/bootstrap was not built" >&2; exit 1; }
  kind="$(file -b "$bin")"
  grep -q "aarch64" <<< "$kind" || { echo "error: $fn is not an arm64 binary: $kind" >&2; exit 1; }
  grep -q ", stripped" <<< "$kind" || { echo "error: $fn is not stripped: $kind" >&2; exit 1; }
  printf '    %-17s %s bytes (%s MiB)\n' "$fn" "$(stat -c %s "$bin")" "$(( $(stat -c %s "$bin") / 1048576 ))"
done
echo "==> the functions' arm64 build passed"
