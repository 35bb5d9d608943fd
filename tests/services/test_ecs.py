"""The ECS target against moto in server mode (the control plane), with the task
definitions it registers run for real on the local Docker engine (the data plane).

What is a contract check and what is real:
- control plane (moto): ECR repository and lifecycle policy, cluster, execution role and
  its policy, log group, task definitions and their tags, service settings (circuit
  breaker, 100/200 %, grace period, ALB, awsvpc network), Application Auto Scaling, the
  AWS provider's VPC/ALB/IP target group. moto accepts any Fargate size and never starts
  a task: the project's own checks refuse what Fargate would (tested here), and
  tests/services/fargate.py stands in for ECS's scheduler;
- real: the image copy (docker pull/push, registry digests) from the local TLS registry
  into the registry that stands in for ECR (moto has no registry endpoint: ECR's login
  token and the push to *.dkr.ecr.* are not exercised); each deployment's container,
  started with exactly its task definition's settings (image from the stand-in ECR,
  port, env, secrets resolved from Secrets Manager, health check, CPU/memory limits),
  health-gated by its own health check, answering /predict with the reference model's
  answers; a broken image that never becomes healthy, rolled back.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris

from mlops_vm.localcloud import registry
from mlops_vm.localcloud.images import BROKEN_MODEL_VERSION
from mlops_vm.provision import ErrorCode, ProviderSettings, ProvisionError
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services import RegistryAuth, ServiceSpec, get_service_target
from mlops_vm.services.ecs import EcsTarget
from mlops_vm.services.releases import choose_service_release
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.test_aws import FAST, REGION, aws_environment, boto, moto_endpoint
from tests.services.fargate import FargateStandIn

__all__ = ["aws_environment", "boto", "moto_endpoint"]  # fixtures shared with the AWS tests

pytestmark = pytest.mark.slow
SOURCE = f"{registry.HOST_ADDRESS}/mlops-vm/model-service"
SECRET_VALUE = "tok-3f9a-never-logged"


@pytest.fixture
def target(moto_endpoint: str) -> EcsTarget:
    settings = ProviderSettings(
        name="aws", region=REGION, endpoint_url=moto_endpoint, options=dict(FAST)
    )
    found = get_service_target("ecs", settings)
    assert isinstance(found, EcsTarget)
    return found


@pytest.fixture
def secret_arn(boto: Callable) -> str:
    return boto("secretsmanager").create_secret(Name="model/api-token", SecretString=SECRET_VALUE)[
        "ARN"
    ]


@pytest.fixture
def spec(tmp_path: Path, platform: registry.Credentials, secret_arn: str) -> ServiceSpec:
    cert_file, key_file = self_signed_certificate(tmp_path, "model.example.test")
    # Its own name per test: the registry standing in for ECR outlives moto's resets.
    env = f"ecs{uuid.uuid4().hex[:8]}"
    return ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image=f"{SOURCE}:1.0",
        port=8080,
        env_vars={"LOG_LEVEL": "info", "WEB_CONCURRENCY": "1"},
        secrets={"API_TOKEN": secret_arn},
        cpu=0.5,
        memory_mb=1024,
        min_instances=1,
        max_instances=4,
        cert_file=cert_file,
        key_file=key_file,
        registry=RegistryAuth(platform.username, platform.password),
        healthy_timeout_s=150,
        inventory_image=f"{SOURCE}:1.0",
        options={
            "health_check_grace_s": 30,
            "target_requests_per_task": 800.0,
            "keep_images": 5,
            "registry_endpoint": registry.HOST_ADDRESS,
        },
    )


@pytest.fixture
def scheduler(moto_endpoint: str, platform: registry.Credentials) -> Iterator[FargateStandIn]:
    auth = {"username": platform.username, "password": platform.password}
    with FargateStandIn(moto_endpoint, REGION, registry.HOST_ADDRESS, auth) as stand_in:
        yield stand_in


def nothing_exists(boto: Callable, env: str) -> bool:
    vpcs = boto("ec2").describe_vpcs(Filters=[{"Name": f"tag:{TAG_ENV}", "Values": [env]}])
    clusters = boto("ecs").describe_clusters(clusters=[f"mlops-vm-{env}"])["clusters"]
    repositories = boto("ecr").describe_repositories()["repositories"]
    groups = boto("logs").describe_log_groups(logGroupNamePrefix=f"/mlops-vm/{env}")
    return (
        not vpcs["Vpcs"]
        and not [c for c in clusters if c["status"] == "ACTIVE"]
        and not [r for r in repositories if r["repositoryName"] == f"mlops-vm/{env}"]
        and not groups["logGroups"]
    )


def release_spec(target: EcsTarget, spec: ServiceSpec, mode: str, image: str = "") -> ServiceSpec:
    """SPEC with the release chosen as the module does (mlops_vm/release/choose.py rules)."""
    choice = choose_service_release(
        mode, {"image": spec.inventory_image}, target.status(spec.env), image
    )
    return replace(
        spec,
        image=choice.release["image"],
        source=choice.source,
        inventory_image=choice.release["inventory_image"],
    )


# --- bad input: refused before anything exists ------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"cpu": 0.5, "memory_mb": 512}, "does not go with service.cpu 0.5"),
        ({"cpu": 0.25, "memory_mb": 1536}, "allowed: 512, 1024, 2048"),
        ({"cpu": 3.0, "memory_mb": 8192}, "not a Fargate size"),
        ({"gpu": 1}, "Fargate has no GPUs"),
        ({"concurrency": 10}, "no per-task request limit"),
        ({"min_instances": 0}, "cannot scale from zero"),
        ({"access": "authenticated"}, "public HTTPS endpoint"),
        ({"secrets": {"API_TOKEN": "plain-value"}}, "is not a Secrets Manager secret"),
        (
            {"secrets": {"API_TOKEN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:nope"}},
            "does not exist",
        ),
        (
            {"secrets": {"DB": f"arn:aws:ssm:{REGION}:123456789012:parameter/model/db"}},
            "does not exist",
        ),
        ({"env_vars": {"API_TOKEN": "x"}}, "both a plain value"),
    ],
)
def test_what_fargate_would_refuse_is_refused_first(target, spec, boto, changes, expected):
    with pytest.raises(ProvisionError) as raised:
        target.validate(replace(spec, **changes))
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert expected in str(raised.value)
    assert nothing_exists(boto, spec.env)


def test_an_ssm_parameter_secret_that_exists_is_accepted(target, spec, boto):
    boto("ssm").put_parameter(Name="/model/db", Value="pw-1234567", Type="SecureString")
    parameter = f"arn:aws:ssm:{REGION}:123456789012:parameter/model/db"
    target.validate(replace(spec, secrets={**spec.secrets, "DB_PASSWORD": parameter}))


def test_the_plan_lists_everything_and_creates_nothing(target, spec, boto):
    target.validate(spec)
    plan = target.ensure_service(spec, dry_run=True)
    kinds = {(c.action, c.kind) for c in plan.changes}
    for kind in (
        "vpc",
        "load_balancer",
        "target_group",
        "listener",
        "ecr_repository",
        "ecr_lifecycle_policy",
        "log_group",
        "iam_role",
        "ecs_cluster",
        "task_definition",
        "ecs_service",
        "scalable_target",
        "scaling_policy",
    ):
        assert ("create", kind) in kinds, kind
    assert nothing_exists(boto, spec.env)


# --- the whole life of a service ---------------------------------------------------------


def predict(container, rows) -> httpx.Response:
    port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    return httpx.post(
        f"http://127.0.0.1:{port}/predict", json={"instances": rows.tolist()}, timeout=10
    )


def check_control_plane(boto: Callable, spec: ServiceSpec, secret_arn: str) -> str:
    """What moto holds is what ECS needs; returns the task definition's ARN."""
    ecs = boto("ecs")
    service = ecs.describe_services(cluster=f"mlops-vm-{spec.env}", services=[spec.name])[
        "services"
    ][0]
    assert service["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }
    assert service["healthCheckGracePeriodSeconds"] == 30
    assert service["launchType"] == "FARGATE"
    assert service["loadBalancers"][0]["containerPort"] == 8080
    group = boto("elbv2").describe_target_groups(
        TargetGroupArns=[service["loadBalancers"][0]["targetGroupArn"]]
    )["TargetGroups"][0]
    assert (group["TargetType"], group["Protocol"], group["HealthCheckPath"]) == (
        "ip",
        "HTTP",
        "/readyz",
    )
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    container = task["containerDefinitions"][0]
    assert (task["cpu"], task["memory"], task["networkMode"]) == ("512", "1024", "awsvpc")
    assert container["secrets"] == [{"name": "API_TOKEN", "valueFrom": secret_arn}]
    assert SECRET_VALUE not in str(task)  # a reference, never the value
    assert {"name": "PORT", "value": "8080"} in container["environment"]
    assert container["image"].endswith(f".amazonaws.com/mlops-vm/{spec.env}:1.0")
    policy = boto("ecr").get_lifecycle_policy(repositoryName=f"mlops-vm/{spec.env}")
    assert '"countNumber": 5' in policy["lifecyclePolicyText"]
    scaling = boto("application-autoscaling")
    targets = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(1, 4)]
    metrics = {
        p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for p in scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    }
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}
    role_policy = boto("iam").get_role_policy(
        RoleName=f"mlops-vm-{spec.env}-ecs-execution", PolicyName="task-execution"
    )["PolicyDocument"]
    assert secret_arn in str(role_policy)
    return service["taskDefinition"]


def test_provision_release_rollback_destroy(
    target, spec, scheduler, boto, secret_arn, reference_model
):
    # First provision: --check lists exactly what the run then makes; everything made,
    # the first revision healthy on the real engine.
    planned = target.ensure_service(release_spec(target, spec, "provision"), dry_run=True)
    made = target.ensure_service(release_spec(target, spec, "provision"))
    assert [(c.action, c.kind, c.name) for c in planned.changes] == [
        (c.action, c.kind, c.name) for c in made.changes
    ]
    assert any(c.kind == "ecr_image" for c in made.changes)  # the image was copied
    first = check_control_plane(boto, spec, secret_arn)
    assert made.record.active.id == first and made.record.healthy
    task = scheduler.running(first)
    environment = dict(item.split("=", 1) for item in task.attrs["Config"]["Env"])
    assert environment["API_TOKEN"] == SECRET_VALUE  # injected at run time only
    assert task.attrs["HostConfig"]["Memory"] == 1024 * 2**20
    rows = load_iris().data[::10]
    answer = predict(task, rows)
    assert answer.status_code == 200
    assert answer.json()["predictions"] == reference_model.predict(rows).tolist()
    lines = target.logs(spec.env, tail=50)  # CloudWatch, as the awslogs driver wrote them
    assert any("Application startup complete" in line for line in lines), lines

    # Second run: nothing to do.
    assert target.ensure_service(release_spec(target, spec, "provision")).changes == []

    # deploy --image 1.1: a new revision, health-gated; 1.0 becomes the previous one.
    released = target.release(release_spec(target, spec, "deploy", f"{SOURCE}:1.1"))
    record = released.record
    assert record.active.image == f"{SOURCE}:1.1" and record.active.source == "deploy"
    assert record.previous.id == first
    second = record.active.id
    assert predict(scheduler.running(second), rows).json()["model_version"] == "1.1"
    # provision keeps the deployed release while the inventory's image is unchanged.
    kept = release_spec(target, spec, "provision")
    assert kept.image == f"{SOURCE}:1.1"
    assert target.ensure_service(kept).changes == []

    # A release that never becomes healthy: traffic stays on 1.1, the reason is given.
    broken = release_spec(target, spec, "deploy", f"{SOURCE}:{BROKEN_MODEL_VERSION}")
    with pytest.raises(ProvisionError) as raised:
        target.release(broken)
    assert "never became healthy" in str(raised.value)
    assert "exited with code" in str(raised.value), scheduler.failures
    assert target.status(spec.env).active.id == second
    assert predict(scheduler.running(second), rows).status_code == 200

    # rollback: back to 1.0 (the previous revision), and 1.1 is now the previous one.
    rolled = target.rollback(spec.env)
    assert rolled.record.active.id == first
    assert rolled.record.previous.id == second
    assert predict(scheduler.running(first), rows).json()["model_version"] == "1.0"

    # destroy: nothing tagged is left; twice is a no-op.
    planned_deletes = target.destroy(spec.env, dry_run=True)
    deleted = target.destroy(spec.env)
    assert [str(c) for c in planned_deletes] == [str(c) for c in deleted]
    assert {"ecs_service", "ecs_cluster", "ecr_repository", "vpc", "load_balancer"} <= {
        c.kind for c in deleted
    }
    assert nothing_exists(boto, spec.env)
    assert target.destroy(spec.env) == []
    assert target.status(spec.env) is None
    assert scheduler.wait_stopped(spec.env, timeout_s=60)  # ECS stops a deleted service's tasks
    assert scheduler.failures == []
