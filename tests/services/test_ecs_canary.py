"""The ECS canary (services/ecs/canary.py): a weighted target-group pair behind the ALB's
HTTPS listener, judged from CloudWatch. Against moto in server mode: the whole target's
release (network, ALB, listener weights, target groups, ECR, task definitions, the service
and the canary service), CloudWatch's GetMetricData answering the series the ALB records
per target group, recorded (PutMetricData) while the window passes, as the ALB would have.
No task runs: tests/services/fargate.py's InstantScheduler completes each deployment (the
containers are tested in tests/services/test_ecs.py), and the image copy is left out (moto
has no registry: push_image answers with what it returns when ECR has the image).
"""

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops_vm.metrics import Figures
from mlops_vm.provision import ErrorCode, ProviderSettings, ProvisionError
from mlops_vm.provision.aws.metrics import target_group_dimensions
from mlops_vm.services import ServiceSpec, ecr, get_service_target, images
from mlops_vm.services.ecs import EcsTarget
from mlops_vm.services.ecs import canary as ecs_canary
from mlops_vm.services.ecs import registry as ecs_registry
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.test_aws import FAST, REGION, aws_environment, boto, moto_endpoint
from tests.services.fargate import InstantScheduler

__all__ = ["aws_environment", "boto", "moto_endpoint"]  # fixtures shared with the AWS tests

WINDOW_S = 60  # the canary window: the only sleep of that length (polls are 0.05 s)
SOURCE = "registry.example.test/mlops-vm/model-service"


@pytest.fixture(autouse=True)
def image_in_ecr(monkeypatch: pytest.MonkeyPatch) -> None:
    """ECR holds every image already (moto has no registry to copy it into)."""
    monkeypatch.setattr(
        ecs_registry,
        "push_image",
        lambda ctx, log, spec, options, repository: (
            f"{ecr.repository_uri(repository)}:{images.destination_tag(spec.image)}"
        ),
    )


@pytest.fixture
def target(moto_endpoint: str) -> EcsTarget:
    settings = ProviderSettings(
        name="aws", region=REGION, endpoint_url=moto_endpoint, options=dict(FAST)
    )
    found = get_service_target("ecs", settings)
    assert isinstance(found, EcsTarget)
    return found


@pytest.fixture
def scheduler() -> Iterator[InstantScheduler]:
    with InstantScheduler(REGION, failing=(":broken",)) as stand_in:
        yield stand_in


@pytest.fixture
def spec(tmp_path: Path) -> ServiceSpec:
    cert_file, key_file = self_signed_certificate(tmp_path, "model.example.test")
    env = f"ec{uuid.uuid4().hex[:8]}"
    return ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image=f"{SOURCE}:1.0",
        cpu=0.5,
        memory_mb=1024,
        min_instances=4,
        max_instances=8,
        cert_file=cert_file,
        key_file=key_file,
        healthy_timeout_s=20,
        options={
            "canary_percent": 10,
            "canary": {"enabled": True, "window_s": WINDOW_S, "min_requests": 50},
        },
    )


@dataclass
class Alb:
    """What the ALB records per target group over the window: RequestCount,
    HTTPCode_Target_5XX_Count and TargetResponseTime (seconds), for the service's own
    group (old) and the canary's (new); and what the window saw (listener, canary)."""

    boto: Callable
    old: tuple[int, int, list[float]]
    new: tuple[int, int, list[float]]
    seen: dict[str, Any] = field(default_factory=dict)
    # What `status` reads at the window's end (the target's figures), when given.
    status: Callable[[], dict[str, Figures]] | None = None

    def record(self, group_arn: str, alb_arn: str, figures: tuple[int, int, list[float]]) -> None:
        requests, errors, latencies_s = figures
        when = datetime.now(UTC) - timedelta(seconds=20)
        dimensions = [
            {"Name": k, "Value": v} for k, v in target_group_dimensions(group_arn, alb_arn).items()
        ]
        data = [
            {"MetricName": "RequestCount", "Value": requests, "Unit": "Count"},
            {"MetricName": "HTTPCode_Target_5XX_Count", "Value": errors, "Unit": "Count"},
            {"MetricName": "TargetResponseTime", "Values": latencies_s, "Unit": "Seconds"},
        ]
        self.boto("cloudwatch").put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[{**d, "Dimensions": dimensions, "Timestamp": when} for d in data],
        )

    def sleep(self, seconds: float) -> None:
        """The target's sleep: the window is where the traffic is served and recorded."""
        if seconds != WINDOW_S:
            time.sleep(seconds)
            return
        alb = self.boto("elbv2").describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
        (rule,) = canary_rules(self.boto)
        weights = {
            group["TargetGroupArn"]: group["Weight"]
            for group in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
        }
        (condition,) = rule["Conditions"]
        assert rule["Priority"] == "1" and condition["PathPatternConfig"]["Values"] == ["/*"]
        self.seen["weights"] = weights
        canary = canary_service(self.boto)
        self.seen["canary"] = canary
        canary_group = canary["loadBalancers"][0]["targetGroupArn"]
        (stable_group,) = set(weights) - {canary_group}
        self.record(stable_group, alb, self.old)
        self.record(canary_group, alb, self.new)
        if self.status is not None:
            self.seen["status"] = self.status()


def https_listener(boto: Callable) -> dict[str, Any]:
    alb = boto("elbv2").describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    listeners = boto("elbv2").describe_listeners(LoadBalancerArn=alb)["Listeners"]
    return next(item for item in listeners if item["Protocol"] == "HTTPS")


def canary_rules(boto: Callable) -> list[dict[str, Any]]:
    """The HTTPS listener's rules but its default one."""
    rules = boto("elbv2").describe_rules(ListenerArn=https_listener(boto)["ListenerArn"])
    return [rule for rule in rules["Rules"] if not rule["IsDefault"]]


def services(boto: Callable) -> list[dict[str, Any]]:
    cluster = boto("ecs").list_clusters()["clusterArns"][0]
    arns = boto("ecs").list_services(cluster=cluster)["serviceArns"]
    if not arns:
        return []
    described = boto("ecs").describe_services(cluster=cluster, services=arns)["services"]
    return [s for s in described if s["status"] == "ACTIVE"]


def canary_service(boto: Callable) -> dict[str, Any]:
    (found,) = [s for s in services(boto) if s["serviceName"].endswith("-canary")]
    return found


def main_service(boto: Callable, spec: ServiceSpec) -> dict[str, Any]:
    (found,) = [s for s in services(boto) if s["serviceName"] == spec.name]
    return found


def image_of(boto: Callable, task_definition: str) -> str:
    described = boto("ecs").describe_task_definition(taskDefinition=task_definition)
    return described["taskDefinition"]["containerDefinitions"][0]["image"].rsplit(":", 1)[-1]


def ends_on_the_service_group_alone(boto: Callable, spec: ServiceSpec) -> None:
    """After the release, either way: the listener forwards all to the service's own
    target group (its default action, no rule left); the canary's service and target group
    are gone."""
    group = main_service(boto, spec)["loadBalancers"][0]["targetGroupArn"]
    (action,) = https_listener(boto)["DefaultActions"]
    assert action["TargetGroupArn"] == group and "ForwardConfig" not in action
    assert canary_rules(boto) == []
    assert [s["serviceName"] for s in services(boto)] == [spec.name]
    names = [g["TargetGroupName"] for g in boto("elbv2").describe_target_groups()["TargetGroups"]]
    assert not [name for name in names if name.endswith("-canary")], names


def provisioned(target: EcsTarget, spec: ServiceSpec, boto: Callable) -> str:
    """The service on 1.0 (a first revision needs no canary); its task definition."""
    target.ensure_service(spec)
    return main_service(boto, spec)["taskDefinition"]


def release(
    target: EcsTarget, spec: ServiceSpec, alb: Alb, image: str = "1.1"
) -> tuple[list[str], list[str]]:
    """(what --check lists, what the release did) of `deploy --image IMAGE`."""
    wanted = replace(spec, image=f"{SOURCE}:{image}", source="deploy")
    target.ctx.sleep = alb.sleep  # type: ignore[method-assign]
    planned = [str(c) for c in target.release(wanted, dry_run=True).changes]
    result = target.release(wanted)
    alb.seen["notes"] = result.notes
    done = [str(c) for c in result.changes]
    # A dry run names the revision it would register (the second) "(next)".
    return planned, [c.replace(f"{spec.name}:2", f"{spec.name}:(next)") for c in done]


def test_a_canary_that_serves_as_well_is_promoted(target, spec, boto, scheduler):
    first = provisioned(target, spec, boto)
    alb = Alb(boto, old=(900, 9, [0.040] * 99 + [0.080]), new=(100, 1, [0.042] * 99 + [0.085]))
    alb.status = lambda: target.figures(spec.env, 60)
    planned, done = release(target, spec, alb)
    assert planned == done  # --check lists exactly what the run did
    assert any(
        "update ecs_service" in c and "canary 10% on target group" in c and "over 60s" in c
        for c in done
    ), done
    # While judged: the listener sent 10 % to the canary group, where a service of the new
    # revision ran one task of the service's four.
    canary = alb.seen["canary"]
    assert sorted(alb.seen["weights"].values()) == [10, 90]
    assert alb.seen["weights"][canary["loadBalancers"][0]["targetGroupArn"]] == 10
    assert alb.seen["notes"] == [
        f"canary revision {spec.name}:2 held: 100 requests, 1.0% 5xx, p99 42 ms against "
        "900 requests, 1.0% 5xx, p99 40 ms"
    ]
    assert image_of(boto, canary["taskDefinition"]) == "1.1" and canary["desiredCount"] == 1
    # `status` then showed both target groups' figures.
    shown = alb.seen["status"]
    assert len(shown) == 2
    on_canary = shown.pop(f"target group {spec.env}-canary")
    ((_, on_service),) = shown.items()
    assert (on_canary.requests, on_canary.errors, on_canary.p99_ms) == (100, 1, 42.0)
    assert (on_service.requests, on_service.errors, on_service.p99_ms) == (900, 9, 40.0)
    # Promoted: the service itself runs 1.1 and has all the traffic; 1.0 is its previous.
    service = main_service(boto, spec)
    assert image_of(boto, service["taskDefinition"]) == "1.1"
    record = target.status(spec.env)
    assert record.active.id == service["taskDefinition"] and record.previous.id == first
    ends_on_the_service_group_alone(boto, spec)
    # The same release again: nothing to do.
    again = replace(spec, image=f"{SOURCE}:1.1", source="deploy")
    assert target.release(again, dry_run=True).changes == []
    assert target.release(again).changes == []


@pytest.mark.parametrize(
    ("new", "named"),
    [
        ((100, 12, [0.040] * 100), "5xx share 12.0% against 1.0% on the old release"),
        ((100, 0, [0.120] * 99 + [0.300]), "p99 latency 120 ms against 40 ms"),
    ],
    ids=["errors", "latency"],
)
def test_a_worse_canary_is_rolled_back_naming_the_figures(
    target, spec, boto, scheduler, new, named
):
    first = provisioned(target, spec, boto)
    alb = Alb(boto, old=(900, 9, [0.040] * 100), new=new)
    with pytest.raises(ProvisionError) as failed:
        release(target, spec, alb)
    error = failed.value
    assert error.code == ErrorCode.CANARY
    assert named in error.message
    assert "100 requests" in error.message and "900 requests" in error.message
    assert f"traffic is back on revision {first.rsplit('/', 1)[-1]}" in error.message
    assert sorted(alb.seen["weights"].values()) == [10, 90]  # it was judged on its share
    # The service never left 1.0; the listener is on its group alone, the canary gone.
    assert main_service(boto, spec)["taskDefinition"] == first
    assert target.status(spec.env).active.id == first
    ends_on_the_service_group_alone(boto, spec)


def test_a_quiet_canary_is_not_judged_and_goes_on(target, spec, boto, scheduler):
    provisioned(target, spec, boto)
    # All the canary's requests failed, but 3 requests say nothing (min_requests 50).
    alb = Alb(boto, old=(30, 0, [0.040] * 30), new=(3, 3, [0.900] * 3))
    planned, done = release(target, spec, alb)
    assert planned == done
    (said,) = alb.seen["notes"]
    assert "not judged: too few requests to judge: baseline 30, canary 3" in said
    assert image_of(boto, main_service(boto, spec)["taskDefinition"]) == "1.1"
    ends_on_the_service_group_alone(boto, spec)


def test_a_canary_that_never_becomes_healthy_leaves_the_service_as_it_was(
    target, spec, boto, scheduler
):
    first = provisioned(target, spec, boto)
    alb = Alb(boto, old=(900, 0, [0.040]), new=(100, 0, [0.040]))
    with pytest.raises(ProvisionError) as failed:
        release(target, spec, alb, image="broken")
    assert "the canary of revision" in failed.value.message
    assert "never became healthy" in failed.value.message
    assert "weights" not in alb.seen  # no traffic was ever weighed to it
    assert main_service(boto, spec)["taskDefinition"] == first
    ends_on_the_service_group_alone(boto, spec)


def test_without_the_canary_the_release_rolls_as_before(target, spec, boto, scheduler):
    plain = replace(spec, options={"canary": {"enabled": False}})
    provisioned(target, plain, boto)
    alb = Alb(boto, old=(900, 0, [0.040]), new=(100, 0, [0.040]))
    planned, done = release(target, plain, alb)
    assert planned == done and not any("canary" in c for c in done)
    assert "weights" not in alb.seen
    assert image_of(boto, main_service(boto, spec)["taskDefinition"]) == "1.1"
    ends_on_the_service_group_alone(boto, spec)


def test_ctrl_c_in_the_window_still_puts_everything_back(target, spec, boto, scheduler):
    first = provisioned(target, spec, boto)
    alb = Alb(boto, old=(900, 0, [0.040]), new=(100, 0, [0.040]))
    alb.sleep = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        release(target, spec, alb)
    assert main_service(boto, spec)["taskDefinition"] == first
    ends_on_the_service_group_alone(boto, spec)


def interrupted(seconds: float) -> None:
    """A sleep interrupted (Ctrl-C) when the canary's window begins."""
    if seconds == WINDOW_S:
        raise KeyboardInterrupt
    time.sleep(seconds)


@pytest.fixture
def killed_in_the_window(
    target: EcsTarget, spec: ServiceSpec, boto: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release killed in the canary's window (SIGKILL: nothing put back): the canary
    service runs, the listener weighs both groups."""
    provisioned(target, spec, boto)
    with monkeypatch.context() as killed:
        killed.setattr(ecs_canary, "dismantle", lambda *args: None)
        alb = Alb(boto, old=(900, 0, [0.040]), new=(100, 0, [0.040]))
        alb.sleep = interrupted  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            release(target, spec, alb)
    assert len(services(boto)) == 2
    assert len(canary_rules(boto)) == 1


def test_the_next_run_removes_what_a_killed_release_left(
    target, spec, boto, scheduler, killed_in_the_window
):
    planned = [str(c) for c in target.ensure_service(spec, dry_run=True).changes]
    done = [str(c) for c in target.ensure_service(spec).changes]
    assert planned == done
    canary = f"{spec.name}-canary"
    assert any(c.startswith(f"delete listener_rule {spec.env}-canary") for c in done), done
    assert any(c.startswith(f"delete ecs_service {canary}") for c in done), done
    assert any(c.startswith(f"delete target_group {spec.env}-canary") for c in done), done
    ends_on_the_service_group_alone(boto, spec)
    assert target.ensure_service(spec).changes == []


def test_destroy_removes_what_a_killed_release_left(
    target, spec, boto, scheduler, killed_in_the_window
):
    deleted = [str(c) for c in target.destroy(spec.env)]
    assert any(c.startswith(f"delete ecs_service {spec.name}-canary") for c in deleted)
    assert services(boto) == []
    assert boto("elbv2").describe_target_groups()["TargetGroups"] == []
