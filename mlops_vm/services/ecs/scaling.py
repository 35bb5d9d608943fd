"""Application Auto Scaling of the service's task count: min/max from the spec, target
tracking on average CPU and on ALB requests per task."""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext, Lookup, Resource
from mlops_vm.provision.aws.scaling_group import request_count_label
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.settings import EcsServiceConfig

SERVICE = "application-autoscaling"
NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
CPU_POLICY = "cpu"
REQUESTS_POLICY = "requests"


def policy_name(service: str, kind: str) -> str:
    return f"{service}-{kind}"


def tracking(target: float, metric: dict[str, str]) -> dict[str, Any]:
    """A TargetTrackingScalingPolicyConfiguration: METRIC at TARGET, scale in slowly."""
    return {
        "TargetValue": float(target),
        "PredefinedMetricSpecification": metric,
        "ScaleOutCooldown": 60,
        "ScaleInCooldown": 300,
    }


SCALABLE_TARGET = Lookup(SERVICE, "describe_scalable_targets", "ScalableTargets")


def scalable_target(ctx: AwsContext, resource_id: str) -> Resource:
    """The service's task count as Application Auto Scaling knows it (the calls about it)."""
    key = {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id, "ScalableDimension": DIMENSION}
    return Resource(ctx, SERVICE, key)


def registered(ctx: AwsContext, resource_id: str) -> dict[str, Any] | None:
    """The scalable target's bounds (MinCapacity, MaxCapacity); None before it is registered."""
    return ctx.first(
        SCALABLE_TARGET,
        "read the scalable target",
        ServiceNamespace=NAMESPACE,
        ResourceIds=[resource_id],  # a list here, unlike the calls' ResourceId
        ScalableDimension=DIMENSION,
    )


def policies(target: Resource) -> dict[str, dict[str, Any]]:
    found = target.call("describe_scaling_policies", "read the scaling policies")
    return {policy["PolicyName"]: policy for policy in found["ScalingPolicies"]}


def delete_policy(target: Resource, name: str) -> None:
    target.delete("delete_scaling_policy", f"delete scaling policy {name}", PolicyName=name)


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
    current = registered(ctx, resource_id)
    bounds = (spec.min_instances, spec.max_instances)
    if current is None or (current["MinCapacity"], current["MaxCapacity"]) != bounds:
        log.apply(
            "create" if current is None else "update",
            "scalable_target",
            resource_id,
            lambda: target.call(
                "register_scalable_target",
                "set the task count's bounds",
                MinCapacity=bounds[0],
                MaxCapacity=bounds[1],
            ),
            "{}..{} tasks".format(*bounds),
        )
    have = {} if current is None else policies(target)
    for name, configuration in wanted_policies(spec, options, alb_arn, target_group_arn).items():
        policy = have.pop(name, None)
        if policy and policy.get("TargetTrackingScalingPolicyConfiguration") == configuration:
            continue
        metric = configuration["PredefinedMetricSpecification"]["PredefinedMetricType"]
        log.apply(
            "update" if policy else "create",
            "scaling_policy",
            name,
            lambda name=name, configuration=configuration: target.call(
                "put_scaling_policy",
                f"set scaling policy {name}",
                PolicyName=name,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration=configuration,
            ),
            f"{metric} {configuration['TargetValue']:g}",
        )
    for name in have:  # a policy switched off (its target set to null)
        log.delete("scaling_policy", name, lambda name=name: delete_policy(target, name))


def delete_scaling(ctx: AwsContext, log: ChangeLog, env: str, service: str) -> None:
    resource_id = names.scaling_resource_id(env, service)
    if registered(ctx, resource_id) is None:
        return
    target = scalable_target(ctx, resource_id)
    for name in policies(target):
        log.delete("scaling_policy", name, lambda name=name: delete_policy(target, name))
    log.delete(
        "scalable_target",
        resource_id,
        lambda: target.delete("deregister_scalable_target", "remove the scalable target"),
    )
