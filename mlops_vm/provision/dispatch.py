"""Route a provider name to its package, importing the cloud SDK only when asked for."""

import importlib

from mlops_vm.provision.base import Provider
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ProviderSettings

# name -> (module, class, pip extra that carries its SDK)
PROVIDERS: dict[str, tuple[str, str, str | None]] = {
    "local": ("mlops_vm.provision.local", "LocalProvider", None),
    "static": ("mlops_vm.provision.static", "StaticProvider", None),
    "aws": ("mlops_vm.provision.aws", "AwsProvider", "aws"),
    "gcp": ("mlops_vm.provision.gcp", "GcpProvider", "gcp"),
    "azure": ("mlops_vm.provision.azure", "AzureProvider", "azure"),
}
PROVIDER_NAMES = tuple(PROVIDERS)


def get_provider(settings: ProviderSettings) -> Provider:
    try:
        module_name, class_name, extra = PROVIDERS[settings.name]
    except KeyError:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"unknown provider {settings.name!r}",
            hint=f"use one of: {', '.join(PROVIDER_NAMES)}",
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if extra is None or (error.name or "").startswith("mlops_vm"):
            raise
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"the {settings.name} provider needs {error.name}, which is not installed",
            hint=f'pip install "mlops-vm[{extra}]"',
            provider=settings.name,
        ) from error
    return getattr(module, class_name)(settings)
