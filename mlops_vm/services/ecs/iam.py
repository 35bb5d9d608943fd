"""The task execution role: what ECS itself uses to pull the image from ECR, write the
logs and read the task's secrets. One inline policy, scoped to the environment's own
repository, log group and the secrets named in service.secrets (least privilege, where
AmazonECSTaskExecutionRolePolicy would allow every repository and log group)."""

import json
from typing import Any

from mlops_vm.plan import Change
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names

EXECUTION_POLICY = "task-execution"  # the inline policy's name
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def execution_policy(ctx: AwsContext, spec: ServiceSpec) -> dict[str, Any]:
    """Pull from the repository, write to the log group, read exactly the named secrets."""
    region = ctx.region
    repository = f"arn:aws:ecr:{region}:*:repository/{names.repository_name(spec.env)}"
    log_group = f"arn:aws:logs:{region}:*:log-group:{names.log_group_name(spec.env)}:*"
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
            ],
            "Resource": [repository],
        },
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group],
        },
    ]
    secrets = sorted(ref for ref in spec.secrets.values() if ":secretsmanager:" in ref)
    parameters = sorted(ref for ref in spec.secrets.values() if ":ssm:" in ref)
    if secrets:
        statements.append(
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secrets}
        )
    if parameters:
        statements.append(
            {"Effect": "Allow", "Action": ["ssm:GetParameters"], "Resource": parameters}
        )
    return {"Version": "2012-10-17", "Statement": statements}


def find_role(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    return ctx.call(
        "iam",
        "get_role",
        "find the task execution role",
        missing_ok=True,
        RoleName=names.execution_role_name(env),
    ).get("Role")


def inline_policy(ctx: AwsContext, role: str) -> dict[str, Any] | None:
    document = ctx.call(
        "iam",
        "get_role_policy",
        "read the task execution policy",
        missing_ok=True,
        RoleName=role,
        PolicyName=EXECUTION_POLICY,
    ).get("PolicyDocument")
    # boto3 decodes the URL-encoded JSON document into a dict already.
    return json.loads(document) if isinstance(document, str) else document


def ensure_execution_role(
    ctx: AwsContext, spec: ServiceSpec, *, dry_run: bool
) -> tuple[str, list[Change]]:
    """(the role's ARN, changes)."""
    name = names.execution_role_name(spec.env)
    role = find_role(ctx, spec.env)
    changes: list[Change] = []
    if role is None:
        changes.append(Change("create", "iam_role", name, "ECS task execution"))
        if dry_run:
            return f"arn:aws:iam::<account>:role/{name}", changes
        role = ctx.call(
            "iam",
            "create_role",
            "create the task execution role",
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
            Description=f"mlops-vm {spec.env}: ECS pulls the model image, writes logs",
            Tags=[{"Key": i["key"], "Value": i["value"]} for i in names.tag_list(spec.env, name)],
        )["Role"]
    wanted, current = execution_policy(ctx, spec), inline_policy(ctx, name)
    if wanted != current:
        if not changes:  # a new role's policy is part of its creation
            changes.append(Change("update", "iam_role_policy", f"{name}/{EXECUTION_POLICY}"))
        if not dry_run:
            ctx.call(
                "iam",
                "put_role_policy",
                "set the task execution policy",
                RoleName=name,
                PolicyName=EXECUTION_POLICY,
                PolicyDocument=json.dumps(wanted),
            )
    return role["Arn"], changes


def delete_execution_role(ctx: AwsContext, env: str, *, dry_run: bool) -> list[Change]:
    name = names.execution_role_name(env)
    role = find_role(ctx, env)
    if role is None or names.as_dict(role.get("Tags")).get(TAG_ENV) != env:
        return []
    if not dry_run:
        ctx.call(
            "iam",
            "delete_role_policy",
            "remove the task execution policy",
            missing_ok=True,
            RoleName=name,
            PolicyName=EXECUTION_POLICY,
        )
        ctx.call("iam", "delete_role", "delete the role", missing_ok=True, RoleName=name)
    return [Change("delete", "iam_role", name)]
