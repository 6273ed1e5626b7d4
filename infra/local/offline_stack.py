#!/usr/bin/env python3
"""offline_stack.py - creates template.yaml's stack on a moto server, then turns IAM on.

Usage:
    python offline_stack.py TEMPLATE --endpoint URL [--stack NAME] [--without Function=action ...]
                            [--param Name=Value ...] [--no-enforce]
                            [--policy-user NAME=ManagedPolicy,... ...]
                            [--only LogicalId,... [--user NAME ...]]

From the template translated and resolved by sam_offline.py it creates, with moto's
unauthenticated start-up requests: every IAM role with its inline and managed policies, the
DynamoDB tables (their key schemas), the artifacts bucket, the KMS key and the topics encrypted
with it, the schedule group, the event bus, the Systems Manager documents (the approval runbook,
its Content as the template resolves it), the state machine (its role and definition), and an
`admin` user
allowed everything (for the test's own setup and assertions). It assumes each Lambda
function's role (the trust policy names lambda.amazonaws.com, so this happens before IAM is
enforced), then sets moto's INITIAL_NO_AUTH_ACTION_COUNT to 0: from then on every request is
checked against the caller's policies (infra/local/moto_iam.py gives moto the resources AWS
checks).

--param sets a template parameter (e.g. Approvers=arn:...). --only creates just the named
resources (e.g. the approval runbook, its topic and the tokens table, for a stack whose other
resources a test makes itself): no roles' credentials, IAM left off; --user creates an IAM
user with an access key besides (an approver who signs in), printed under "users".

--without Function=action (e.g. TriggerFunction=dynamodb:BatchWriteItem) removes the action
from every statement of that function role's inline policies first, to show that the
template's grant is what makes a call work.

Prints JSON: {"admin": credentials, "functions": {"<RETL_FUNCTION>": {"role", credentials}},
"policy_users": {"<name>": {"arn", credentials}} (the IAM users of --policy-user, each with
the template's managed policies named there and nothing else), "resources": {"<logical id>": "<physical name>"}}, credentials as access_key_id,
secret_access_key and session_token (admin: none).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sam_offline  # noqa: E402

import boto3  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-east-1"
# ASL fields that are numbers (the resolver substitutes them as strings).
NUMERIC_ASL_FIELDS = {"MaxConcurrency", "ToleratedFailurePercentage", "ToleratedFailureCount",
                      "TimeoutSeconds", "HeartbeatSeconds", "MaxItems"}


def remove_action(resources: dict[str, Any], function: str, action: str) -> None:
    role = resources[function]["Properties"]["Role"].split("/")[-1]
    logical = next(k for k, r in resources.items() if r.get("PhysicalName") == role)
    removed = 0
    for policy in resources[logical]["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if action in actions:
                st["Action"] = [a for a in actions if a != action]
                removed += 1
        # A statement left with no action is no statement (IAM refuses an empty one).
        policy["PolicyDocument"]["Statement"] = [
            st for st in policy["PolicyDocument"]["Statement"] if st["Action"]]
    if not removed:
        sys.exit(f"--without {function}={action}: the role {logical} grants no such action")


def numbers(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: int(x) if k in NUMERIC_ASL_FIELDS and isinstance(x, str) and x.isdigit()
                else numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [numbers(x) for x in v]
    return v


def create(resources: dict[str, Any], session: boto3.Session, endpoint: str) -> None:
    c = lambda s: session.client(s, endpoint_url=endpoint)  # noqa: E731
    iam, ddb, s3, sns, kms = c("iam"), c("dynamodb"), c("s3"), c("sns"), c("kms")
    by_type = lambda t: [(k, r) for k, r in resources.items() if r["Type"] == t]  # noqa: E731
    for _, r in by_type("AWS::IAM::ManagedPolicy"):
        p = r["Properties"]
        iam.create_policy(PolicyName=r["PhysicalName"], PolicyDocument=json.dumps(p["PolicyDocument"]),
                          Description=p.get("Description", ""))
    for _, r in by_type("AWS::IAM::Role"):
        p = r["Properties"]
        iam.create_role(RoleName=r["PhysicalName"], Path=p.get("Path", "/"),
                        AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]))
        for policy in p.get("Policies", []):
            # SAM's policy templates (LambdaInvokePolicy) carry no Version: AWS reads that as
            # 2008-10-17 and accepts it, moto refuses it. Both mean the same statements.
            policy["PolicyDocument"].setdefault("Version", "2012-10-17")
            iam.put_role_policy(RoleName=r["PhysicalName"], PolicyName=policy["PolicyName"],
                                PolicyDocument=json.dumps(policy["PolicyDocument"]))
        for arn in p.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=r["PhysicalName"], PolicyArn=arn)
    for _, r in by_type("AWS::DynamoDB::Table"):
        p = r["Properties"]
        ddb.create_table(TableName=p["TableName"], BillingMode=p["BillingMode"],
                         KeySchema=p["KeySchema"], AttributeDefinitions=p["AttributeDefinitions"])
    for _, r in by_type("AWS::S3::Bucket"):
        s3.create_bucket(Bucket=r["Properties"]["BucketName"])
    keys = {}
    for logical, r in by_type("AWS::KMS::Key"):
        key = kms.create_key(Description=r["Properties"].get("Description", logical),
                             Policy=json.dumps(r["Properties"]["KeyPolicy"]))
        keys[sam_offline_key(logical)] = key["KeyMetadata"]["KeyId"]
    for _, r in by_type("AWS::SNS::Topic"):
        p = r["Properties"]
        attrs = {"KmsMasterKeyId": keys.get(p["KmsMasterKeyId"], p["KmsMasterKeyId"])} \
            if "KmsMasterKeyId" in p else {}
        sns.create_topic(Name=p["TopicName"], Attributes=attrs)
    for _, r in by_type("AWS::SSM::Document"):
        p = r["Properties"]
        c("ssm").create_document(Name=p["Name"], Content=json.dumps(p["Content"]),
                                 DocumentType=p["DocumentType"], DocumentFormat="JSON")
    for _, r in by_type("AWS::Scheduler::ScheduleGroup"):
        c("scheduler").create_schedule_group(Name=r["Properties"]["Name"])
    for _, r in by_type("AWS::Events::EventBus"):
        c("events").create_event_bus(Name=r["Properties"]["Name"])
    for _, r in by_type("AWS::StepFunctions::StateMachine"):
        p = r["Properties"]
        # CloudFormation fills DefinitionSubstitutions in when it creates the state machine.
        text = p["DefinitionString"]
        for name, value in p.get("DefinitionSubstitutions", {}).items():
            text = text.replace("${" + name + "}", str(value))
        left = re.findall(r"\$\{\w+\}", text)
        if left:
            sys.exit(f"state machine {r['PhysicalName']}: no substitution for {sorted(set(left))}")
        definition = numbers(json.loads(text))
        c("stepfunctions").create_state_machine(
            name=p["StateMachineName"], roleArn=p["RoleArn"], type=p.get("StateMachineType", "STANDARD"),
            definition=json.dumps(definition))


def sam_offline_key(logical: str) -> str:
    """What the resolver gives for `Ref` of a KMS key (a key id is known only once created)."""
    return f"offline-key-{logical}"


def iam_user(iam: Any, name: str, policy_arns: list[str] | None = None) -> dict[str, str]:
    """Creates the IAM user `name` holding `policy_arns`, with an access key: its ARN and key."""
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    for policy_arn in policy_arns or []:
        iam.attach_user_policy(UserName=name, PolicyArn=policy_arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"arn": arn, "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"]}


def credentials(resources: dict[str, Any], session: boto3.Session, endpoint: str,
                policy_users: dict[str, list[str]]) -> dict[str, Any]:
    iam = session.client("iam", endpoint_url=endpoint)
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="everything", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    out: dict[str, Any] = {
        "admin": {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]},
        "functions": {},
        "resources": {k: r.get("PhysicalName") for k, r in resources.items()},
    }
    # Operators holding some of the template's managed policies (--policy-user), and only
    # those: what someone given the deployer or the safety deployer policy may do.
    out["policy_users"] = {}
    for user, logicals in policy_users.items():
        for logical in logicals:
            if resources.get(logical, {}).get("Type") != "AWS::IAM::ManagedPolicy":
                sys.exit(f"--policy-user {user}: the template declares no managed policy {logical}")
        out["policy_users"][user] = iam_user(iam, user, [
            f"arn:aws:iam::{ACCOUNT}:policy/{resources[logical]['PhysicalName']}"
            for logical in logicals])
    sts = session.client("sts", endpoint_url=endpoint)
    for _, r in resources.items():
        if r["Type"] != "AWS::Lambda::Function":
            continue
        p = r["Properties"]
        name = p["Environment"]["Variables"]["RETL_FUNCTION"]
        got = sts.assume_role(RoleArn=p["Role"], RoleSessionName=p["FunctionName"])["Credentials"]
        out["functions"][name] = {
            "role": p["Role"],
            "access_key_id": got["AccessKeyId"],
            "secret_access_key": got["SecretAccessKey"],
            "session_token": got["SessionToken"],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template")
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stack", default="retl")
    ap.add_argument("--without", action="append", default=[], help="Function=action")
    ap.add_argument("--param", action="append", default=[], help="Name=Value")
    ap.add_argument("--only", help="comma-separated logical ids: create just these")
    ap.add_argument("--user", action="append", default=[], help="with --only: an IAM user")
    ap.add_argument("--policy-user", action="append", default=[],
                    help="NAME=ManagedPolicy[,ManagedPolicy]: an IAM user with those policies")
    ap.add_argument("--no-enforce", action="store_true",
                    help="leave IAM off (the caller turns it on with POST /moto-api/reset-auth 0 "
                         "after its own setup)")
    args = ap.parse_args()
    cfn = sam_offline.translate(args.template, REGION)
    params = dict(p.split("=", 1) for p in args.param)
    resources = sam_offline.Resolver(cfn, args.stack, ACCOUNT, REGION, params).resolved()["Resources"]
    for item in args.without:
        function, action = item.split("=", 1)
        remove_action(resources, function, action)
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test",
                            region_name=REGION)
    if args.only:
        wanted = args.only.split(",")
        missing = [w for w in wanted if w not in resources]
        if missing:
            sys.exit(f"--only: the template declares no {missing}")
        create({k: resources[k] for k in wanted}, session, args.endpoint)
        iam = session.client("iam", endpoint_url=args.endpoint)
        users = {name: iam_user(iam, name) for name in args.user}
        json.dump({"resources": {k: resources[k].get("PhysicalName") for k in wanted},
                   "users": users}, sys.stdout)
        return
    create(resources, session, args.endpoint)
    policy_users = {u: ps.split(",") for u, ps in (x.split("=", 1) for x in args.policy_user)}
    out = credentials(resources, session, args.endpoint, policy_users)
    if args.no_enforce:
        json.dump(out, sys.stdout)
        return
    req = urllib.request.Request(f"{args.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            sys.exit(f"moto did not turn IAM enforcement on: HTTP {resp.status}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
