#!/usr/bin/env bash
# Checks the deployment artefacts offline: cfn-lint and `sam validate --lint` on template.yaml,
# the functions' IAM against the SDK operations the code calls (infra/local/check_iam.py),
# and asl-validator on the state machine (with the template's substitutions filled in). The
# functions' arm64 build is infra/scripts/build-functions.sh.
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
import re, sys
from cfnlint.decode import decode
template, problems = decode("template.yaml")
if problems:
    sys.exit(f"template.yaml does not parse: {problems}")
wrong = []
for name, res in template["Resources"].items():
    if res["Type"] != "AWS::Serverless::Function":
        continue
    got = (res["Properties"].get("Environment") or {}).get("Variables", {}).get("RETL_FUNCTION")
    want = re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Function")).lower()
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

echo "==> infrastructure checks passed"
