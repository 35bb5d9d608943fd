"""The function URL on the alias (public: AuthType NONE and the permission that lets
anyone invoke it; authenticated: AWS_IAM, SigV4-signed callers with
lambda:InvokeFunctionUrl), and the concurrency: reserved on the function
(max_instances), provisioned on the alias (min_instances instances kept initialised)."""

import json
from typing import Any

from mlops_vm.plan import Change
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.lambda_ import names


def auth_type(spec: ServiceSpec) -> str:
    return "AWS_IAM" if spec.access == "authenticated" else "NONE"


def find_url(ctx: AwsContext, function: str) -> dict[str, Any] | None:
    found = ctx.call(
        "lambda",
        "get_function_url_config",
        "find the function URL",
        missing_ok=True,
        FunctionName=function,
        Qualifier=names.ALIAS,
    )
    return found or None


def public_permission(ctx: AwsContext, function: str) -> bool:
    policy = ctx.call(
        "lambda",
        "get_policy",
        "read the function's permissions",
        missing_ok=True,
        FunctionName=function,
        Qualifier=names.ALIAS,
    ).get("Policy")
    statements = json.loads(policy)["Statement"] if policy else []
    return any(s.get("Sid") == names.URL_PERMISSION for s in statements)


def ensure_url(ctx: AwsContext, spec: ServiceSpec, *, dry_run: bool) -> list[Change]:
    function, wanted = spec.name, auth_type(spec)
    url = find_url(ctx, function)
    changes: list[Change] = []
    label = f"{function}:{names.ALIAS}"
    if url is None or url.get("AuthType") != wanted:
        changes.append(Change("create" if url is None else "update", "function_url", label, wanted))
        if not dry_run:
            operation = (
                "create_function_url_config" if url is None else "update_function_url_config"
            )
            ctx.call(
                "lambda",
                operation,
                "set up the function URL",
                FunctionName=function,
                Qualifier=names.ALIAS,
                AuthType=wanted,
            )
    has_permission = public_permission(ctx, function)
    if wanted == "NONE" and not has_permission:
        changes.append(Change("create", "lambda_permission", label, "anyone may call the URL"))
        if not dry_run:
            ctx.call(
                "lambda",
                "add_permission",
                "let anyone call the URL",
                FunctionName=function,
                Qualifier=names.ALIAS,
                StatementId=names.URL_PERMISSION,
                Action="lambda:InvokeFunctionUrl",
                Principal="*",
                FunctionUrlAuthType="NONE",
            )
    elif wanted == "AWS_IAM" and has_permission:
        changes.append(Change("delete", "lambda_permission", label, "the URL is IAM-only"))
        if not dry_run:
            ctx.call(
                "lambda",
                "remove_permission",
                "remove the public permission",
                missing_ok=True,
                FunctionName=function,
                Qualifier=names.ALIAS,
                StatementId=names.URL_PERMISSION,
            )
    return changes


def ensure_reserved(ctx: AwsContext, spec: ServiceSpec, *, dry_run: bool) -> list[Change]:
    current = ctx.call(
        "lambda",
        "get_function_concurrency",
        "read the reserved concurrency",
        missing_ok=True,
        FunctionName=spec.name,
    ).get("ReservedConcurrentExecutions")
    if current == spec.max_instances:
        return []
    if not dry_run:
        ctx.call(
            "lambda",
            "put_function_concurrency",
            "reserve concurrency",
            FunctionName=spec.name,
            ReservedConcurrentExecutions=spec.max_instances,
        )
    return [Change("update", "lambda_concurrency", spec.name, f"reserved {spec.max_instances}")]


def provisioned(ctx: AwsContext, function: str) -> int:
    """Provisioned concurrency on the alias; 0 when none (or the endpoint has no such API:
    moto answers a bare 404)."""
    try:
        found = ctx.call(
            "lambda",
            "get_provisioned_concurrency_config",
            "read the provisioned concurrency",
            missing_ok=True,
            FunctionName=function,
            Qualifier=names.ALIAS,
        )
    except ProvisionError as error:
        if "404" in str(error):
            return 0
        raise
    return int(found.get("RequestedProvisionedConcurrentExecutions", 0))


def ensure_provisioned(ctx: AwsContext, spec: ServiceSpec, *, dry_run: bool) -> list[Change]:
    current, wanted = provisioned(ctx, spec.name), spec.min_instances
    if current == wanted:
        return []
    label = f"{spec.name}:{names.ALIAS}"
    if not dry_run:
        if wanted:
            ctx.call(
                "lambda",
                "put_provisioned_concurrency_config",
                "provision concurrency",
                FunctionName=spec.name,
                Qualifier=names.ALIAS,
                ProvisionedConcurrentExecutions=wanted,
            )
        else:
            ctx.call(
                "lambda",
                "delete_provisioned_concurrency_config",
                "remove the provisioned concurrency",
                missing_ok=True,
                FunctionName=spec.name,
                Qualifier=names.ALIAS,
            )
    return [Change("update", "provisioned_concurrency", label, f"{wanted} instances")]
