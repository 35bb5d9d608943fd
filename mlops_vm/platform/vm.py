"""Containers that stand in for VMs: systemd as PID 1, their own Docker storage.

`--privileged` fails on these machines ("unable to apply caps"), so the capabilities a
systemd + nested-Docker guest needs are added one by one. Molecule's platform settings
(.config/molecule/config.yml) mirror these arguments.
"""

import time

from mlops_vm.platform.docker_cli import docker
from mlops_vm.platform.images import VM_IMAGE

VM_RUN_ARGS = (
    "--cgroupns=host",
    "--volume",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--tmpfs",
    "/tmp",
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
)
BOOTED_STATES = ("running", "degraded")


def run_vm(
    name: str,
    *,
    network: str,
    labels: dict[str, str] | None = None,
    image: str = VM_IMAGE,
    extra_args: tuple[str, ...] = (),
) -> str:
    """Start a VM container with its own /var/lib/docker volume; returns its id."""
    label_args: list[str] = []
    for key, value in (labels or {}).items():
        label_args += ["--label", f"{key}={value}"]
    volume = f"{name}-docker"
    docker("volume", "create", *label_args, volume)
    return docker(
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        name,
        "--network",
        network,
        *label_args,
        *VM_RUN_ARGS,
        "--volume",
        f"{volume}:/var/lib/docker",
        *extra_args,
        image,
    )


def wait_booted(name: str, timeout_s: float = 90.0) -> str:
    """Wait until systemd in NAME has finished booting; returns the system state."""
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = docker("exec", name, "systemctl", "is-system-running", check=False)
        if state in BOOTED_STATES:
            return state
        time.sleep(1)
    raise TimeoutError(f"{name} did not boot within {timeout_s:.0f}s (state: {state!r})")


def remove_vm(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)
    docker("volume", "rm", "-f", f"{name}-docker", check=False)


def container_ip(name: str, network: str) -> str:
    return docker(
        "inspect",
        "--format",
        f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
        name,
    )
