"""Fixed addresses for the local provider's VMs.

HAProxy on the LB host knows its servers by address, so a VM has to come back with the same
address after `docker stop` + `docker start` or a dockerd restart. Docker keeps an address
only when it was asked for (`--ip`), and takes `--ip` only on a network whose subnet was
given at creation. So each environment gets a /24 out of POOL, chosen from its name (the
same name finds the same subnet again while it is free), and inside it:

    .1          the bridge's gateway
    .2          the LB host
    .11 ...     model host i at .10 + i (model-1 at .11), up to .127
    .128-.254   left to Docker (the registry joins the network without --ip)
"""

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator
from pathlib import Path

from mlops_vm.provision.model import ROLE_LB, ROLE_MODEL

# Outside Docker's default address pools (172.17-31.x, 192.168.x), so networks that Docker
# numbers itself never race ours for a subnet.
POOL = ipaddress.IPv4Network("10.213.0.0/16")
SUBNET_PREFIX = 24
LB_OFFSET = 2
MODEL_OFFSET = 10
# Docker's own picks stay in the upper half, away from the fixed addresses.
DYNAMIC_PREFIX = 25
MAX_MODEL_INDEX = 127 - MODEL_OFFSET


def candidate_subnets(env: str) -> list[ipaddress.IPv4Network]:
    """Every /24 of POOL, starting at the one ENV's name hashes to."""
    subnets = list(POOL.subnets(new_prefix=SUBNET_PREFIX))
    start = int.from_bytes(hashlib.sha256(env.encode()).digest()[:4], "big") % len(subnets)
    return subnets[start:] + subnets[:start]


def free_subnets(
    env: str, taken: Iterable[ipaddress.IPv4Network]
) -> Iterator[ipaddress.IPv4Network]:
    """ENV's candidate subnets that overlap nothing in TAKEN, in order of preference."""
    in_use = list(taken)
    for subnet in candidate_subnets(env):
        if not any(subnet.overlaps(other) for other in in_use):
            yield subnet


def dynamic_range(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """Where Docker hands out addresses it picks itself: the upper half of SUBNET."""
    return list(subnet.subnets(new_prefix=DYNAMIC_PREFIX))[-1]


def vm_address(subnet: ipaddress.IPv4Network, role: str, index: int | None = None) -> str:
    """The fixed address of a VM: the LB host, or model host INDEX (1-based)."""
    if role == ROLE_LB:
        return str(subnet.network_address + LB_OFFSET)
    if role == ROLE_MODEL and index is not None and 1 <= index <= MAX_MODEL_INDEX:
        return str(subnet.network_address + MODEL_OFFSET + index)
    raise ValueError(f"no fixed address for {role} {index} (model hosts 1..{MAX_MODEL_INDEX})")


def host_routes(route_table: Path = Path("/proc/net/route")) -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes except the default one: a subnet that overlaps one of them
    would hide that network from the VMs."""
    if not route_table.exists():
        return []
    routes = []
    for line in route_table.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        # Little-endian hex, as the kernel writes them.
        destination = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        network = ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)
        if network.prefixlen > 0:
            routes.append(network)
    return routes
