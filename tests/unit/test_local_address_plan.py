"""The local provider's address plan (mlops_vm/provision/local/addresses.py), without Docker:
which subnet an environment gets, and which address each of its VMs takes."""

import ipaddress

import pytest

from mlops_vm.provision.local import addresses
from mlops_vm.provision.model import ROLE_LB, ROLE_MODEL

SUBNET = ipaddress.IPv4Network("10.213.7.0/24")


def test_an_environment_always_prefers_the_same_subnet_and_may_use_any_of_the_pool():
    first = addresses.candidate_subnets("e2e")
    assert first == addresses.candidate_subnets("e2e")
    assert first[0] != addresses.candidate_subnets("e2e-2")[0]
    assert len(set(first)) == 256
    assert all(subnet.subnet_of(addresses.POOL) for subnet in first)


def test_subnets_in_use_are_skipped():
    preferred, second, *_ = addresses.candidate_subnets("wt")
    # A wider network that covers the preferred /24, as another Docker network or a route.
    wider = ipaddress.IPv4Network(f"{preferred.network_address}/22", strict=False)
    free = list(addresses.free_subnets("wt", [wider]))
    assert not any(subnet.overlaps(wider) for subnet in free)
    assert len(free) == 256 - 4
    assert next(addresses.free_subnets("wt", [preferred])) == second


def test_each_vm_has_its_own_fixed_address_outside_dockers_range():
    dynamic = addresses.dynamic_range(SUBNET)
    assert dynamic == ipaddress.IPv4Network("10.213.7.128/25")
    lb = addresses.vm_address(SUBNET, ROLE_LB)
    models = [
        addresses.vm_address(SUBNET, ROLE_MODEL, i) for i in range(1, addresses.MAX_MODEL_INDEX + 1)
    ]
    assert lb == "10.213.7.2"
    assert models[:2] == ["10.213.7.11", "10.213.7.12"]
    fixed = [lb, *models]
    assert len(set(fixed)) == len(fixed)
    assert not any(ipaddress.IPv4Address(a) in dynamic for a in fixed)
    assert ipaddress.IPv4Address(models[-1]) in SUBNET


@pytest.mark.parametrize("index", [None, 0, addresses.MAX_MODEL_INDEX + 1])
def test_a_model_host_without_a_place_in_the_plan_is_refused(index):
    with pytest.raises(ValueError, match="no fixed address"):
        addresses.vm_address(SUBNET, ROLE_MODEL, index)


def test_host_routes_are_read_from_the_kernel_table(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"  # default: left out
        "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # 10.0.2.0/24
    )
    assert addresses.host_routes(table) == [ipaddress.IPv4Network("10.0.2.0/24")]
    assert addresses.host_routes(tmp_path / "missing") == []
