"""The function's execution role: Lambda may assume it, write its logs, and read exactly
the secrets the environment references (the adapter reads them at init)."""

import json
import urllib.parse

from mlops_vm.plan import Change
from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV
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
LOGS_POLICY = "mlops-vm-logs"
SECRETS_POLICY = "mlops-vm-secrets"


def logs_policy(spec: ServiceSpec, region: str) -> dict:
    """Write to the function's own log group only (AWSLambdaBasicExecutionRole: any)."""
    group = f"arn:aws:logs:{region}:*:log-group:{names.log_group_name(spec.name)}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [group, f"{group}:*"],
            }
        ],
    }


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
    changes += ensure_policy(
        ctx, name, LOGS_POLICY, logs_policy(spec, ctx.region), "write its logs", dry_run=dry_run
    )
    changes += ensure_policy(
        ctx, name, SECRETS_POLICY, secrets_policy(spec), "read the secrets", dry_run=dry_run
    )
    return arn, changes


def ensure_policy(
    ctx: AwsContext,
    role: str,
    policy: str,
    wanted: dict | None,
    purpose: str,
    *,
    dry_run: bool,
) -> list[Change]:
    """The role's inline POLICY is WANTED (None: absent)."""
    current = ctx.call(
        "iam",
        "get_role_policy",
        f"read the role's {policy} policy",
        missing_ok=True,
        RoleName=role,
        PolicyName=policy,
    ).get("PolicyDocument")
    if isinstance(current, str):
        current = json.loads(urllib.parse.unquote(current))
    if current == wanted:
        return []
    label = f"{role}/{policy}"
    if wanted is None:
        if not dry_run:
            ctx.call(
                "iam",
                "delete_role_policy",
                f"remove the {policy} policy",
                missing_ok=True,
                RoleName=role,
                PolicyName=policy,
            )
        return [Change("delete", "iam_role_policy", label)]
    if not dry_run:
        ctx.call(
            "iam",
            "put_role_policy",
            f"let the role {purpose}",
            RoleName=role,
            PolicyName=policy,
            PolicyDocument=json.dumps(wanted),
        )
    return [Change("update" if current else "create", "iam_role_policy", label, purpose)]


def delete_role(ctx: AwsContext, env: str, *, dry_run: bool) -> list[Change]:
    name = names.role_name(env)
    role = ctx.call("iam", "get_role", "find the execution role", missing_ok=True, RoleName=name)
    if not role or tags.as_dict(role["Role"].get("Tags")).get(TAG_ENV) != env:
        return []
    if not dry_run:
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
