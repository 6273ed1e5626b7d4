#!/usr/bin/env python3
"""sam_offline.py - template.yaml as the CloudFormation CloudFormation would create, offline.

Usage:
    python sam_offline.py TEMPLATE [--stack NAME] [--account ID] [--region REGION] [--raw]
                                   [--param Name=Value ...]

Prints JSON on stdout: the template translated from SAM to CloudFormation by
aws-sam-translator (the library `sam deploy` uses), then, unless --raw, with every intrinsic
function resolved for the given stack name, account and region (Ref, Fn::Sub, Fn::GetAtt,
Fn::If, Fn::Join, Fn::Select, conditions), so a test can create the roles, policies, tables,
bucket and topic exactly as the template declares them. Resources whose Condition is false
are left out.

Local paths are packaged as `sam package` would: CodeUri becomes an s3:// placeholder, and a
state machine's DefinitionUri is read from disk into Definition (the translator then turns it
into Fn::Sub over DefinitionSubstitutions).

Physical names follow CloudFormation where the template names nothing: a role is
`<stack>-<logical id>` (CloudFormation adds a random suffix; the tests only need a unique
name). Anything this resolver cannot resolve is an error, never passed through silently.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class NoManagedPolicies:
    """The translator asks for AWS managed policy names only when a function's Policies lists
    one by name; the template names them by ARN, so there is nothing to look up."""

    def load(self) -> dict[str, str]:
        return {}


def package(template: dict[str, Any], base: str) -> None:
    """What `sam package` does to local paths, without uploading anything. (Substituted numbers
    in the state machine come out as strings; nothing here reads them as numbers.)"""
    for res in template.get("Resources", {}).values():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://retl-offline-package/" + props["CodeUri"]
        if res.get("Type") == "AWS::Serverless::StateMachine" and isinstance(
            props.get("DefinitionUri"), str
        ):
            with open(os.path.join(base, props.pop("DefinitionUri")), encoding="utf-8") as f:
                text = f.read()
            # A bare `${PlanConcurrency}` (a number once substituted) is no JSON: quote it.
            text = re.sub(r'(?<!")(\$\{\w+\})(?!")', r'"\1"', text)
            props["Definition"] = json.loads(text)


def translate(path: str, region: str) -> dict[str, Any]:
    """template.yaml as CloudFormation (intrinsics unresolved)."""
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    package(template, os.path.dirname(os.path.abspath(path)))
    return transform(template, {"AWS::Region": region}, NoManagedPolicies())


class Resolver:
    """Resolves intrinsic functions for one stack name, account and region."""

    def __init__(self, template: dict[str, Any], stack: str, account: str, region: str,
                 params: dict[str, str]):
        self.t = template
        self.stack, self.account, self.region = stack, account, region
        self.pseudo = {
            "AWS::StackName": stack,
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack}/offline",
            "AWS::NoValue": None,
        }
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            if name in params:
                self.params[name] = params[name]
            elif "Default" in spec:
                self.params[name] = spec["Default"]
            else:
                raise SystemExit(f"parameter {name} has no default: pass --param {name}=VALUE")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(self.params[name], str):
                self.params[name] = [v.strip() for v in self.params[name].split(",")]
        self.resources = template.get("Resources", {})

    def condition(self, name: str) -> bool:
        return bool(self.value(self.t["Conditions"][name], {}))

    def physical(self, logical: str) -> str:
        res = self.resources[logical]
        props = res.get("Properties", {})
        kind = res["Type"]
        named = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::IAM::Role": "RoleName",
            "AWS::StepFunctions::StateMachine": "StateMachineName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Scheduler::ScheduleGroup": "Name",
            "AWS::CloudWatch::Alarm": "AlarmName",
            "AWS::KMS::Alias": "AliasName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::SSM::Document": "Name",
            "AWS::Events::EventBus": "Name",
            "AWS::EventSchemas::Registry": "RegistryName",
            "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
        }.get(kind)
        if named and named in props:
            return self.value(props[named], {})
        return f"{self.stack}-{logical}"

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name not in self.resources:
            raise SystemExit(f"Ref to unknown name {name}")
        kind = self.resources[name]["Type"]
        p = self.physical(name)
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{self.region}:{self.account}:{p}"
        if kind == "AWS::StepFunctions::StateMachine":
            return f"arn:aws:states:{self.region}:{self.account}:stateMachine:{p}"
        if kind == "AWS::KMS::Key":
            return f"offline-key-{name}"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{p}"
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:aws:iam::{self.account}:policy/{p}"
        return p

    def get_att(self, logical: str, attr: str) -> str:
        kind = self.resources[logical]["Type"]
        p = self.physical(logical)
        acct, reg = self.account, self.region
        arns = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{reg}:{acct}:table/{p}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{p}",
            "AWS::IAM::Role": f"arn:aws:iam::{acct}:role/{p}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{reg}:{acct}:function:{p}",
            "AWS::KMS::Key": f"arn:aws:kms:{reg}:{acct}:key/{self.ref(logical)}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{reg}:{acct}:log-group:{p}:*",
            "AWS::Events::Rule": f"arn:aws:events:{reg}:{acct}:rule/{p}",
            "AWS::Events::EventBus": f"arn:aws:events:{reg}:{acct}:event-bus/{p}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{reg}:{acct}:{p}",
            "AWS::SNS::Topic": self.ref(logical),
            "AWS::StepFunctions::StateMachine": self.ref(logical),
        }
        if attr in ("Arn", "TopicArn") and kind in arns:
            return arns[kind]
        if attr == "QueueName" and kind == "AWS::SQS::Queue":
            return p
        if attr == "Name" and kind in ("AWS::StepFunctions::StateMachine",):
            return p
        if attr == "RegistryName" and kind == "AWS::EventSchemas::Registry":
            return p
        raise SystemExit(f"cannot resolve Fn::GetAtt {logical}.{attr} ({kind})")

    def sub(self, text: str, extra: dict[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            if "." in name and name.split(".")[0] in self.resources:
                logical, attr = name.split(".", 1)
                return self.get_att(logical, attr)
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, v: Any, extra: dict[str, Any]) -> Any:
        if isinstance(v, list):
            out = [self.value(x, extra) for x in v]
            return [x for x in out if x is not None]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, extra)
                text, variables = arg
                return self.sub(text, {**extra, **{n: self.value(x, extra) for n, x in variables.items()}})
            if k == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attr)
            if k == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no, extra)
            if k == "Fn::Join":
                sep, parts = arg
                return sep.join(str(x) for x in self.value(parts, extra))
            if k == "Fn::Select":
                i, items = arg
                return self.value(items, extra)[int(self.value(i, extra))]
            if k == "Fn::Equals":
                a, b = (self.value(x, extra) for x in arg)
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self.value(arg[0], extra)
            if k == "Fn::And":
                return all(self.value(x, extra) for x in arg)
            if k == "Fn::Or":
                return any(self.value(x, extra) for x in arg)
            if k == "Condition":
                return self.condition(arg)
            if k.startswith("Fn::"):
                raise SystemExit(f"cannot resolve {k}")
        out = {k: self.value(x, extra) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not None}

    def resolved(self) -> dict[str, Any]:
        resources = {}
        for logical, res in self.resources.items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            res = dict(res)
            res["PhysicalName"] = self.physical(logical) if "Properties" in res else logical
            res["Properties"] = self.value(res.get("Properties", {}), {})
            resources[logical] = res
        return {"Resources": resources}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template")
    ap.add_argument("--stack", default="retl")
    ap.add_argument("--account", default="123456789012")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--param", action="append", default=[], help="Name=Value")
    ap.add_argument("--raw", action="store_true", help="translated, intrinsics unresolved")
    args = ap.parse_args()
    cfn = translate(args.template, args.region)
    if args.raw:
        json.dump(cfn, sys.stdout, indent=1)
        return
    params = dict(p.split("=", 1) for p in args.param)
    json.dump(Resolver(cfn, args.stack, args.account, args.region, params).resolved(), sys.stdout, indent=1)


if __name__ == "__main__":
    main()
