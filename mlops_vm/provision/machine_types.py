"""The machine types the project knows, per cloud: size, architecture and GPUs.

Used before anything runs (right-sizing warnings, GPU settings checked against the machine
type) and by the resizes (a type's memory and vCPUs on the local provider). A type missing
here is not an error: the provider asks its cloud (describe-instance-types, machineTypes,
resource SKUs); the table only holds the types these checks can reason about offline.
Figures are the clouds' published ones (vCPUs, GiB of memory, GPUs per machine).
"""

import os
from dataclasses import dataclass
from typing import Literal

# GPU models, named as GCP's acceleratorTypes do (the other clouds have no such names).
NVIDIA_L4 = "nvidia-l4"
NVIDIA_A100 = "nvidia-tesla-a100"
NVIDIA_A100_80GB = "nvidia-a100-80gb"
NVIDIA_A10G = "nvidia-a10g"
NVIDIA_T4 = "nvidia-tesla-t4"
NVIDIA_V100 = "nvidia-tesla-v100"


@dataclass(frozen=True)
class MachineType:
    name: str
    vcpus: int
    memory_gib: float
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    gpu: str | None = None  # the GPU model built into the type
    gpu_count: int = 0
    # GPUs that may be attached to it (GCP N1: guest accelerators, model -> allowed counts).
    attachable: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # AWS: the type runs on Nitro and needs the ENA driver in the image.
    ena_required: bool = True
    # GCP: GPU machines cannot live-migrate (scheduling.onHostMaintenance TERMINATE).
    terminate_on_maintenance: bool = False


def _g5(name: str, vcpus: int, memory: float, gpus: int) -> MachineType:
    return MachineType(name, vcpus, memory, gpu=NVIDIA_A10G, gpu_count=gpus)


def _g6(name: str, vcpus: int, memory: float, gpus: int) -> MachineType:
    return MachineType(name, vcpus, memory, gpu=NVIDIA_L4, gpu_count=gpus)


def _gcp_gpu(name: str, vcpus: int, memory: float, gpu: str, gpus: int) -> MachineType:
    return MachineType(name, vcpus, memory, gpu=gpu, gpu_count=gpus, terminate_on_maintenance=True)


N1_ATTACHABLE = ((NVIDIA_T4, (1, 2, 4)), (NVIDIA_V100, (1, 2, 4, 8)))

AWS = [
    MachineType("t2.micro", 1, 1, ena_required=False),
    MachineType("t2.small", 1, 2, ena_required=False),
    MachineType("t2.medium", 2, 4, ena_required=False),
    MachineType("t3.micro", 2, 1),
    MachineType("t3.small", 2, 2),
    MachineType("t3.medium", 2, 4),
    MachineType("t3.large", 2, 8),
    MachineType("t3.xlarge", 4, 16),
    MachineType("m5.large", 2, 8),
    MachineType("m5.xlarge", 4, 16),
    MachineType("m6i.large", 2, 8),
    MachineType("m6i.xlarge", 4, 16),
    MachineType("c5.large", 2, 4),
    MachineType("c5.xlarge", 4, 8),
    MachineType("t4g.small", 2, 2, architecture="arm64"),
    MachineType("m7g.large", 2, 8, architecture="arm64"),
    _g5("g5.xlarge", 4, 16, 1),
    _g5("g5.2xlarge", 8, 32, 1),
    _g5("g5.4xlarge", 16, 64, 1),
    _g5("g5.8xlarge", 32, 128, 1),
    _g5("g5.12xlarge", 48, 192, 4),
    _g5("g5.48xlarge", 192, 768, 8),
    _g6("g6.xlarge", 4, 16, 1),
    _g6("g6.2xlarge", 8, 32, 1),
    _g6("g6.4xlarge", 16, 64, 1),
    _g6("g6.12xlarge", 48, 192, 4),
    _g6("g6.48xlarge", 192, 768, 8),
]

GCP = [
    MachineType("e2-micro", 2, 1),
    MachineType("e2-small", 2, 2),
    MachineType("e2-medium", 2, 4),
    MachineType("e2-standard-2", 2, 8),
    MachineType("e2-standard-4", 4, 16),
    MachineType("n2-standard-2", 2, 8),
    MachineType("n2-standard-4", 4, 16),
    MachineType("n1-standard-4", 4, 15, attachable=N1_ATTACHABLE),
    MachineType("n1-standard-8", 8, 30, attachable=N1_ATTACHABLE),
    _gcp_gpu("g2-standard-4", 4, 16, NVIDIA_L4, 1),
    _gcp_gpu("g2-standard-8", 8, 32, NVIDIA_L4, 1),
    _gcp_gpu("g2-standard-12", 12, 48, NVIDIA_L4, 1),
    _gcp_gpu("g2-standard-16", 16, 64, NVIDIA_L4, 1),
    _gcp_gpu("g2-standard-24", 24, 96, NVIDIA_L4, 2),
    _gcp_gpu("g2-standard-32", 32, 128, NVIDIA_L4, 1),
    _gcp_gpu("g2-standard-48", 48, 192, NVIDIA_L4, 4),
    _gcp_gpu("g2-standard-96", 96, 384, NVIDIA_L4, 8),
    _gcp_gpu("a2-highgpu-1g", 12, 85, NVIDIA_A100, 1),
    _gcp_gpu("a2-highgpu-2g", 24, 170, NVIDIA_A100, 2),
    _gcp_gpu("a2-highgpu-4g", 48, 340, NVIDIA_A100, 4),
    _gcp_gpu("a2-highgpu-8g", 96, 680, NVIDIA_A100, 8),
    _gcp_gpu("a2-ultragpu-1g", 12, 170, NVIDIA_A100_80GB, 1),
]

AZURE = [
    MachineType("Standard_B1s", 1, 1),
    MachineType("Standard_B2s", 2, 4),
    MachineType("Standard_B2ms", 2, 8),
    MachineType("Standard_D2s_v5", 2, 8),
    MachineType("Standard_D4s_v5", 4, 16),
    MachineType("Standard_NC4as_T4_v3", 4, 28, gpu=NVIDIA_T4, gpu_count=1),
    MachineType("Standard_NC8as_T4_v3", 8, 56, gpu=NVIDIA_T4, gpu_count=1),
    MachineType("Standard_NC16as_T4_v3", 16, 110, gpu=NVIDIA_T4, gpu_count=1),
    MachineType("Standard_NC64as_T4_v3", 64, 440, gpu=NVIDIA_T4, gpu_count=4),
    MachineType("Standard_NC6s_v3", 6, 112, gpu=NVIDIA_V100, gpu_count=1),
    MachineType("Standard_NC24ads_A100_v4", 24, 220, gpu=NVIDIA_A100_80GB, gpu_count=1),
    MachineType("Standard_NC48ads_A100_v4", 48, 440, gpu=NVIDIA_A100_80GB, gpu_count=2),
    MachineType("Standard_NC96ads_A100_v4", 96, 880, gpu=NVIDIA_A100_80GB, gpu_count=4),
]

# The local provider's "VMs" are containers: `local` takes the whole machine, the others
# are CPU and memory limits on the VM container (`docker update`, no restart).
LOCAL_UNLIMITED = "local"
LOCAL = [
    MachineType("local-small", 1, 2),
    MachineType("local-medium", 2, 4),
]

TABLES: dict[str, dict[str, MachineType]] = {
    "aws": {t.name: t for t in AWS},
    "gcp": {t.name: t for t in GCP},
    "azure": {t.name: t for t in AZURE},
    "local": {t.name: t for t in LOCAL},
}


def this_machine() -> MachineType:
    """The machine the local provider runs on: what `local` VMs share."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return MachineType(LOCAL_UNLIMITED, os.cpu_count() or 1, round(pages / 2**30, 1))


def lookup(cloud: str, name: str) -> MachineType | None:
    """NAME on CLOUD, or None when the table does not know it (the cloud may)."""
    if cloud == "local" and name == LOCAL_UNLIMITED:
        return this_machine()
    return TABLES.get(cloud, {}).get(name)


def known_names(cloud: str) -> list[str]:
    return sorted(TABLES.get(cloud, {}))
