"""What App Service would refuse, checked before anything exists (exit 2)."""

import re

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.app_service.key_vault import KeyVaultSecrets
from mlops_vm.services.app_service.sizes import PLAN_SKUS
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.settings import AppServiceConfig

# https://<vault>.vault.azure.net/secrets/<name>[/<version>]: what a Key Vault reference takes.
KEY_VAULT_SECRET_URI = re.compile(
    r"^https://[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]\.vault\.azure\.net/secrets/"
    r"[a-zA-Z0-9-]{1,127}(/[0-9a-fA-F]{32})?/?$"
)


def invalid(message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT, message, hint=hint, provider="azure", operation="validate"
    )


def check_spec(spec: ServiceSpec, options: AppServiceConfig) -> None:
    sku = PLAN_SKUS.get(options.sku)
    if sku is None:
        raise invalid(
            f"service.app_service.sku {options.sku!r} is not a Linux App Service plan SKU",
            f"use one of: {', '.join(PLAN_SKUS)}",
        )
    if not sku.slots or not sku.autoscale:
        raise invalid(
            f"service.app_service.sku {options.sku} ({sku.tier}) has no deployment slots "
            "or autoscale: releases need a staging slot and the plan an autoscale setting",
            "use a Standard (S1..S3) or Premium (P0v3..P3v3) SKU",
        )
    if spec.min_instances < 1 or spec.max_instances > sku.max_instances:
        raise invalid(
            f"service.min_instances/max_instances {spec.min_instances}..{spec.max_instances} "
            f"are out of the {options.sku} plan's range 1..{sku.max_instances}",
            "an App Service plan runs at least one instance; a bigger tier allows more",
        )
    if options.scale_in_cpu_percent >= options.scale_out_cpu_percent:
        raise invalid(
            "service.app_service.scale_in_cpu_percent must be below scale_out_cpu_percent",
            "e.g. scale in under 30%, out over 70%, so the two rules do not flap",
        )
    if spec.gpu:
        raise invalid("service.gpu: App Service has no GPUs", "set service.gpu: 0")
    if spec.concurrency is not None:
        raise invalid(
            "service.concurrency: App Service has no per-instance request limit",
            "drop service.concurrency; the plan's autoscale rules size the service",
        )
    if spec.domain or spec.certificate or spec.cert_file:
        raise invalid(
            "service.domain / certificate: custom domains are not set up by the app_service "
            "target yet",
            "drop them and use the default host name (<name>.azurewebsites.net)",
        )
    needs_password = options.registry == "source" and spec.registry.username
    if needs_password and not options.registry_password_secret:
        raise invalid(
            "service.app_service.registry_password_secret is required with registry: "
            "source and a registry user",
            "store the registry password in Key Vault and give its secret URI",
        )
    for field, uri in references(spec, options).items():
        if not KEY_VAULT_SECRET_URI.match(uri):
            raise invalid(
                f"{field}: {uri!r} is not a Key Vault secret URI",
                "use https://<vault>.vault.azure.net/secrets/<name>[/<version>]",
            )


def references(spec: ServiceSpec, options: AppServiceConfig) -> dict[str, str]:
    """The Key Vault secret URIs the web app's settings name, by the field that gives each."""
    found = {f"service.secrets.{name}": uri for name, uri in spec.secrets.items()}
    if options.registry == "source" and options.registry_password_secret:
        found["service.app_service.registry_password_secret"] = options.registry_password_secret
    return found


def check_secrets_exist(
    secrets: KeyVaultSecrets, spec: ServiceSpec, options: AppServiceConfig
) -> None:
    for field, uri in sorted(references(spec, options).items()):
        secrets.check(field, uri)
