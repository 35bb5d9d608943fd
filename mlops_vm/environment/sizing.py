"""Right-sizing: the model's settings against the machine type (provision/machine_types.py).

Errors are settings no run can honour (GPUs the machine type does not have, an accelerator
that does not go with it, more CPUs than it has: Docker refuses them) and stop every command
before anything is created, like any bad setting. Warnings are settings that run but are
probably wrong (replicas whose memory limits add up to more than the machine has, more
worker processes than vCPUs): `mlops-vm validate` shows them. Machine types the table does
not know are left to the provider's own checks.
"""

import re
from collections.abc import Iterator

from mlops_vm.environment.config import (
    CONFIG_VARIABLE,
    ConfigError,
    ConfigProblem,
    EnvironmentConfig,
    LoadedEnvironment,
    node_line,
)
from mlops_vm.provision.machine_types import MachineType, known_names, lookup

MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.I)
UNIT = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}

Finding = tuple[tuple[str, ...], str]  # (location in mlops_vm, message)


def memory_bytes(value: str) -> int | None:
    """Docker's memory notation (512m, 1g, 1.5g) in bytes; None when it is not that."""
    match = MEMORY.match(value)
    return int(float(match.group(1)) * UNIT[match.group(2).lower()]) if match else None


def machine_of(config: EnvironmentConfig) -> MachineType | None:
    return lookup(config.provider.name, config.fleet.machine_type)


def describe(machine: MachineType) -> str:
    gpus = f", {machine.gpu_count} x {machine.gpu}" if machine.gpu else ""
    return f"{machine.name} ({machine.vcpus} vCPUs, {machine.memory_gib:g} GiB{gpus})"


def accelerator_errors(config: EnvironmentConfig, machine: MachineType | None) -> Iterator[Finding]:
    accelerator = config.fleet.accelerator
    if accelerator is None:
        return
    where = ("fleet", "accelerator")
    if config.provider.name == "local":
        yield where, "the local provider has no GPUs; remove fleet.accelerator"
        return
    if machine is None:
        return  # the cloud checks it
    attachable = dict(machine.attachable)
    if machine.gpu:
        if accelerator.type != machine.gpu:
            yield (
                (*where, "type"),
                f"{describe(machine)} comes with {machine.gpu}, not {accelerator.type}",
            )
        elif accelerator.count != machine.gpu_count:
            yield (
                (*where, "count"),
                f"{describe(machine)} has {machine.gpu_count} GPU(s), not {accelerator.count}; "
                "choose the machine type of that size instead",
            )
    elif attachable:
        if accelerator.type not in attachable:
            yield (
                (*where, "type"),
                f"{machine.name} takes {' or '.join(attachable)}, not {accelerator.type}",
            )
        elif accelerator.count not in attachable[accelerator.type]:
            counts = ", ".join(map(str, attachable[accelerator.type]))
            yield (
                (*where, "count"),
                f"{machine.name} takes {counts} x {accelerator.type}, not {accelerator.count}",
            )
    else:
        gpu_types = [
            name for name in known_names(config.provider.name) if gpu_capable(config, name)
        ]
        yield (
            where,
            f"{describe(machine)} has no GPU and takes none; GPU machine types: "
            f"{', '.join(gpu_types[:8])}{', ...' if len(gpu_types) > 8 else ''}",
        )


def gpu_capable(config: EnvironmentConfig, name: str) -> bool:
    machine = lookup(config.provider.name, name)
    return bool(machine and (machine.gpu or machine.attachable))


def gpus_available(config: EnvironmentConfig, machine: MachineType | None) -> int | None:
    """GPUs each instance will have; None when nobody here can tell (an unknown type)."""
    if config.fleet.accelerator is not None:
        return config.fleet.accelerator.count
    if config.provider.name == "local":
        return 0
    return machine.gpu_count if machine else None


def model_gpu_errors(config: EnvironmentConfig, machine: MachineType | None) -> Iterator[Finding]:
    gpus = config.model.gpus
    available = gpus_available(config, machine)
    if gpus == 0 or available is None:
        return
    where = ("model", "gpus")
    on = describe(machine) if machine else f"{config.fleet.machine_type} with fleet.accelerator"
    if available == 0:
        yield where, f"{on} has no GPU; use a GPU machine type or set model.gpus to 0"
    elif isinstance(gpus, int) and gpus > available:
        yield where, f"{gpus} GPUs per replica, but {on} has {available}"
    elif gpus == "per_replica" and config.model.replicas > available:
        yield (
            where,
            f"one GPU per replica needs {config.model.replicas} GPUs (model.replicas), "
            f"but {on} has {available}",
        )


def cpu_errors(config: EnvironmentConfig, machine: MachineType | None) -> Iterator[Finding]:
    if machine and config.model.cpus > machine.vcpus:
        yield (
            ("model", "cpus"),
            f"{config.model.cpus:g} CPUs per replica, but {describe(machine)} has "
            f"{machine.vcpus}: Docker refuses a limit above the host's CPUs",
        )


def machine_errors(config: EnvironmentConfig) -> list[Finding]:
    machine = machine_of(config)
    return [
        *accelerator_errors(config, machine),
        *model_gpu_errors(config, machine),
        *cpu_errors(config, machine),
    ]


def machine_warnings(config: EnvironmentConfig) -> list[Finding]:
    machine = machine_of(config)
    if machine is None:
        return []
    model = config.model
    found: list[Finding] = []
    limit = memory_bytes(model.memory)
    if limit is not None and limit * model.replicas > machine.memory_gib * 2**30:
        found.append(
            (
                ("model", "memory"),
                f"{model.replicas} replicas x {model.memory} is more than the "
                f"{machine.memory_gib:g} GiB of {machine.name}: replicas may be OOM-killed; "
                "lower model.replicas or model.memory, or choose a larger fleet.machine_type",
            )
        )
    if model.replicas * model.workers > machine.vcpus:
        found.append(
            (
                ("model", "workers"),
                f"{model.replicas} replicas x {model.workers} workers = "
                f"{model.replicas * model.workers} processes on the {machine.vcpus} vCPUs of "
                f"{machine.name}: they will compete for CPU; lower model.workers or "
                "model.replicas, or choose a larger fleet.machine_type",
            )
        )
    if config.fleet.accelerator is not None and model.gpus == 0:
        found.append((("model", "gpus"), "the instances have GPUs but model.gpus is 0"))
    return found


def located(findings: list[Finding], loaded: LoadedEnvironment) -> list[ConfigProblem]:
    return [
        ConfigProblem(
            loaded.source,
            ".".join((CONFIG_VARIABLE, *location)),
            message,
            node_line(loaded.node, location),
        )
        for location, message in findings
    ]


def check_machine_settings(loaded: LoadedEnvironment) -> None:
    """ConfigError naming each GPU or CPU setting the machine type cannot honour."""
    problems = located(machine_errors(loaded.config), loaded)
    if problems:
        raise ConfigError(problems)


def sizing_warnings(loaded: LoadedEnvironment) -> list[ConfigProblem]:
    """Settings that run but probably should not, each with its file and line."""
    return located(machine_warnings(loaded.config), loaded)
