"""One secret-existence check for the AWS targets (mlops_vm/provision/aws/secret_refs.py):
ECS and Lambda refuse the same bad service.secrets reference with the same error, naming
the field, before anything exists (moto's Secrets Manager and SSM in server mode); a
reference the operator may not describe is reported as a permission problem, never as
"does not exist"."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.stub import Stubber

from mlops_vm.provision import ErrorCode, ProviderSettings, ProvisionError
from mlops_vm.provision.aws import secret_refs as aws_secrets
from mlops_vm.services import ServiceSpec, ServiceTarget, get_service_target
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.test_aws import FAST, REGION, aws_environment, boto, moto_endpoint

__all__ = ["aws_environment", "boto", "moto_endpoint"]  # fixtures shared with the AWS tests

ACCOUNT = "123456789012"
MISSING_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:model/nope-AbCdEf"
MISSING_PARAMETER = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/model/nope"


@pytest.fixture
def targets(moto_endpoint: str) -> dict[str, ServiceTarget]:
    settings = ProviderSettings(
        name="aws", region=REGION, endpoint_url=moto_endpoint, options=dict(FAST)
    )
    return {name: get_service_target(name, settings) for name in ("ecs", "lambda")}


@pytest.fixture
def specs(tmp_path: Path) -> dict[str, ServiceSpec]:
    """A spec each target accepts but for its secrets."""
    cert_file, key_file = self_signed_certificate(tmp_path, "model.example.test")
    common = {"env": "secrets", "name": "mlops-vm-secrets", "image": "registry.test/m:1.0"}
    return {
        "ecs": ServiceSpec(
            **common, cpu=0.5, memory_mb=1024, cert_file=cert_file, key_file=key_file
        ),
        "lambda": ServiceSpec(**common, memory_mb=2048, min_instances=0),
    }


def refusal(target: ServiceTarget, spec: ServiceSpec, secrets: dict[str, str]) -> ProvisionError:
    with pytest.raises(ProvisionError) as raised:
        target.validate(replace(spec, secrets=secrets))
    return raised.value


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        (MISSING_SECRET, f"{MISSING_SECRET} does not exist"),
        (MISSING_PARAMETER, f"{MISSING_PARAMETER} does not exist"),
        ("plain-value", "'plain-value' is not a Secrets Manager secret or SSM parameter ARN"),
        (f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/x", "is not a Secrets Manager secret"),
    ],
)
def test_both_targets_refuse_a_bad_reference_the_same_way(targets, specs, reference, says):
    errors = {
        name: refusal(target, specs[name], {"API_TOKEN": reference})
        for name, target in targets.items()
    }
    assert errors["ecs"].as_dict() == errors["lambda"].as_dict()
    error = errors["ecs"]
    assert error.code == ErrorCode.INVALID_INPUT
    assert error.message.startswith("service.secrets.API_TOKEN: ")
    assert says in error.message


def test_both_targets_accept_references_that_exist(targets, specs, boto: Callable):
    secret = boto("secretsmanager").create_secret(Name="model/token", SecretString="s3cr3t")
    boto("ssm").put_parameter(Name="/model/db", Value="pw-1234567", Type="SecureString")
    secrets = {
        "API_TOKEN": secret["ARN"],
        "DB_PASSWORD": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/model/db",
    }
    targets["ecs"].validate(replace(specs["ecs"], secrets=secrets))
    # Lambda reads the image's size after the secrets (Docker): its secret check alone.
    aws_secrets.check_secrets_exist(targets["lambda"].ctx, secrets)


def test_no_permission_to_look_is_not_does_not_exist(targets, specs):
    """AccessDenied from Secrets Manager (the operator's credentials lack
    secretsmanager:DescribeSecret): both targets report a permission problem, naming the
    field, the same way."""
    errors = {}
    for name, target in targets.items():
        client = target.ctx.client("secretsmanager")
        with Stubber(client) as stub:
            stub.add_client_error(
                "describe_secret",
                service_error_code="AccessDeniedException",
                service_message="User: arn:aws:iam::123456789012:user/ops is not authorized "
                "to perform: secretsmanager:DescribeSecret",
                http_status_code=400,
            )
            errors[name] = refusal(target, specs[name], {"API_TOKEN": MISSING_SECRET})
    assert errors["ecs"].as_dict() == errors["lambda"].as_dict()
    error = errors["ecs"]
    assert error.code == ErrorCode.PERMISSION
    assert "does not exist" not in str(error)
    assert "service.secrets.API_TOKEN" in error.operation
    assert "secretsmanager:DescribeSecret" in error.message
