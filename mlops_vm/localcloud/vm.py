"""Containers that stand in for VMs: systemd as PID 1, their own Docker storage.

Their container settings live in vm_settings.yml, the one place Molecule's platforms
(.config/molecule/config.yml) are checked against too.
"""

import time
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.images import VM_IMAGE

SETTINGS_FILE = Path(__file__).with_name("vm_settings.yml")


@cache
def vm_settings() -> dict[str, Any]:
    return yaml.safe_load(SETTINGS_FILE.read_text())


def run_args(settings: dict[str, Any]) -> tuple[str, ...]:
    """SETTINGS (Molecule's Docker driver keys) as `docker run` options."""
    args = [f"--cgroupns={settings['cgroupns_mode']}"]
    for path in settings["tmpfs"]:
        args += ["--tmpfs", path]
    for volume in settings["volumes"]:
        args += ["--volume", volume]
    for capability in settings["capabilities"]:
        args += ["--cap-add", capability]
    for option in settings["security_opts"]:
        args += ["--security-opt", option]
    return tuple(args)


BOOTED_STATES = ("running", "degraded")


def storage_volume(name: str) -> str:
    """The VM NAME's own Docker storage volume (removed with it)."""
    return f"{name}-docker"


def run_vm(
    name: str,
    *,
    network: str,
    labels: dict[str, str] | None = None,
    image: str = VM_IMAGE,
    address: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> str:
    """Start a VM container with its own Docker storage volume; returns its id.

    ADDRESS: a fixed address on NETWORK, which Docker keeps across restarts (the network
    needs a subnet given at its creation); None lets Docker pick one at every start."""
    settings = vm_settings()
    label_args: list[str] = []
    for key, value in (labels or {}).items():
        label_args += ["--label", f"{key}={value}"]
    volume = storage_volume(name)
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
        *(("--ip", address) if address else ()),
        *label_args,
        *run_args(settings),
        "--volume",
        f"{volume}:{settings['docker_storage']}",
        *extra_args,
        image,
        settings["command"],
    )


def wait_booted(name: str, timeout_s: float = 180.0) -> str:
    """Wait until systemd in NAME has finished booting; returns the system state. The limit
    is that of a scaling group's instance (health_timeout_s): a VM that boots beside a
    machine's other work (several VMs and their engines starting at once) takes its time,
    and only a VM that never boots should reach it."""
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
    docker("volume", "rm", "-f", storage_volume(name), check=False)


def container_ip(name: str, network: str) -> str:
    return docker(
        "inspect",
        "--format",
        f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
        name,
    )
