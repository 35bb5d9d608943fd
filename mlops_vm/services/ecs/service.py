"""The ECS cluster and service, and how a new task definition revision is rolled out:
ECS starts the new tasks beside the old ones (minimum healthy 100%, maximum 200%), the
ALB sends them traffic once they pass its health check, and the deployment circuit
breaker rolls a revision whose tasks keep failing back. We wait for the outcome; a
deployment that neither completes nor fails in time is put back on the revision that
ran, so traffic never leaves it."""

import time
from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import errors
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.ecs.domain import creation_tags
from mlops_vm.services.ecs.task_definition import differences
from mlops_vm.services.settings import EcsServiceConfig

DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def revision_label(arn: str | None) -> str:
    return (arn or "-").rsplit("/", 1)[-1]


# --- cluster ---------------------------------------------------------------------------


def find_cluster(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    found = ctx.call(
        "ecs",
        "describe_clusters",
        "find the cluster",
        clusters=[names.cluster_name(env)],
        include=["TAGS"],
    ).get("clusters", [])
    return next((c for c in found if c.get("status") == "ACTIVE"), None)


def ensure_cluster(ctx: AwsContext, log: ChangeLog, spec: ServiceSpec) -> None:
    name = names.cluster_name(spec.env)
    log.ensure(
        "ecs_cluster",
        name,
        current=find_cluster(ctx, spec.env),
        create=lambda: ctx.call(
            "ecs",
            "create_cluster",
            "create the cluster",
            clusterName=name,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            tags=names.tag_list(spec.env, name, spec.tags),
        ),
        detail="Fargate",
    )


# --- service ---------------------------------------------------------------------------


def find_service(ctx: AwsContext, env: str, *, canary: bool = False) -> dict[str, Any] | None:
    """The environment's service (ACTIVE, tagged with ENV), None when there is none;
    CANARY: the service a canary release runs beside it (tagged names.TAG_CANARY_OF)."""
    cluster = names.cluster_name(env)
    arns = ctx.call(
        "ecs", "list_services", "list the services", missing_ok=True, cluster=cluster
    ).get("serviceArns", [])
    if not arns:
        return None
    described = ctx.call(
        "ecs",
        "describe_services",
        "read the service",
        cluster=cluster,
        services=arns[:10],
        include=["TAGS"],
    )["services"]
    return next(
        (
            s
            for s in described
            if s.get("status") == "ACTIVE"
            and names.as_dict(s.get("tags")).get(TAG_ENV) == env
            and (names.TAG_CANARY_OF in names.as_dict(s.get("tags"))) == canary
        ),
        None,
    )


def network_configuration(net: dict[str, Any]) -> dict[str, Any]:
    return {
        "awsvpcConfiguration": {
            "subnets": [subnet for subnet in net["subnet_ids"] if subnet],
            "securityGroups": [net["instance_security_group_id"]],
            # Public subnets without NAT: the task's own address reaches ECR and the logs.
            "assignPublicIp": "ENABLED",
        }
    }


def service_settings(
    spec: ServiceSpec, options: EcsServiceConfig, net: dict[str, Any], target_group_arn: str | None
) -> dict[str, Any]:
    """The settings an existing service is converged to (UpdateService's names)."""
    return {
        "networkConfiguration": network_configuration(net),
        "loadBalancers": [
            {
                "targetGroupArn": target_group_arn,
                "containerName": names.CONTAINER,
                "containerPort": spec.port,
            }
        ],
        "healthCheckGracePeriodSeconds": options.health_check_grace_s,
        "deploymentConfiguration": DEPLOYMENT_CONFIGURATION,
    }


def setting_drift(service: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """WANTED's settings that SERVICE (as described) has otherwise."""
    return {key: wanted[key] for key in differences(service, wanted)}


def create_service(
    ctx: AwsContext,
    log: ChangeLog,
    spec: ServiceSpec,
    wanted: dict[str, Any],
    task_definition: str,
) -> None:
    """The service, running TASK_DEFINITION with the settings WANTED, and its first
    revision healthy."""

    def create() -> None:
        start_service(
            ctx,
            spec.env,
            spec.name,
            task_definition,
            spec.min_instances,
            names.tag_list(spec.env, spec.name, creation_tags(spec)),
            wanted,
        )
        # Settings a control plane did not take at creation (moto ignores some) are set
        # now, so that the next run finds nothing to change: part of this creation.
        created = find_service(ctx, spec.env) or {}
        update_settings(ctx, ChangeLog(dry_run=False), spec, created, wanted)

    log.create(
        "ecs_service",
        spec.name,
        create,
        f"{spec.min_instances} task(s) of {revision_label(task_definition)} behind the ALB",
    )
    log.follow_up(lambda: wait_first_revision(ctx, spec, task_definition))


def start_service(
    ctx: AwsContext,
    env: str,
    name: str,
    task_definition: str,
    count: int,
    tags: list[dict[str, str]],
    wanted: dict[str, Any],
) -> None:
    """CreateService: COUNT Fargate tasks of TASK_DEFINITION with the settings WANTED."""
    ctx.call(
        "ecs",
        "create_service",
        f"create service {name}",
        cluster=names.cluster_name(env),
        serviceName=name,
        taskDefinition=task_definition,
        desiredCount=count,
        launchType="FARGATE",
        platformVersion="LATEST",
        schedulingStrategy="REPLICA",
        deploymentController={"type": "ECS"},
        propagateTags="SERVICE",
        enableECSManagedTags=True,
        tags=tags,
        **wanted,
    )


def wait_first_revision(ctx: AwsContext, spec: ServiceSpec, arn: str) -> None:
    healthy, state = wait_deployed(ctx, spec.env, arn, spec.healthy_timeout_s)
    if not healthy:
        raise errors.failure(
            ErrorCode.TIMEOUT,
            f"the service's first revision never became healthy: {state}",
            "look at `mlops-vm logs ENV` and service.readiness_path",
            "start the service",
        )


def update_settings(
    ctx: AwsContext,
    log: ChangeLog,
    spec: ServiceSpec,
    service: dict[str, Any],
    wanted: dict[str, Any],
) -> None:
    drift = setting_drift(service, wanted)
    if not drift:
        return
    log.update(
        "ecs_service",
        service["serviceName"],
        lambda: ctx.call(
            "ecs",
            "update_service",
            "update the service's settings",
            cluster=names.cluster_name(spec.env),
            service=service["serviceName"],
            **drift,
        ),
        ", ".join(sorted(drift)),
    )


# --- rolling out a revision -------------------------------------------------------------


def stopped_task_reasons(ctx: AwsContext, env: str, service: str, arn: str) -> list[str]:
    """Why the revision's tasks stopped (the exit code, the failed health check)."""
    cluster = names.cluster_name(env)
    task_arns = ctx.call(
        "ecs",
        "list_tasks",
        "list the stopped tasks",
        cluster=cluster,
        serviceName=service,
        desiredStatus="STOPPED",
    ).get("taskArns", [])
    if not task_arns:
        return []
    tasks = ctx.call(
        "ecs", "describe_tasks", "read the stopped tasks", cluster=cluster, tasks=task_arns[:20]
    ).get("tasks", [])
    reasons = []
    for task in tasks:
        if task.get("taskDefinitionArn") != arn:
            continue
        containers = "; ".join(
            f"{c.get('name')}: exit {c.get('exitCode')} {c.get('reason', '')}".strip()
            for c in task.get("containers", [])
            if c.get("exitCode") is not None or c.get("reason")
        )
        reasons.append(" ".join(part for part in (task.get("stoppedReason"), containers) if part))
    return sorted(set(reasons))[:3]


def deployment_outcome(service: dict[str, Any], arn: str) -> tuple[bool | None, str]:
    """(True: ARN runs everywhere, healthy; False: ECS gave up on it; None: still rolling),
    and the state in ECS's words."""
    deployments = service.get("deployments", [])
    ours = [d for d in deployments if d.get("taskDefinition") == arn]
    if not ours and service.get("taskDefinition") == arn:
        return None, "the deployment is starting"
    if not ours:
        # The circuit breaker rolled back: the service is on another revision again.
        events = [e.get("message", "") for e in service.get("events", [])[:3]]
        return False, "; ".join(events) or "the deployment was rolled back"
    deployment = ours[0]
    state = deployment.get("rolloutState", "")
    reason = deployment.get("rolloutStateReason", "") or state
    if state == "FAILED":
        return False, reason
    done = (
        deployment.get("status") == "PRIMARY"
        and state == "COMPLETED"
        and len(deployments) == 1
        and deployment.get("runningCount", 0) >= deployment.get("desiredCount", 0)
    )
    return (True if done else None), (
        f"{deployment.get('runningCount', 0)}/{deployment.get('desiredCount', 0)} "
        f"tasks running, {reason}"
    )


def wait_deployed(
    ctx: AwsContext, env: str, arn: str, timeout_s: float, *, canary: bool = False
) -> tuple[bool, str]:
    """Whether ARN's deployment (of the canary service: CANARY) completed within
    TIMEOUT_S, and the last state."""
    deadline = time.monotonic() + timeout_s
    while True:
        service = find_service(ctx, env, canary=canary)
        if service is None:
            return False, "the service disappeared"
        outcome, state = deployment_outcome(service, arn)
        if outcome is not None:
            return outcome, state
        if time.monotonic() > deadline:
            return False, f"not healthy after {timeout_s:.0f}s ({state})"
        ctx.sleep(ctx.options.poll_interval_s)


def switch(ctx: AwsContext, env: str, service: str, arn: str, doing: str) -> None:
    ctx.call(
        "ecs",
        "update_service",
        doing,
        cluster=names.cluster_name(env),
        service=service,
        taskDefinition=arn,
    )


def remember_previous(ctx: AwsContext, service: dict[str, Any], previous: str) -> None:
    ctx.call(
        "ecs",
        "tag_resource",
        "record the previous revision on the service",
        resourceArn=service["serviceArn"],
        tags=[{"key": names.TAG_PREVIOUS, "value": previous}],
    )


def roll_out(
    ctx: AwsContext,
    log: ChangeLog,
    env: str,
    service: dict[str, Any],
    arn: str,
    timeout_s: float,
) -> None:
    """Move SERVICE to revision ARN, health-gated; back on the revision it ran (and a
    ProvisionError with the reason) when ARN never becomes healthy."""
    name, old = service["serviceName"], service["taskDefinition"]
    if old == arn:
        return
    change = Change(
        "update", "ecs_service", name, f"{revision_label(old)} -> {revision_label(arn)}"
    )
    log.update(
        change.kind,
        change.name,
        lambda: health_gated_switch(ctx, env, service, arn, timeout_s, change),
        change.detail,
    )


def health_gated_switch(
    ctx: AwsContext, env: str, service: dict[str, Any], arn: str, timeout_s: float, change: Change
) -> None:
    name, old = service["serviceName"], service["taskDefinition"]
    switch(ctx, env, name, arn, "start the new revision's deployment")
    healthy, state = wait_deployed(ctx, env, arn, timeout_s)
    if healthy:
        remember_previous(ctx, service, old)
        return
    reasons = stopped_task_reasons(ctx, env, name, arn)
    now = (find_service(ctx, env) or {}).get("taskDefinition")
    back = Change("update", "ecs_service", name, f"rolled back to {revision_label(old)}")
    if now != old:  # the circuit breaker had not done it yet: we do, traffic stays on OLD
        switch(ctx, env, name, old, "put the service back on the revision it ran")
    raise ProvisionError(
        ErrorCode.TIMEOUT if state.startswith("not healthy after") else ErrorCode.INTERNAL,
        f"revision {revision_label(arn)} never became healthy: {state}"
        + (f"; stopped tasks: {' | '.join(reasons)}" if reasons else "")
        + f". The service runs {revision_label(old)} again.",
        hint="look at the container's logs (`mlops-vm logs ENV`) and its health check "
        "(service.readiness_path); the release was rolled back",
        provider=errors.PROVIDER,
        operation="release a new revision",
        changes_so_far=[change, back],
    )


def delete_service(ctx: AwsContext, log: ChangeLog, env: str, *, canary: bool = False) -> None:
    """The service (the canary's: CANARY), its tasks stopped, gone before its cluster can."""
    service = find_service(ctx, env, canary=canary)
    if service is None:
        return
    log.delete(
        "ecs_service", service["serviceName"], lambda: remove_service(ctx, env, service, canary)
    )


def remove_service(ctx: AwsContext, env: str, service: dict[str, Any], canary: bool) -> None:
    ctx.delete(
        "ecs",
        "delete_service",
        f"delete service {service['serviceName']}",
        cluster=names.cluster_name(env),
        service=service["serviceName"],
        force=True,  # stops its tasks: no need to scale to zero first
    )
    ctx.wait_for(
        lambda: find_service(ctx, env, canary=canary) is None,
        f"service {service['serviceName']} is deleted",
    )


def delete_cluster(ctx: AwsContext, log: ChangeLog, env: str) -> None:
    cluster = find_cluster(ctx, env)
    if cluster is None or names.as_dict(cluster.get("tags")).get(TAG_ENV) != env:
        return
    log.delete(
        "ecs_cluster",
        cluster["clusterName"],
        lambda: ctx.delete(
            "ecs",
            "delete_cluster",
            "delete the cluster",
            cluster=cluster["clusterName"],
        ),
    )
