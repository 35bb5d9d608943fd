"""Providers: one interface (base.py), one package per cloud, dispatch by name.

    provider = get_provider(ProviderSettings(name="aws", region="eu-west-1"))
    result = provider.ensure_fleet(spec, dry_run=True)

Cloud packages never import each other; their SDKs are imported lazily so that
`pip install mlops-vm` works without any cloud extra.
"""

from mlops_vm.plan import Change
from mlops_vm.provision.base import Provider
from mlops_vm.provision.dispatch import PROVIDER_NAMES, get_provider
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import (
    AutoscalingSpec,
    CertificateSpec,
    FleetResult,
    FleetSpec,
    Instance,
    InstanceSpec,
    InstanceStatus,
    LoadBalancerResult,
    LoadBalancerSpec,
    NetworkSpec,
    ProviderSettings,
    TargetHealth,
)

__all__ = [
    "PROVIDER_NAMES",
    "AutoscalingSpec",
    "CertificateSpec",
    "Change",
    "ErrorCode",
    "FleetResult",
    "FleetSpec",
    "Instance",
    "InstanceSpec",
    "InstanceStatus",
    "LoadBalancerResult",
    "LoadBalancerSpec",
    "NetworkSpec",
    "Provider",
    "ProviderSettings",
    "ProvisionError",
    "TargetHealth",
    "get_provider",
]
