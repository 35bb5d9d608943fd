"""AWS references checked by their form alone, with no SDK (the settings' checks and the
provider share them; importing the provider would load boto3 and every AWS module for a
regular expression): ECR registries, Secrets Manager and SSM parameter ARNs."""

import re

# <account>.dkr.ecr.<region>.amazonaws.com: an ECR registry, pulled from with the instance role.
ECR_REGISTRY = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[\w-]+)\.amazonaws\.com$")
SECRET_ARN = re.compile(r"^arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:.+$")
PARAMETER_ARN = re.compile(r"^arn:aws[\w-]*:ssm:[\w-]+:\d{12}:parameter(?P<name>/.+)$")


def is_ecr(registry_host: str | None) -> bool:
    return bool(registry_host and ECR_REGISTRY.match(registry_host))
