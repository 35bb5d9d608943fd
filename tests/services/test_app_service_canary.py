"""The App Service canary: the staging slot gets canary_percent of production's requests
(traffic routing: a ramp-up rule), both slots' figures are read from Azure Monitor and
judged; the swap follows when the canary holds, and staging goes back to what it held when
it does not. And the figures `status` shows per slot.

Contract only: the fake ARM (Microsoft.Web with slots and routing rules, Microsoft.Insights
metrics over series recorded per slot as App Service writes them), every slot's health
check answered 200 (no container runs here: test_app_service.py runs the real one)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from azure.core.exceptions import HttpResponseError

from mlops_vm.commands.status import figures_rows, platform_figures
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.services import ServiceSpec
from tests.fakes.azure import FakeArm
from tests.services.test_app_service import arm, group_id, plain_http
from tests.services.test_app_service_plan import make_spec, make_target

__all__ = ["arm", "plain_http"]  # the fixtures, shared with test_app_service.py

CANARY = {"enabled": True, "window_s": 0, "min_requests": 50}


def site_id(env: str) -> str:
    return f"{group_id(env)}/providers/Microsoft.Web/sites/mlops-vm-{env}"


def record(arm: FakeArm, resource_id: str, requests: int, errors: int, seconds: float) -> None:
    """A minute of App Service's metrics for one slot."""
    arm.record_metric(resource_id, "Requests", requests)
    arm.record_metric(resource_id, "Http5xx", errors)
    arm.record_metric(resource_id, "HttpResponseTime", seconds)


def provisioned(arm: FakeArm) -> tuple[object, ServiceSpec, str]:
    env = f"ac{uuid.uuid4().hex[:6]}"
    target = make_target(arm)
    spec = make_spec(env, "public")
    target.ensure_service(spec)
    return target, spec, env


def canary_release(target, spec: ServiceSpec, *, dry_run: bool = False):
    options = {**spec.options, "canary_percent": 20, "canary": CANARY}
    newer = replace(spec, image="registry.example.test/iris:1.1", options=options)
    return target.release(newer, dry_run=dry_run)


def routing_writes(arm: FakeArm, env: str) -> int:
    production_config = f"{site_id(env)}/config/web".lower()
    return sum(
        1 for r in arm.requests if r.method == "PATCH" and r.path.lower() == production_config
    )


def rules(arm: FakeArm, env: str) -> list:
    """Production's routing rules now (none once the canary is decided)."""
    config = arm.site_slots(site_id(env))["production"]["config"]
    return config.get("experiments", {}).get("rampUpRules", [])


def test_a_canary_that_serves_as_well_is_promoted(arm):
    target, spec, env = provisioned(arm)
    record(arm, site_id(env), 800, 8, 0.040)
    record(arm, f"{site_id(env)}/slots/staging", 200, 2, 0.045)
    before = routing_writes(arm, env)
    planned = canary_release(target, spec, dry_run=True).changes
    assert routing_writes(arm, env) == before  # --check routes nothing
    result = canary_release(target, spec)
    assert [(c.action, c.kind, c.name) for c in planned] == [
        (c.action, c.kind, c.name) for c in result.changes
    ]  # --check lists what the run does, the canary included
    assert target.status(env).active.image == "registry.example.test/iris:1.1"
    assert routing_writes(arm, env) == before + 2  # the rule set, then removed
    assert rules(arm, env) == []
    assert any("canary" in note and "held" in note for note in result.notes)
    assert ("update", "web_app_routing") in {(c.action, c.kind) for c in result.changes}


def test_a_canary_with_more_errors_is_rolled_back_naming_the_figures(arm):
    target, spec, env = provisioned(arm)
    record(arm, site_id(env), 800, 0, 0.040)
    record(arm, f"{site_id(env)}/slots/staging", 200, 30, 0.040)
    swaps = len(arm.swaps(site_id(env)))
    with pytest.raises(ProvisionError) as failed:
        canary_release(target, spec)
    assert failed.value.code == ErrorCode.CANARY
    assert "5xx share 15.0% against 0.0%" in failed.value.message
    assert "200 requests" in failed.value.message and "800 requests" in failed.value.message
    record_after = target.status(env)
    assert record_after.active.image == spec.image  # production kept the old release
    assert len(arm.swaps(site_id(env))) == swaps
    assert rules(arm, env) == []


def test_a_slower_canary_is_rolled_back_on_its_mean_latency(arm):
    """Azure Monitor keeps App Service's response time as an average: the means compare."""
    target, spec, env = provisioned(arm)
    record(arm, site_id(env), 800, 0, 0.040)
    record(arm, f"{site_id(env)}/slots/staging", 200, 0, 0.200)
    with pytest.raises(ProvisionError) as failed:
        canary_release(target, spec)
    assert "mean latency 200 ms against 40 ms" in failed.value.message
    assert target.status(env).active.image == spec.image


def test_status_figures_per_slot_from_azure_monitor(arm):
    target, _spec, env = provisioned(arm)
    record(arm, site_id(env), 600, 6, 0.050)
    figures = target.figures(env, 60)
    production = figures["slot production"]
    assert (production.requests, production.errors, production.seconds) == (600, 6, 60)
    assert production.rate == 10 and production.error_share == 0.01
    assert production.mean_ms == pytest.approx(50) and production.p99_ms is None
    printed = dict(figures_rows(platform_figures(target.figures, env, 60)))
    assert printed["slot production"] == "60 s: 10.0 req/s, 5xx 1.0%, mean 50 ms"


def test_metrics_requests_are_held_to_azure_monitors_contract(arm):
    """Contract: an unknown metric name, a bad timespan and a resource that does not exist
    are refused as Azure Monitor refuses them."""
    target, _spec, env = provisioned(arm)
    monitor = target.arm.monitor.metrics

    with pytest.raises(HttpResponseError, match="Valid metrics"):
        monitor.list(
            site_id(env).lstrip("/"),
            timespan="2026-12-05T10:00:00Z/2026-12-05T10:01:00Z",
            metricnames="Nope",
        )
    with pytest.raises(HttpResponseError, match="before its end"):
        monitor.list(
            site_id(env).lstrip("/"),
            timespan="2026-12-05T10:01:00Z/2026-12-05T10:00:00Z",
            metricnames="Requests",
        )
    with pytest.raises(HttpResponseError, match="was not found"):
        monitor.list(
            f"{site_id(env)}/slots/nope".lstrip("/"),
            timespan="2026-12-05T10:00:00Z/2026-12-05T10:01:00Z",
            metricnames="Requests",
        )
