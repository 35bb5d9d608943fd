"""The boot-time configuration of an environment's scaling-group instances.

Scaling-group instances are never reached over SSH: they apply the same roles with the same
variables at boot (see mlops_vm.bootstrap). On a cloud that boots by identity (AWS, GCP and
Azure: config.IDENTITY_BOOT_PROVIDERS) nothing secret is handed to the provider:
environment_boot_plan gives the payload (fetched from object storage at boot) and the
references of the secrets the instances read with their own identity (fleet.secrets), and
the registry they pull from with it (ECR, Artifact Registry, ACR). Elsewhere the user-data
carries the payload, and the registry secret comes from the run (never from the validated,
secret-free settings).
"""

from pathlib import Path
from typing import Any

from mlops_vm.bootstrap import USER_DATA_LIMITS, BootConfig, render_user_data
from mlops_vm.bootstrap.baked import baked_facts
from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.bootstrap.config import split_image_ref
from mlops_vm.environment.config import (
    SECRET_STORES,
    EnvironmentConfig,
    bakes_image,
    reads_secrets_by_identity,
    resolve_path,
)
from mlops_vm.environment.edge import host_rate_limit, trusted_proxies


def gpu_role_vars(config: EnvironmentConfig) -> dict:
    """GPU machines: the NVIDIA driver, toolkit and runtime, and the replicas' GPUs
    (their task file travels in the user-data only then: see bootstrap.payload)."""
    if config.model.gpus == 0:
        return {}
    return {"docker_engine_nvidia_enabled": True, "model_service_gpus": config.model.gpus}


def environment_boot_config(
    config: EnvironmentConfig,
    inventory_dir: Path,
    *,
    registry_username: str = "",
    registry_password: str = "",
    api_keys: list[str] | None = None,
    role_vars: dict[str, Any] | None = None,
) -> BootConfig:
    """The roles and variables an instance of CONFIG is configured with (at boot, or once
    on an image builder); the secrets given here go to secret_vars only."""
    model = config.model
    rate_limit = config.load_balancer.rate_limit
    # Google's front ends add the forwarding rule's address to X-Forwarded-For, which is not
    # known when the template is made: every client would share that address.
    allowance = rate_limit.model_dump() if rate_limit and config.provider.name != "gcp" else None
    ca_file = model.registry.ca_file
    return BootConfig.for_model(
        model.image,
        registry_username=registry_username,
        registry_password=registry_password,
        registry_ca_cert=resolve_path(ca_file, inventory_dir).read_text() if ca_file else "",
        replicas=model.replicas,
        role_vars={
            "model_service_workers": model.workers,
            "model_service_cpus": model.cpus,
            "model_service_memory": model.memory,
            "model_service_env": dict(model.env),
            # The cloud's LB is in front: the same edge settings as the playbook's hosts.
            "nginx_proxy_real_ip_from": trusted_proxies(
                config.provider.name, config.fleet.network.cidr
            ),
            **host_rate_limit(config.provider.name, allowance),
            **gpu_role_vars(config),
            **(role_vars or {}),
        },
        secret_role_vars={"nginx_proxy_api_keys": list(api_keys)} if api_keys else None,
    )


def environment_user_data(config: EnvironmentConfig, boot: BootConfig) -> str:
    """BOOT (environment_boot_config's, with the run's secrets) as the user-data of
    CONFIG's cloud."""
    # A provider without a limit of its own (local) gets the tightest of the clouds that
    # embed the payload (AWS boots by identity from S3 instead).
    cloud = config.provider.name if config.provider.name in USER_DATA_LIMITS else "azure"
    return render_user_data(boot, cloud=cloud)


def environment_boot_plan(config: EnvironmentConfig, inventory_dir: Path) -> BootPlan | None:
    """The boot by identity of the environment's scaling-group instances (None where they
    do not read their secrets by identity): no secret value in it, only fleet.secrets'
    references. A baked image's plan has no payload: its boot hook reads the secrets."""
    if not reads_secrets_by_identity(config):
        return None
    repository, _, _ = split_image_ref(config.model.image)
    host, _, path = repository.partition("/")
    secrets = config.fleet.secrets
    references: dict[str, str | tuple[str, ...]] = {}
    fields: dict[str, str] = {}
    role_vars: dict[str, Any] = {}
    identity_pull = SECRET_STORES[config.provider.name].identity_pull(host)
    if secrets.api_keys:
        references["nginx_proxy_api_keys"] = tuple(secrets.api_keys)
        fields.update({f"api_keys.{i}": ref for i, ref in enumerate(secrets.api_keys)})
    if not identity_pull and config.model.registry.username and secrets.registry_password:
        # The user is no secret; the password is read at boot.
        role_vars["model_service_registry"] = host
        role_vars["model_service_registry_username"] = config.model.registry.username
        references["model_service_registry_password"] = secrets.registry_password
        fields["registry_password"] = secrets.registry_password
    if bakes_image(config):
        if not references and not identity_pull:
            return None  # nothing to read at boot: the image holds everything
        return BootPlan(
            payload=b"",
            secrets=references,
            registry_host=host if identity_pull else None,
            repository=path if identity_pull else None,
            fields=fields,
            baked=baked_facts(
                config.model.image,
                role_vars.get("model_service_registry", ""),
                role_vars.get("model_service_registry_username", ""),
            ),
        )
    boot = environment_boot_config(config, inventory_dir, role_vars=role_vars)
    return BootPlan.for_config(
        boot,
        secrets=references,
        registry_host=host if identity_pull else None,
        repository=path if identity_pull else None,
        fields=fields,
    )
