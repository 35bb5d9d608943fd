"""Releases: a published version behind the alias `live`, health-gated.

The new version is invoked with a function-URL event for the readiness path before any
traffic reaches it; with canary_percent it then gets that share of the alias
(AdditionalVersionWeights) and is checked again before the alias moves to it entirely;
with canary.enabled its CloudWatch figures are then judged against the old version's
(services/canary.py), and a canary that does not hold moves the alias back.
A version that never answers 200 within spec.healthy_timeout_s leaves the alias where it
was. The alias's description records the version it pointed at before (what `rollback`
returns to) and what moved it.
"""

import json
import time
from typing import Any

from mlops_vm.metrics import Figures
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services import canary
from mlops_vm.services.lambda_ import metrics, names
from mlops_vm.services.settings import LambdaServiceConfig


def find_alias(ctx: AwsContext, function: str) -> dict[str, Any] | None:
    return ctx.find(
        "lambda", "get_alias", "find the alias", FunctionName=function, Name=names.ALIAS
    )


def alias_record(alias: dict[str, Any] | None) -> dict[str, str]:
    """{"previous": version, "source": what moved the alias} from its description."""
    try:
        return json.loads((alias or {}).get("Description") or "{}")
    except ValueError:
        return {}


def readiness_event(path: str) -> dict[str, Any]:
    """A function-URL (payload 2.0) GET of PATH, as Lambda would deliver it."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"user-agent": "mlops-vm-readiness", "accept": "application/json"},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
            },
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


def invoke(
    ctx: AwsContext,
    options: LambdaServiceConfig,
    function: str,
    version: str,
    event: dict[str, Any],
) -> dict[str, Any]:
    """The version's answer to EVENT: Lambda's Invoke, or the Runtime Interface Emulator's
    (the same API) where the control plane is emulated."""
    if options.invoke_endpoint_url:
        import boto3

        client = boto3.client(
            "lambda",
            region_name=ctx.region,
            endpoint_url=options.invoke_endpoint_url,
            aws_access_key_id="emulator",
            aws_secret_access_key="emulator",
        )
        answer = client.invoke(FunctionName="function", Payload=json.dumps(event).encode())
    else:
        answer = ctx.call(
            "lambda",
            "invoke",
            f"invoke version {version}",
            FunctionName=function,
            Qualifier=version,
            Payload=json.dumps(event).encode(),
        )
    payload = answer["Payload"].read()
    return {"error": answer.get("FunctionError"), "payload": json.loads(payload or b"null")}


def unready_reason(answer: dict[str, Any]) -> str:
    """Why ANSWER is not a 200 (empty when it is)."""
    payload = answer["payload"] or {}
    if answer["error"]:
        return f"{answer['error']}: {payload.get('errorMessage') or payload}"
    status = payload.get("statusCode")
    return "" if status == 200 else f"readiness answered {status}: {payload.get('body', '')[:200]}"


def health_gate(
    ctx: AwsContext,
    options: LambdaServiceConfig,
    function: str,
    version: str,
    path: str,
    timeout_s: int,
) -> None:
    """Return once VERSION answers PATH with 200; ProvisionError(TIMEOUT) with the last
    reason otherwise."""
    reasons: list[str] = []

    def ready() -> bool:
        try:
            reason = unready_reason(invoke(ctx, options, function, version, readiness_event(path)))
        except ProvisionError as error:
            reason = str(error)
        except Exception as error:  # the emulator's connection: not up yet
            reason = f"{type(error).__name__}: {error}"
        reasons.append(reason)
        return not reason

    try:
        ctx.wait_for(ready, f"version {version} answers {path}", timeout_s=timeout_s)
    except ProvisionError:
        raise ProvisionError(
            ErrorCode.TIMEOUT,
            f"version {version} of {function} did not become ready within {timeout_s}s: "
            f"{reasons[-1] if reasons else 'no answer'}; the alias {names.ALIAS} stays put",
            hint="see `mlops-vm logs ENV` for the function's output",
            provider="aws",
            operation="health-check the new version",
        ) from None


def move_alias(
    ctx: AwsContext,
    function: str,
    version: str,
    alias: dict[str, Any] | None,
    source: str,
    weights: dict[str, float] | None = None,
) -> None:
    """The alias to VERSION (WEIGHTS: a share for another version), recording the one it
    pointed at before."""
    previous = alias["FunctionVersion"] if alias else None
    if previous == version:
        previous = alias_record(alias).get("previous")
    record = {"previous": previous, "source": source} if previous else {"source": source}
    params = {
        "FunctionName": function,
        "Name": names.ALIAS,
        "FunctionVersion": version,
        "Description": json.dumps(record, separators=(",", ":")),
        "RoutingConfig": {"AdditionalVersionWeights": weights or {}},
    }
    if alias is None:
        ctx.call("lambda", "create_alias", "create the alias", **params)
    else:
        ctx.call("lambda", "update_alias", "move the alias", **params)


def gate(
    ctx: AwsContext, options: LambdaServiceConfig, function: str, version: str, current: str
) -> None:
    """The canary window on VERSION's share of the alias, judged against CURRENT's figures
    from CloudWatch; ProvisionError(CANARY) naming them when it does not hold."""

    def read(window_s: float) -> tuple[Figures, Figures]:
        found = metrics.version_figures(ctx, function, [current, version], window_s)
        return found[current], found[version]

    judged = canary.observe(options.canary, read, sleep=ctx.sleep)
    if not judged.holds:
        raise canary.rolled_back(f"version {version}", judged, "aws", f"version {current}")


def shift(
    ctx: AwsContext,
    log: ChangeLog,
    options: LambdaServiceConfig,
    function: str,
    version: str,
    *,
    readiness_path: str,
    timeout_s: int,
    source: str,
) -> None:
    """Traffic to VERSION, health-gated (a canary share first when asked for)."""
    alias = find_alias(ctx, function)
    current = alias["FunctionVersion"] if alias else None
    detail = f"version {version}" + (f", was {current}" if current else "")
    if options.canary_percent and current:
        detail += f", canary {options.canary_percent}% first"
        if options.canary.enabled:
            detail += f", judged over {options.canary.window_s:.0f}s"

    def health_gated() -> None:
        health_gate(ctx, options, function, version, readiness_path, timeout_s)
        moving = alias
        if options.canary_percent and moving is not None:
            kept = alias_record(moving).get("source", "")
            weights = {version: options.canary_percent / 100}
            move_alias(ctx, function, current, moving, kept, weights)
            try:
                health_gate(ctx, options, function, version, readiness_path, timeout_s)
                if options.canary.enabled:
                    gate(ctx, options, function, version, current)
            except ProvisionError:
                move_alias(ctx, function, current, find_alias(ctx, function), kept)
                raise
            moving = find_alias(ctx, function)
        move_alias(ctx, function, version, moving, source)

    log.apply(
        "update" if alias else "create",
        "lambda_alias",
        f"{function}:{names.ALIAS}",
        health_gated,
        detail,
    )
