"""ssm_automation.py - Systems Manager Automation executions on moto, from the stored runbooks.

moto (5.2.5) stores SSM documents (CreateDocument) but runs no automation: it knows none of
the operations below. install(lambda_client) adds them to moto's SSM handler, as the AWS API
reference shapes them (moto serializes the answers and errors with botocore's SSM model):

- StartAutomationExecution {DocumentName, DocumentVersion?, Parameters} -> {AutomationExecutionId}:
  the document moto stores (its Content, e.g. created from template.yaml), its parameters
  checked (required ones present, no unknown ones, allowedPattern), then its mainSteps run in
  a thread.
- GetAutomationExecution {AutomationExecutionId} -> {AutomationExecution}: status, document,
  parameters, ExecutedBy (the starter's ARN) and StepExecutions (Inputs, Outputs, StepStatus,
  FailureMessage).
- SendAutomationSignal {AutomationExecutionId, SignalType: Approve | Reject, Payload: {Comment}}:
  the signer's identity is the ARN of the access key that signed the request (moto's STS
  GetCallerIdentity: an IAM user, or an assumed role's session); a signer not named in the
  waiting aws:approve step's Approvers (user name, user ARN, role ARN or assumed-role ARN) is
  refused, as is a signal to an execution with no step waiting for approval.
- StopAutomationExecution {AutomationExecutionId, Type}: the execution ends Cancelled.

Step actions run: aws:approve (Waiting until MinRequiredApprovals approvers approved, or one
rejected: Outputs ApprovalStatus and ApproverDecisions, one JSON map per decision with Approver,
ApprovalStatus, ApprovalDecisionTime and Comment; past timeoutSeconds the step and the
execution end TimedOut, without running the next step, as AWS documents), and
aws:invokeLambdaFunction (through the bridge's Lambda client: Payload, StatusCode,
FunctionError). Transitions: nextStep, isEnd, onFailure (Abort, Continue, step:NAME).
Variables: {{ Parameter }} and {{ automation:EXECUTION_ID }}. Any other action fails its step,
saying so, rather than passing silently.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from moto.ssm.exceptions import SSMException as ServiceException
from moto.core.responses import ActionResult

_EXECUTIONS: dict[str, "_Execution"] = {}
_LOCK = threading.Condition()
_VARIABLE = re.compile(r"\{\{\s*([\w:]+)\s*\}\}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Execution:
    def __init__(self, doc: Any, params: dict[str, list[str]], executor: str):
        self.id = str(uuid.uuid4())
        self.doc = doc
        self.params = params
        self.executor = executor
        self.status = "InProgress"
        self.started = _now()
        self.ended: datetime | None = None
        self.failure: str | None = None
        self.steps: list[dict[str, Any]] = []
        self.signals: list[dict[str, Any]] = []

    def variable(self, name: str) -> str:
        if name == "automation:EXECUTION_ID":
            return self.id
        if name in self.params:
            return ",".join(self.params[name])
        raise ServiceException("InvalidAutomationExecutionParametersException",
                               f"the runbook refers to {{{{ {name} }}}}, which is no parameter")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            whole = _VARIABLE.fullmatch(value.strip())
            if whole and whole.group(1) in self.params and len(self.params[whole.group(1)]) > 1:
                return list(self.params[whole.group(1)])
            return _VARIABLE.sub(lambda m: self.variable(m.group(1)), value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AutomationExecutionId": self.id,
            "DocumentName": self.doc.name,
            "DocumentVersion": self.doc.document_version,
            "ExecutionStartTime": self.started,
            "AutomationExecutionStatus": self.status,
            "Parameters": self.params,
            "ExecutedBy": self.executor,
            "Mode": "Auto",
            "StepExecutions": [dict(s) for s in self.steps],
        }
        if self.ended:
            out["ExecutionEndTime"] = self.ended
        if self.failure:
            out["FailureMessage"] = self.failure
        return out


def _approver_matches(approver: str, arn: str) -> bool:
    if approver == arn:
        return True
    if not approver.startswith("arn:"):
        return arn.endswith(f":user/{approver}") or arn.endswith(f"/{approver}")
    role = re.fullmatch(r"arn:([\w-]+):iam::(\d+):role/(?:.*/)?([\w+=,.@-]+)", approver)
    session = re.fullmatch(r"arn:([\w-]+):sts::(\d+):assumed-role/([\w+=,.@-]+)/.+", arn)
    return bool(role and session and role.groups() == session.groups())


def _run(execution: _Execution, invoke: Callable[..., dict[str, Any]]) -> None:
    steps = execution.doc.content_json.get("mainSteps") or []
    index = {s["name"]: i for i, s in enumerate(steps)}
    i = 0
    while 0 <= i < len(steps):
        spec = steps[i]
        step: dict[str, Any] = {
            "StepName": spec["name"], "Action": spec["action"], "StepStatus": "InProgress",
            "ExecutionStartTime": _now(), "StepExecutionId": str(uuid.uuid4()),
            "OnFailure": spec.get("onFailure", "Abort"), "Inputs": {}, "Outputs": {},
        }
        with _LOCK:
            if execution.status != "InProgress" and execution.status != "Waiting":
                return
            execution.steps.append(step)
        try:
            inputs = execution.resolve(spec.get("inputs", {}))
            step["Inputs"] = {k: json.dumps(v) if not isinstance(v, str) else v
                              for k, v in inputs.items()}
            if spec["action"] == "aws:approve":
                ok = _approve(execution, step, spec, inputs)
            elif spec["action"] == "aws:invokeLambdaFunction":
                ok = _invoke(step, inputs, invoke)
            else:
                step["FailureMessage"] = f"this emulator does not run {spec['action']} steps"
                ok = False
        except ServiceException as e:
            step["FailureMessage"] = f"{e.code}: {e.message}"
            ok = False
        except Exception as e:  # noqa: BLE001  (a failed step, as AWS reports it)
            step["FailureMessage"] = str(e)
            ok = False
        step["ExecutionEndTime"] = _now()
        with _LOCK:
            if step["StepStatus"] in ("TimedOut", "Cancelled"):
                execution.status = step["StepStatus"]
                execution.ended = _now()
                _LOCK.notify_all()
                return
            step["StepStatus"] = "Success" if ok else "Failed"
        if not ok:
            on_failure = spec.get("onFailure", "Abort")
            if on_failure.startswith("step:"):
                i = index[on_failure[5:]]
                continue
            if on_failure != "Continue":
                with _LOCK:
                    execution.status = "Failed"
                    execution.failure = f"Step {spec['name']} failed: {step.get('FailureMessage')}"
                    execution.ended = _now()
                return
        if spec.get("isEnd"):
            break
        i = index[spec["nextStep"]] if "nextStep" in spec else i + 1
    with _LOCK:
        if execution.status in ("InProgress", "Waiting"):
            execution.status = "Success"
            execution.ended = _now()


def _approve(execution: _Execution, step: dict[str, Any], spec: dict[str, Any],
             inputs: dict[str, Any]) -> bool:
    approvers = inputs.get("Approvers") or []
    if isinstance(approvers, str):
        approvers = [a.strip() for a in approvers.split(",")]
    needed = int(inputs.get("MinRequiredApprovals", 1))
    if not approvers or needed > len(approvers):
        raise ServiceException("ValidationException",
                               f"MinRequiredApprovals {needed} exceeds the {len(approvers)} Approvers")
    timeout = float(spec.get("timeoutSeconds", 604800))
    deadline = _now().timestamp() + timeout
    decisions: dict[str, dict[str, Any]] = {}  # by approver: a second signal replaces the first
    with _LOCK:
        step["StepStatus"] = "Waiting"
        step["_approvers"] = approvers
        execution.status = "Waiting"
        while True:
            while execution.signals:
                signal = execution.signals.pop(0)
                decisions[signal["Approver"]] = signal
            approved = [d for d in decisions.values() if d["ApprovalStatus"] == "Approve"]
            rejected = [d for d in decisions.values() if d["ApprovalStatus"] == "Reject"]
            if rejected or len(approved) >= needed:
                break
            if execution.status == "Cancelled":
                step["StepStatus"] = "Cancelled"
                return False
            left = deadline - _now().timestamp()
            if left <= 0:
                step["StepStatus"] = "TimedOut"
                step["FailureMessage"] = "Step timed out while waiting for approval"
                return False
            _LOCK.wait(timeout=min(left, 1.0))
        step.pop("_approvers", None)
        execution.status = "InProgress"
        status = "Rejected" if rejected else "Approved"
        step["Outputs"] = {
            "ApprovalStatus": [status],
            "ApproverDecisions": [json.dumps(d) for d in decisions.values()],
        }
    if rejected:
        step["FailureMessage"] = f"Step rejected by {rejected[0]['Approver']}"
    return not rejected


def _invoke(step: dict[str, Any], inputs: dict[str, Any],
            invoke: Callable[..., dict[str, Any]]) -> bool:
    payload = inputs.get("Payload", "{}")
    answer = invoke(FunctionName=inputs["FunctionName"], Payload=payload)
    body = answer["Payload"].read().decode(errors="replace")
    step["Outputs"] = {"StatusCode": [str(answer.get("StatusCode", 200))], "Payload": [body]}
    if answer.get("FunctionError"):
        step["Outputs"]["FunctionError"] = [answer["FunctionError"]]
        step["FailureMessage"] = f"the function failed: {body[:500]}"
        return False
    return True


def _access_arn(handler: Any) -> str:
    from moto.sts.models import sts_backends

    sts = sts_backends[handler.current_account][handler.partition]
    return sts.get_caller_identity(handler.get_access_key(), handler.region)[1]


def _execution(handler: Any) -> _Execution:
    execution_id = handler._get_param("AutomationExecutionId")
    with _LOCK:
        found = _EXECUTIONS.get(execution_id)
    if not found:
        raise ServiceException("AutomationExecutionNotFoundException",
                               f"Automation execution {execution_id} does not exist")
    return found


def _check_parameters(doc: Any, given: dict[str, list[str]]) -> dict[str, list[str]]:
    declared = doc.content_json.get("parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ServiceException("InvalidAutomationExecutionParametersException",
                               f"Parameters {unknown} are not defined in the document")
    out: dict[str, list[str]] = {}
    for name, spec in declared.items():
        if name in given:
            values = given[name]
        elif "default" in spec:
            default = spec["default"]
            values = default if isinstance(default, list) else [str(default)]
        else:
            raise ServiceException("InvalidAutomationExecutionParametersException",
                                   f"Parameter {name} is required")
        pattern = spec.get("allowedPattern")
        for v in values:
            if pattern and not re.search(pattern, v):
                raise ServiceException("InvalidAutomationExecutionParametersException",
                                       f"Parameter {name} does not match {pattern}")
        out[name] = list(values)
    return out


def install(invoke: Callable[..., dict[str, Any]]) -> None:
    """Adds the Automation operations to moto's SSM handler; `invoke(FunctionName, Payload)`
    runs aws:invokeLambdaFunction steps."""
    from moto.ssm.responses import SimpleSystemManagerResponse

    def start_automation_execution(self: Any) -> ActionResult:
        name = self._get_param("DocumentName")
        version = self._get_param("DocumentVersion")
        docs = self.ssm_backend._documents.get(name)
        if not docs:
            raise ServiceException("InvalidDocument", f"Document {name} does not exist")
        doc = docs.find_by_version(version) if version not in (None, "$DEFAULT") \
            else docs.get_default_version()
        if doc is None:
            raise ServiceException("InvalidDocumentVersion",
                                   f"Document {name} has no version {version}")
        if doc.document_type != "Automation":
            raise ServiceException("InvalidDocumentType",
                                   f"Document {name} is a {doc.document_type} document")
        params = _check_parameters(doc, self._get_param("Parameters") or {})
        execution = _Execution(doc, params, _access_arn(self))
        with _LOCK:
            _EXECUTIONS[execution.id] = execution
        threading.Thread(target=_run, args=(execution, invoke), daemon=True).start()
        return ActionResult({"AutomationExecutionId": execution.id})

    def get_automation_execution(self: Any) -> ActionResult:
        execution = _execution(self)
        with _LOCK:
            described = execution.describe()
        for s in described["StepExecutions"]:
            s.pop("_approvers", None)
        return ActionResult({"AutomationExecution": described})

    def send_automation_signal(self: Any) -> ActionResult:
        execution = _execution(self)
        signal = self._get_param("SignalType")
        if signal not in ("Approve", "Reject"):
            raise ServiceException("InvalidAutomationSignalException",
                                   f"this emulator takes Approve and Reject signals, not {signal}")
        comment = (self._get_param("Payload") or {}).get("Comment") or [""]
        arn = _access_arn(self)
        with _LOCK:
            waiting = [s for s in execution.steps if s["StepStatus"] == "Waiting"]
            if not waiting:
                raise ServiceException("InvalidAutomationStatusUpdateException",
                                       f"Automation execution {execution.id} is not waiting "
                                       f"for approval ({execution.status})")
            approvers = waiting[0].get("_approvers", [])
            if not any(_approver_matches(a, arn) for a in approvers):
                raise ServiceException("InvalidAutomationSignalException",
                                       f"{arn} is not an approver of this step")
            execution.signals.append({
                "Approver": arn, "ApprovalStatus": signal,
                "ApprovalDecisionTime": _now().isoformat(), "Comment": comment[0],
            })
            _LOCK.notify_all()
        return ActionResult({})

    def stop_automation_execution(self: Any) -> ActionResult:
        execution = _execution(self)
        with _LOCK:
            if execution.status in ("InProgress", "Waiting"):
                execution.status = "Cancelled"
                execution.ended = _now()
            _LOCK.notify_all()
        return ActionResult({})

    for f in (start_automation_execution, get_automation_execution, send_automation_signal,
              stop_automation_execution):
        assert not hasattr(SimpleSystemManagerResponse, f.__name__), "moto implements it now"
        setattr(SimpleSystemManagerResponse, f.__name__, f)
