"""`--check` equals the run, for the AWS managed targets (ECS, Lambda) against moto in
server mode: on a new environment the dry run lists exactly the changes (action, kind,
name, in order) that the real run then returns; a second run changes nothing; a changed
setting is planned as it is then made; the destroy dry run equals the destroy.

What stands in for what moto does not have (the data plane): a registry that records
what was pushed (the image copy and the Lambda image build go through it, so a second run
finds the image there), a deployment that completes at once (moto never starts an ECS
task), and a Lambda version that answers its readiness check (moto runs no image
function). Everything the control plane holds is moto's.
"""

import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from mlops_vm.commands.status import Rows, custom_domain_rows
from mlops_vm.plan import Change
from mlops_vm.provision import ProviderSettings
from mlops_vm.services import RegistryAuth, ServiceSpec, ServiceTarget, get_service_target, images
from mlops_vm.services.ecs import EcsTarget
from mlops_vm.services.ecs import service as ecs_service
from mlops_vm.services.lambda_ import LambdaTarget, image
from mlops_vm.services.lambda_ import release as lambda_release
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.test_aws import FAST, REGION, aws_environment, boto, moto_endpoint

__all__ = ["aws_environment", "boto", "moto_endpoint"]  # fixtures shared with the AWS tests

SOURCE = "registry.example.test/mlops-vm/model-service"
REGISTRY = "registry.example.test:5000"  # service.<target>.registry_endpoint: no ECR here


def settings(endpoint: str) -> ProviderSettings:
    return ProviderSettings(name="aws", region=REGION, endpoint_url=endpoint, options=dict(FAST))


def keys(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in changes]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The references pushed so far; the copy and the build push into it."""
    pushed: set[str] = set()

    def needs_copy(source: str, auth: RegistryAuth, destination: str, _auth: RegistryAuth):
        return destination not in pushed

    def transfer(source: str, auth: RegistryAuth, destination: str, _auth: RegistryAuth):
        pushed.add(destination)

    def derived_image(source, auth, destination, _auth, architecture):
        tag = f"{images.destination_tag(source)}-lambda-{architecture}"
        return tag, "inputs", f"{destination}:{tag}" in pushed

    def build_and_push(source, auth, reference, _auth, architecture, inputs):
        pushed.add(reference)

    monkeypatch.setattr(images, "needs_copy", needs_copy)
    monkeypatch.setattr(images, "transfer", transfer)
    monkeypatch.setattr(image, "derived_image", derived_image)
    monkeypatch.setattr(image, "build_and_push", build_and_push)
    return pushed


def plan_then_run(run: Callable[[bool], list[Change]]) -> list[Change]:
    """RUN's changes as a dry run plans them and as the real run then makes them: the
    same (action, kind, name), in the same order. The real run's."""
    planned = run(True)
    done = run(False)
    assert keys(planned) == keys(done)
    return done


def converging(target: ServiceTarget, spec: ServiceSpec) -> Callable[[bool], list[Change]]:
    return lambda dry_run: target.ensure_service(spec, dry_run=dry_run).changes


def destroying(target: ServiceTarget, env: str) -> Callable[[bool], list[Change]]:
    return lambda dry_run: target.destroy(env, dry_run=dry_run)


# --- ECS -------------------------------------------------------------------------------


@pytest.fixture
def ecs(moto_endpoint: str, registry: set[str], monkeypatch: pytest.MonkeyPatch) -> EcsTarget:
    # moto records deployments but never runs a task: the first revision is healthy at once.
    monkeypatch.setattr(ecs_service, "wait_deployed", lambda *args: (True, "completed"))
    target = get_service_target("ecs", settings(moto_endpoint))
    assert isinstance(target, EcsTarget)
    return target


@pytest.fixture
def ecs_spec(tmp_path: Path, boto: Callable) -> ServiceSpec:
    cert_file, key_file = self_signed_certificate(tmp_path, "model.example.test")
    secret = boto("secretsmanager").create_secret(Name="model/token", SecretString="s3cr3t")
    env = f"plan{uuid.uuid4().hex[:6]}"
    return ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image=f"{SOURCE}:1.0",
        secrets={"API_TOKEN": secret["ARN"]},
        cpu=0.5,
        memory_mb=1024,
        min_instances=1,
        max_instances=4,
        cert_file=cert_file,
        key_file=key_file,
        options={"target_requests_per_task": 800.0, "registry_endpoint": REGISTRY},
    )


def test_ecs_check_lists_what_the_run_does(ecs, ecs_spec, boto, registry):
    made = plan_then_run(converging(ecs, ecs_spec))
    made_kinds = {c.kind for c in made}
    assert {"vpc", "load_balancer", "ecr_repository", "ecr_image", "log_group", "iam_role"} < (
        made_kinds
    )
    assert {"ecs_cluster", "task_definition", "ecs_service", "scaling_policy"} < made_kinds
    assert registry == {f"{REGISTRY}/mlops-vm/{ecs_spec.env}:1.0"}
    assert ecs.ensure_service(ecs_spec).changes == []
    assert ecs.ensure_service(ecs_spec, dry_run=True).changes == []

    # Changed settings: planned as they are then made, and only those.
    changed = replace(
        ecs_spec,
        max_instances=6,
        options={**ecs_spec.options, "log_retention_days": 7, "keep_images": 3},
    )
    made = plan_then_run(converging(ecs, changed))
    assert {(c.action, c.kind) for c in made} == {
        ("update", "scalable_target"),
        ("update", "log_group"),
        ("update", "ecr_lifecycle_policy"),
    }
    assert ecs.ensure_service(changed).changes == []

    # A new release: a new revision, rolled out (the deployment completes at once).
    release = replace(changed, image=f"{SOURCE}:1.1", source="deploy")
    made = plan_then_run(converging(ecs, release))
    assert keys(made) == [
        ("update", "ecr_image", f"mlops-vm/{ecs_spec.env}:1.1"),
        ("create", "task_definition", ecs_spec.name),
        ("update", "ecs_service", ecs_spec.name),
    ]

    deleted = plan_then_run(destroying(ecs, ecs_spec.env))
    assert {"ecs_service", "ecs_cluster", "task_definition", "log_group", "iam_role"} < {
        c.kind for c in deleted
    }
    assert {"ecr_repository", "vpc", "load_balancer"} < {c.kind for c in deleted}
    assert ecs.destroy(ecs_spec.env) == []
    assert boto("ecr").describe_repositories()["repositories"] == []


def domain_endpoint(target: EcsTarget, env: str) -> tuple[str | None, Rows, dict]:
    """(the URL status reports, the domain rows the run summary and status print, the
    record's resources), from the cloud alone: no environment file."""
    record = target.status(env)
    assert record is not None
    return record.url, custom_domain_rows(asdict(record)), record.resources


def test_ecs_domain_names_the_endpoint_and_the_dns_record(ecs, ecs_spec, boto):
    domain = "model.example.test"
    with_domain = replace(ecs_spec, domain=domain)
    plan_then_run(converging(ecs, with_domain))
    assert ecs.ensure_service(with_domain).changes == []
    assert ecs.ensure_service(with_domain, dry_run=True).changes == []
    [alb] = boto("elbv2").describe_load_balancers()["LoadBalancers"]
    alb_url = f"https://{alb['DNSName']}"
    url, rows, resources = domain_endpoint(ecs, ecs_spec.env)
    assert url == f"https://{domain}"
    assert resources["load_balancer_arn"] == alb["LoadBalancerArn"]
    assert rows == [
        ("platform URL", alb_url),
        ("DNS record", f"{domain} CNAME {alb['DNSName']}"),
    ]

    # The domain removed: the tag goes, the endpoint is the ALB's name again, no record.
    made = plan_then_run(converging(ecs, ecs_spec))
    assert [(c.action, c.kind, c.detail) for c in made] == [
        ("update", "ecs_service", f"domain {domain} -> none")
    ]
    assert ecs.ensure_service(ecs_spec).changes == []
    assert domain_endpoint(ecs, ecs_spec.env) == (alb_url, [], resources_without(resources))

    # Set on a service that has none: one update, planned as it is made.
    made = plan_then_run(converging(ecs, with_domain))
    assert [(c.action, c.kind, c.detail) for c in made] == [
        ("update", "ecs_service", f"domain none -> {domain}")
    ]
    assert ecs.ensure_service(with_domain, dry_run=True).changes == []
    assert domain_endpoint(ecs, ecs_spec.env) == (f"https://{domain}", rows, resources)


def resources_without(resources: dict) -> dict:
    """RESOURCES as a service without a domain reports them."""
    return {k: v for k, v in resources.items() if k not in ("platform_url", "dns_record")}


# --- Lambda ----------------------------------------------------------------------------


@pytest.fixture
def lam(moto_endpoint: str, registry: set[str], monkeypatch: pytest.MonkeyPatch) -> LambdaTarget:
    # moto runs no image function: every version answers its readiness check.
    monkeypatch.setattr(lambda_release, "health_gate", lambda *args: None)
    target = get_service_target("lambda", settings(moto_endpoint))
    assert isinstance(target, LambdaTarget)
    return target


@pytest.fixture
def lambda_spec(boto: Callable) -> ServiceSpec:
    secret = boto("secretsmanager").create_secret(Name="lam/token", SecretString="s3cr3t")
    env = f"plan{uuid.uuid4().hex[:6]}"
    return ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image=f"{SOURCE}:1.0",
        secrets={"API_TOKEN": secret["ARN"]},
        memory_mb=2048,
        min_instances=0,  # moto has no provisioned concurrency API
        max_instances=4,
        options={"timeout_s": 60, "registry_endpoint": REGISTRY},
    )


def test_lambda_check_lists_what_the_run_does(lam, lambda_spec, boto, registry):
    made = plan_then_run(converging(lam, lambda_spec))
    assert {
        "ecr_repository",
        "ecr_lifecycle_policy",
        "ecr_image",
        "log_group",
        "iam_role",
        "iam_role_policy",
        "lambda_function",
        "lambda_version",
        "lambda_alias",
        "function_url",
        "lambda_permission",
        "lambda_concurrency",
    } == {c.kind for c in made}
    assert lam.status(lambda_spec.env).active.id == "1"
    assert lam.ensure_service(lambda_spec).changes == []
    assert lam.ensure_service(lambda_spec, dry_run=True).changes == []

    # Changed settings and access: planned as they are then made, a new version released.
    changed = replace(
        lambda_spec,
        access="authenticated",
        max_instances=2,
        options={**lambda_spec.options, "timeout_s": 90},
    )
    made = plan_then_run(converging(lam, changed))
    assert {(c.action, c.kind) for c in made} == {
        ("update", "lambda_function"),
        ("create", "lambda_version"),
        ("update", "lambda_alias"),
        ("update", "function_url"),
        ("delete", "lambda_permission"),
        ("update", "lambda_concurrency"),
    }
    assert lam.status(lambda_spec.env).active.id == "2"
    assert lam.ensure_service(changed).changes == []

    deleted = plan_then_run(destroying(lam, lambda_spec.env))
    assert {c.kind for c in deleted} == {
        "lambda_function",
        "log_group",
        "iam_role",
        "ecr_repository",
    }
    assert lam.destroy(lambda_spec.env) == []
    assert boto("lambda").list_functions()["Functions"] == []
