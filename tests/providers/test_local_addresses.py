"""Local VMs keep their address: each VM has a fixed one on its environment's own subnet, so
the LB host's HAProxy, which knows its servers by address, still reaches a VM after
`docker stop` + `docker start` (and after a dockerd restart: Docker re-applies the address
recorded in the container's IPAM config, which is what these tests look at too)."""

import ipaddress
from collections.abc import Iterator

import pytest

from mlops_vm.localcloud import registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.provision import FleetSpec, InstanceSpec, InstanceStatus, ProviderSettings
from mlops_vm.provision.local import LocalProvider, addresses
from mlops_vm.provision.local import resources as res

pytestmark = pytest.mark.slow

ENV = "addresses"
NETWORK = res.network_name(ENV)


def fleet(count: int) -> FleetSpec:
    return FleetSpec(env=ENV, instance=InstanceSpec(machine_type="local"), count=count)


def pinned_address(container: str) -> str:
    """The address Docker gives CONTAINER at every start ("" when Docker picks one)."""
    return docker(
        "inspect",
        "--format",
        f'{{{{with (index .NetworkSettings.Networks "{NETWORK}").IPAMConfig}}}}'
        "{{.IPv4Address}}{{end}}",
        container,
    )


@pytest.fixture(scope="module")
def provider(platform) -> Iterator[LocalProvider]:
    provider = LocalProvider(ProviderSettings(name="local"))
    provider.destroy(ENV)  # what an interrupted run left behind
    try:
        yield provider
    finally:
        provider.destroy(ENV)


def test_a_vm_comes_back_with_its_address_after_stop_and_start(provider):
    created = provider.ensure_fleet(fleet(1))
    subnet = ipaddress.IPv4Network(created.network["cidr"])
    assert subnet.subnet_of(addresses.POOL)
    (vm,) = created.instances
    assert vm.private_ip == str(subnet.network_address + 11)
    assert pinned_address(vm.id) == vm.private_ip

    docker("stop", "--time", "2", vm.id)  # systemd ignores SIGTERM: killed after 2s
    (stopped,) = provider.list_instances(ENV)
    assert stopped.status == InstanceStatus.STOPPED
    docker("start", vm.id)

    (again,) = provider.list_instances(ENV)
    assert again.status == InstanceStatus.RUNNING
    assert again.private_ip == vm.private_ip


def test_a_second_vm_has_a_distinct_fixed_address(provider):
    result = provider.ensure_fleet(fleet(2))
    subnet = ipaddress.IPv4Network(result.network["cidr"])
    by_name = {i.name: i.private_ip for i in result.instances}
    assert by_name == {
        res.vm_name(ENV, "model", 1): str(subnet.network_address + 11),
        res.vm_name(ENV, "model", 2): str(subnet.network_address + 12),
    }
    for name, address in by_name.items():
        assert pinned_address(name) == address
    # The registry joins without a fixed address: Docker keeps it out of the VMs' addresses.
    registry_address = docker(
        "inspect",
        "--format",
        f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}',
        registry.CONTAINER,
    )
    assert ipaddress.IPv4Address(registry_address) in addresses.dynamic_range(subnet)
    assert provider.ensure_fleet(fleet(2)).changes == []
