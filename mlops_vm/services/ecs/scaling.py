"""Application Auto Scaling of the service's task count: min/max from the spec, target
tracking on average CPU and on ALB requests per task."""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext, Lookup
from mlops_vm.provision.aws.scaling_group import request_count_label
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.settings import EcsServiceConfig

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
CPU_POLICY = "cpu"
REQUESTS_POLICY = "requests"


def policy_name(service: str, kind: str) -> str:
    return f"{service}-{kind}"


def target_key(resource_id: str) -> dict[str, str]:
    """The parameters that name the service's scalable target in every call about it."""
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id,
        "ScalableDimension": DIMENSION,
    }


def tracking(target: float, metric: dict[str, str]) -> dict[str, Any]:
    """A TargetTrackingScalingPolicyConfiguration: METRIC at TARGET, scale in slowly."""
    return {
        "TargetValue": float(target),
        "PredefinedMetricSpecification": metric,
        "ScaleOutCooldown": 60,
        "ScaleInCooldown": 300,
    }


SCALABLE_TARGET = Lookup("application-autoscaling", "describe_scalable_targets", "ScalableTargets")


def scalable_target(ctx: AwsContext, resource_id: str) -> dict[str, Any] | None:
    return ctx.first(
        SCALABLE_TARGET,
        "read the scalable target",
        ServiceNamespace=NAMESPACE,
        ResourceIds=[resource_id],  # a list here, unlike target_key's ResourceId
        ScalableDimension=DIMENSION,
    )


def policies(ctx: AwsContext, resource_id: str) -> dict[str, dict[str, Any]]:
    found = ctx.call(
        "application-autoscaling",
        "describe_scaling_policies",
        "read the scaling policies",
        **target_key(resource_id),
    )["ScalingPolicies"]
    return {policy["PolicyName"]: policy for policy in found}


def wanted_policies(
    spec: ServiceSpec, options: EcsServiceConfig, alb_arn: str | None, target_group_arn: str | None
) -> dict[str, dict[str, Any]]:
    """Policy name -> TargetTrackingScalingPolicyConfiguration."""
    wanted = {}
    if options.target_cpu_percent is not None:
        wanted[policy_name(spec.name, CPU_POLICY)] = tracking(
            options.target_cpu_percent,
            {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        )
    if options.target_requests_per_task is not None:
        label = (
            request_count_label(alb_arn, target_group_arn)
            if alb_arn and target_group_arn
            else "(new load balancer)"
        )
        wanted[policy_name(spec.name, REQUESTS_POLICY)] = tracking(
            options.target_requests_per_task,
            {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label},
        )
    return wanted


def ensure_scaling(
    ctx: AwsContext,
    log: ChangeLog,
    spec: ServiceSpec,
    options: EcsServiceConfig,
    alb_arn: str | None,
    target_group_arn: str | None,
) -> None:
    resource_id = names.scaling_resource_id(spec.env, spec.name)
    target = scalable_target(ctx, resource_id)
    bounds = (spec.min_instances, spec.max_instances)
    if target is None or (target["MinCapacity"], target["MaxCapacity"]) != bounds:
        log.apply(
            "create" if target is None else "update",
            "scalable_target",
            resource_id,
            lambda: ctx.call(
                "application-autoscaling",
                "register_scalable_target",
                "set the task count's bounds",
                **target_key(resource_id),
                MinCapacity=bounds[0],
                MaxCapacity=bounds[1],
            ),
            "{}..{} tasks".format(*bounds),
        )
    have = {} if target is None else policies(ctx, resource_id)
    for name, configuration in wanted_policies(spec, options, alb_arn, target_group_arn).items():
        current = have.pop(name, None)
        if current and current.get("TargetTrackingScalingPolicyConfiguration") == configuration:
            continue
        metric = configuration["PredefinedMetricSpecification"]["PredefinedMetricType"]
        log.apply(
            "update" if current else "create",
            "scaling_policy",
            name,
            lambda name=name, configuration=configuration: ctx.call(
                "application-autoscaling",
                "put_scaling_policy",
                f"set scaling policy {name}",
                PolicyName=name,
                **target_key(resource_id),
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration=configuration,
            ),
            f"{metric} {configuration['TargetValue']:g}",
        )
    for name in have:  # a policy switched off (its target set to null)
        log.delete("scaling_policy", name, lambda name=name: delete_policy(ctx, resource_id, name))


def delete_policy(ctx: AwsContext, resource_id: str, name: str) -> None:
    ctx.delete(
        "application-autoscaling",
        "delete_scaling_policy",
        f"delete scaling policy {name}",
        PolicyName=name,
        **target_key(resource_id),
    )


def delete_scaling(ctx: AwsContext, log: ChangeLog, env: str, service: str) -> None:
    resource_id = names.scaling_resource_id(env, service)
    if scalable_target(ctx, resource_id) is None:
        return
    for name in policies(ctx, resource_id):
        log.delete("scaling_policy", name, lambda name=name: delete_policy(ctx, resource_id, name))
    log.delete(
        "scalable_target",
        resource_id,
        lambda: ctx.delete(
            "application-autoscaling",
            "deregister_scalable_target",
            "remove the scalable target",
            **target_key(resource_id),
        ),
    )
