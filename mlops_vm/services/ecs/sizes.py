"""What Fargate accepts, checked before anything is created (moto accepts anything)."""

# task CPU units -> the memory sizes (MiB) Fargate allows with it
FARGATE_MEMORY: dict[int, range] = {
    256: range(512, 2048 + 1, 512),  # 0.25 vCPU: 512, 1024, 2048 (1536 is not one of them)
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}


def cpu_units(vcpu: float) -> int:
    return round(vcpu * 1024)


def fargate_memory(units: int) -> list[int]:
    """The memory sizes allowed with UNITS of CPU ([] when UNITS is not a Fargate size)."""
    sizes = FARGATE_MEMORY.get(units)
    if sizes is None:
        return []
    return [m for m in sizes if units != 256 or m != 1536]


def size_problem(vcpu: float, memory_mb: int) -> str | None:
    """Why Fargate refuses VCPU with MEMORY_MB, or None."""
    units = cpu_units(vcpu)
    allowed = fargate_memory(units)
    if not allowed:
        choices = ", ".join(f"{u / 1024:g}" for u in FARGATE_MEMORY)
        return f"service.cpu {vcpu:g} is not a Fargate size (vCPU: {choices})"
    if memory_mb not in allowed:
        listed = (
            ", ".join(map(str, allowed))
            if len(allowed) <= 4
            else f"{allowed[0]}..{allowed[-1]} in steps of {allowed[1] - allowed[0]}"
        )
        return (
            f"service.memory_mb {memory_mb} does not go with service.cpu {vcpu:g} on Fargate "
            f"(allowed: {listed} MiB)"
        )
    return None
