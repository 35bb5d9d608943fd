"""Names, labels and Docker calls for the local provider's resources."""

import ipaddress
import json
from dataclasses import dataclass

from mlops_vm.localcloud import registry
from mlops_vm.localcloud.docker_cli import DockerError, docker
from mlops_vm.provision.local import addresses
from mlops_vm.provision.model import TAG_ENV, TAG_ROLE

INDEX_LABEL = "mlops-vm/index"
# On networks whose subnet the provider chose, so their VMs take fixed addresses; networks
# of earlier versions (Docker's subnet) lack it and their VMs keep Docker's addresses.
SUBNET_LABEL = "mlops-vm/subnet"


def network_name(env: str) -> str:
    return f"mlops-vm-{env}"


def vm_name(env: str, role: str, index: int | None = None) -> str:
    return f"mlops-vm-{env}-{role}" + (f"-{index}" if index is not None else "")


def labels(env: str, role: str, **extra: str) -> dict[str, str]:
    return {TAG_ENV: env, TAG_ROLE: role, **extra}


@dataclass(frozen=True)
class Container:
    name: str
    running: bool
    labels: dict[str, str]
    ips: dict[str, str]  # network name -> address
    ports: dict[str, str]  # "443/tcp" -> "127.0.0.1:8443"

    @property
    def index(self) -> int:
        return int(self.labels.get(INDEX_LABEL, "0"))


def find_containers(env: str, role: str | None = None) -> list[Container]:
    filters = ["--filter", f"label={TAG_ENV}={env}"]
    if role:
        filters += ["--filter", f"label={TAG_ROLE}={role}"]
    ids = docker("ps", "-aq", *filters).split()
    if not ids:
        return []
    # A container removed between the listing and the inspection (a scaling group's
    # instance going) is simply no longer there: inspect answers for the others.
    answer = docker("inspect", *ids, check=False)
    found = []
    for item in json.loads(answer) if answer.startswith("[") else []:
        networks = item["NetworkSettings"]["Networks"]
        ports = {
            port: f"{bindings[0]['HostIp']}:{bindings[0]['HostPort']}"
            for port, bindings in (item["HostConfig"].get("PortBindings") or {}).items()
            if bindings
        }
        found.append(
            Container(
                name=item["Name"].lstrip("/"),
                running=item["State"]["Running"],
                labels=item["Config"]["Labels"] or {},
                ips={net: info["IPAddress"] for net, info in networks.items()},
                ports=ports,
            )
        )
    return sorted(found, key=lambda c: (c.labels.get(TAG_ROLE, ""), c.index, c.name))


def network_exists(env: str) -> bool:
    return bool(docker("network", "ls", "-q", "--filter", f"name=^{network_name(env)}$"))


def docker_subnets() -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of every Docker network on this engine."""
    ids = docker("network", "ls", "-q").split()
    if not ids:
        return []
    subnets = []
    for network in json.loads(docker("network", "inspect", *ids)):
        for config in (network.get("IPAM") or {}).get("Config") or []:
            subnet = ipaddress.ip_network(config.get("Subnet") or "::/128", strict=False)
            if isinstance(subnet, ipaddress.IPv4Network):  # IPv6 pools never collide here
                subnets.append(subnet)
    return subnets


def create_network(env: str) -> ipaddress.IPv4Network:
    """The environment's bridge network, on a free /24 of addresses.POOL."""
    taken = docker_subnets() + addresses.host_routes()
    for subnet in addresses.free_subnets(env, taken):
        label_args = [
            arg
            for key, value in labels(env, "network", **{SUBNET_LABEL: str(subnet)}).items()
            for arg in ("--label", f"{key}={value}")
        ]
        try:
            docker(
                "network",
                "create",
                *label_args,
                "--subnet",
                str(subnet),
                "--ip-range",
                str(addresses.dynamic_range(subnet)),
                network_name(env),
            )
        except DockerError as error:
            if "overlaps" in str(error):  # taken since we looked (another network, just now)
                continue
            raise
        return subnet
    raise DockerError(f"no free /{addresses.SUBNET_PREFIX} left in {addresses.POOL} for {env}")


def network_subnet(env: str) -> ipaddress.IPv4Network | None:
    """The subnet the provider chose for ENV's network; None for a network without one."""
    label = docker(
        "network",
        "inspect",
        "--format",
        f'{{{{index .Labels "{SUBNET_LABEL}"}}}}',
        network_name(env),
        check=False,
    )
    if not label or label == "<no value>":
        return None
    return ipaddress.IPv4Network(label)


def fixed_address(env: str, role: str, index: int | None = None) -> str | None:
    """The address a VM of ENV takes on its network, or None: Docker's choice."""
    subnet = network_subnet(env)
    return addresses.vm_address(subnet, role, index) if subnet else None


def network_cidr(env: str) -> str:
    return docker(
        "network", "inspect", "--format", "{{(index .IPAM.Config 0).Subnet}}", network_name(env)
    )


def attach_registry(env: str) -> None:
    """Give the environment's VMs the registry under its usual name."""
    attached = docker(
        "inspect",
        "--format",
        "{{json .NetworkSettings.Networks}}",
        registry.CONTAINER,
        check=False,
    )
    if attached and network_name(env) in json.loads(attached):
        return
    docker(
        "network",
        "connect",
        "--alias",
        registry.HOSTNAME,
        network_name(env),
        registry.CONTAINER,
        check=False,
    )


def remove_network(env: str) -> None:
    docker("network", "disconnect", "-f", network_name(env), registry.CONTAINER, check=False)
    docker("network", "rm", network_name(env), check=False)


def find_volumes(env: str) -> list[str]:
    return docker("volume", "ls", "-q", "--filter", f"label={TAG_ENV}={env}").split()
