"""Delete everything an environment owns on ECS, then its network and load balancer
(the AWS provider's destroy), in dependency order. Twice is a no-op."""

from mlops_vm.plan import Change
from mlops_vm.provision.aws import destroy as aws_destroy
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services.ecs import iam, logs, names, registry, scaling, service
from mlops_vm.services.ecs.task_definition import family_revisions


def task_definitions(ctx: AwsContext, family: str, env: str, *, dry_run: bool) -> list[Change]:
    changes = []
    for arn in family_revisions(ctx, family):
        described = ctx.call(
            "ecs",
            "describe_task_definition",
            "read the task definition",
            missing_ok=True,
            taskDefinition=arn,
            include=["TAGS"],
        )
        if names.as_dict(described.get("tags")).get(TAG_ENV) != env:
            continue  # a family of the same name that is not ours
        changes.append(Change("delete", "task_definition", arn.rsplit("/", 1)[-1]))
        if dry_run:
            continue
        if described.get("taskDefinition", {}).get("status") == "ACTIVE":
            ctx.call(
                "ecs",
                "deregister_task_definition",
                "deregister a task definition",
                missing_ok=True,
                taskDefinition=arn,
            )
        ctx.call(
            "ecs",
            "delete_task_definitions",
            "delete a task definition",
            missing_ok=True,
            taskDefinitions=[arn],
        )
    return changes


def delete_found(
    ctx: AwsContext,
    found: bool,
    change: Change,
    operation: tuple[str, str],
    *,
    dry_run: bool,
    **params: object,
) -> list[Change]:
    """CHANGE made by OPERATION(**PARAMS) when the resource was FOUND; gone already: []."""
    if not found:
        return []
    if not dry_run:
        service_name, call = operation
        ctx.call(
            service_name, call, f"delete {change.kind} {change.name}", missing_ok=True, **params
        )
    return [change]


def wait_service_gone(ctx: AwsContext, env: str) -> None:
    """A deleted service drains before its cluster can go."""
    ctx.wait_until(
        lambda: True if service.find_service(ctx, env) is None else None,
        "the ECS service is deleted",
    )


def destroy(ctx: AwsContext, env: str, *, dry_run: bool) -> list[Change]:
    changes: list[Change] = []
    found = service.find_service(ctx, env)
    family = None
    if found is not None:
        family = found["taskDefinition"].rsplit("/", 1)[-1].rsplit(":", 1)[0]
        changes += scaling.delete_scaling(ctx, env, found["serviceName"], dry_run=dry_run)
        changes += service.delete_service(ctx, env, dry_run=dry_run)
        if not dry_run:
            wait_service_gone(ctx, env)
    for name in {family, f"mlops-vm-{env}"} - {None}:
        changes += task_definitions(ctx, name, env, dry_run=dry_run)
    changes += service.delete_cluster(ctx, env, dry_run=dry_run)
    changes += delete_found(
        ctx,
        logs.find_log_group(ctx, env) is not None,
        Change("delete", "log_group", names.log_group_name(env)),
        ("logs", "delete_log_group"),
        dry_run=dry_run,
        logGroupName=names.log_group_name(env),
    )
    changes += iam.delete_execution_role(ctx, env, dry_run=dry_run)
    changes += delete_found(
        ctx,
        registry.find_repository(ctx, env) is not None,
        Change("delete", "ecr_repository", names.repository_name(env)),
        ("ecr", "delete_repository"),
        dry_run=dry_run,
        repositoryName=names.repository_name(env),
        force=True,  # with its images
    )
    return changes + aws_destroy.destroy(ctx, env, dry_run=dry_run)
