"""GPU fields of an instance or an instance template.

G2 (L4) and A2 (A100) machine types come with their GPUs; N1 types take guest
accelerators (InstanceSpec.accelerator_type/count). Either way the instance cannot live-
migrate: Compute Engine refuses a GPU instance whose onHostMaintenance is MIGRATE, so it
is TERMINATE (and restarts on its own after maintenance). Nothing is added for other
machine types, so their instances and templates are what they always were.
"""

from typing import Any

from mlops_vm.provision.machine_types import lookup
from mlops_vm.provision.model import InstanceSpec

GPU_SCHEDULING = {"onHostMaintenance": "TERMINATE", "automaticRestart": True}


def needs_terminate(machine_type: str, accelerator_type: str | None) -> bool:
    machine = lookup("gcp", machine_type)
    return bool(accelerator_type) or bool(machine and machine.terminate_on_maintenance)


def gpu_fields(instance: InstanceSpec, zone: str | None) -> dict[str, Any]:
    """guestAccelerators and scheduling for INSTANCE; ZONE None for a template (whose
    accelerator type is a bare name, an instance's is a zonal link)."""
    fields: dict[str, Any] = {}
    if instance.accelerator_type:
        kind = instance.accelerator_type
        fields["guestAccelerators"] = [
            {
                "acceleratorType": f"zones/{zone}/acceleratorTypes/{kind}" if zone else kind,
                "acceleratorCount": instance.accelerator_count or 1,
            }
        ]
    if needs_terminate(instance.machine_type, instance.accelerator_type):
        fields["scheduling"] = dict(GPU_SCHEDULING)
    return fields
