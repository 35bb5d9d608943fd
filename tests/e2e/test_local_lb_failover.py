"""Failure detection and draining at the local load balancer (HAProxy on the LB host).

A steady loop of predictions runs through the endpoint while model VMs are drained through
the provider, stopped, started and killed; every request is recorded (start, end, outcome)
and the assertions are on those records, the way a user of the endpoint would feel it.
Which host served is read from HAProxy's own counters (`stot`) through the admin socket.

One environment (2 model VMs, tests/e2e/conftest.py: local_pair) is shared by the tests of
this module, in order: drain and register, stop and start, kill; both hosts serve again
after the module, for test_release on the same environment.
"""

from __future__ import annotations

import time

import pytest

from mlops_vm.environment.load import load_environment
from mlops_vm.environment.specs import load_balancer_spec, provider_settings
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.provision import get_provider
from mlops_vm.provision.local import lb_admin
from mlops_vm.provision.model import ROLE_MODEL
from tests.environments import LOCAL_PAIR_ENV
from tests.load import RequestLoop

pytestmark = pytest.mark.slow

ENV = LOCAL_PAIR_ENV
LB = f"mlops-vm-{ENV}-lb"
MODEL_1 = f"mlops-vm-{ENV}-model-1"
MODEL_2 = f"mlops-vm-{ENV}-model-2"
# The model hosts' Nginx limits each client to 20 requests/s (burst 40): the loop stays
# well below it even when one host takes all of it.
THREADS = 3
INTERVAL_S = 0.2
# How precisely the test sees when HAProxy marked a host down (docker exec of the admin
# socket, polled every 50 ms, takes ~0.1-0.3 s).
SLACK_S = 0.5
# Windows of traffic counted in requests (the loop sends ~15/s), not seconds, so a loaded
# machine gets the same evidence: every client answered on its kept-alive connection before
# a change; with both hosts in, round robin would send half of a window's requests to each.
STEADY_REQUESTS = 2 * THREADS
WINDOW_REQUESTS = 30


def marked_down(name: str) -> bool:
    """HAProxy no longer takes NAME as a server (read straight from the admin socket)."""
    return not lb_admin.servers(LB)[name].healthy


def served(name: str) -> int:
    """Requests HAProxy has sent to model host NAME so far."""
    return lb_admin.servers(LB)[name].total_sessions


def wait_for(predicate, timeout_s: float, poll_s: float = 0.2) -> float:
    """Seconds until PREDICATE() is true; fails past TIMEOUT_S."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(poll_s)
    raise AssertionError(f"not true after {timeout_s}s: {predicate.__doc__ or predicate}")


@pytest.fixture(scope="module")
def provisioned(local_pair):
    """Provision's summary of the shared environment."""
    return local_pair.summary


@pytest.fixture(scope="module")
def lb(local_pair):
    """The provider, the load balancer spec and the model instances by name; both hosts
    serving again afterwards (the kill test leaves one stopped)."""
    loaded = load_environment(local_pair.directory)
    provider = get_provider(provider_settings(loaded.config))
    spec = load_balancer_spec(loaded.config, loaded.inventory_dir)
    instances = {i.name: i for i in provider.list_instances(ENV, ROLE_MODEL)}
    assert set(instances) == {MODEL_1, MODEL_2}
    yield provider, spec, instances
    for name in (MODEL_1, MODEL_2):
        docker("start", name)  # a no-op on a running host
        provider.wait_target_healthy(spec, name, timeout_s=180, poll_s=0.5)


def health(provider, spec) -> dict[str, tuple[bool, str]]:
    return {t.instance_id: (t.healthy, t.reason) for t in provider.target_health(spec)}


def loop_for(provisioned) -> RequestLoop:
    return RequestLoop(
        provisioned["endpoint"], provisioned["ca_file"], threads=THREADS, interval_s=INTERVAL_S
    )


def test_the_load_balancer_reports_both_hosts_healthy_from_its_own_checks(provisioned, lb):
    provider, spec, _ = lb
    states = health(provider, spec)
    assert set(states) == {MODEL_1, MODEL_2}
    for name, (healthy, reason) in states.items():
        # HAProxy drops the status code from the reason while it runs the next check.
        assert healthy and reason in ("UP (L7OK 200)", "UP (L7OK)"), (name, reason)
    assert set(lb_admin.servers(LB)) == {MODEL_1, MODEL_2}  # servers named by inventory name


def test_the_load_balancer_verifies_the_hosts_certificates_against_the_environment_ca(
    provisioned,
):
    # The checks above passed with verification on: the hosts' certificates chain to the
    # environment's CA, the only CA HAProxy trusts for them.
    config = docker("exec", LB, "cat", "/etc/haproxy/haproxy.cfg")
    assert "verify required ca-file /etc/haproxy/tls/servers-ca.crt" in config
    assert "verify none" not in config
    trusted = docker("exec", LB, "cat", "/etc/haproxy/tls/servers-ca.crt")
    with open(provisioned["ca_file"]) as environment_ca:
        assert trusted == environment_ca.read().strip()


def test_a_deregistered_host_gets_no_request_and_draining_fails_none(provisioned, lb):
    provider, spec, instances = lb
    with loop_for(provisioned) as loop:
        loop.wait_requests(STEADY_REQUESTS)
        changes = provider.deregister_target(spec, instances[MODEL_1])
        assert [c.action for c in changes] == ["update"], changes
        assert provider.deregister_target(spec, instances[MODEL_1]) == []  # already out
        assert health(provider, spec)[MODEL_1] == (False, "deregistered (maintenance)")
        before = served(MODEL_1)
        loop.wait_requests(WINDOW_REQUESTS)
        assert served(MODEL_1) == before, "a deregistered host got requests"

        assert [c.action for c in provider.register_target(spec, instances[MODEL_1])] == ["update"]
        assert provider.register_target(spec, instances[MODEL_1]) == []  # already in
        provider.wait_target_healthy(spec, MODEL_1, timeout_s=30, poll_s=0.5)
        ready = served(MODEL_1)
        took = wait_for(lambda: served(MODEL_1) > ready, 10)
        loop.wait_requests(WINDOW_REQUESTS // 2)
    print(f"\ndrain + register: {loop.summary()}; traffic again {took:.1f}s after ready")
    assert loop.failures() == [], loop.summary()


def test_a_stopped_host_is_marked_down_fails_only_requests_in_flight_and_comes_back(
    provisioned, lb
):
    provider, spec, _ = lb
    with loop_for(provisioned) as loop:
        loop.wait_requests(STEADY_REQUESTS)
        stopping = time.monotonic()
        docker("stop", MODEL_1)
        stopped = time.monotonic()
        down_after = wait_for(lambda: marked_down(MODEL_1), 5, poll_s=0.05)
        marked_down_at = stopped + down_after
        healthy, reason = health(provider, spec)[MODEL_1]
        assert not healthy, reason  # the provider's view is the load balancer's
        loop.wait_requests(WINDOW_REQUESTS)  # traffic on the one host left
        in_flight = loop.failures(since=0.0)
        after_down = loop.failures(since=marked_down_at + SLACK_S)

        docker("start", MODEL_1)
        started = time.monotonic()
        provider.wait_target_healthy(spec, MODEL_1, timeout_s=180, poll_s=0.5)
        ready_after = time.monotonic() - started
        ready = served(MODEL_1)
        traffic_after = wait_for(lambda: served(MODEL_1) > ready, 10)
        loop.wait_requests(WINDOW_REQUESTS // 2)
    print(
        f"\ndocker stop: {loop.summary()}; stop took {stopped - stopping:.1f}s, "
        f"marked down {down_after:.1f}s after ({reason}), {len(in_flight)} failed; "
        f"back: healthy {ready_after:.0f}s after start, traffic {traffic_after:.1f}s after ready"
    )
    assert after_down == [], loop.summary()
    assert len(in_flight) <= THREADS, loop.summary()
    assert loop.failures() == in_flight, loop.summary()  # none after the restart either


def test_a_killed_host_fails_only_requests_in_flight_and_none_hangs(provisioned, lb):
    provider, spec, _ = lb
    with loop_for(provisioned) as loop:
        loop.wait_requests(STEADY_REQUESTS)
        killed = time.monotonic()
        docker("kill", MODEL_2)
        down_after = wait_for(lambda: marked_down(MODEL_2), 5, poll_s=0.05)
        healthy, reason = health(provider, spec)[MODEL_2]
        assert not healthy, reason
        loop.wait_requests(WINDOW_REQUESTS)
    slowest = max(o.ended - o.started for o in loop.outcomes)
    failed = loop.failures()
    print(
        f"\ndocker kill: {loop.summary()}; marked down {down_after:.1f}s after ({reason}), "
        f"{len(failed)} failed"
    )
    print([(round(o.started - killed, 2), round(o.ended - killed, 2), o.detail) for o in failed])
    # Requests stuck on the dead host end when HAProxy marks it down: one per client at most.
    assert len(failed) <= THREADS, loop.summary()
    assert loop.failures(since=killed + down_after + SLACK_S) == [], loop.summary()
    assert all(o.ended <= killed + down_after + SLACK_S for o in failed), loop.summary()
    assert slowest < 10, loop.summary()
