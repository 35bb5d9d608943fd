"""What to do when a GPU machine cannot be had, added to the cloud's quota and capacity
errors: GPU quotas are per GPU model (and often 0 to start with), and GPUs run out per
zone far more often than other machines do."""

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.machine_types import lookup

GPU_HINTS = {
    ErrorCode.QUOTA: (
        "GPU quotas are per GPU model and region and often start at 0 (AWS: the 'Running "
        "On-Demand G and VT instances' vCPUs; GCP: NVIDIA_L4_GPUS, NVIDIA_A100_GPUS, ...; "
        "Azure: the NC family's vCPUs): ask for that quota, or choose another GPU type"
    ),
    ErrorCode.CAPACITY: (
        "GPUs run out per zone: list other zones in fleet.zones, or choose another GPU "
        "type (AWS g6 for g5, GCP G2 with L4 for A2 with A100, Azure NCas_T4_v3 for NC A100 v4)"
    ),
}


def is_gpu_machine(provider: str, machine_type: str, accelerator: object = None) -> bool:
    machine = lookup(provider, machine_type)
    return accelerator is not None or bool(machine and machine.gpu)


def with_gpu_hint(
    error: ProvisionError, provider: str, machine_type: str, accelerator: object = None
) -> ProvisionError:
    """ERROR, its hint led by what to do about GPUs when it is a GPU quota or stock-out
    on a GPU machine type (or one given an ACCELERATOR)."""
    hint = GPU_HINTS.get(error.code)
    if hint and is_gpu_machine(provider, machine_type, accelerator):
        error.hint = f"{hint}; {error.hint}" if error.hint else hint
    return error
