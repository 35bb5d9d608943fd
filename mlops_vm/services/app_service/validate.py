"""What App Service would refuse, checked before anything exists (exit 2)."""

import re

from cryptography import x509

from mlops_vm.provision.azure.certificate import check_pem_pair, load_pem_chain
from mlops_vm.provision.azure.key_vault import KeyVaultSecrets
from mlops_vm.provision.azure_refs import KEY_VAULT_SECRET_URI
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.app_service.domain import AZURE_HOST_SUFFIX
from mlops_vm.services.app_service.sizes import PLAN_SKUS
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.settings import AppServiceConfig

# The ARM id of a Key Vault secret (a Key Vault certificate's secret holds its PFX).
KEY_VAULT_SECRET_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/"
    r"[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]/secrets/[a-zA-Z0-9-]{1,127}$",
    re.IGNORECASE,
)
HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


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
    check_domain(spec)
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


def check_domain(spec: ServiceSpec) -> None:
    """service.domain and its certificate: a managed one (none given) or PEM files that hold
    a certificate for the domain and its key."""
    if spec.certificate and not KEY_VAULT_SECRET_ID.match(spec.certificate):
        raise invalid(
            f"service.certificate: {spec.certificate!r} is not the ARM id of a Key Vault "
            "certificate's secret",
            "use /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/"
            "vaults/<vault>/secrets/<certificate name>, or the PEM files (service.cert_file, "
            "key_file), or neither for an App Service Managed Certificate",
        )
    if spec.certificate and (spec.cert_file or spec.key_file):
        raise invalid(
            "service.certificate and service.cert_file / key_file: give one certificate",
            "a Key Vault certificate or the PEM files, not both",
        )
    if (spec.certificate or spec.cert_file or spec.key_file) and not spec.domain:
        raise invalid(
            "service.certificate / cert_file / key_file: a certificate needs service.domain",
            "set service.domain to the name the certificate is for, or drop the certificate",
        )
    if not spec.domain:
        return
    domain = spec.domain.lower()
    if not HOST_NAME.match(domain) or domain.endswith(AZURE_HOST_SUFFIX):
        raise invalid(
            f"service.domain: {spec.domain!r} is not a custom host name",
            "a name of your own DNS zone, e.g. api.example.com",
        )
    if bool(spec.cert_file) != bool(spec.key_file):
        raise invalid(
            "service.cert_file and service.key_file go together",
            "give both PEM files, or neither for an App Service Managed Certificate",
        )
    if spec.certificate:
        return  # App Service reads it from the vault: it refuses one not for the domain
    if not spec.cert_file:
        if domain.startswith("*."):
            raise invalid(
                f"service.domain: {spec.domain}: App Service Managed Certificates do not "
                "cover wildcard names",
                "give the wildcard certificate's PEM files (service.cert_file, key_file)",
            )
        return
    assert spec.key_file
    try:
        check_pem_pair(spec.cert_file, spec.key_file)
        names = certificate_names(load_pem_chain(spec.cert_file)[0])
    except (OSError, ValueError) as error:
        raise invalid(
            f"service.cert_file / key_file ({spec.cert_file}, {spec.key_file}): {error}",
            "give a PEM certificate (chain, leaf first) and its unencrypted PEM key",
        ) from None
    if not covers(names, domain):
        raise invalid(
            f"service.cert_file ({spec.cert_file}) is for {', '.join(names) or 'no name'}, "
            f"not service.domain {domain}",
            "use a certificate whose subject alternative names include the domain",
        )


def certificate_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(a.value).lower() for a in common]
    return [name.lower() for name in extension.value.get_values_for_type(x509.DNSName)]


def covers(names: list[str], host: str) -> bool:
    """Whether a certificate for NAMES serves HOST (a wildcard covers one label)."""
    parent = host.split(".", 1)[-1]
    return any(name == host or name == f"*.{parent}" for name in names)


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
