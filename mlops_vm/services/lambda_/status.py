"""The environment's function found by its tag, and the service as Lambda reports it."""

from dataclasses import replace
from typing import Any

from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services.aws_alb import custom_domain
from mlops_vm.services.base import ServiceRecord
from mlops_vm.services.lambda_ import alb, endpoint, function, names, release


def find_function_name(ctx: AwsContext, env: str) -> str | None:
    """The image function tagged with ENV (its name is the service's: service.name)."""
    for found in ctx.pages("lambda", "list_functions", "Functions", "list the functions"):
        if found.get("PackageType") != "Image":
            continue
        tags = ctx.call(
            "lambda", "list_tags", "read the function's tags", Resource=found["FunctionArn"]
        ).get("Tags", {})
        if tags.get(TAG_ENV) == env:
            return found["FunctionName"]
    return None


def traffic(alias: dict[str, Any]) -> dict[str, int]:
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    shares = {version: round(weight * 100) for version, weight in weights.items()}
    return {alias["FunctionVersion"]: 100 - sum(shares.values()), **shares}


def service_record(ctx: AwsContext, env: str) -> ServiceRecord | None:
    name = find_function_name(ctx, env)
    if name is None:
        return None
    found = function.find_function(ctx, name)
    if found is None:
        return None
    config = found["Configuration"]
    by_version = {v["Version"]: v for v in function.versions(ctx, name)}
    alias = release.find_alias(ctx, name)
    url = endpoint.find_url(ctx, name)
    balancer = alb.find_alb(ctx, env)
    domain = (found.get("Tags") or {}).get(names.TAG_DOMAIN)
    record = ServiceRecord(
        name=name,
        url=(
            f"https://{domain or balancer['DNSName']}"
            if balancer
            else (url["FunctionUrl"] if url else None)
        ),
        resources={
            "function_arn": config["FunctionArn"],
            "role": config.get("Role"),
            "log_group": names.log_group_name(name),
            "image": found["Code"].get("ImageUri"),
            "reserved_concurrency": (found.get("Concurrency") or {}).get(
                "ReservedConcurrentExecutions"
            ),
            "url_auth": url.get("AuthType") if url else None,
            "load_balancer_arn": balancer["LoadBalancerArn"] if balancer else None,
            # On its own domain: the ALB's own URL and the DNS record to create.
            **(custom_domain(domain, balancer["DNSName"]) if balancer and domain else {}),
        },
    )
    if alias is None:
        record.healthy, record.reason = False, f"no alias {names.ALIAS}: nothing released"
        return record
    moved = release.alias_record(alias)
    active = by_version.get(alias["FunctionVersion"])
    if active is not None:
        revision = function.revision(active)
        if moved.get("source") == "rollback":  # the alias moved back: what made it now
            revision = replace(revision, source="rollback")
        record.active = revision
        record.healthy = active.get("State") == "Active"
        record.reason = "" if record.healthy else active.get("StateReason", "not active")
    previous = by_version.get(moved.get("previous") or "")
    record.previous = function.revision(previous) if previous else None
    record.traffic = traffic(alias)
    record.resources["alias_arn"] = alias["AliasArn"]
    record.desired = record.running = endpoint.provisioned(ctx, name)
    return record
