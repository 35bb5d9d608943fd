"""What Cloud Run refuses, checked before anything is created (Cloud Run documentation:
"Configure CPU limits", "Configure memory limits", "GPU support for services",
"Maximum concurrent requests", "Container runtime contract"; as of 2025).

GPU table: the accelerator, the regions that offer it for services, and what an instance
with one needs (one GPU per instance, at least 4 CPUs and 16 GiB, CPU always allocated).
"""

import re

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.settings import CloudRunServiceConfig

GPU_REGIONS: dict[str, frozenset[str]] = {
    "nvidia-l4": frozenset(
        {
            "us-central1",
            "us-east4",
            "europe-west1",
            "europe-west4",
            "asia-southeast1",
            "asia-south1",
        }
    ),
}
GPU_MIN_CPU = 4.0
GPU_MIN_MEMORY_MB = 16 * 1024
GPU_PER_INSTANCE = 1

WHOLE_CPUS = (1, 2, 4, 6, 8)
FRACTIONAL_CPU = (0.08, 1.0)  # below 1 CPU: any value in this range
MEMORY_MB = (128, 32 * 1024)
# More memory than the key (MiB) needs at least the value's CPUs.
CPU_FOR_MEMORY = ((24 * 1024, 8), (16 * 1024, 6), (8 * 1024, 4), (4 * 1024, 2))
# Whole CPUs that need at least this much memory (MiB).
MEMORY_FOR_CPU = {4: 2 * 1024, 6: 4 * 1024, 8: 4 * 1024}
MAX_CONCURRENCY = 1000
MAX_INSTANCES = 1000
RESERVED_ENV = ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION")
SECRET_REFERENCE = re.compile(
    r"^(?:projects/(?P<project>[^/]+)/secrets/(?P<path_secret>[A-Za-z0-9_-]{1,255})"
    r"/versions/(?P<path_version>latest|\d+)"
    r"|(?P<secret>[A-Za-z0-9_-]{1,255})(?::(?P<version>latest|\d+))?)$"
)


def refuse(message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT, message, hint=hint, provider="gcp", operation="cloud_run limits"
    )


def check_spec(spec: ServiceSpec, options: CloudRunServiceConfig, region: str) -> None:
    """Raise INVALID_INPUT for the first thing Cloud Run would refuse."""
    check_size(spec)
    check_gpu(spec, options, region)
    check_scaling(spec)
    for name in spec.env_vars.keys() | spec.secrets.keys():
        if name in RESERVED_ENV:
            raise refuse(
                f"environment variable {name} is reserved by Cloud Run",
                f"remove it from model.env / service.secrets (Cloud Run sets {name} itself)",
            )
    for name, reference in spec.secrets.items():
        if not SECRET_REFERENCE.match(reference):
            raise refuse(
                f"service.secrets.{name}: {reference!r} is not a Secret Manager reference",
                "use projects/P/secrets/NAME/versions/V, NAME:V or NAME (latest)",
            )


def check_size(spec: ServiceSpec) -> None:
    cpu, memory = spec.cpu, spec.memory_mb
    whole = cpu >= 1
    if (whole and cpu not in WHOLE_CPUS) or (not whole and not FRACTIONAL_CPU[0] <= cpu):
        raise refuse(
            f"service.cpu {cpu:g} is not a Cloud Run CPU limit",
            f"use {FRACTIONAL_CPU[0]}..1 or one of {', '.join(map(str, WHOLE_CPUS))}",
        )
    if not MEMORY_MB[0] <= memory <= MEMORY_MB[1]:
        raise refuse(
            f"service.memory_mb {memory} is out of Cloud Run's range",
            f"use {MEMORY_MB[0]}..{MEMORY_MB[1]} MiB",
        )
    for above, cpus in CPU_FOR_MEMORY:
        if memory > above and cpu < cpus:
            raise refuse(
                f"service.memory_mb {memory} needs at least {cpus} CPUs (service.cpu {cpu:g})",
                f"raise service.cpu to {cpus} or lower service.memory_mb to {above}",
            )
    needed = MEMORY_FOR_CPU.get(int(cpu)) if whole else None
    if needed and memory < needed:
        raise refuse(
            f"service.cpu {cpu:g} needs at least {needed} MiB (service.memory_mb {memory})",
            f"raise service.memory_mb to {needed}",
        )
    if cpu < 1 and (spec.concurrency or 80) > 1:
        raise refuse(
            f"service.cpu {cpu:g} (under 1 CPU) allows only service.concurrency 1",
            "set service.concurrency: 1, or service.cpu: 1 or more",
        )


def check_gpu(spec: ServiceSpec, options: CloudRunServiceConfig, region: str) -> None:
    if spec.gpu == 0:
        return
    regions = GPU_REGIONS.get(options.gpu_type)
    if regions is None:
        raise refuse(
            f"service.cloud_run.gpu_type {options.gpu_type!r} is not offered by Cloud Run",
            f"use one of: {', '.join(sorted(GPU_REGIONS))}",
        )
    if region not in regions:
        raise refuse(
            f"Cloud Run has no {options.gpu_type} GPUs in {region}",
            f"use provider.region one of: {', '.join(sorted(regions))}, or service.gpu: 0",
        )
    if spec.gpu != GPU_PER_INSTANCE:
        raise refuse(
            f"service.gpu {spec.gpu}: Cloud Run gives an instance exactly one GPU",
            "set service.gpu: 1",
        )
    if spec.cpu < GPU_MIN_CPU or spec.memory_mb < GPU_MIN_MEMORY_MB:
        raise refuse(
            f"a GPU instance needs at least {GPU_MIN_CPU:g} CPUs and {GPU_MIN_MEMORY_MB} MiB "
            f"(service.cpu {spec.cpu:g}, service.memory_mb {spec.memory_mb})",
            f"set service.cpu >= {GPU_MIN_CPU:g} and service.memory_mb >= {GPU_MIN_MEMORY_MB}",
        )


def check_scaling(spec: ServiceSpec) -> None:
    if spec.concurrency is not None and not 1 <= spec.concurrency <= MAX_CONCURRENCY:
        raise refuse(
            f"service.concurrency {spec.concurrency} is out of Cloud Run's range",
            f"use 1..{MAX_CONCURRENCY}",
        )
    if not 0 <= spec.min_instances <= spec.max_instances <= MAX_INSTANCES:
        raise refuse(
            f"service.min_instances {spec.min_instances} / max_instances "
            f"{spec.max_instances} out of range",
            f"use 0 <= min_instances <= max_instances <= {MAX_INSTANCES}",
        )
    if spec.max_instances < 1:
        raise refuse("service.max_instances must be at least 1", "set it to 1 or more")


def secret_path(project: str, reference: str) -> tuple[str, str]:
    """(projects/P/secrets/S, version) of a reference check_spec accepted."""
    match = SECRET_REFERENCE.match(reference)
    assert match is not None
    if match["path_secret"]:
        return (
            f"projects/{match['project']}/secrets/{match['path_secret']}",
            match["path_version"],
        )
    return f"projects/{project}/secrets/{match['secret']}", match["version"] or "latest"


def check_domain(spec: ServiceSpec, options: CloudRunServiceConfig) -> None:
    """service.domain's load balancer: its certificate is both PEM files or none (a
    Google-managed one), and ingress through it needs it."""
    if (spec.cert_file or spec.key_file) and not spec.domain:
        raise refuse(
            "service.cert_file/key_file: a certificate needs service.domain (the load "
            "balancer's name)",
            "set service.domain, or remove the certificate files",
        )
    if bool(spec.cert_file) != bool(spec.key_file):
        raise refuse(
            "service.cert_file and service.key_file go together",
            "give both PEM files, or neither for a Google-managed certificate",
        )
    if options.ingress == "load_balancer" and not spec.domain:
        raise refuse(
            "service.cloud_run.ingress: load_balancer needs service.domain (no load balancer "
            "is set up without one)",
            "set service.domain, or ingress: all",
        )
