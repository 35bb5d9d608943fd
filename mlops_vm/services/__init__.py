"""Managed targets: one interface (base.py), one package per platform, dispatch by name.

    target = get_service_target("ecs", ProviderSettings(name="aws", region="eu-west-1"))
    result = target.ensure_service(spec, dry_run=True)

A second interface beside the VM providers (mlops_vm/provision/): a service has revisions,
traffic and a URL. Errors, retries, tags and the dry-run plan are the providers' own.
"""

from mlops_vm.services.base import (
    PushResult,
    RegistryAuth,
    Revision,
    ServiceRecord,
    ServiceResult,
    ServiceSpec,
    ServiceTarget,
)
from mlops_vm.services.dispatch import TARGET_NAMES, VMS, get_service_target, target_cloud

__all__ = [
    "TARGET_NAMES",
    "VMS",
    "PushResult",
    "RegistryAuth",
    "Revision",
    "ServiceRecord",
    "ServiceResult",
    "ServiceSpec",
    "ServiceTarget",
    "get_service_target",
    "target_cloud",
]
