"""Delete everything an environment owns on ECS, then its network and load balancer
(the AWS provider's destroy), in dependency order. Twice is a no-op."""

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import destroy as aws_destroy
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services import ecr
from mlops_vm.services.ecs import iam, logs, scaling, service
from mlops_vm.services.ecs.task_definition import describe, family_revisions


def delete_task_definitions(ctx: AwsContext, log: ChangeLog, family: str, env: str) -> None:
    for arn in family_revisions(ctx, family):
        found = describe(ctx, arn)
        if found is None or found[1].get(TAG_ENV) != env:
            continue  # gone meanwhile, or a family of the same name that is not ours
        active = found[0].get("status") == "ACTIVE"
        log.delete(
            "task_definition",
            arn.rsplit("/", 1)[-1],
            lambda arn=arn, active=active: delete_task_definition(ctx, arn, active=active),
        )


def delete_task_definition(ctx: AwsContext, arn: str, *, active: bool) -> None:
    if active:  # only an inactive revision can be deleted
        ctx.delete(
            "ecs",
            "deregister_task_definition",
            "deregister a task definition",
            taskDefinition=arn,
        )
    ctx.delete(
        "ecs",
        "delete_task_definitions",
        "delete a task definition",
        taskDefinitions=[arn],
    )


def destroy(ctx: AwsContext, log: ChangeLog, env: str) -> None:
    found = service.find_service(ctx, env)
    family = None
    if found is not None:
        family = found["taskDefinition"].rsplit("/", 1)[-1].rsplit(":", 1)[0]
        scaling.delete_scaling(ctx, log, env, found["serviceName"])
        service.delete_service(ctx, log, env)
    service.delete_service(ctx, log, env, canary=True)  # an interrupted release's
    for name in sorted({family, f"mlops-vm-{env}"} - {None}):
        delete_task_definitions(ctx, log, name, env)
    service.delete_cluster(ctx, log, env)
    logs.delete_log_group(ctx, log, env)
    iam.delete_execution_role(ctx, log, env)
    ecr.delete_repository(ctx, log, ecr.repository_name(env), env)
    log.extend(aws_destroy.destroy(ctx, env, dry_run=log.dry_run))
