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
    topic = h._get_param("TopicArn") or h._get_param("TargetArn")
    if not topic and action == "CreateTopic" and h._get_param("Name"):
        topic = f"arn:aws:sns:{h.region}:{h.current_account}:{h._get_param('Name')}"
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


def install() -> None:
    """Patches the services' authorization to use the resources above."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.events.responses import EventsHandler
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sns.responses import SNSResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    for cls, checks in (
        (DynamoHandler, _dynamodb_checks),
        (SNSResponse, _sns_checks),
        (SecretsManagerResponse, _secrets_checks),
        (StepFunctionResponse, _sfn_checks),
        (EventsHandler, _events_checks),
    ):
        cls._authenticate_and_authorize_normal_action = _authorize(checks)
