"""The Lambda target against moto in server mode (the control plane), its releases
health-gated by the derived images run for real under the Lambda Runtime Interface
Emulator (the data plane).

What is a contract check and what is real:
- contract (moto): the ECR repository and its lifecycle policy, the execution role and its
  policies, the log group, the function's configuration (memory, timeout, ephemeral
  storage, environment: secret references, never values), published versions and their
  release records, the alias and its routing, the function URL (NONE + permission /
  AWS_IAM), reserved concurrency, tags and destroy. moto cannot run image functions and has
  no provisioned concurrency API (min_instances stays 0 here) nor a registry;
- real: the derived image built from the model image and pushed (the local TLS registry
  stands in for ECR: service.lambda.registry_endpoint), and each release's readiness
  invoke, answered by that release's image under the emulator (invoke_endpoint_url): a
  release whose image never gets ready leaves the alias where it was.
"""

import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from mlops_vm.localcloud import registry
from mlops_vm.localcloud.images import BROKEN_MODEL_VERSION
from mlops_vm.provision import ErrorCode, ProviderSettings, ProvisionError
from mlops_vm.services import ServiceSpec, get_service_target
from mlops_vm.services.lambda_ import LambdaTarget, limits
from mlops_vm.services.releases import choose_service_release
from tests.providers.test_aws import FAST, REGION, aws_environment, boto, moto_endpoint
from tests.services.lambda_fixtures import SOURCE, emulated, emulators, registry_auth

__all__ = ["aws_environment", "boto", "emulators", "moto_endpoint"]  # shared fixtures

pytestmark = pytest.mark.slow


@pytest.fixture
def target(moto_endpoint: str) -> LambdaTarget:
    settings = ProviderSettings(
        name="aws", region=REGION, endpoint_url=moto_endpoint, options=dict(FAST)
    )
    found = get_service_target("lambda", settings)
    assert isinstance(found, LambdaTarget)
    return found


def lambda_spec(env: str, version: str, emulator_url: str | None = None, **changes) -> ServiceSpec:
    options = {
        "timeout_s": 60,
        "ephemeral_storage_mb": 1024,
        "keep_images": 5,
        "log_retention_days": 7,
        "registry_endpoint": registry.HOST_ADDRESS,
        "invoke_endpoint_url": emulator_url,
        **changes.pop("options", {}),
    }
    return ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image=f"{SOURCE}:{version}",
        memory_mb=2048,
        min_instances=0,  # moto has no provisioned concurrency
        max_instances=4,
        env_vars={"LOG_LEVEL": "info"},
        registry=registry_auth(),
        healthy_timeout_s=60,
        options=options,
        **changes,
    )


def release_spec(target: LambdaTarget, spec: ServiceSpec, mode: str, image: str = ""):
    model = {"image": spec.inventory_image or spec.image, "env": spec.env_vars}
    choice = choose_service_release(mode, model, target.status(spec.env), image)
    return replace(
        spec,
        image=choice.release["image"],
        source=choice.source,
        inventory_image=choice.release["inventory_image"],
    )


def test_limits_are_refused_before_anything_exists(target, boto: Callable):
    """Contract: what Lambda refuses is refused by validate, naming the limit; a secret
    reference that does not exist too (moto's Secrets Manager)."""
    spec = lambda_spec("limits", "1.0")
    cases = [
        (replace(spec, memory_mb=10241), "10240 MB"),
        (replace(spec, memory_mb=1024, cpu=2.0), "service.memory_mb to 3538"),
        (replace(spec, gpu=1), "no GPUs"),
        (replace(spec, concurrency=8), "one request at a time"),
        (
            replace(spec, options={**spec.options, "timeout_s": 901}),
            "service.lambda.timeout_s: Input should be less than or equal to 900",
        ),
        (
            replace(spec, options={**spec.options, "ephemeral_storage_mb": 256}),
            "service.lambda.ephemeral_storage_mb: Input should be greater than or equal to 512",
        ),
        (
            replace(
                spec,
                secrets={
                    "TOKEN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:nope-AbCdEf"
                },
            ),
            "does not exist",
        ),
        (replace(spec, secrets={"TOKEN": "plain-value"}), "not a Secrets Manager"),
    ]
    for bad, expected in cases:
        with pytest.raises(ProvisionError) as raised:
            target.validate(bad)
        assert raised.value.code == ErrorCode.INVALID_INPUT
        assert expected in str(raised.value), (expected, str(raised.value))
    arn = boto("secretsmanager").create_secret(Name="api-token", SecretString="s3cr3t-value")["ARN"]
    target.validate(replace(spec, secrets={"TOKEN": arn}))
    assert boto("lambda").list_functions()["Functions"] == []


def test_an_image_over_lambdas_size_limit_is_refused_before_anything_exists(
    target, boto: Callable, monkeypatch: pytest.MonkeyPatch
):
    """Real image, contract limit: the source image's size is read (here against a limit
    lowered below the model image's ~600 MB) before the ECR repository exists."""
    monkeypatch.setattr(limits, "IMAGE_BYTES", 100 * 1024**2)
    with pytest.raises(ProvisionError) as raised:
        target.validate(lambda_spec("toolarge", "1.0"))
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "uncompressed" in str(raised.value)
    assert boto("ecr").describe_repositories()["repositories"] == []


def test_provision_release_canary_rollback_destroy(target, boto: Callable, emulators):
    """Contract (moto) for the control plane, real runs (emulator) for the health gates."""
    env = "lam"
    secret = boto("secretsmanager").create_secret(Name="lam-token", SecretString="tok-never-logged")
    first = emulated(emulators, "1.0", lambda_spec(env, "1.0"))
    spec = lambda_spec(env, "1.0", first.url, secrets={"API_TOKEN": secret["ARN"]})
    target.validate(spec)

    # --check: the plan, nothing made.
    planned = target.ensure_service(spec, dry_run=True)
    kinds = {change.kind for change in planned.changes}
    assert {
        "ecr_repository",
        "iam_role",
        "lambda_function",
        "lambda_alias",
        "function_url",
    } <= kinds
    assert boto("lambda").list_functions()["Functions"] == []
    assert boto("ecr").describe_repositories()["repositories"] == []

    made = target.ensure_service(spec)
    assert [(c.action, c.kind, c.name) for c in planned.changes] == [
        (c.action, c.kind, c.name) for c in made.changes
    ]
    record = made.record
    assert record.url and record.url.startswith("https://")
    assert record.active.image == f"{SOURCE}:1.0" and record.active.source == "provision"
    assert record.traffic == {"1": 100} and record.previous is None
    lam = boto("lambda")
    config = lam.get_function_configuration(FunctionName=spec.name, Qualifier="live")
    assert (config["MemorySize"], config["Timeout"]) == (2048, 60)
    assert config["EphemeralStorage"] == {"Size": 1024}
    variables = config["Environment"]["Variables"]
    assert variables["MLOPS_VM_SECRETS"] == f'{{"API_TOKEN": "{secret["ARN"]}"}}'
    assert "tok-never-logged" not in str(config)
    assert (
        lam.get_function_url_config(FunctionName=spec.name, Qualifier="live")["AuthType"] == "NONE"
    )
    assert (
        "lambda:InvokeFunctionUrl"
        in lam.get_policy(FunctionName=spec.name, Qualifier="live")["Policy"]
    )
    assert lam.get_function_concurrency(FunctionName=spec.name)["ReservedConcurrentExecutions"] == 4
    image_uri = lam.get_function(FunctionName=spec.name)["Code"]["ImageUri"]
    assert "/mlops-vm/lam:1.0-lambda-" in image_uri
    ecr = boto("ecr")
    assert (
        '"countNumber": 5'
        in ecr.get_lifecycle_policy(repositoryName="mlops-vm/lam")["lifecyclePolicyText"]
    )
    iam = boto("iam")
    inline = iam.get_role_policy(RoleName="mlops-vm-lam-lambda", PolicyName="mlops-vm-secrets")
    assert secret["ARN"] in str(inline["PolicyDocument"])
    groups = boto("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{spec.name}")
    assert groups["logGroups"][0]["retentionInDays"] == 7

    # Second run: nothing to do. Authenticated access: AWS_IAM, no public permission.
    assert target.ensure_service(release_spec(target, spec, "provision")).changes == []
    private = target.ensure_service(replace(spec, access="authenticated"))
    assert {str(c) for c in private.changes} == {
        f"update function_url {spec.name}:live (AWS_IAM)",
        f"delete lambda_permission {spec.name}:live (the URL is IAM-only)",
    }
    spec = replace(spec, access="authenticated")

    # A release that never gets ready: the alias stays on version 1, exit with the reason.
    # The emulators get no secrets: they have no AWS credentials to read them with.
    broken = emulated(emulators, BROKEN_MODEL_VERSION, lambda_spec(env, "1.1"))
    bad = replace(
        release_spec(target, spec, "deploy", f"{SOURCE}:{BROKEN_MODEL_VERSION}"),
        healthy_timeout_s=15,
        options={**spec.options, "invoke_endpoint_url": broken.url},
    )
    with pytest.raises(ProvisionError) as raised:
        target.release(bad)
    assert raised.value.code == ErrorCode.TIMEOUT
    assert "stays put" in str(raised.value)
    record = target.status(env)
    assert record.active.id == "1" and record.active.image == f"{SOURCE}:1.0"
    assert lam.get_alias(FunctionName=spec.name, Name="live")["FunctionVersion"] == "1"

    # deploy --image 1.1 with a 10 % canary: the new version (3), 1 is the previous one.
    good = emulated(emulators, "1.1", lambda_spec(env, "1.1"))
    released = target.release(
        replace(
            release_spec(target, spec, "deploy", f"{SOURCE}:1.1"),
            options={**spec.options, "invoke_endpoint_url": good.url, "canary_percent": 10},
        )
    ).record
    assert released.active.id == "3" and released.active.image == f"{SOURCE}:1.1"
    assert released.active.source == "deploy" and released.previous.id == "1"
    assert released.traffic == {"3": 100}

    # rollback: the alias back on version 1, health-gated; 3 becomes the previous one.
    back = target.rollback(env).record
    assert back.active.id == "1" and back.active.source == "rollback"
    assert back.previous.id == "3"
    assert any(
        "live" in line for line in [str(c) for c in target.rollback(env, dry_run=True).changes]
    )

    # logs: the function's log group, oldest first (moto runs nothing: one line put here).
    group, stream = f"/aws/lambda/{spec.name}", "2026/12/01/[3]0123abcd"
    cloudwatch = boto("logs")
    cloudwatch.create_log_stream(logGroupName=group, logStreamName=stream)
    cloudwatch.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": int(time.time() * 1000), "message": "Application startup complete."}
        ],
    )
    assert target.logs(env, tail=10) == ["0123abcd | Application startup complete."]

    # destroy: nothing tagged remains; twice is a no-op.
    planned_deletes = [str(c) for c in target.destroy(env, dry_run=True)]
    deletes = target.destroy(env)
    assert planned_deletes == [str(c) for c in deletes]
    deleted = {change.kind for change in deletes}
    assert deleted == {"lambda_function", "log_group", "iam_role", "ecr_repository"}
    assert lam.list_functions()["Functions"] == []
    assert all(r["RoleName"] != "mlops-vm-lam-lambda" for r in iam.list_roles()["Roles"])
    assert ecr.describe_repositories()["repositories"] == []
    assert target.destroy(env) == []
    assert target.status(env) is None
