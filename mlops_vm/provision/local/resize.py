"""Resizing a local "VM": the CPU and memory limits of its container, changed in place.

A local machine type (provision/machine_types.py) is a pair of limits on the VM container;
`local` is the whole machine. `docker update` changes them on the running container, so
nothing restarts: the VM keeps serving, out of the load balancer only as a gate.
"""

import json

from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.machine_types import LOCAL_UNLIMITED, known_names, lookup
from mlops_vm.provision.model import Instance

NANO = 1_000_000_000


def limits(machine_type: str) -> tuple[int, int]:
    """(nano CPUs, memory bytes) of MACHINE_TYPE; ProvisionError(INVALID_INPUT) if unknown."""
    machine = lookup("local", machine_type)
    if machine is None:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"unknown local machine type {machine_type!r}",
            hint=f"fleet.machine_type: {', '.join([LOCAL_UNLIMITED, *known_names('local')])}",
            provider="local",
            operation="check the machine type",
        )
    return machine.vcpus * NANO, int(machine.memory_gib * 2**30)


def limit_args(wanted: tuple[int, int]) -> tuple[str, ...]:
    """`docker run` / `docker update` options for (nano CPUs, memory bytes)."""
    nano_cpus, memory = wanted
    # No swap: the limit is the machine's memory, as on a cloud VM.
    return (
        "--cpus",
        f"{nano_cpus / NANO:g}",
        "--memory",
        str(memory),
        "--memory-swap",
        str(memory),
    )


def run_args(machine_type: str) -> tuple[str, ...]:
    """The options that start a VM with MACHINE_TYPE's limits (none for the whole
    machine: a new VM is then what it always was)."""
    return () if machine_type == LOCAL_UNLIMITED else limit_args(limits(machine_type))


def current_limits(name: str) -> tuple[int, int]:
    """The VM container's (nano CPUs, memory bytes); 0 means unlimited."""
    config = json.loads(docker("inspect", "--format", "{{json .HostConfig}}", name))
    return config.get("NanoCpus") or 0, config.get("Memory") or 0


def same_limits(current: tuple[int, int], wanted: tuple[int, int]) -> bool:
    # Unlimited (0) is the whole machine: a VM made before machine types were used.
    return all(
        have in (want, 0) if want == whole else have == want
        for have, want, whole in zip(current, wanted, limits(LOCAL_UNLIMITED), strict=True)
    )


def resize_container(instance: Instance, machine_type: str, *, dry_run: bool) -> list[Change]:
    wanted = limits(machine_type)
    current = current_limits(instance.name)
    if same_limits(current, wanted):
        return []
    log = ChangeLog(dry_run=dry_run)
    # Back to the whole machine, too: Docker cannot lift a limit, only set it that high.
    log.update(
        "instance",
        instance.name,
        lambda: docker("update", *limit_args(wanted), instance.name),
        f"resize to {machine_type} ({wanted[0] / NANO:g} CPUs, {wanted[1] / 2**30:g} GiB)",
    )
    return log.changes
