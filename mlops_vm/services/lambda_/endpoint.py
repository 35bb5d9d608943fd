"""The function URL on the alias (public: AuthType NONE and the permission that lets
anyone invoke it; authenticated: AWS_IAM, SigV4-signed callers with
lambda:InvokeFunctionUrl), and the concurrency: reserved on the function
(max_instances), provisioned on the alias (min_instances instances kept initialised)."""

import json
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext, Resource
from mlops_vm.provision.errors import ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.lambda_ import names


def alias(ctx: AwsContext, function: str) -> Resource:
    """The calls about the function's alias, where the URL, the permissions and the
    provisioned concurrency live."""
    return Resource(ctx, "lambda", {"FunctionName": function, "Qualifier": names.ALIAS})


def auth_type(spec: ServiceSpec) -> str:
    return "AWS_IAM" if spec.access == "authenticated" else "NONE"


def find_url(ctx: AwsContext, function: str) -> dict[str, Any] | None:
    return alias(ctx, function).find("get_function_url_config", "find the function URL")


def alias_statements(ctx: AwsContext, function: str) -> list[dict[str, Any]]:
    """The statements of the alias's resource policy (who may invoke it): [] without one."""
    doing = "read the alias's permissions"
    policy = alias(ctx, function).call("get_policy", doing, missing_ok=True).get("Policy")
    return json.loads(policy)["Statement"] if policy else []


def public_permission(ctx: AwsContext, function: str) -> bool:
    return any(s.get("Sid") == names.URL_PERMISSION for s in alias_statements(ctx, function))


def ensure_url(ctx: AwsContext, log: ChangeLog, spec: ServiceSpec) -> None:
    function, wanted = spec.name, auth_type(spec)
    url = find_url(ctx, function)
    label = f"{function}:{names.ALIAS}"
    if url is None or url.get("AuthType") != wanted:
        log.apply(
            "create" if url is None else "update",
            "function_url",
            label,
            lambda: alias(ctx, function).call(
                "create_function_url_config" if url is None else "update_function_url_config",
                "set up the function URL",
                AuthType=wanted,
            ),
            wanted,
        )
    has_permission = public_permission(ctx, function)
    if wanted == "NONE" and not has_permission:
        log.create(
            "lambda_permission",
            label,
            lambda: add_permission(
                ctx,
                function,
                names.URL_PERMISSION,
                "let anyone call the URL",
                Action="lambda:InvokeFunctionUrl",
                Principal="*",
                FunctionUrlAuthType="NONE",
            ),
            "anyone may call the URL",
        )
    elif wanted == "AWS_IAM" and has_permission:
        log.delete(
            "lambda_permission",
            label,
            lambda: remove_permission(ctx, function, names.URL_PERMISSION),
            "the URL is IAM-only",
        )


def add_permission(
    ctx: AwsContext, function: str, statement: str, doing: str, **grant: str
) -> None:
    """The alias's permission STATEMENT (a statement id): GRANT says who may do what."""
    alias(ctx, function).call("add_permission", doing, StatementId=statement, **grant)


def remove_permission(ctx: AwsContext, function: str, statement: str) -> None:
    """The alias's permission STATEMENT (a statement id) gone."""
    doing = f"remove the permission {statement}"
    alias(ctx, function).delete("remove_permission", doing, StatementId=statement)


def ensure_reserved(ctx: AwsContext, log: ChangeLog, spec: ServiceSpec) -> None:
    current = ctx.call(
        "lambda",
        "get_function_concurrency",
        "read the reserved concurrency",
        missing_ok=True,
        FunctionName=spec.name,
    ).get("ReservedConcurrentExecutions")
    if current == spec.max_instances:
        return
    log.update(
        "lambda_concurrency",
        spec.name,
        lambda: ctx.call(
            "lambda",
            "put_function_concurrency",
            "reserve concurrency",
            FunctionName=spec.name,
            ReservedConcurrentExecutions=spec.max_instances,
        ),
        f"reserved {spec.max_instances}",
    )


def provisioned(ctx: AwsContext, function: str) -> int:
    """Provisioned concurrency on the alias; 0 when none (or the endpoint has no such API:
    moto answers a bare 404)."""
    try:
        found = alias(ctx, function).call(
            "get_provisioned_concurrency_config",
            "read the provisioned concurrency",
            missing_ok=True,
        )
    except ProvisionError as error:
        if "404" in str(error):
            return 0
        raise
    return int(found.get("RequestedProvisionedConcurrentExecutions", 0))


def ensure_provisioned(ctx: AwsContext, log: ChangeLog, spec: ServiceSpec) -> None:
    current, wanted = provisioned(ctx, spec.name), spec.min_instances
    if current == wanted:
        return
    on_alias = alias(ctx, spec.name)
    log.update(
        "provisioned_concurrency",
        f"{spec.name}:{names.ALIAS}",
        lambda: (
            on_alias.call(
                "put_provisioned_concurrency_config",
                "provision concurrency",
                ProvisionedConcurrentExecutions=wanted,
            )
            if wanted
            else on_alias.delete(
                "delete_provisioned_concurrency_config", "remove the provisioned concurrency"
            )
        ),
        f"{wanted} instances",
    )


def remove_url(ctx: AwsContext, log: ChangeLog, function: str) -> None:
    """No function URL (endpoint: alb): the ALB is the one way in."""
    label = f"{function}:{names.ALIAS}"
    if find_url(ctx, function) is not None:
        log.delete(
            "function_url",
            label,
            lambda: alias(ctx, function).delete(
                "delete_function_url_config", "remove the function URL"
            ),
            "the ALB is the endpoint",
        )
    if public_permission(ctx, function):
        log.delete(
            "lambda_permission",
            label,
            lambda: remove_permission(ctx, function, names.URL_PERMISSION),
            "no function URL",
        )
