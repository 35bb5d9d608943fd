"""The function's execution role: Lambda may assume it, write its logs, and read exactly
the secrets the environment references (the adapter reads them at init)."""

import json

from mlops_vm.provision.aws import tags
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV, Change
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.lambda_ import names

TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
LOGS_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
SECRETS_POLICY = "mlops-vm-secrets"


def secrets_policy(spec: ServiceSpec) -> dict | None:
    references = sorted(set(spec.secrets.values()))
    if not references:
        return None
    statements = []
    managed = [ref for ref in references if ":secretsmanager:" in ref]
    parameters = [ref for ref in references if ":ssm:" in ref]
    if managed:
        statements.append(
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": managed}
        )
    if parameters:
        statements.append({"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": parameters})
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_role(ctx: AwsContext, spec: ServiceSpec, *, dry_run: bool) -> tuple[str, list[Change]]:
    """(the role's ARN, changes)."""
    name = names.role_name(spec.env)
    role = ctx.call("iam", "get_role", "find the execution role", missing_ok=True, RoleName=name)
    changes: list[Change] = []
    if not role:
        changes.append(Change("create", "iam_role", name, "Lambda execution"))
        if dry_run:
            return f"arn:aws:iam::<account>:role/{name}", changes
        role = ctx.call(
            "iam",
            "create_role",
            "create the execution role",
            RoleName=name,
            AssumeRolePolicyDocument=TRUST_POLICY,
            Description=f"mlops-vm {spec.env}: the model function's execution role",
            Tags=tags.tag_list(names.tag_dict(spec.env, name, spec.tags)),
        )
    arn = role["Role"]["Arn"]
    attached = ctx.call(
        "iam", "list_attached_role_policies", "read the role's policies", RoleName=name
    )["AttachedPolicies"]
    if LOGS_POLICY not in {policy["PolicyArn"] for policy in attached}:
        changes.append(Change("update", "iam_role", name, "attach AWSLambdaBasicExecutionRole"))
        if not dry_run:
            ctx.call(
                "iam",
                "attach_role_policy",
                "let the role log",
                RoleName=name,
                PolicyArn=LOGS_POLICY,
            )
    changes += ensure_secrets_policy(ctx, spec, name, dry_run=dry_run)
    return arn, changes


def ensure_secrets_policy(
    ctx: AwsContext, spec: ServiceSpec, name: str, *, dry_run: bool
) -> list[Change]:
    wanted = secrets_policy(spec)
    current = ctx.call(
        "iam",
        "get_role_policy",
        "read the role's secrets policy",
        missing_ok=True,
        RoleName=name,
        PolicyName=SECRETS_POLICY,
    ).get("PolicyDocument")
    if isinstance(current, str):
        current = json.loads(current)
    if current == wanted:
        return []
    if wanted is None:
        if not dry_run:
            ctx.call(
                "iam",
                "delete_role_policy",
                "remove the secrets policy",
                missing_ok=True,
                RoleName=name,
                PolicyName=SECRETS_POLICY,
            )
        return [Change("delete", "iam_role_policy", f"{name}/{SECRETS_POLICY}")]
    if not dry_run:
        ctx.call(
            "iam",
            "put_role_policy",
            "let the role read the secrets",
            RoleName=name,
            PolicyName=SECRETS_POLICY,
            PolicyDocument=json.dumps(wanted),
        )
    action = "update" if current else "create"
    return [Change(action, "iam_role_policy", f"{name}/{SECRETS_POLICY}", "read the secrets")]


def delete_role(ctx: AwsContext, env: str, *, dry_run: bool) -> list[Change]:
    name = names.role_name(env)
    role = ctx.call("iam", "get_role", "find the execution role", missing_ok=True, RoleName=name)
    if not role or tags.as_dict(role["Role"].get("Tags")).get(TAG_ENV) != env:
        return []
    if not dry_run:
        for policy in ctx.call(
            "iam", "list_attached_role_policies", "read the role's policies", RoleName=name
        )["AttachedPolicies"]:
            ctx.call(
                "iam",
                "detach_role_policy",
                "detach the role's policy",
                missing_ok=True,
                RoleName=name,
                PolicyArn=policy["PolicyArn"],
            )
        for policy in ctx.call(
            "iam", "list_role_policies", "read the role's policies", RoleName=name
        )["PolicyNames"]:
            ctx.call(
                "iam",
                "delete_role_policy",
                "delete the role's policy",
                missing_ok=True,
                RoleName=name,
                PolicyName=policy,
            )
        ctx.call("iam", "delete_role", "delete the execution role", missing_ok=True, RoleName=name)
    return [Change("delete", "iam_role", name)]
