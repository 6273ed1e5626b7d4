"""moto_iam.py - the resources AWS authorizes each request on, for moto's IAM enforcement.

moto (5.2.5) checks IAM policies only once INITIAL_NO_AUTH_ACTION_COUNT requests were served,
and then, for every service but S3, IAM and SQS, against the resource "*": a policy scoped to a
table, topic, secret or state machine ARN (as template.yaml's are) never matches, so every
call would be denied. install() gives DynamoDB, SNS, Secrets Manager, Step Functions and
EventBridge the resources AWS uses (the Service Authorization Reference's resource types):

- DynamoDB: the table of `TableName`; BatchWriteItem/BatchGetItem each table of
  `RequestItems`; TransactWriteItems each item as the action it performs (Put -> PutItem,
  Update -> UpdateItem, Delete -> DeleteItem, ConditionCheck -> ConditionCheckItem), as AWS
  does (TransactWriteItems itself is no IAM action); TransactGetItems each Get as GetItem.
- SNS: the topic of `TopicArn`/`TargetArn`.
- Secrets Manager: the secret's ARN (its random suffix included).
- Step Functions: `stateMachineArn` or `executionArn`; SendTask* on "*" (no resource type).
- EventBridge PutEvents: each entry's event bus.
- EventBridge Scheduler: the schedule (`schedule/GROUP/NAME`) or the schedule group.
- Systems Manager: StartAutomationExecution the runbook's automation-definition
  (`automation-definition/NAME:VERSION`, `$DEFAULT` when none is given); the other
  Automation operations the execution (`automation-execution/ID`).
- S3 DeleteObjects: s3:DeleteObject on each key (moto checks it on the bucket's ARN, which a
  policy granting `bucket/*` does not match, while AWS checks each object).

Signatures of form-encoded requests (SNS's query protocol) are not checked: moto recomputes
them from the parameters re-encoded by botocore, which differs from the Rust SDK's encoding of
the same parameters (a message with spaces or quotes fails as SignatureDoesNotMatch). Nor are
EventBridge Scheduler's: moto recomputes them wrongly for its REST paths (every Rust SDK call
fails as SignatureDoesNotMatch). The
caller's identity still comes from its access key; authorization is what is under test.

With enforcement off (the default, INITIAL_NO_AUTH_ACTION_COUNT = infinity) nothing changes.
"""

from __future__ import annotations

import json
from typing import Any

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.access_control import IAMRequest

_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _json_body(handler: Any) -> dict[str, Any]:
    try:
        body = json.loads(handler.raw_body or b"{}")
    except (ValueError, TypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _dynamodb_checks(h: Any, action: str) -> list[tuple[str, str]]:
    body = _json_body(h)
    table = lambda name: f"arn:aws:dynamodb:{h.region}:{h.current_account}:table/{name}"  # noqa: E731
    if action in ("BatchWriteItem", "BatchGetItem"):
        return [(action, table(t)) for t in body.get("RequestItems", {})]
    if action in ("TransactWriteItems", "TransactGetItems"):
        checks = []
        for item in body.get("TransactItems", []):
            for kind, op in item.items():
                checks.append((_TRANSACT_ACTIONS.get(kind, action), table(op.get("TableName", ""))))
        return checks
    if "TableName" in body:
        return [(action, table(body["TableName"]))]
    return [(action, "*")]


def _sns_checks(h: Any, action: str) -> list[tuple[str, str]]:
    # Query protocol (boto3) or JSON (newer SDKs, the Rust one among them).
    body = _json_body(h)
    param = lambda name: h._get_param(name) or body.get(name)  # noqa: E731
    topic = param("TopicArn") or param("TargetArn")
    if not topic and action == "CreateTopic" and param("Name"):
        topic = f"arn:aws:sns:{h.region}:{h.current_account}:{param('Name')}"
    return [(action, topic or "*")]


def _secrets_checks(h: Any, action: str) -> list[tuple[str, str]]:
    secret_id = _json_body(h).get("SecretId")
    if not secret_id:
        return [(action, "*")]
    if secret_id.startswith("arn:"):
        return [(action, secret_id)]
    from moto.secretsmanager.models import secretsmanager_backends

    store = secretsmanager_backends[h.current_account][h.region].secrets
    secret = store.get(secret_id) if hasattr(store, "get") else None
    arn = getattr(secret, "arn", None)
    return [(action, arn or f"arn:aws:secretsmanager:{h.region}:{h.current_account}:secret:{secret_id}")]


def _sfn_checks(h: Any, action: str) -> list[tuple[str, str]]:
    if action.startswith("SendTask"):
        return [(action, "*")]
    body = _json_body(h)
    return [(action, body.get("stateMachineArn") or body.get("executionArn") or "*")]


def _events_checks(h: Any, action: str) -> list[tuple[str, str]]:
    if action != "PutEvents":
        return [(action, "*")]
    buses = {e.get("EventBusName") or "default" for e in _json_body(h).get("Entries", [])}
    arn = lambda b: b if b.startswith("arn:") else f"arn:aws:events:{h.region}:{h.current_account}:event-bus/{b}"  # noqa: E731
    return [(action, arn(b)) for b in sorted(buses)] or [(action, "*")]


def _ssm_checks(h: Any, action: str) -> list[tuple[str, str]]:
    body = _json_body(h)
    arn = f"arn:aws:ssm:{h.region}:{h.current_account}"
    if action == "StartAutomationExecution":
        version = body.get("DocumentVersion") or "$DEFAULT"
        return [(action, f"{arn}:automation-definition/{body.get('DocumentName')}:{version}")]
    if "AutomationExecutionId" in body:
        return [(action, f"{arn}:automation-execution/{body['AutomationExecutionId']}")]
    if "Name" in body:
        return [(action, f"{arn}:document/{body['Name']}")]
    return [(action, "*")]


def _scheduler_checks(h: Any, action: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qs, unquote, urlparse

    parsed = urlparse(h.uri)
    parts = [unquote(p) for p in parsed.path.strip("/").split("/")]
    arn = f"arn:aws:scheduler:{h.region}:{h.current_account}"
    if len(parts) == 2 and parts[0] == "schedules":
        group = _json_body(h).get("GroupName") or \
            parse_qs(parsed.query).get("groupName", ["default"])[0]
        return [(action, f"{arn}:schedule/{group}/{parts[1]}")]
    if len(parts) == 2 and parts[0] == "schedule-groups":
        return [(action, f"{arn}:schedule-group/{parts[1]}")]
    return [(action, "*")]


def _authorize(checks_of: Any) -> Any:
    def authorize(self: Any, resource: str = "*") -> None:
        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            ActionAuthenticatorMixin.request_count += 1
            return
        action = self._get_action()
        for checked_action, checked_resource in checks_of(self, action):
            # IAMRequest names the action from the handler: check each one as its own action.
            self._get_action = lambda a=checked_action: a
            try:
                ActionAuthenticatorMixin._authenticate_and_authorize_action(
                    self, IAMRequest, checked_resource
                )
            finally:
                del self._get_action

    return authorize


def _s3_delete_objects_per_key(original: Any) -> Any:
    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if key_name is None and bucket_name and self.data.get("Action") == "DeleteObject" \
                and self.is_delete_keys():
            import xmltodict

            objects = xmltodict.parse(self.body, strip_whitespace=False)["Delete"].get("Object", [])
            for obj in objects if isinstance(objects, list) else [objects]:
                original(self, bucket_name=bucket_name, key_name=obj["Key"])
            return
        original(self, bucket_name=bucket_name, key_name=key_name)

    return authorize


def _signature_unless_form(original: Any) -> Any:
    def check_signature(self: Any) -> None:
        if not self._body and isinstance(self._data, dict) and self._data:
            return
        if self._service == "scheduler":
            return
        original(self)

    return check_signature


def install() -> None:
    """Patches the services' authorization to use the resources above."""
    from moto.iam.access_control import IAMRequestBase

    IAMRequestBase.check_signature = _signature_unless_form(IAMRequestBase.check_signature)
    from moto.s3.responses import S3Response

    S3Response._authenticate_and_authorize_s3_action = _s3_delete_objects_per_key(
        S3Response._authenticate_and_authorize_s3_action
    )
    from moto.dynamodb.responses import DynamoHandler
    from moto.events.responses import EventsHandler
    from moto.scheduler.responses import EventBridgeSchedulerResponse
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sns.responses import SNSResponse
    from moto.ssm.responses import SimpleSystemManagerResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    for cls, checks in (
        (DynamoHandler, _dynamodb_checks),
        (SNSResponse, _sns_checks),
        (SecretsManagerResponse, _secrets_checks),
        (StepFunctionResponse, _sfn_checks),
        (EventsHandler, _events_checks),
        (SimpleSystemManagerResponse, _ssm_checks),
        (EventBridgeSchedulerResponse, _scheduler_checks),
    ):
        cls._authenticate_and_authorize_normal_action = _authorize(checks)
