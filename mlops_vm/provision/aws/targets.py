"""One fleet instance out of the ALB's target group and back: a release, host by host.

Deregistering starts the target group's deregistration delay (= LoadBalancerSpec.
drain_seconds): the ALB sends the target no new request while requests in flight finish;
the target is `draining`, then `unused`. deregister returns once it is `unused`, so the
caller may stop the old model container without cutting a request. register puts it back
(`initial` until its health checks pass); wait_target_healthy in base.py waits for that.

Instances of a scaling group are never handled here: the group rolls them through an
instance refresh (scaling_group.py), and it re-registers them itself.
"""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision import target_errors
from mlops_vm.provision.aws import instances, load_balancer
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.aws.errors import PROVIDER
from mlops_vm.provision.model import Instance, LoadBalancerSpec

# States in which the target is out of rotation for good (or was never in it).
OUT_STATES = frozenset({"unused"})


def target_group(ctx: AwsContext, spec: LoadBalancerSpec, doing: str) -> dict[str, Any]:
    group = load_balancer.find_by_name(
        ctx, "target_group", load_balancer.target_group_name(spec), spec.env
    )
    if group is None:
        part = f"target group {load_balancer.target_group_name(spec)}"
        raise target_errors.no_load_balancer(PROVIDER, spec.env, part, doing)
    return group


def refuse_scaling_group_member(instance: Instance, doing: str) -> None:
    group = instance.tags.get(instances.ASG_TAG)
    if group:
        raise target_errors.scaling_group_member(
            PROVIDER,
            f"{instance.id} belongs to scaling group {group}",
            "an instance refresh",
            "the launch template",
            doing,
        )


def target_state(ctx: AwsContext, arn: str, instance_id: str) -> str:
    """The target's state in the group: healthy, initial, unhealthy, draining, unused, ..."""
    found = ctx.call(
        "elbv2",
        "describe_target_health",
        f"read the health of target {instance_id}",
        # Named explicitly, a target the group does not hold is listed as `unused`.
        TargetGroupArn=arn,
        Targets=[{"Id": instance_id}],
    ).get("TargetHealthDescriptions", [])
    return found[0].get("TargetHealth", {}).get("State", "unused") if found else "unused"


def deregister_target(
    ctx: AwsContext, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog
) -> None:
    doing = f"deregister target {instance.id}"
    refuse_scaling_group_member(instance, doing)
    group = target_group(ctx, spec, doing)
    arn = group["TargetGroupArn"]
    load_balancer.ensure_drain_delay(ctx, spec, group["TargetGroupName"], arn, log)
    state = target_state(ctx, arn, instance.id)
    if state in OUT_STATES:
        return
    if state != "draining":  # draining: someone deregistered it already; only wait
        log.delete(
            "target",
            instance.id,
            lambda: load_balancer.deregister_targets(ctx, arn, [instance.id], doing),
            f"deregister, drain {spec.drain_seconds}s",
        )
    # A real run's only: a dry run changed nothing to wait for, and must not block on a
    # drain somebody else started.
    log.follow_up(lambda: wait_drained(ctx, spec, arn, instance.id))


def wait_drained(ctx: AwsContext, spec: LoadBalancerSpec, arn: str, instance_id: str) -> None:
    ctx.wait_for(
        lambda: target_state(ctx, arn, instance_id) in OUT_STATES,
        f"target {instance_id} has drained",
        timeout_s=spec.drain_seconds + ctx.options.drain_margin_s,
    )


def register_target(
    ctx: AwsContext, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog
) -> None:
    doing = f"register target {instance.id}"
    refuse_scaling_group_member(instance, doing)
    arn = target_group(ctx, spec, doing)["TargetGroupArn"]
    # A draining target is on its way out: registering it again takes it back.
    if target_state(ctx, arn, instance.id) in OUT_STATES | {"draining"}:
        log.create(
            "target",
            instance.id,
            lambda: load_balancer.register_targets(
                ctx, arn, [instance.id], doing, spec.backend_port
            ),
            "register",
        )
