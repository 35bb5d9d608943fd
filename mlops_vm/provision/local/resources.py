"""Names, labels and Docker calls for the local provider's resources."""

import json
from dataclasses import dataclass

from mlops_vm.platform import registry
from mlops_vm.platform.docker_cli import docker
from mlops_vm.provision.model import TAG_ENV, TAG_ROLE

INDEX_LABEL = "mlops-vm/index"


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
    found = []
    for item in json.loads(docker("inspect", *ids)):
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


def create_network(env: str) -> None:
    label_args = [arg for k, v in labels(env, "network").items() for arg in ("--label", f"{k}={v}")]
    docker("network", "create", *label_args, network_name(env))


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
