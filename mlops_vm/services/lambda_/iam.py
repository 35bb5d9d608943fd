"""The function's execution role: Lambda may assume it, write its logs, and read exactly
the secrets the environment references (the adapter reads them at init)."""

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import iam as aws_iam
from mlops_vm.provision.aws import secret_refs as aws_secrets
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.lambda_ import names

LOGS_POLICY = "mlops-vm-logs"
SECRETS_POLICY = "mlops-vm-secrets"


def logs_policy(spec: ServiceSpec, region: str) -> dict:
    """Write to the function's own log group only (AWSLambdaBasicExecutionRole: any)."""
    group = f"arn:aws:logs:{region}:*:log-group:{names.log_group_name(spec.name)}"
    return aws_iam.policy_document(
        [aws_iam.allow(aws_iam.LOG_WRITE_ACTIONS, [group, f"{group}:*"])]
    )


def secrets_policy(spec: ServiceSpec) -> dict | None:
    if not spec.secrets:
        return None
    statements = aws_secrets.read_statements(
        spec.secrets, "secretsmanager:GetSecretValue", "ssm:GetParameter"
    )
    return aws_iam.policy_document(statements)


def ensure_role(ctx: AwsContext, log: ChangeLog, spec: ServiceSpec) -> str:
    """The role's ARN (a stand-in in a dry run before it exists)."""
    name = names.role_name(spec.env)
    role = aws_iam.ServiceRole(
        name,
        principal="lambda.amazonaws.com",
        description=f"mlops-vm {spec.env}: the model function's execution role",
        tags=names.tag_dict(spec.env, name, spec.tags),
        detail="Lambda execution",
        policies={
            LOGS_POLICY: (logs_policy(spec, ctx.region), "write its logs"),
            SECRETS_POLICY: (secrets_policy(spec), "read the secrets"),
        },
    )
    return aws_iam.ensure_role(ctx, log, role)


def delete_role(ctx: AwsContext, log: ChangeLog, env: str) -> None:
    aws_iam.delete_role(ctx, log, names.role_name(env), env)
