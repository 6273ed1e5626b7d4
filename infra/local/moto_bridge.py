#!/usr/bin/env python3
"""moto_bridge.py - run moto server with Step Functions Lambda tasks routed to OUR HTTP endpoint.

Usage (same CLI as `moto_server`):
    python moto_bridge.py -H 127.0.0.1 -p 5123

Environment:
    MOTO_BRIDGE_LAMBDA_ENDPOINT  base URL of a server implementing the Lambda Invoke API
                                 (POST /2015-03-31/functions/{name}/invocations), e.g. the
                                 `cargo lambda watch` emulator.  Default: http://127.0.0.1:9000
    MOTO_BRIDGE_LAMBDA_ROUTES    optional JSON object {"<function name>": "<base url>", ...}
                                 overriding the endpoint per function.
    MOTO_BRIDGE_LAMBDA_TIMEOUT   HTTP read timeout in seconds for one invocation (default 900).
    MOTO_BRIDGE_RETRY_SCALE      multiply every ASL Retry sleep by this factor (default 1.0;
                                 0 = retry immediately).  Lets tests keep production-like
                                 IntervalSeconds/BackoffRate without paying wall-clock time.
    MOTO_BRIDGE_EXECUTE_SFN      "1" (default) = start with stepfunctions.execute_state_machine
                                 enabled, so no POST /moto-api/config is needed (posting it
                                 anyway is harmless).  "0" = moto default (no real execution).
    MOTO_BRIDGE_LOG              "1" = log every bridged invocation to stderr (default "1").
    INITIAL_NO_AUTH_ACTION_COUNT moto's own: requests served before IAM is enforced (default:
                                 never). Enforced requests are checked on the resources AWS
                                 checks (infra/local/moto_iam.py), not moto's "*".

Systems Manager Automation (StartAutomationExecution, GetAutomationExecution,
SendAutomationSignal, StopAutomationExecution), which moto lacks, runs the runbooks moto stores
(infra/local/ssm_automation.py); their Lambda steps go to the same endpoint.

How it works: every Lambda call made by moto's ASL interpreter (both the optimised integration
`arn:aws:states:::lambda:invoke[.waitForTaskToken]` and plain function-ARN Task resources) goes
through `moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils
.boto_client_for(service="lambda", ...)`, which normally builds a boto3 client pointed at
http://localhost:$MOTO_PORT, i.e. back into moto's own (Docker based) Lambda backend.  We
replace that module-level name with a factory that returns a tiny client whose `invoke()` does
the HTTP call to our endpoint and returns a botocore-shaped response dict.  All other services
used by the interpreter (S3 ItemReader, SQS, SNS, DynamoDB, nested SFN, ...) are untouched and
still go to moto itself.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moto_iam  # noqa: E402  (infra/local/moto_iam.py, next to this file)
import ssm_automation  # noqa: E402  (infra/local/ssm_automation.py)

import moto.server
from moto.core.config import default_user_config
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
    lambda_eval_utils,
)

_DEFAULT_ENDPOINT = os.environ.get(
    "MOTO_BRIDGE_LAMBDA_ENDPOINT", "http://127.0.0.1:9000"
).rstrip("/")
_ROUTES: dict[str, str] = {
    k: v.rstrip("/")
    for k, v in json.loads(os.environ.get("MOTO_BRIDGE_LAMBDA_ROUTES", "{}")).items()
}
_HTTP_TIMEOUT = float(os.environ.get("MOTO_BRIDGE_LAMBDA_TIMEOUT", "900"))
_LOG = os.environ.get("MOTO_BRIDGE_LOG", "1") == "1"


def _log(msg: str) -> None:
    if _LOG:
        print(f"[moto_bridge] {msg}", file=sys.stderr, flush=True)


def function_name_of(function_name: str) -> tuple[str, str | None]:
    """Lambda FunctionName (any accepted form) -> (bare name, qualifier or None).

    Accepts: my-fn | my-fn:alias | 123456789012:function:my-fn[:q] |
             arn:aws:lambda:us-east-1:123456789012:function:my-fn[:q]
    """
    parts = function_name.split(":")
    if function_name.startswith("arn:"):
        # arn:partition:lambda:region:account:function:name[:qualifier]
        name = parts[6]
        qualifier = parts[7] if len(parts) > 7 else None
    elif len(parts) >= 3 and parts[1] == "function":
        name = parts[2]
        qualifier = parts[3] if len(parts) > 3 else None
    else:
        name = parts[0]
        qualifier = parts[1] if len(parts) > 1 else None
    return name, qualifier


def _client_error(code: str, message: str, status: int) -> ClientError:
    return ClientError(
        error_response={
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "RequestId": str(uuid.uuid4()),
            },
        },
        operation_name="Invoke",
    )


class BridgeLambdaClient:
    """Implements just enough of boto3's lambda client for moto's lambda_eval_utils."""

    def __init__(self, region: str):
        self.region = region

    def invoke(self, FunctionName: str, Payload: bytes | str | None = None, **kwargs: Any):
        name, qualifier = function_name_of(FunctionName)
        qualifier = kwargs.get("Qualifier") or qualifier
        base = _ROUTES.get(name, _DEFAULT_ENDPOINT)
        url = f"{base}/2015-03-31/functions/{urllib.parse.quote(name, safe='')}/invocations"
        if qualifier:
            url += "?Qualifier=" + urllib.parse.quote(qualifier, safe="")
        if isinstance(Payload, str):
            Payload = Payload.encode()
        body = Payload if Payload is not None else b"{}"
        headers = {"Content-Type": "application/json"}
        if kwargs.get("ClientContext"):
            headers["X-Amz-Client-Context"] = kwargs["ClientContext"]
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT) as resp:
                status, resp_headers, data = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:  # non-2xx
            status, resp_headers, data = e.code, e.headers, e.read()
        except (urllib.error.URLError, OSError) as e:
            _log(f"invoke {name} -> unreachable {url}: {e}")
            raise _client_error(
                "ServiceException", f"moto_bridge could not reach {url}: {e}", 500
            ) from None

        function_error = resp_headers.get("X-Amz-Function-Error")
        if function_error is None and status >= 400:
            # cargo-lambda's emulator answers a function error with HTTP 500 and the
            # runtime's {"errorType", "errorMessage"} body, without the header.  Real
            # Lambda answers 200 + X-Amz-Function-Error: Unhandled.  Normalise to the latter.
            try:
                parsed = json.loads(data or b"null")
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and "errorType" in parsed:
                function_error = "Unhandled"
            else:
                _log(f"invoke {name} -> HTTP {status}: {data[:200]!r}")
                code = "ResourceNotFoundException" if status == 404 else "ServiceException"
                raise _client_error(
                    code, f"HTTP {status} from {url}: {data[:500].decode(errors='replace')}", status
                )
        _log(
            f"invoke {name} -> {status} {'FunctionError=' + function_error if function_error else 'ok'}"
            f" in {time.monotonic() - started:.3f}s"
        )
        out: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": resp_headers.get("X-Amz-Executed-Version", "$LATEST"),
            "Payload": io.BytesIO(data),
        }
        if function_error:
            out["FunctionError"] = function_error
        return out


_original_boto_client_for = lambda_eval_utils.boto_client_for


def _bridged_boto_client_for(region: str, service: str, state_credentials: Any = None):
    if service == "lambda":
        return BridgeLambdaClient(region=region)
    return _original_boto_client_for(
        region=region, service=service, state_credentials=state_credentials
    )


def _serialize_dynamodb_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        assert hasattr(DynamoDBBackend, name), "moto layout changed"
        real = getattr(DynamoDBBackend, name)

        def serialized(self, *args, _real=real, **kwargs):
            with lock:
                return _real(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, serialized)


def install() -> None:
    # 1. Lambda calls from the ASL interpreter -> our endpoint.
    assert hasattr(lambda_eval_utils, "boto_client_for"), "moto layout changed"
    lambda_eval_utils.boto_client_for = _bridged_boto_client_for

    # 2. Optional: scale Retry back-off sleeps (retrier_decl does `time.sleep(interval)`).
    scale = float(os.environ.get("MOTO_BRIDGE_RETRY_SCALE", "1.0"))
    if scale != 1.0:
        assert hasattr(retrier_decl, "time"), "moto layout changed"
        real_time = retrier_decl.time
        retrier_decl.time = types.SimpleNamespace(
            **{k: getattr(real_time, k) for k in dir(real_time) if not k.startswith("__")},
        )
        retrier_decl.time.sleep = lambda s: real_time.sleep(max(0.0, s * scale))

    # 3. DynamoDB writes one at a time, as DynamoDB serializes them. moto's
    #    TransactWriteItems snapshots the tables and, when a condition fails, restores the
    #    snapshot: run concurrently with another write (the server is threaded), that erases
    #    the other write, so two conditional lock transactions could both "win".
    _serialize_dynamodb_writes()

    # 4. Optional: real execution on from the start.
    if os.environ.get("MOTO_BRIDGE_EXECUTE_SFN", "1") == "1":
        default_user_config["stepfunctions"] = {"execute_state_machine": True}

    # 5. IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT) on the resources AWS checks.
    moto_iam.install()

    # 6. Systems Manager Automation executions of the stored runbooks; their
    #    aws:invokeLambdaFunction steps reach the same Lambda endpoint as the state machine's.
    ssm_automation.install(BridgeLambdaClient(region="us-east-1").invoke)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The interpreter reaches every *other* service at http://localhost:$MOTO_PORT
    # (moto/stepfunctions/parser/asl/utils/boto_client.py).  moto.server.main only sets
    # MOTO_PORT when it is unset, so a stale MOTO_PORT in the environment would silently
    # send S3/SQS/... calls to the wrong port.  Force it to the port we serve on.
    port = os.environ.get("MOTO_PORT", "5000")
    for i, a in enumerate(argv):
        if a in ("-p", "--port") and i + 1 < len(argv):
            port = argv[i + 1]
        elif a.startswith("--port="):
            port = a.split("=", 1)[1]
    os.environ["MOTO_PORT"] = port
    install()
    _log(
        f"lambda endpoint={_DEFAULT_ENDPOINT} routes={_ROUTES} "
        f"retry_scale={os.environ.get('MOTO_BRIDGE_RETRY_SCALE', '1.0')} port={port}"
    )
    moto.server.main(argv)


if __name__ == "__main__":
    main()
