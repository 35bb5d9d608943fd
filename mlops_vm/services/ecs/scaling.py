"""Application Auto Scaling of the service's task count: min/max from the spec, target
tracking on average CPU and on ALB requests per task."""

from dataclasses import dataclass
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext, Lookup
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


@dataclass(frozen=True)
class ScalableTarget:
    """The service's task count as Application Auto Scaling knows it: every call about it
    names it by the same three parameters (`key`)."""

    ctx: AwsContext
    resource_id: str

    @property
    def key(self) -> dict[str, str]:
        return {
            "ServiceNamespace": NAMESPACE,
            "ResourceId": self.resource_id,
            "ScalableDimension": DIMENSION,
        }

    def call(self, operation: str, doing: str, /, **params: Any) -> dict[str, Any]:
        return self.ctx.call(SERVICE, operation, doing, **self.key, **params)

    def delete(self, operation: str, doing: str, /, **params: Any) -> None:
        self.ctx.delete(SERVICE, operation, doing, **self.key, **params)

    def read(self) -> dict[str, Any] | None:
        """Its bounds (MinCapacity, MaxCapacity); None before it is registered."""
        return self.ctx.first(
            SCALABLE_TARGET,
            "read the scalable target",
            ServiceNamespace=NAMESPACE,
            ResourceIds=[self.resource_id],  # a list here, unlike key's ResourceId
            ScalableDimension=DIMENSION,
        )

    def policies(self) -> dict[str, dict[str, Any]]:
        found = self.call("describe_scaling_policies", "read the scaling policies")
        return {policy["PolicyName"]: policy for policy in found["ScalingPolicies"]}

    def delete_policy(self, name: str) -> None:
        self.delete("delete_scaling_policy", f"delete scaling policy {name}", PolicyName=name)


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
    target = ScalableTarget(ctx, resource_id)
    registered = target.read()
    bounds = (spec.min_instances, spec.max_instances)
    if registered is None or (registered["MinCapacity"], registered["MaxCapacity"]) != bounds:
        log.apply(
            "create" if registered is None else "update",
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
    have = {} if registered is None else target.policies()
    for name, configuration in wanted_policies(spec, options, alb_arn, target_group_arn).items():
        current = have.pop(name, None)
        if current and current.get("TargetTrackingScalingPolicyConfiguration") == configuration:
            continue
        metric = configuration["PredefinedMetricSpecification"]["PredefinedMetricType"]
        log.apply(
            "update" if current else "create",
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
        log.delete("scaling_policy", name, lambda name=name: target.delete_policy(name))


def delete_scaling(ctx: AwsContext, log: ChangeLog, env: str, service: str) -> None:
    resource_id = names.scaling_resource_id(env, service)
    target = ScalableTarget(ctx, resource_id)
    if target.read() is None:
        return
    for name in target.policies():
        log.delete("scaling_policy", name, lambda name=name: target.delete_policy(name))
    log.delete(
        "scalable_target",
        resource_id,
        lambda: target.delete("deregister_scalable_target", "remove the scalable target"),
    )
