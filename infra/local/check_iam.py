#!/usr/bin/env python3
"""check_iam.py - every AWS SDK operation the code calls is granted by template.yaml.

Usage: python check_iam.py [REPO]   (run by infra/scripts/check-infra.sh)

Finds the SDK operations called in shared/src/adapters/aws/ and shared/src/aws_host/ (a
zero-argument `.operation()` that starts a builder chain ending in `.send()`, any name of
OPERATIONS written as `.name()`, or a JSON-protocol target such as "AmazonSSM.GetAutomationExecution"
of the requests retl signs itself), maps each to the IAM actions AWS authorizes it as
(OPERATIONS), and checks, in the template translated by aws-sam-translator and resolved
(sam_offline.py), that the role of every function that runs the file (USERS), or the managed
policies of the operator who does (OPERATORS: `retl deploy --aws`), has an Allow
statement for each action on the resource the code uses (RESOURCES). An operation missing from
OPERATIONS, or a file missing from USERS, fails the check: the tables must grow with the code.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sam_offline  # noqa: E402

ACCOUNT, REGION, STACK = "123456789012", "us-east-1", "retl"
SCANNED = ["shared/src/adapters/aws", "shared/src/aws_host"]
# The functions of a run (each reads runs and sync definitions), and the dbt Cloud webhook.
EVERY = ["trigger", "extract", "plan", "approval", "apply", "finalize"]
STEPS = ["extract", "plan", "approval", "apply", "finalize"]

# SDK operation -> IAM actions (Service Authorization Reference). TransactWriteItems is no IAM
# action: each item is authorized as what it does (see transact_actions).
OPERATIONS: dict[str, list[str]] = {
    "get_item": ["dynamodb:GetItem"],
    "put_item": ["dynamodb:PutItem"],
    "update_item": ["dynamodb:UpdateItem"],
    "delete_item": ["dynamodb:DeleteItem"],
    "query": ["dynamodb:Query"],
    "scan": ["dynamodb:Scan"],
    "batch_write_item": ["dynamodb:BatchWriteItem"],
    "batch_get_item": ["dynamodb:BatchGetItem"],
    "transact_write_items": [],
    "put_object": ["s3:PutObject"],
    "get_object": ["s3:GetObject"],
    "head_object": ["s3:GetObject"],
    "list_objects_v2": ["s3:ListBucket"],
    "delete_objects": ["s3:DeleteObject"],
    "delete_object": ["s3:DeleteObject"],
    "create_multipart_upload": ["s3:PutObject"],
    "upload_part": ["s3:PutObject"],
    "complete_multipart_upload": ["s3:PutObject"],
    "abort_multipart_upload": ["s3:AbortMultipartUpload"],
    "get_secret_value": ["secretsmanager:GetSecretValue"],
    # An encrypted topic: the publisher also needs the key (SNS calls KMS as the caller).
    "publish": ["sns:Publish", "kms:GenerateDataKey*", "kms:Decrypt"],
    "start_execution": ["states:StartExecution"],
    "send_task_success": ["states:SendTaskSuccess"],
    "send_task_failure": ["states:SendTaskFailure"],
    "send_task_heartbeat": ["states:SendTaskHeartbeat"],
    "put_events": ["events:PutEvents"],
    # Systems Manager Automation (shared/src/aws_host/automation.rs signs these itself).
    # Starting the runbook passes its automation role to Systems Manager.
    "start_automation_execution": ["ssm:StartAutomationExecution", "iam:PassRole"],
    "get_automation_execution": ["ssm:GetAutomationExecution"],
    "send_automation_signal": ["ssm:SendAutomationSignal"],
    "stop_automation_execution": ["ssm:StopAutomationExecution"],
    # `retl deploy --aws` (the operator's credentials, not a function's), and the approval
    # reminders (the approval function): the schedule's role is passed to Scheduler.
    "create_schedule": ["scheduler:CreateSchedule", "iam:PassRole"],
    "update_schedule": ["scheduler:UpdateSchedule"],
    "delete_schedule": ["scheduler:DeleteSchedule"],
    "list_rules": ["events:ListRules"],
    "put_rule": ["events:PutRule"],
    "put_targets": ["events:PutTargets"],
    "remove_targets": ["events:RemoveTargets"],
    "delete_rule": ["events:DeleteRule"],
}
TRANSACT_ITEMS = {"put": "dynamodb:PutItem", "update": "dynamodb:UpdateItem",
                  "delete": "dynamodb:DeleteItem", "condition_check": "dynamodb:ConditionCheckItem"}

# File -> the functions that run its operations ({op: functions} overrides per operation).
USERS: dict[str, Any] = {
    # Deployers record config versions (a Query for the latest, a conditional PutItem).
    "shared/src/adapters/aws/dynamo_runs.rs": {
        op: EVERY + (["deployer"] if op in ("query", "put_item") else []) for op in OPERATIONS},
    "shared/src/adapters/aws/dynamo_keyset/mod.rs": ["extract", "plan", "apply", "finalize"],
    "shared/src/adapters/aws/s3.rs": STEPS,
    # trigger and finalize: the secret of a sync's alerts.slack_webhook_url_env, read when a
    # run ends there (engine/alerts/).
    "shared/src/adapters/aws/secrets.rs": EVERY + ["dbt_webhook"],
    # Alerts of runs ending in the trigger (a failed start, an expired approval), approval
    # requests and decisions, finalize.
    "shared/src/adapters/aws/sns.rs": ["trigger", "approval", "finalize"],
    "shared/src/aws_host/config_table.rs": {"get_item": EVERY + ["deployer"],
                                            "query": EVERY + ["dbt_webhook", "deployer"],
                                            "put_item": ["deployer"], "delete_item": ["deployer"]},
    # Every function loading a sync reads its grant; only safety deployers write one.
    "shared/src/aws_host/safety_grants.rs": {"get_item": EVERY + ["deployer"],
                                             "put_item": ["safety_deployer"]},
    "shared/src/aws_host/trigger.rs": ["trigger"],
    "shared/src/aws_host/approval.rs": ["approval"],
    "shared/src/aws_host/approval_tokens.rs": ["approval"],
    # SendAutomationSignal: `retl approve --aws`, with an approver's own credentials.
    "shared/src/aws_host/automation.rs": {"start_automation_execution": ["approval"],
                                          "get_automation_execution": ["approval"],
                                          "stop_automation_execution": ["approval"],
                                          "send_automation_signal": []},
    "shared/src/aws_host/reminder.rs": ["approval"],
    "shared/src/aws_host/events.rs": ["finalize", "dbt_webhook"],
    "shared/src/aws_host/deploy.rs": ["deployer"],
}
# Operators, by the template's managed policies they hold (not functions' roles).
OPERATORS = {"deployer": ["DeployerPolicy"],
             "safety_deployer": ["DeployerPolicy", "SafetyDeployerPolicy"]}
# Helpers whose operations count for every file that calls them.
CALLED_THROUGH = {"shared/src/adapters/aws/dynamo_batch.rs": "batch_write("}


def resources(r: sam_offline.Resolver) -> dict[str, Any]:
    """File -> the ARN its operations act on (an object key under the bucket for S3), or
    {function: ARN} where functions use different ones, or {operation: ARN} where a file's
    operations act on several."""
    secret = lambda name: (f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"  # noqa: E731
                           f"{r.params['SecretPrefix']}{name}-AbCdEf")
    sec = {f: secret("PG_URL") for f in EVERY} | {"dbt_webhook": secret("DBT_CLOUD_WEBHOOK_SECRET")}
    return {
        "shared/src/adapters/aws/dynamo_runs.rs": r.get_att("RunsTable", "Arn"),
        "shared/src/adapters/aws/dynamo_keyset/mod.rs": r.get_att("KeySetTable", "Arn"),
        "shared/src/adapters/aws/s3.rs": r.get_att("ArtifactsBucket", "Arn") + "/plan/run/file",
        "shared/src/adapters/aws/secrets.rs": sec,
        "shared/src/adapters/aws/sns.rs": r.ref("AlertsTopic"),
        "shared/src/aws_host/config_table.rs": r.get_att("ConfigTable", "Arn"),
        "shared/src/aws_host/trigger.rs": r.ref("SyncStateMachine"),
        "shared/src/aws_host/approval.rs": "*",
        "shared/src/aws_host/approval_tokens.rs": r.get_att("ApprovalTokensTable", "Arn"),
        "shared/src/aws_host/automation.rs": {
            "start_automation_execution": f"arn:aws:ssm:{REGION}:{ACCOUNT}:automation-definition/"
                                          f"{r.ref('ApprovalRunbook')}:$DEFAULT",
            **{op: f"arn:aws:ssm:{REGION}:{ACCOUNT}:automation-execution/"
                   "0123abcd-0000-0000-0000-000000000000"
               for op in ("get_automation_execution", "stop_automation_execution")},
            "send_automation_signal": "*",
        },
        "shared/src/aws_host/reminder.rs":
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{STACK}/remind-01jrun",
        "shared/src/aws_host/events.rs": r.get_att("EventBus", "Arn"),
        "shared/src/aws_host/safety_grants.rs": r.get_att("SafetyGrantsTable", "Arn"),
        "shared/src/aws_host/deploy.rs": {
            **{op: f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{STACK}/people"
               for op in ("create_schedule", "update_schedule", "delete_schedule")},
            "list_rules": "*",
            **{op: f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK}-events/{STACK}-trigger-people-0"
               for op in ("put_rule", "put_targets", "remove_targets", "delete_rule")},
        },
    }


# The role each operation passes (iam:PassRole), by the role's logical id.
PASSED_ROLES = {"start_automation_execution": "ApprovalAutomationRole",
                "create_schedule": "SchedulerRole"}


def resource_for(action: str, op: str, file_resource: Any, r: sam_offline.Resolver) -> str:
    if action == "iam:PassRole":
        return r.get_att(PASSED_ROLES[op], "Arn")
    if isinstance(file_resource, dict):
        file_resource = file_resource[op]
    if action == "s3:ListBucket":
        return file_resource.split("/", 1)[0]
    if action.startswith("kms:"):
        if "AlertsKey" not in r.resources:  # alias/aws/sns: its key policy grants no one here
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/sns"
        return r.get_att("AlertsKey", "Arn")
    return file_resource


def chain_start(text: str, send: int) -> tuple[str, bool] | None:
    """The first call of the builder chain ending at `.send()` (index of its dot): its name and
    whether it takes no arguments."""
    i, first = send, None
    while True:
        j = i - 1
        while j >= 0 and text[j].isspace():
            j -= 1
        if j < 0 or text[j] != ")":
            return first
        depth, k = 0, j
        while k >= 0:
            depth += {")": 1, "(": -1}.get(text[k], 0)
            if depth == 0:
                break
            k -= 1
        args = text[k + 1:j].strip()
        m = re.search(r"\.(\w+)$", text[:k])
        if not m:
            return first
        first = (m.group(1), args == "")
        i = m.start()


# Zero-argument calls that end in `.send()` without being operations: a paginator sends the
# operation it was made from, which the scan finds where that operation's builder starts.
NOT_OPERATIONS = {"into_paginator"}


def operations(text: str) -> set[str]:
    ops = {name for name in OPERATIONS if re.search(rf"\.{name}\(\)", text)}
    for m in re.finditer(r'"Amazon\w+\.(\w+)"', text):
        ops.add(re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).lower())
    for m in re.finditer(r"\.send\(\)", text):
        start = chain_start(text, m.start())
        if start and start[1] and start[0] not in ops | NOT_OPERATIONS:
            ops.add(start[0])
    return ops


def allowed(policies: list[dict[str, Any]], action: str, resource: str) -> bool:
    match = lambda pattern, value: re.fullmatch(  # noqa: E731
        re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), value, re.I) is not None
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    for policy in policies:
        for st in as_list(policy["PolicyDocument"]["Statement"]):
            if st.get("Effect") != "Allow":
                continue
            if not any(match(a, action) or match(action, a) for a in as_list(st.get("Action", []))):
                continue
            if any(match(p, resource) for p in as_list(st.get("Resource", []))):
                return True
    return False


def main() -> None:
    repo = sys.argv[1] if len(sys.argv) > 1 else os.getcwd()
    r = sam_offline.Resolver(sam_offline.translate(os.path.join(repo, "template.yaml"), REGION),
                             STACK, ACCOUNT, REGION, {})
    resolved = r.resolved()["Resources"]
    roles = {}
    for res in resolved.values():
        if res["Type"] == "AWS::Lambda::Function":
            role = res["Properties"]["Role"].split("/")[-1]
            policies = next(x for x in resolved.values() if x.get("PhysicalName") == role)
            roles[res["Properties"]["Environment"]["Variables"]["RETL_FUNCTION"]] = \
                policies["Properties"].get("Policies", [])
    for operator, policies in OPERATORS.items():
        roles[operator] = [{"PolicyDocument": resolved[p]["Properties"]["PolicyDocument"]}
                           for p in policies]
    file_resources = resources(r)
    problems, checked = [], 0
    helper_ops = {}
    for helper in CALLED_THROUGH:
        with open(os.path.join(repo, helper), encoding="utf-8") as f:
            helper_ops[helper] = operations(f.read())
    # Adapters that are folders (dynamo_keyset/) count file by file, like the flat ones.
    scanned = sorted(os.path.relpath(os.path.join(top, name), repo)
                     for folder in SCANNED
                     for top, _, names in os.walk(os.path.join(repo, folder))
                     for name in names)
    for path in scanned:
        name = os.path.basename(path)
        if not name.endswith(".rs") or path in CALLED_THROUGH:
            continue
        with open(os.path.join(repo, path), encoding="utf-8") as f:
            text = f.read()
        ops = operations(text)
        for helper, call in CALLED_THROUGH.items():
            if call in text:
                ops |= helper_ops[helper]
        if not ops:
            continue
        if path not in USERS:
            problems.append(f"{path} calls {sorted(ops)}: add it to USERS in infra/local/check_iam.py")
            continue
        for op in sorted(ops):
            if op not in OPERATIONS:
                problems.append(f"{path}: `.{op}()` is no known SDK operation: add its IAM "
                                "actions to OPERATIONS in infra/local/check_iam.py")
                continue
            users = USERS[path]
            users = users.get(op) if isinstance(users, dict) else users
            if users is None:
                problems.append(f"{path}: which functions call `.{op}()`? add it to USERS")
                continue
            actions = OPERATIONS[op]
            if op == "transact_write_items":
                actions = [a for kind, a in TRANSACT_ITEMS.items()
                           if re.search(rf"TransactWriteItem::builder\(\)\s*\.{kind}\(", text)]
            for function in users:
                file_resource = file_resources[path]
                if isinstance(file_resource, dict) and function in file_resource:
                    file_resource = file_resource[function]
                for action in actions:
                    checked += 1
                    res = resource_for(action, op, file_resource, r)
                    if not allowed(roles[function], action, res):
                        problems.append(f"{function} calls {op} ({path}) but its role in "
                                        f"template.yaml does not allow {action} on {res}")
    if problems:
        sys.exit("\n".join(problems))
    print(f"    {checked} (function, action, resource) grants checked")


if __name__ == "__main__":
    main()
