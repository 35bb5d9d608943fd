"""Acceptance: the local scaling group (the stand-in for ASG / MIG / VMSS) under load.

One environment ("asg", min 1 / max 3, target 8 requests/s per instance, the autoscaler's
window and cooldowns cut to seconds) is provisioned once for the module: its instances are
started from the release image baked for it. A steady request loop runs through the
endpoint during every test and every request's outcome is kept; the tests, in order:
a load step adds instances that serve, then they are drained and removed when it stops;
`status` shows the group and its activities; a release and then a rollback roll every
instance, one at a time, to the expected release.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mlops_vm.localcloud import registry
from mlops_vm.provision.local import group, lb_admin
from tests.environments import cli_json, provisioned_environment
from tests.load import RequestLoop

pytestmark = pytest.mark.slow

ENV = "asg"
PORT = 18591
LB = f"mlops-vm-{ENV}-lb"
OVERRIDES = {
    "provider": {
        "name": "local",
        "options": {
            "autoscaler": {
                "window_s": 8,
                "interval_s": 1,
                "scale_out_cooldown_s": 5,
                "scale_in_cooldown_s": 15,
                "drain_s": 15,
            }
        },
    },
    "fleet": {
        "mode": "scaling_group",
        "count": 1,
        "autoscaling": {
            "min_size": 1,
            "max_size": 3,
            "target_requests_per_instance": 8,
            "target_cpu_percent": None,
        },
    },
    "load_balancer": {"publish_port": PORT},
}


def wait_for(predicate, timeout_s: float, poll_s: float = 1.0) -> float:
    """Seconds until PREDICATE() is true; fails past TIMEOUT_S."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(poll_s)
    raise AssertionError(f"not true after {timeout_s}s: {predicate.__doc__}")


def three_serve() -> bool:
    """Three instances in service"""
    return len(in_service()) == 3


def back_to_one() -> bool:
    """One instance left, in service, the others recorded as gone"""
    state = group.read_state(ENV)
    return len(in_service()) == 1 and len(group.instances(ENV)) == 1 and len(state.lifecycle) == 1


def group_status(directory) -> tuple[dict, list[dict]]:
    """`status --json` of the group: (size and releases with activities, instances). Main's
    commands/group_status.py puts them under "scaling_group" and "instances"; this branch's
    own rows under "group"."""
    code, payload = cli_json("status", str(directory))
    assert code == 0, payload
    found = payload.get("scaling_group") or payload["group"]
    return found, payload.get("instances") if "scaling_group" in payload else found["instances"]


def in_service() -> list[str]:
    state = group.read_state(ENV)
    return sorted(
        c.name for c in group.instances(ENV) if state.lifecycle.get(c.name) == "in_service"
    )


@pytest.fixture(scope="module")
def environment(platform, tmp_path_factory) -> Iterator[tuple]:
    root = tmp_path_factory.mktemp("inventories")
    with provisioned_environment(root, ENV, OVERRIDES, packaged_hosts=True) as provisioned:
        yield provisioned


@pytest.fixture
def steady(environment) -> Iterator[RequestLoop]:
    """About 4 requests/s through the endpoint for the whole test: none may fail."""
    _, summary = environment
    with RequestLoop(summary["endpoint"], summary["ca_file"], threads=1, interval_s=0.25) as loop:
        loop.wait_requests(4)
        yield loop
    assert not loop.failures(), loop.summary()


def test_a_load_step_adds_instances_that_serve_then_they_drain_away(environment, steady):
    _, summary = environment
    first = f"mlops-vm-{ENV}-model-1"

    def only_the_first_serves() -> bool:
        """The group starts with its first instance in service"""
        return in_service() == [first]

    wait_for(only_the_first_serves, timeout_s=120)
    with RequestLoop(summary["endpoint"], summary["ca_file"], threads=4, interval_s=0.05) as step:
        wait_for(three_serve, timeout_s=300)
        served_before = {n: s.total_sessions for n, s in lb_admin.servers(LB).items()}
        step.wait_requests(60)
        servers = lb_admin.servers(LB)
        for name in in_service():
            assert servers[name].healthy, servers[name]
            assert servers[name].total_sessions > served_before.get(name, 0), name
    assert not step.failures(), step.summary()
    # The step is over: back to one instance, each drained before it went.
    wait_for(back_to_one, timeout_s=240)
    activities = [a["description"] for a in group.read_state(ENV).activities]
    assert any("to 3 instances" in a or "to 2 instances" in a for a in activities), activities
    assert sum(a.startswith("terminated") and "(drained)" in a for a in activities) == 2, activities


def test_status_lists_the_group_and_its_activities(environment):
    directory, _ = environment
    found, instances = group_status(directory)
    assert (found["min_size"], found["desired"], found["max_size"]) == (1, 1, 3)
    assert [i["lifecycle"] for i in instances] == ["in_service"]
    assert instances[0]["release"] == found["release"]
    causes = " ".join(a["cause"] for a in found["activities"])
    assert "target tracking" in causes and "requests/s" in causes


def test_a_release_then_a_rollback_roll_every_instance(environment, steady):
    directory, _ = environment
    first = group.read_config(ENV).release
    newer = registry.model_image_ref("1.1")
    code, summary = cli_json("deploy", str(directory), "--image", newer)
    assert code == 0, summary
    found, instances = group_status(directory)
    assert found["release"] == newer
    assert {i["release"] for i in instances} == {newer}
    assert found["previous_release"] == first
    code, summary = cli_json("rollback", str(directory))
    assert code == 0, summary
    found, instances = group_status(directory)
    assert {i["release"] for i in instances} == {first}
    assert {i["lifecycle"] for i in instances} == {"in_service"}
