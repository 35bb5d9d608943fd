"""`--check` equals the run for the local provider on a new environment: one VM and the
LB host (Docker), planned, made, left alone by a second run, destroyed as planned."""

import socket
import uuid
from collections.abc import Iterator

import pytest

from mlops_vm.provision import (
    CertificateSpec,
    FleetSpec,
    InstanceSpec,
    LoadBalancerSpec,
    ProviderSettings,
)
from mlops_vm.provision.local import LocalProvider
from mlops_vm.provision.local import resources as res
from tests.check_equals_run import assert_check_equals_run

pytestmark = pytest.mark.slow

ENV = f"plan{uuid.uuid4().hex[:6]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def provider(platform) -> Iterator[LocalProvider]:
    provider = LocalProvider(ProviderSettings(name="local"))
    try:
        yield provider
    finally:
        provider.destroy(ENV)  # what a failed assertion left behind


def test_check_lists_what_the_run_does(provider):
    fleet = FleetSpec(env=ENV, instance=InstanceSpec(machine_type="local"), count=1)
    lb = LoadBalancerSpec(env=ENV, certificate=CertificateSpec(), publish_port=free_port())
    done = assert_check_equals_run(provider, fleet, lb)
    assert {(c.action, c.kind) for c in done} == {
        ("create", "network"),
        ("create", "instance"),
        ("create", "lb_host"),
    }
    assert res.find_containers(ENV) == [] and not res.network_exists(ENV)
