"""IAM roles (ECS's task execution role, Lambda's execution role, scaling-group instances'
role): made with their trust policy and tags, their inline policies converged one by one,
and deleted (inline policies first) only when tagged with the environment."""

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.aws.client import AwsContext, Resource
from mlops_vm.provision.model import TAG_ENV

POLICY_VERSION = "2012-10-17"  # the current version of the IAM policy language
LOG_WRITE_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]


def policy_document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": statements}


def allow(action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    """A statement that allows ACTION on RESOURCE (a string or a list each, as the
    documents already in place say them: a changed document would be rewritten)."""
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def trust_policy(principal: str) -> dict[str, Any]:
    """A role the AWS service PRINCIPAL (ecs-tasks.amazonaws.com, ...) may assume."""
    return policy_document(
        [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}]
    )


def placeholder_arn(name: str) -> str:
    """A role's ARN in a dry run, before the role exists."""
    return f"arn:aws:iam::<account>:role/{name}"


def find_role(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.call("iam", "get_role", f"find the role {name}", missing_ok=True, RoleName=name).get(
        "Role"
    )


@dataclass(frozen=True)
class ServiceRole:
    """A role an AWS service assumes (a managed target, scaling-group instances), and its
    inline policies."""

    name: str
    principal: str  # the service that assumes it: "ecs-tasks.amazonaws.com", ...
    description: str
    tags: dict[str, str]
    detail: str  # what the plan says the role is for
    # Inline policy name -> (its document, or None when the role must not have it; what
    # it lets the role do).
    policies: dict[str, tuple[dict[str, Any] | None, str]]


def ensure_role(ctx: AwsContext, log: ChangeLog, role: ServiceRole) -> str:
    """ROLE (created with its trust policy when missing), each of its inline policies as
    wanted; the role's ARN (a stand-in in a dry run before the role exists)."""
    name = role.name
    found = log.ensure(
        "iam_role",
        name,
        current=find_role(ctx, name),
        create=lambda: ctx.call(
            "iam",
            "create_role",
            f"create the role {name}",
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust_policy(role.principal)),
            Description=role.description,
            Tags=tags.tag_list(role.tags),
        )["Role"],
        detail=role.detail,
        planned={"Arn": placeholder_arn(name)},
    )
    for policy, (wanted, purpose) in role.policies.items():
        ensure_inline_policy(ctx, log, name, policy, wanted, purpose)
    return found["Arn"]


def role_policy(ctx: AwsContext, role: str, policy: str) -> Resource:
    """The calls about ROLE's inline POLICY (read, put, delete: each names both)."""
    return Resource(ctx, "iam", {"RoleName": role, "PolicyName": policy})


def inline_policy(ctx: AwsContext, role: str, policy: str) -> dict[str, Any] | None:
    doing = f"read the role's {policy} policy"
    found = role_policy(ctx, role, policy).call("get_role_policy", doing, missing_ok=True)
    document = found.get("PolicyDocument")
    # boto3 decodes the URL-encoded document into a dict; some endpoints leave it a string.
    return json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document


def ensure_inline_policy(
    ctx: AwsContext,
    log: ChangeLog,
    role: str,
    policy: str,
    wanted: dict[str, Any] | None,
    purpose: str,
) -> None:
    """The role's inline POLICY is WANTED (None: absent)."""
    current = inline_policy(ctx, role, policy)
    if current == wanted:
        return
    label = f"{role}/{policy}"
    if wanted is None:
        log.delete(
            "iam_role_policy",
            label,
            lambda: delete_inline_policy(ctx, role, policy),
            "no longer needed",
        )
        return
    log.apply(
        "update" if current else "create",
        "iam_role_policy",
        label,
        lambda: role_policy(ctx, role, policy).call(
            "put_role_policy", f"let the role {purpose}", PolicyDocument=json.dumps(wanted)
        ),
        purpose,
    )


def delete_inline_policy(ctx: AwsContext, role: str, policy: str) -> None:
    role_policy(ctx, role, policy).delete("delete_role_policy", f"remove the {policy} policy")


def delete_role(ctx: AwsContext, log: ChangeLog, name: str, env: str) -> None:
    """The role NAME and its inline policies, when it is ENV's (tagged)."""
    role = find_role(ctx, name)
    if role is None or tags.as_dict(role.get("Tags")).get(TAG_ENV) != env:
        return

    def delete() -> None:
        for policy in ctx.call(
            "iam", "list_role_policies", "read the role's policies", RoleName=name
        )["PolicyNames"]:
            delete_inline_policy(ctx, name, policy)
        ctx.delete("iam", "delete_role", f"delete the role {name}", RoleName=name)

    log.delete("iam_role", name, delete)
