"""Secret references on AWS: each is a Secrets Manager secret or SSM parameter ARN that
exists, checked with the operator's credentials before anything is created (by its
metadata only: the value never passes through mlops-vm). One check for every AWS target
(ECS and Lambda's service.secrets, scaling-group instances' fleet.secrets): a reference
one refuses, the others refuse the same way."""

from typing import Any

from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.aws.iam import allow
from mlops_vm.provision.aws_refs import PARAMETER_ARN, SECRET_ARN
from mlops_vm.provision.errors import ErrorCode, ProvisionError

SERVICE_SECRETS = "service.secrets"


def refused(field: str, message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT,
        f"{field}: {message}",
        hint=hint,
        provider="aws",
        operation=f"check {field.rsplit('.', 1)[0]}",
    )


def check_references(secrets: dict[str, str], section: str = SERVICE_SECRETS) -> None:
    """Each reference is the ARN of a secret or a parameter (no call to AWS); SECTION is
    where the references are set (named in the error with the variable)."""
    for variable, reference in sorted(secrets.items()):
        if not (SECRET_ARN.match(reference) or PARAMETER_ARN.match(reference)):
            raise refused(
                f"{section}.{variable}",
                f"{reference!r} is not a Secrets Manager secret or SSM parameter ARN",
                "give arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or "
                "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME",
            )


def exists(ctx: AwsContext, field: str, reference: str) -> bool:
    """Whether the secret or parameter REFERENCE (set at FIELD) names exists. Any other
    answer (no permission to describe it, no connection) is raised as it is, never taken
    for "no"."""
    doing = f"look up the secret of {field}"
    parameter = PARAMETER_ARN.match(reference)
    if parameter:
        return bool(
            ctx.call(
                "ssm",
                "describe_parameters",
                doing,
                ParameterFilters=[
                    {"Key": "Name", "Option": "Equals", "Values": [parameter["name"]]}
                ],
            )["Parameters"]
        )
    return bool(
        ctx.call("secretsmanager", "describe_secret", doing, missing_ok=True, SecretId=reference)
    )


def check_secrets_exist(
    ctx: AwsContext, secrets: dict[str, str], section: str = SERVICE_SECRETS
) -> None:
    """Every reference well-formed and naming a secret or parameter that exists."""
    check_references(secrets, section)
    for variable, reference in sorted(secrets.items()):
        if not exists(ctx, f"{section}.{variable}", reference):
            raise refused(
                f"{section}.{variable}",
                f"{reference} does not exist",
                "create it first (Secrets Manager or SSM Parameter Store), or fix the ARN",
            )


def read_statements(
    secrets: dict[str, str], secret_action: str | list[str], parameter_action: str | list[str]
) -> list[dict[str, Any]]:
    """IAM statements that let a role read exactly the secrets and parameters SECRETS
    references (the actions as each target's role has always named them)."""
    references = sorted(set(secrets.values()))
    managed = [ref for ref in references if ":secretsmanager:" in ref]
    parameters = [ref for ref in references if ":ssm:" in ref]
    return [
        allow(action, resources)
        for action, resources in ((secret_action, managed), (parameter_action, parameters))
        if resources
    ]
