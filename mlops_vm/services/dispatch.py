"""Route a managed target name (the environment's `target`) to its package, importing the
cloud SDK only when asked for."""

import importlib

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services.base import ServiceTarget

# target -> (module, class, the provider.name it runs on, pip extra that carries its SDK)
SERVICE_TARGETS: dict[str, tuple[str, str, str, str]] = {
    "ecs": ("mlops_vm.services.ecs", "EcsTarget", "aws", "aws"),
    "app_service": ("mlops_vm.services.app_service", "AppServiceTarget", "azure", "azure"),
    "cloud_run": ("mlops_vm.services.cloud_run", "CloudRunTarget", "gcp", "gcp"),
    "lambda": ("mlops_vm.services.lambda_", "LambdaTarget", "aws", "aws"),
}
TARGET_NAMES = tuple(SERVICE_TARGETS)
VMS = "vms"  # the default target: VMs through the providers


def target_cloud(target: str) -> str:
    """The provider.name a managed TARGET runs on."""
    return SERVICE_TARGETS[target][2]


def get_service_target(target: str, settings: ProviderSettings) -> ServiceTarget:
    try:
        module_name, class_name, cloud, extra = SERVICE_TARGETS[target]
    except KeyError:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"unknown managed target {target!r}",
            hint=f"use one of: {', '.join(TARGET_NAMES)}",
        ) from None
    if settings.name != cloud:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"target {target} runs on {cloud}, not on provider {settings.name}",
            hint=f"set provider.name: {cloud}",
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if (error.name or "").startswith("mlops_vm"):
            raise
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"the {target} target needs {error.name}, which is not installed",
            hint=f'pip install "mlops-vm[{extra}]"',
            provider=cloud,
        ) from error
    return getattr(module, class_name)(settings)
