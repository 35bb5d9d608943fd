"""Turn a validated environment (target: a managed platform) into the ServiceSpec its
target receives: one mapping, used by the Ansible module and the CLI alike."""

from pathlib import Path

from mlops_vm.environment.config import EnvironmentConfig, ServiceConfig
from mlops_vm.environment.specs import path_or_none
from mlops_vm.release.choose import Choice
from mlops_vm.services.base import RegistryAuth, ServiceSpec

# Managed platforms take minutes to start a revision (VMs: release.healthy_timeout_s, 120).
DEFAULT_HEALTHY_TIMEOUT_S = 600


def service_name(config: EnvironmentConfig) -> str:
    service = config.service or ServiceConfig()
    return service.name or f"mlops-vm-{config.env}"


def service_spec(
    config: EnvironmentConfig, base: Path, choice: Choice | None = None
) -> ServiceSpec:
    """The service CONFIG describes, running CHOICE's release (default: the inventory's)."""
    service = config.service or ServiceConfig()
    model = config.model

    release = config.release
    timeout = (
        release.healthy_timeout_s
        if "healthy_timeout_s" in release.model_fields_set
        else DEFAULT_HEALTHY_TIMEOUT_S
    )
    platform = service.platform(config.target)
    return ServiceSpec(
        env=config.env,
        name=service_name(config),
        image=choice.release["image"] if choice else model.image,
        port=service.port,
        env_vars=dict(model.env),
        secrets=dict(service.secrets),
        cpu=service.cpu,
        memory_mb=service.memory_mb,
        gpu=service.gpu,
        min_instances=service.min_instances,
        max_instances=service.max_instances,
        concurrency=service.concurrency,
        health_path=service.health_path,
        readiness_path=service.readiness_path,
        access=service.access,
        domain=service.domain,
        certificate=service.certificate,
        cert_file=path_or_none(service.cert_file, base),
        key_file=path_or_none(service.key_file, base),
        registry=RegistryAuth(
            username=model.registry.username,
            password=model.registry.password,
            ca_file=path_or_none(model.registry.ca_file, base),
        ),
        healthy_timeout_s=timeout,
        source=choice.source if choice else "provision",
        inventory_image=(choice.release.get("inventory_image") if choice else None) or model.image,
        options=platform.model_dump() if platform is not None else {},
    )
