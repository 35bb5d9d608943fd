"""service.lambda.endpoint: alb: an HTTPS Application Load Balancer invoking the alias.

The AWS provider's network and ALB (services/aws_alb.py, as ECS has them) with a Lambda
target group (health checks invoke the readiness path), the permission for Elastic Load
Balancing to invoke the alias from that target group only, and the alias's ARN registered
as the one target. A release or a rollback moves the alias: the target stays on it.
"""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import destroy as aws_destroy
from mlops_vm.provision.aws import load_balancer
from mlops_vm.provision.aws import names as aws_names
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import FleetSpec, LoadBalancerResult, LoadBalancerSpec
from mlops_vm.schema import NetworkConfig
from mlops_vm.services import aws_alb
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.lambda_ import endpoint, names
from mlops_vm.services.lambda_ import function as functions

ELB_PRINCIPAL = "elasticloadbalancing.amazonaws.com"


def fleet_spec(spec: ServiceSpec) -> FleetSpec:
    return aws_alb.fleet_spec(spec, NetworkConfig())


def lb_spec(spec: ServiceSpec) -> LoadBalancerSpec:
    return aws_alb.lb_spec(spec, "lambda")


def permitted_source(statement: dict[str, Any]) -> str | None:
    """The target group ARN a statement lets invoke (its SourceArn condition)."""
    condition = statement.get("Condition") or {}
    return (condition.get("ArnLike") or {}).get("AWS:SourceArn")


def ensure_permission(
    ctx: AwsContext, log: ChangeLog, function: str, target_group_arn: str
) -> None:
    """Elastic Load Balancing may invoke the alias, from TARGET_GROUP_ARN only."""
    statements = endpoint.alias_statements(ctx, function)
    found = [s for s in statements if s.get("Sid") == names.ALB_PERMISSION]
    if found and permitted_source(found[0]) == target_group_arn:
        return
    label = f"{function}:{names.ALIAS}"

    def grant() -> None:
        if found:  # another target group's (replaced): a statement id is unique
            revoke(ctx, function)
        endpoint.add_permission(
            ctx,
            function,
            names.ALB_PERMISSION,
            "let the load balancer invoke the alias",
            Action="lambda:InvokeFunction",
            Principal=ELB_PRINCIPAL,
            SourceArn=target_group_arn,
        )

    log.apply("update" if found else "create", "lambda_permission", label, grant, "ALB may invoke")


def revoke(ctx: AwsContext, function: str) -> None:
    endpoint.remove_permission(ctx, function, names.ALB_PERMISSION)


def ensure_target(
    ctx: AwsContext, log: ChangeLog, function: str, target_group_arn: str, alias_arn: str
) -> None:
    """The alias is the target group's one target (a function's bare ARN or a version's
    would not follow releases)."""
    registered = set()
    if not aws_names.is_planned(target_group_arn):
        health = load_balancer.describe_health(ctx, target_group_arn)
        registered = {d["Target"]["Id"] for d in health}
    if registered == {alias_arn}:
        return
    stale = sorted(registered - {alias_arn})

    def register() -> None:
        if stale:
            load_balancer.deregister_targets(
                ctx, target_group_arn, stale, "deregister other functions"
            )
        load_balancer.register_targets(ctx, target_group_arn, [alias_arn], "register the alias")

    log.create("target", f"{function}:{names.ALIAS}", register, "the alias behind the ALB")


def ensure_domain_tag(
    ctx: AwsContext, log: ChangeLog, spec: ServiceSpec, found: dict[str, Any]
) -> None:
    """service.domain as the function's tag (status gets only ENV and prints it); FOUND:
    the function as get_function answers."""
    current = (found.get("Tags") or {}).get(names.TAG_DOMAIN)
    if current == spec.domain:
        return
    arn = found["Configuration"]["FunctionArn"]
    log.update(
        "lambda_function",
        spec.name,
        lambda: (
            ctx.call(
                "lambda",
                "tag_resource",
                "tag the function with the domain",
                Resource=arn,
                Tags={names.TAG_DOMAIN: spec.domain},
            )
            if spec.domain
            else ctx.call(
                "lambda",
                "untag_resource",
                "remove the domain tag",
                Resource=arn,
                TagKeys=[names.TAG_DOMAIN],
            )
        ),
        f"domain {spec.domain or '(none)'}",
    )


def ensure_alb(ctx: AwsContext, log: ChangeLog, spec: ServiceSpec) -> LoadBalancerResult:
    """The network, the ALB and its Lambda target group, the invoke permission, the alias
    registered: in that order (ELB refuses a Lambda target it may not invoke)."""
    lb = lb_spec(spec)
    _, result = aws_alb.ensure_network_and_lb(ctx, log, spec, fleet_spec(spec), lb)
    group = result.resources.get("target_group_arn") or aws_names.planned(
        "arn", load_balancer.target_group_name(lb)
    )
    ensure_permission(ctx, log, spec.name, group)
    # None only in a dry run that would create the function (a run has made it by now).
    found = functions.find_function(ctx, spec.name) or {
        "Configuration": {"FunctionArn": aws_names.planned("arn", spec.name)}
    }
    ensure_domain_tag(ctx, log, spec, found)
    function_arn = found["Configuration"]["FunctionArn"]
    ensure_target(ctx, log, spec.name, group, f"{function_arn}:{names.ALIAS}")
    return result


def find_alb(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    name = load_balancer.load_balancer_name(env)
    return load_balancer.find_by_name(ctx, "load_balancer", name, env)


def remove_alb(ctx: AwsContext, log: ChangeLog, env: str, function: str) -> None:
    """No load balancer (endpoint: url): the ALB, its network and the permission go."""
    if find_alb(ctx, env) is None:
        return
    if any(s.get("Sid") == names.ALB_PERMISSION for s in endpoint.alias_statements(ctx, function)):
        log.delete(
            "lambda_permission",
            f"{function}:{names.ALIAS}",
            lambda: revoke(ctx, function),
            "no load balancer",
        )
    log.extend(aws_destroy.destroy(ctx, env, dry_run=log.dry_run))
