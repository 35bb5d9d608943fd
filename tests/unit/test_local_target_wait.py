"""The local provider waits on one HAProxy server (its own reader), through the base
class's poll: healthy once HAProxy says so, a timeout naming the server's last state."""

import pytest

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.local import lb_admin
from mlops_vm.provision.local import resources as res
from mlops_vm.provision.local.provider import LocalProvider
from mlops_vm.provision.model import CertificateSpec, LoadBalancerSpec, ProviderSettings

SPEC = LoadBalancerSpec(env="dev", certificate=CertificateSpec())


def server(status: str, check_status: str) -> lb_admin.ServerState:
    return lb_admin.ServerState("model-1", status, 0, 0, 0, check_status, "")


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, lb_admin.ServerState]]:
    """HAProxy's successive answers (the last repeats); lb_host finds the LB host."""
    queue: list[dict[str, lb_admin.ServerState]] = []
    monkeypatch.setattr(LocalProvider, "lb_host", lambda self, spec, operation: "dev-lb")

    def servers(lb: str) -> dict[str, lb_admin.ServerState]:
        assert lb == "dev-lb"
        return queue.pop(0) if len(queue) > 1 else queue[0]

    monkeypatch.setattr(lb_admin, "servers", servers)
    return queue


def provider() -> LocalProvider:
    return LocalProvider(ProviderSettings(name="local"))


def test_returns_once_haproxy_reports_the_server_up(answers):
    answers += [{}, {"model-1": server("DOWN", "L4CON")}, {"model-1": server("UP", "L7OK")}]
    health = provider().wait_target_healthy(SPEC, "model-1", timeout_s=5, poll_s=0.001)
    assert health.healthy and health.instance_id == "model-1"
    assert answers == [{"model-1": server("UP", "L7OK")}]  # asked until it was up


def test_a_server_still_down_times_out_with_its_state(answers):
    answers.append({"model-1": server("DOWN", "L4CON")})
    with pytest.raises(ProvisionError) as raised:
        provider().wait_target_healthy(SPEC, "model-1", timeout_s=0.01, poll_s=0.001)
    assert raised.value.code is ErrorCode.TIMEOUT
    assert "L4CON" in raised.value.message


def test_a_server_not_in_the_backend_times_out_saying_so(answers):
    answers.append({})
    with pytest.raises(ProvisionError) as raised:
        provider().wait_target_healthy(SPEC, "model-1", timeout_s=0.01, poll_s=0.001)
    assert "not registered with the load balancer" in raised.value.message


def test_the_load_balancer_host_is_looked_up_once_for_register_and_wait(monkeypatch):
    """A rejoin registers, then waits: one listing of the LB host, not one per step."""
    listings = []

    def find_containers(env, role=None):
        listings.append((env, role))
        return [res.Container(name="dev-lb", running=True, labels={}, ips={}, ports={})]

    monkeypatch.setattr(res, "find_containers", find_containers)
    monkeypatch.setattr(lb_admin, "servers", lambda lb: {"model-1": server("UP", "L7OK")})
    local = provider()
    assert local.lb_server(SPEC, "model-1", "register target")[0] == "dev-lb"
    assert local.wait_target_healthy(SPEC, "model-1", timeout_s=1).healthy
    assert listings == [("dev", "lb")]
