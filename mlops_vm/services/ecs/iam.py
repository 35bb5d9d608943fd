"""The task execution role: what ECS itself uses to pull the image from ECR, write the
logs and read the task's secrets. One inline policy, scoped to the environment's own
repository, log group and the secrets named in service.secrets (least privilege, where
AmazonECSTaskExecutionRolePolicy would allow every repository and log group)."""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import iam as aws_iam
from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.aws import secret_refs as aws_secrets
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services import ecr
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names

EXECUTION_POLICY = "task-execution"  # the inline policy's name


def execution_policy(ctx: AwsContext, spec: ServiceSpec) -> dict[str, Any]:
    """Pull from the repository, write to the log group, read exactly the named secrets."""
    region = ctx.region
    repository = f"arn:aws:ecr:{region}:*:repository/{ecr.repository_name(spec.env)}"
    log_group = f"arn:aws:logs:{region}:*:log-group:{names.log_group_name(spec.env)}:*"
    pull = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    statements = [
        aws_iam.allow(["ecr:GetAuthorizationToken"], "*"),
        aws_iam.allow(pull, [repository]),
        aws_iam.allow(aws_iam.LOG_WRITE_ACTIONS, [log_group]),
        *aws_secrets.read_statements(
            spec.secrets, ["secretsmanager:GetSecretValue"], ["ssm:GetParameters"]
        ),
    ]
    return aws_iam.policy_document(statements)


def ensure_execution_role(ctx: AwsContext, log: ChangeLog, spec: ServiceSpec) -> str:
    """The role's ARN (a stand-in in a dry run before it exists)."""
    name = names.execution_role_name(spec.env)
    role = aws_iam.ServiceRole(
        name,
        principal="ecs-tasks.amazonaws.com",
        description=f"mlops-vm {spec.env}: ECS pulls the model image, writes logs",
        tags=tags.tag_dict(spec.env, names.ROLE_SERVICE, name),
        detail="ECS task execution",
        policies={EXECUTION_POLICY: (execution_policy(ctx, spec), "pull, log, read secrets")},
    )
    return aws_iam.ensure_role(ctx, log, role)


def delete_execution_role(ctx: AwsContext, log: ChangeLog, env: str) -> None:
    aws_iam.delete_role(ctx, log, names.execution_role_name(env), env)
