"""What ECS on Fargate would refuse, found before anything is created."""

import re

from mlops_vm.provision.aws import validate as aws_validate
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs.sizes import size_problem

SECRET_ARN = re.compile(r"^arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:.+$")
PARAMETER_ARN = re.compile(r"^arn:aws[\w-]*:ssm:[\w-]+:\d{12}:parameter(?P<name>/.+)$")


def invalid(message: str, hint: str = "") -> ProvisionError:
    return aws_validate.invalid(message, hint, "check the ECS service")


def check_spec(spec: ServiceSpec) -> None:
    """What needs no call to AWS (the network and the ALB: the AWS provider's checks)."""
    problem = size_problem(spec.cpu, spec.memory_mb)
    if problem:
        raise invalid(problem, "pick a pair from the Fargate task size table")
    if spec.gpu:
        raise invalid("service.gpu: Fargate has no GPUs", "use target vms with GPU instances")
    if spec.access != "public":
        raise invalid(
            "service.access authenticated: the ECS target serves a public HTTPS endpoint",
            "put authentication in the model service, or use target vms",
        )
    if spec.concurrency is not None:
        raise invalid(
            "service.concurrency: ECS has no per-task request limit",
            "scale on requests instead: service.ecs.target_requests_per_task",
        )
    if spec.min_instances < 1:
        raise invalid(
            "service.min_instances 0: an ECS service behind a load balancer cannot scale "
            "from zero tasks",
            "set min_instances to 1 or more",
        )
    both = sorted(set(spec.env_vars) & set(spec.secrets))
    if both:
        raise invalid(
            f"{', '.join(both)}: both a plain value (model.env) and a secret (service.secrets)",
            "keep each variable in one place",
        )
    for variable, reference in spec.secrets.items():
        if not (SECRET_ARN.match(reference) or PARAMETER_ARN.match(reference)):
            raise invalid(
                f"service.secrets.{variable}: {reference!r} is not a Secrets Manager secret "
                "or SSM parameter ARN",
                "give arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or "
                "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME",
            )


def check_secrets_exist(ctx: AwsContext, spec: ServiceSpec) -> None:
    """Every secret reference names a secret or parameter that exists (not read)."""
    for variable, reference in spec.secrets.items():
        parameter = PARAMETER_ARN.match(reference)
        if parameter:
            found = ctx.call(
                "ssm",
                "describe_parameters",
                f"look for the parameter of {variable}",
                ParameterFilters=[
                    {"Key": "Name", "Option": "Equals", "Values": [parameter["name"]]}
                ],
            )["Parameters"]
        else:
            found = ctx.call(
                "secretsmanager",
                "describe_secret",
                f"look for the secret of {variable}",
                missing_ok=True,
                SecretId=reference,
            )
        if not found:
            raise invalid(
                f"service.secrets.{variable}: {reference} does not exist",
                "create it first (Secrets Manager or SSM Parameter Store), or fix the ARN",
            )
