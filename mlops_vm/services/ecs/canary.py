"""The ECS canary: a weighted target-group pair behind the ALB's HTTPS listener.

With service.ecs.canary.enabled, a release does not roll the service at once:
1. a second target group (`<env>-canary`) is made beside the service's own, and a rule of
   the HTTPS listener (path /*, before its default action) forwards to both (ForwardConfig
   weights 100 / 0: ECS registers a service only into a target group an ALB uses);
2. a canary service (`<service>-canary`, tagged mlops-vm/canary-of) runs the new task
   definition revision in that group, canary_percent of the service's tasks (at least
   one), and must become healthy (its deployment, as the service's own is waited on);
3. the rule's weights become 100 - canary_percent / canary_percent, the window passes,
   and CloudWatch's figures of the two target groups (AWS/ApplicationELB by TargetGroup:
   provision/aws/metrics.py) are judged by metrics.judge (services/canary.py);
4. held (or too quiet to judge): the service itself rolls to the new revision, health-gated
   as without a canary, while the canary still serves its share; not held: the service
   never left the old revision;
5. either way the rule goes, so the listener's default action (the AWS provider's: the
   service's own group, 100 %) has all the traffic again: the new revision when promoted,
   the old one when rolled back; the canary service and its target group are deleted.
   A failed canary exits 1 naming the figures. What a killed run left (the rule, the canary
   service; the group is the provider's to delete as stale) goes at the next run's start.

Why this and not ECS's own: moto (the tests' control plane) implements ELBv2's weighted
forward and plain services, but neither ECS's native canary (deploymentConfiguration
strategy CANARY) nor traffic shifting between CODE_DEPLOY / EXTERNAL task sets (its task
sets are records that carry no traffic). The pair keeps the service on the ECS deployment
controller, so its rolling deployment, circuit breaker and `rollback` stay as they are; a
rule, not the listener's default action, carries the weights, so the provider's listener
is never changed under it.
"""

import math
from dataclasses import dataclass
from typing import Any

from mlops_vm.metrics import Figures
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import load_balancer
from mlops_vm.provision.aws import metrics as aws_metrics
from mlops_vm.provision.aws import names as aws_names
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import LoadBalancerResult
from mlops_vm.services import canary
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names, network, service
from mlops_vm.services.settings import EcsServiceConfig

RULE_PRIORITY = 1  # before any other rule: the listener has none of its own


@dataclass(frozen=True)
class Pair:
    """The listener rule and the two target groups it weighs."""

    rule_arn: str
    stable: str  # the service's own target group
    canary: str  # the canary service's


@dataclass(frozen=True)
class Release:
    """What every step of one judged release works on: the service FOUND going to the
    task definition revision ARN, on the network NET behind the load balancer LB."""

    ctx: AwsContext
    spec: ServiceSpec
    options: EcsServiceConfig
    found: dict[str, Any]
    arn: str
    net: dict[str, Any]
    lb: LoadBalancerResult

    @property
    def env(self) -> str:
        return self.spec.env


def group_name(env: str) -> str:
    return aws_names.elb_name(env, names.CANARY)


def canary_count(desired: int, percent: int) -> int:
    """The canary service's tasks: PERCENT of the service's, at least one."""
    return max(1, math.ceil(desired * percent / 100))


def https_listener_arn(ctx: AwsContext, load_balancer_arn: str) -> str:
    listeners = ctx.call(
        "elbv2", "describe_listeners", "list the listeners", LoadBalancerArn=load_balancer_arn
    )["Listeners"]
    return next(item["ListenerArn"] for item in listeners if item["Protocol"] == "HTTPS")


def forward(stable: str, canary: str, percent: int) -> list[dict[str, Any]]:
    """The rule's action: PERCENT to the canary group, the rest to the service's."""
    groups = [
        {"TargetGroupArn": stable, "Weight": 100 - percent},
        {"TargetGroupArn": canary, "Weight": percent},
    ]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


def add_rule(ctx: AwsContext, env: str, listener_arn: str, stable: str, canary: str) -> str:
    """The listener rule that carries the weights (0 % to the canary for now)."""
    return ctx.call(
        "elbv2",
        "create_rule",
        "add the canary's listener rule",
        ListenerArn=listener_arn,
        Priority=RULE_PRIORITY,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}],
        Actions=forward(stable, canary, 0),
        Tags=load_balancer.lb_tags(env, group_name(env)),
    )["Rules"][0]["RuleArn"]


def weigh(ctx: AwsContext, pair: Pair, percent: int) -> None:
    ctx.call(
        "elbv2",
        "modify_rule",
        f"forward {percent}% to the canary target group",
        RuleArn=pair.rule_arn,
        Actions=forward(pair.stable, pair.canary, percent),
    )


def delete_rule(ctx: AwsContext, rule_arn: str) -> None:
    ctx.delete("elbv2", "delete_rule", "delete the canary's listener rule", RuleArn=rule_arn)


def leftover_rules(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    """The rules that forward to ENV's canary group (an interrupted release's)."""
    group = load_balancer.find_by_name(ctx, "target_group", group_name(env), env)
    if group is None:
        return []
    rules = []
    for alb_arn in group.get("LoadBalancerArns", []):
        listener = https_listener_arn(ctx, alb_arn)
        found = ctx.call("elbv2", "describe_rules", "list the rules", ListenerArn=listener)
        rules += [
            rule
            for rule in found["Rules"]
            if group["TargetGroupArn"] in str(rule.get("Actions", []))
        ]
    return rules


def clear_leftover(ctx: AwsContext, log: ChangeLog, env: str) -> None:
    """What a killed release left: its rule and canary service (before the AWS provider,
    which deletes the group as stale once no rule uses it)."""
    log.delete_each(
        "listener_rule",
        leftover_rules(ctx, env),
        lambda rule: f"{group_name(env)} priority {rule['Priority']}",
        lambda rule: delete_rule(ctx, rule["RuleArn"]),
        "an interrupted canary's",
    )
    service.delete_service(ctx, log, env, canary=True)


def create_group(ctx: AwsContext, spec: ServiceSpec, options: EcsServiceConfig, vpc_id: str) -> str:
    """The canary's target group (the service's health check and drain delay); one an
    interrupted release left is taken as it is."""
    name = group_name(spec.env)
    found = load_balancer.find_by_name(ctx, "target_group", name, spec.env)
    if found is not None:
        return found["TargetGroupArn"]
    return load_balancer.create_target_group(ctx, network.lb_spec(spec, options), name, vpc_id)


def start_canary(release: Release, pair: Pair) -> None:
    """The canary service, running the new revision in the canary group, healthy;
    ProvisionError with the reason (the service untouched) when it never is."""
    ctx, spec, found, env = release.ctx, release.spec, release.found, release.env
    name = names.canary_service_name(found["serviceName"])
    percent = release.options.canary_percent
    count = canary_count(found.get("desiredCount") or spec.min_instances, percent)
    tags = names.tag_list(env, name, {names.TAG_CANARY_OF: found["serviceName"]})
    wanted = service.service_settings(spec, release.options, release.net, pair.canary)
    service.start_service(ctx, env, name, release.arn, count, tags, wanted)
    healthy, state = service.wait_deployed(
        ctx, env, release.arn, spec.healthy_timeout_s, canary=True
    )
    if healthy:
        return
    reasons = service.stopped_task_reasons(ctx, env, name, release.arn)
    raise ProvisionError(
        ErrorCode.TIMEOUT if state.startswith("not healthy after") else ErrorCode.INTERNAL,
        f"the canary of revision {service.revision_label(release.arn)} never became "
        f"healthy: {state}"
        + (f"; stopped tasks: {' | '.join(reasons)}" if reasons else "")
        + f". The service runs {service.revision_label(found['taskDefinition'])}, "
        "traffic never left it.",
        hint="look at the container's logs (`mlops-vm logs ENV`) and its health check "
        "(service.readiness_path)",
        provider="aws",
        operation="start the canary",
    )


def dismantle(ctx: AwsContext, env: str, pair: Pair) -> None:
    """The rule gone (the listener's default action has all the traffic), then the canary
    service and its group."""
    delete_rule(ctx, pair.rule_arn)
    found = service.find_service(ctx, env, canary=True)
    if found is not None:
        service.remove_service(ctx, env, found, canary=True)
    load_balancer.delete_target_group(ctx, pair.canary)


def judged_release(release: Release, change: Change, notes: list[str]) -> None:
    """Steps 1 to 5 of the module's docstring; NOTES gets what the gate said."""
    ctx, env, options = release.ctx, release.env, release.options
    alb = release.lb.resources["load_balancer_arn"]
    stable = release.lb.resources["target_group_arn"]
    old = service.revision_label(release.found["taskDefinition"])
    group = create_group(ctx, release.spec, options, release.net["vpc_id"])
    try:
        rule = add_rule(ctx, env, https_listener_arn(ctx, alb), stable, group)
    except BaseException:
        load_balancer.delete_target_group(ctx, group)
        raise
    pair = Pair(rule, stable, group)

    def read(window_s: float) -> tuple[Figures, Figures]:
        groups = {
            "old": aws_metrics.target_group_dimensions(stable, alb),
            "new": aws_metrics.target_group_dimensions(group, alb),
        }
        figures = aws_metrics.figures(ctx, aws_metrics.ALB_TARGET_GROUP, groups, window_s)
        return figures["old"], figures["new"]

    try:
        start_canary(release, pair)
        weigh(ctx, pair, options.canary_percent)
        judged = canary.observe(options.canary, read, sleep=ctx.sleep)
        new = f"revision {service.revision_label(release.arn)}"
        if not judged.holds:
            raise canary.rolled_back(new, judged, "aws", f"revision {old}")
        notes.append(judged.note(new))
        timeout_s = release.spec.healthy_timeout_s
        service.health_gated_switch(ctx, env, release.found, release.arn, timeout_s, change)
    finally:
        dismantle(ctx, env, pair)


def roll_out(log: ChangeLog, release: Release, notes: list[str]) -> None:
    """The service to the new revision: through the canary when canary.enabled, as
    service.roll_out does otherwise. One change either way, listed alike by a dry run."""
    found, arn, options = release.found, release.arn, release.options
    if not options.canary.enabled or found["taskDefinition"] == arn:
        timeout_s = release.spec.healthy_timeout_s
        service.roll_out(release.ctx, log, release.env, found, arn, timeout_s)
        return
    change = Change(
        "update",
        "ecs_service",
        found["serviceName"],
        f"{service.revision_label(found['taskDefinition'])} -> {service.revision_label(arn)}, "
        f"canary {options.canary_percent}% on target group {group_name(release.env)} first, "
        f"judged over {options.canary.window_s:.0f}s",
    )
    log.update(
        change.kind,
        change.name,
        lambda: judged_release(release, change, notes),
        change.detail,
    )
