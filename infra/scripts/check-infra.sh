#!/usr/bin/env bash
# Checks the deployment artefacts offline: cfn-lint and `sam validate --lint` on template.yaml,
# the functions' IAM against the SDK operations the code calls (infra/local/check_iam.py),
# asl-validator on the state machine (with the template's substitutions filled in), and
# `sam build` of the six functions for arm64 (the root Makefile: one cargo-lambda build with
# zig of the binary every function deploys), each an aarch64 ELF, stripped.
# Expects the tools of infra/scripts/setup-dev.sh (.venv and infra/local/node_modules).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

echo "==> cfn-lint template.yaml"
cfn-lint template.yaml

echo "==> each function's RETL_FUNCTION names its own handler"
python3 - <<'PY'
import sys
from cfnlint.decode import decode
template, problems = decode("template.yaml")
if problems:
    sys.exit(f"template.yaml does not parse: {problems}")
wrong = []
for name, res in template["Resources"].items():
    if res["Type"] != "AWS::Serverless::Function":
        continue
    got = (res["Properties"].get("Environment") or {}).get("Variables", {}).get("RETL_FUNCTION")
    want = name.removesuffix("Function").lower()
    if got != want:
        wrong.append(f"{name}: RETL_FUNCTION is {got!r}, expected {want!r}")
if wrong:
    sys.exit("\n".join(wrong))
PY

echo "==> every AWS SDK operation the code calls is granted to the functions that call it"
python3 infra/local/check_iam.py "$root"

echo "==> sam validate --lint"
sam validate --lint --template template.yaml

echo "==> asl-validator on infra/statemachine/sync.asl.json"
rendered="$(mktemp --suffix .json)"
trap 'rm -f "$rendered"' EXIT
python3 - "$rendered" <<'PY'
import re, sys
text = open("infra/statemachine/sync.asl.json").read()
values = {"PlanConcurrency": "16", "ApplyConcurrency": "4", "ArtifactsBucket": "retl-artifacts",
          "RunsTable": "retl-runs"}
def fill(m):
    name = m.group(1)
    if name.endswith("FunctionArn"):
        return "arn:aws:lambda:us-east-1:123456789012:function:retl-" + name[:-len("FunctionArn")].lower()
    return values[name]
text = re.sub(r"\$\{(\w+)\}", fill, text)
open(sys.argv[1], "w").write(text)
PY
infra/local/node_modules/.bin/asl-validator --json-path "$rendered"

echo "==> sam build (one arm64 release binary for the six functions: root Makefile, cargo-lambda)"
sam build --template template.yaml
for f in trigger extract plan approval apply finalize; do
  fn="$(tr '[:lower:]' '[:upper:]' <<< "${f:0:1}")${f:1}Function"
  bin=".aws-sam/build/$fn/bootstrap"
  test -x "$bin" || { echo "error: $fn/bootstrap was not built" >&2; exit 1; }
  kind="$(file -b "$bin")"
  grep -q "aarch64" <<< "$kind" || { echo "error: $fn is not an arm64 binary: $kind" >&2; exit 1; }
  grep -q ", stripped" <<< "$kind" || { echo "error: $fn is not stripped: $kind" >&2; exit 1; }
  printf '    %-17s %s bytes (%s MiB)\n' "$fn" "$(stat -c %s "$bin")" "$(( $(stat -c %s "$bin") / 1048576 ))"
done
echo "==> infrastructure checks passed"
