"""The boot-time configuration of an environment's scaling-group instances.

Scaling-group instances are never reached over SSH: their user-data applies the same roles
with the same variables (see mlops_vm.bootstrap). The registry secret comes from the run
(never from the validated, secret-free settings).
"""

from pathlib import Path

from mlops_vm.bootstrap import USER_DATA_LIMITS, BootConfig, render_user_data
from mlops_vm.environment.config import EnvironmentConfig, resolve_path
from mlops_vm.environment.edge import host_rate_limit, trusted_proxies


def gpu_role_vars(config: EnvironmentConfig) -> dict:
    """GPU machines: the NVIDIA driver, toolkit and runtime, and the replicas' GPUs
    (their task file travels in the user-data only then: see bootstrap.payload)."""
    if config.model.gpus == 0:
        return {}
    return {"docker_engine_nvidia_enabled": True, "model_service_gpus": config.model.gpus}


def environment_user_data(
    config: EnvironmentConfig,
    inventory_dir: Path,
    *,
    registry_username: str = "",
    registry_password: str = "",
    api_keys: list[str] | None = None,
) -> str:
    boot = environment_boot(
        config,
        inventory_dir,
        registry_username=registry_username,
        registry_password=registry_password,
        api_keys=api_keys,
    )
    # A provider without a limit of its own gets the tightest one.
    cloud = config.provider.name if config.provider.name in USER_DATA_LIMITS else "aws"
    return render_user_data(boot, cloud=cloud)


def environment_boot(
    config: EnvironmentConfig,
    inventory_dir: Path,
    *,
    registry_username: str = "",
    registry_password: str = "",
    api_keys: list[str] | None = None,
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
        },
        secret_role_vars={"nginx_proxy_api_keys": list(api_keys)} if api_keys else None,
    )
