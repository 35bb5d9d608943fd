"""Turn a validated environment into the provider's typed specs (one mapping, used by the
CLI, the Ansible modules and the inventory plugin alike)."""

from pathlib import Path

from mlops_vm.environment.boot_config import environment_boot_plan
from mlops_vm.environment.config import EnvironmentConfig, resolve_path
from mlops_vm.provision.model import (
    AutoscalingSpec,
    CertificateSpec,
    FleetSpec,
    ImageSpec,
    InstanceSpec,
    LoadBalancerSpec,
    NetworkSpec,
    ProviderSettings,
)


def provider_settings(config: EnvironmentConfig) -> ProviderSettings:
    options = dict(config.provider.options)
    if config.provider.name == "static":
        options.setdefault("hosts", [host.model_dump() for host in config.fleet.hosts])
        options.setdefault("ssh_user", config.fleet.ssh_user)
    return ProviderSettings(
        name=config.provider.name,
        region=config.provider.region,
        endpoint_url=config.provider.endpoint_url,
        options=options,
    )


def read_public_key(config: EnvironmentConfig, base: Path) -> str | None:
    if not config.fleet.ssh_public_key_file:
        return None
    return resolve_path(config.fleet.ssh_public_key_file, base).read_text().strip()


def fleet_spec(
    config: EnvironmentConfig,
    base: Path,
    user_data: str | None = None,
    release_image: ImageSpec | None = None,
) -> FleetSpec:
    fleet = config.fleet
    return FleetSpec(
        env=config.env,
        mode=fleet.mode,
        count=len(fleet.hosts) if config.provider.name == "static" else fleet.count,
        zones=tuple(fleet.zones),
        instance=InstanceSpec(
            machine_type=fleet.machine_type,
            image=fleet.image,
            disk_gb=fleet.disk_gb,
            ssh_user=fleet.ssh_user,
            ssh_public_key=read_public_key(config, base),
            user_data=user_data,
            # Scaling groups that boot by identity: the provider renders their user-data.
            boot=environment_boot_plan(config, base),
            accelerator_type=fleet.accelerator.type if fleet.accelerator else None,
            accelerator_count=fleet.accelerator.count if fleet.accelerator else 0,
            release=config.model.image,
        ),
        network=NetworkSpec(
            cidr=fleet.network.cidr,
            ssh_cidr=fleet.network.ssh_cidr,
            existing=dict(fleet.network.existing),
        ),
        autoscaling=AutoscalingSpec(**fleet.autoscaling.model_dump()),
        release_image=release_image,
    )


def path_or_none(value: str | None, base: Path) -> str | None:
    """VALUE as an absolute path (relative: from the inventory BASE), or None."""
    return str(resolve_path(value, base)) if value else None


def load_balancer_spec(config: EnvironmentConfig, base: Path) -> LoadBalancerSpec:
    lb = config.load_balancer
    return LoadBalancerSpec(
        env=config.env,
        certificate=CertificateSpec(
            cert_file=path_or_none(config.tls.cert_file, base),
            key_file=path_or_none(config.tls.key_file, base),
            arn=lb.certificate_arn,
            key_vault_secret_id=lb.key_vault_secret_id,
            managed_domains=tuple(lb.managed_domains),
        ),
        https_port=lb.https_port,
        http_port=lb.http_port,
        health_path=lb.health_path,
        drain_seconds=lb.drain_seconds,
        publish_port=lb.publish_port,
    )
