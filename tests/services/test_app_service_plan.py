"""The App Service target's plan is its run (issue 26): `provision --check` on a new
environment lists every change the real run then makes, autoscale and authentication
included; a second run changes nothing; destroy's plan is destroy.

Contract only: the fake ARM (tests/fakes/azure), the image pulled from its source registry
(no copy), and every slot's health check answered 200 (no container runs here: the real
data plane is test_app_service.py's).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from mlops_vm.plan import Change
from mlops_vm.services import ServiceSpec
from mlops_vm.services.app_service import AppServiceTarget
from tests.fakes.azure import FakeArm
from tests.services.test_app_service import SECRET_URI, arm, plain_http
from tests.services.test_app_service import make_target as make_app_target

__all__ = ["arm", "plain_http"]  # the fixtures, shared with test_app_service.py

Plan = list[tuple[str, str, str]]


def make_target(arm: FakeArm) -> AppServiceTarget:
    """Every slot's health check answers 200: the first release and swaps go through."""
    target = make_app_target(arm)
    target.probe = lambda url: 200
    return target


def make_spec(env: str, access: str) -> ServiceSpec:
    return ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image="registry.example.test/iris:1.0",
        port=8181,
        secrets={"API_TOKEN": SECRET_URI},
        min_instances=1,
        max_instances=3,
        access=access,
        healthy_timeout_s=5,
        options={"sku": "S1", "registry": "source"},
    )


def plan_of(changes: list[Change]) -> Plan:
    return [(c.action, c.kind, c.name) for c in changes]


@pytest.mark.parametrize("access", ["authenticated", "public"])
def test_check_of_a_new_environment_lists_exactly_what_the_run_does(
    arm: FakeArm, access: str
) -> None:
    env = f"p{uuid.uuid4().hex[:8]}"
    target, spec = make_target(arm), make_spec(env, access)
    site, group = f"mlops-vm-{env}", f"mlops-vm-{env}"

    arm.clear_requests()
    planned = plan_of(target.ensure_service(spec, dry_run=True).changes)
    assert arm.writes() == []
    done = plan_of(target.ensure_service(spec).changes)
    assert planned == done
    assert ("create", "autoscale", f"{site}-autoscale") in done
    assert ("create", "authentication", f"{site}/production") in done
    assert target.ensure_service(spec).changes == []

    # A release: the staging slot, its settings and the swap, planned as they are done.
    second = replace(spec, image="registry.example.test/iris:1.1", source="deploy")
    planned = plan_of(target.release(second, dry_run=True).changes)
    done = plan_of(target.release(second).changes)
    assert planned == done
    assert ("update", "web_app", site) in done
    assert target.release(second).changes == []

    planned = plan_of(target.destroy(env, dry_run=True))
    assert ("delete", "resource_group", group) in planned
    assert plan_of(target.destroy(env)) == planned
    assert target.destroy(env) == []
