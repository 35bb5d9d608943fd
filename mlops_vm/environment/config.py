"""One pydantic model of an environment, as inventories/<env>/group_vars/all sets it (read by
environment/load.py), and its validation.

An environment's settings live under the single variable `mlops_vm` so that the playbooks,
the Ansible modules and the CLI read the same structure, and this model checks it once.
Bad input is reported with the file, the line and the dotted field, before anything runs.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from mlops_vm.environment.target_fields import REFUSES

# The clouds' reference forms without their providers (no SDK loaded to validate settings).
from mlops_vm.provision.aws_refs import PARAMETER_ARN, SECRET_ARN, is_ecr
from mlops_vm.provision.azure_refs import KEY_VAULT_SECRET_URI, is_acr
from mlops_vm.provision.dispatch import PROVIDER_NAMES
from mlops_vm.provision.gcp_refs import SECRET_FORM, is_artifact_registry, is_secret_reference
from mlops_vm.schema import NetworkConfig, Strict
from mlops_vm.services.dispatch import TARGET_NAMES, VMS, target_cloud
from mlops_vm.services.settings import (
    AppServiceConfig,
    CanaryConfig,
    CloudRunServiceConfig,
    EcsServiceConfig,
    LambdaServiceConfig,
)

CONFIG_VARIABLE = "mlops_vm"

# A docker image reference: [registry[:port]/]path[:tag][@sha256:digest]
IMAGE_REFERENCE = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
ENV_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"  # a name every provider's resources can carry
TEMPLATED = re.compile(r"{{.*}}|{%.*%}", re.S)


class ProviderConfig(Strict):
    name: Literal[PROVIDER_NAMES]  # type: ignore[valid-type]
    region: str | None = None
    endpoint_url: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class AutoscalingConfig(Strict):
    min_size: Annotated[int, Field(ge=0)] = 1
    max_size: Annotated[int, Field(ge=1)] = 3
    target_cpu_percent: Annotated[float, Field(gt=0, le=100)] | None = 60.0
    target_requests_per_instance: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def min_not_above_max(self) -> "AutoscalingConfig":
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is above max_size ({self.max_size})")
        return self


class StaticHost(Strict):
    name: str
    address: str
    port: Annotated[int, Field(ge=1, le=65535)] = 22


class AcceleratorConfig(Strict):
    """GPUs of each instance: built into the machine type (checked against it) or attached."""

    type: str  # nvidia-l4, nvidia-tesla-a100, nvidia-a10g, nvidia-tesla-t4, ...
    count: Annotated[int, Field(ge=1, le=16)] = 1


class BootSecretsConfig(Strict):
    """What scaling-group instances on a cloud read at boot with their own identity:
    references into the cloud's secret store, never values (AWS: a Secrets Manager secret
    or SSM parameter ARN; GCP: a Secret Manager version; Azure: a Key Vault secret
    identifier). The registry password is not needed for ECR, Artifact Registry or ACR: the
    instances pull with their identity."""

    registry_password: str | None = None
    api_keys: list[str] = Field(default_factory=list)


class FleetConfig(Strict):
    mode: Literal["fleet", "scaling_group"] = "fleet"
    count: Annotated[int, Field(ge=1, le=100)] = 2
    machine_type: str = "local"
    image: str | None = None
    disk_gb: Annotated[int, Field(ge=8)] = 20
    ssh_user: str = "admin"
    ssh_public_key_file: str | None = None
    ssh_private_key_file: str | None = None
    zones: list[str] = Field(default_factory=list)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)
    # Scaling groups: boot from a machine image baked per release (the roles applied once,
    # the model pulled), the default; false applies the roles at every instance's boot.
    bake_image: bool = True
    # Baked images kept per environment, newest first (the previous one too: rollback).
    keep_images: Annotated[int, Field(ge=2, le=50)] = 3
    # static provider: the hosts you already have
    hosts: list[StaticHost] = Field(default_factory=list)
    accelerator: AcceleratorConfig | None = None
    # Scaling groups on AWS, GCP: the secrets the instances read at boot (never in user-data).
    secrets: BootSecretsConfig = Field(default_factory=BootSecretsConfig)


class RegistryConfig(Strict):
    username: str = ""
    password: str = ""
    ca_file: str | None = None


class ModelConfig(Strict):
    image: str
    replicas: Annotated[int, Field(ge=1, le=32)] = 1
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    cpus: Annotated[float, Field(ge=0)] = 1.0
    memory: str = "1g"
    # GPUs of each replica: 0, a count, "all" of the host's, or "per_replica" (one each).
    gpus: Annotated[int, Field(ge=0, le=16)] | Literal["all", "per_replica"] = 0
    env: dict[str, str] = Field(default_factory=dict)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)

    @field_validator("image")
    @classmethod
    def image_is_a_reference(cls, value: str) -> str:
        if not IMAGE_REFERENCE.match(value):
            raise ValueError(
                f"{value!r} is not an image reference "
                "(registry[:port]/path[:tag][@sha256:digest], lowercase path)"
            )
        return value


class TlsConfig(Strict):
    mode: Literal["selfsigned", "provided"] = "selfsigned"
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def provided_needs_files(self) -> "TlsConfig":
        if self.mode == "provided" and not (self.cert_file and self.key_file):
            raise ValueError("mode 'provided' needs cert_file and key_file")
        return self


class RateLimitConfig(Strict):
    """Requests per client address, counted at the edge (the first proxy that sees the
    client's own address, trusted proxies only); beyond the rate and its burst: 429."""

    requests_per_second: Annotated[int, Field(ge=1, le=100000)] = 100
    burst: Annotated[int, Field(ge=0, le=100000)] = 200


class LoadBalancerConfig(Strict):
    # local provider: HTTPS published on 127.0.0.1:<publish_port>
    publish_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    https_port: Annotated[int, Field(ge=1, le=65535)] = 443
    http_port: Annotated[int, Field(ge=1, le=65535)] = 80
    health_path: str = "/healthz"
    drain_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    certificate_arn: str | None = None
    key_vault_secret_id: str | None = None
    managed_domains: list[str] = Field(default_factory=list)
    # null: no limit (e.g. a whole client fleet behind one NAT address).
    rate_limit: RateLimitConfig | None = Field(default_factory=RateLimitConfig)


class AuthConfig(Strict):
    """Authentication at the edge: requests must carry one of these keys
    (`Authorization: Bearer <key>` or `X-API-Key: <key>`); the health path stays open.
    Each key is a Jinja reference to a secret (a vault variable), never the key itself.
    Several keys at once let clients move from an old key to a new one without downtime."""

    api_keys: list[str] = Field(default_factory=list)


class ReleaseConfig(Strict):
    """How a new model release rolls across the hosts (playbooks/release.yml)."""

    # Hosts per batch: a count ("1") or a share of the model hosts ("25%").
    batch: Annotated[str, Field(pattern=r"^([1-9][0-9]*|([1-9][0-9]?|100)%)$")] = "1"
    # Seconds a new replica has to answer its readiness path.
    ready_timeout_s: Annotated[int, Field(ge=5, le=3600)] = 180
    # Seconds a host back in the load balancer has to be reported healthy.
    healthy_timeout_s: Annotated[int, Field(ge=5, le=3600)] = 120
    # false: a batch swaps its replicas in place, behind the host's own Nginx (each successor
    # ready before the switch, the switch waits for the requests in flight), so the host keeps
    # serving; true: it also leaves the load balancer and drains first, and rejoins after.
    # Either way the next batch starts only once the load balancer reports the host healthy.
    leave_load_balancer: bool = False
    canary: CanaryConfig = CanaryConfig()

    @field_validator("batch", mode="before")
    @classmethod
    def batch_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class LedgerConfig(Strict):
    """Where the deploy lock and the release history live (commands/lock.py, history.py).
    Unset: on the environment's LB or first model host (VM fleets) and on this machine.
    s3_bucket (AWS): in that bucket, created by you, written with conditional PUTs."""

    s3_bucket: str | None = None
    # Key prefix; default mlops-vm/<env>/.
    s3_prefix: Annotated[str, Field(pattern=r"^([^/].*/)?$")] | None = None


# service.<target> sections whose Python name differs from the target's.
PLATFORM_FIELDS = {"lambda": "lambda_"}


class ServiceConfig(Strict):
    """service: the model service on a managed target (target: ecs, ...); the common settings,
    then one section per platform."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    cpu: Annotated[float, Field(gt=0)] = 1.0
    memory_mb: Annotated[int, Field(ge=128)] = 2048
    gpu: Annotated[int, Field(ge=0, le=8)] = 0
    min_instances: Annotated[int, Field(ge=0, le=1000)] = 1
    max_instances: Annotated[int, Field(ge=1, le=1000)] = 3
    concurrency: Annotated[int, Field(ge=1, le=1000)] | None = None
    health_path: Annotated[str, Field(pattern=r"^/")] = "/healthz"
    readiness_path: Annotated[str, Field(pattern=r"^/")] = "/readyz"
    access: Literal["public", "authenticated"] = "public"
    domain: str | None = None
    # The endpoint's certificate: a reference the cloud holds (an ACM ARN, ...), or PEM files.
    certificate: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # Environment variable -> reference into the cloud's secret store (never a value).
    secrets: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict
    )
    ecs: EcsServiceConfig | None = None
    app_service: AppServiceConfig | None = None
    cloud_run: CloudRunServiceConfig | None = None
    # `lambda` is a Python keyword: the field is lambda_, spelt `lambda` in the file.
    lambda_: LambdaServiceConfig | None = Field(default=None, alias="lambda")

    def platform(self, target: str) -> Strict | None:
        """The section of TARGET (service.<target>), None when not given."""
        return getattr(self, PLATFORM_FIELDS.get(target, target), None)

    @model_validator(mode="after")
    def min_not_above_max(self) -> "ServiceConfig":
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) is above max_instances "
                f"({self.max_instances})"
            )
        return self


class EnvironmentConfig(Strict):
    env: Annotated[str, Field(pattern=ENV_PATTERN)]
    provider: ProviderConfig
    # Where the model runs: VMs through the provider (vms), or a managed platform.
    target: Literal[(VMS, *TARGET_NAMES)] = VMS  # type: ignore[valid-type]
    service: ServiceConfig | None = None
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    model: ModelConfig
    tls: TlsConfig = Field(default_factory=TlsConfig)
    load_balancer: LoadBalancerConfig = Field(default_factory=LoadBalancerConfig)
    release: ReleaseConfig = Field(default_factory=ReleaseConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)

    @model_validator(mode="after")
    def provider_specifics(self) -> "EnvironmentConfig":
        if self.ledger.s3_bucket and self.provider.name != "aws":
            raise ValueError("ledger.s3_bucket needs the aws provider")
        if self.provider.name == "local" and self.load_balancer.publish_port is None:
            raise ValueError("load_balancer.publish_port is required by the local provider")
        if self.provider.name == "static" and not self.fleet.hosts:
            raise ValueError("fleet.hosts is required by the static provider")
        return self

    @property
    def managed(self) -> bool:
        """Whether the model runs on a managed platform rather than on VMs."""
        return self.target != VMS


# What only VMs have: refused (with its line) when the target is a managed platform.
VM_ONLY_SECTIONS = ("fleet", "load_balancer", "tls")
VM_ONLY_MODEL_FIELDS = ("replicas", "workers", "cpus", "memory")
VM_ONLY_RELEASE_FIELDS = ("batch", "ready_timeout_s", "leave_load_balancer")


def target_problems(config: EnvironmentConfig) -> list[tuple[tuple[str, ...], str]]:
    """(location, message) of each setting that does not apply to the chosen target."""
    if not config.managed:
        if config.service is not None:
            return [(("service",), "applies to managed targets only (target: vms)")]
        return []
    target = config.target
    problems = [
        ((name,), f"does not apply to target {target} (VMs only)")
        for name in VM_ONLY_SECTIONS
        if name in config.model_fields_set
    ]
    problems += [
        (("model", name), f"does not apply to target {target}: size it in service.*")
        for name in VM_ONLY_MODEL_FIELDS
        if name in config.model.model_fields_set
    ]
    problems += [
        (("release", name), f"does not apply to target {target}")
        for name in VM_ONLY_RELEASE_FIELDS
        if name in config.release.model_fields_set
    ]
    cloud = target_cloud(target)
    if config.provider.name != cloud:
        problems.append((("provider", "name"), f"target {target} runs on {cloud}, not here"))
    service = config.service
    for platform in TARGET_NAMES:
        if platform != target and service is not None and service.platform(platform):
            problems.append((("service", platform), f"does not apply to target {target}"))
    if service is not None:
        problems += [
            (("service", name), f"not used by target {target}: {why}")
            for name, why in REFUSES[target].items()
            if name in service.model_fields_set
        ]
    return problems


# Providers whose scaling-group instances boot by identity (mlops_vm.bootstrap.boot_source):
# payload from object storage, secrets from the cloud's store, nothing secret in user-data.
IDENTITY_BOOT_PROVIDERS = frozenset({"aws", "gcp", "azure"})


@dataclass(frozen=True)
class SecretStore:
    """Where a provider's scaling-group instances read fleet.secrets from at boot."""

    name: str
    reference: str  # what a reference is, for the message that refuses one
    well_formed: Callable[[str], bool]
    registry: str  # the registry its instances pull from by identity, with no password
    identity_pull: Callable[[str | None], bool]


SECRET_STORES = {
    "aws": SecretStore(
        "Secrets Manager",
        "a Secrets Manager secret or SSM parameter ARN",
        lambda ref: bool(SECRET_ARN.match(ref) or PARAMETER_ARN.match(ref)),
        "ECR",
        is_ecr,
    ),
    "gcp": SecretStore(
        "Secret Manager",
        SECRET_FORM,
        is_secret_reference,
        "Artifact Registry",
        is_artifact_registry,
    ),
    "azure": SecretStore(
        "Key Vault",
        "a Key Vault secret identifier (https://VAULT.vault.azure.net/secrets/NAME[/VERSION])",
        lambda ref: bool(KEY_VAULT_SECRET_URI.match(ref)),
        "ACR",
        is_acr,
    ),
}
# Providers whose baked instances read their secrets at boot by identity too (the image's
# boot hook: mlops_vm.bootstrap.baked).
BAKED_SECRETS_PROVIDERS = frozenset({"aws", "gcp", "azure"})
# Providers the fleet step bakes a release image for (mlops_vm.environment.release_image).
# The local scaling group bakes its own image from the boot payload, whatever the setting.
BAKING_PROVIDERS = frozenset({"aws", "gcp", "azure"})


def bakes_image(config: EnvironmentConfig) -> bool:
    """Whether the scaling group boots from the release's baked image (fleet.bake_image)."""
    return (
        config.fleet.mode == "scaling_group"
        and config.fleet.bake_image
        and config.provider.name in BAKING_PROVIDERS
    )


def reads_secrets_by_identity(config: EnvironmentConfig) -> bool:
    """Whether the scaling group's instances read their secrets at boot with their own
    identity (fleet.secrets' references), baked or not."""
    if config.fleet.mode != "scaling_group":
        return False
    if bakes_image(config):
        return config.provider.name in BAKED_SECRETS_PROVIDERS
    return config.provider.name in IDENTITY_BOOT_PROVIDERS


def boots_by_identity(config: EnvironmentConfig) -> bool:
    """Whether the scaling group's instances fetch their payload and secrets at boot with
    their own identity. A baked image needs no payload and no registry login at boot (the
    model is in the image; the builder logged in from the controller)."""
    return (
        config.fleet.mode == "scaling_group"
        and config.provider.name in IDENTITY_BOOT_PROVIDERS
        and not config.fleet.bake_image
    )


def boot_problems(config: EnvironmentConfig) -> list[tuple[tuple[Any, ...], str]]:
    """(location, message) of each fleet.secrets problem: references well-formed for the
    provider, and every secret a scaling-group instance needs named (it never gets a value
    from the run)."""
    secrets = config.fleet.secrets
    given = [
        (("fleet", "secrets", "registry_password"), secrets.registry_password),
        *((("fleet", "secrets", "api_keys", i), ref) for i, ref in enumerate(secrets.api_keys)),
    ]
    if not reads_secrets_by_identity(config):
        if "secrets" in config.fleet.model_fields_set:
            clouds = ", ".join(sorted(IDENTITY_BOOT_PROVIDERS))
            return [(("fleet", "secrets"), f"applies to scaling groups on {clouds} only")]
        return []
    store = SECRET_STORES[config.provider.name]
    problems = [
        (location, f"{ref!r} is not {store.reference}")
        for location, ref in given
        if ref is not None and not store.well_formed(ref)
    ]
    if config.auth.api_keys and not secrets.api_keys:
        problems.append(
            (
                ("fleet", "secrets", "api_keys"),
                f"scaling-group instances read the API keys at boot from {store.name}: "
                "give the reference of each (auth.api_keys stays the controller's copy)",
            )
        )
    registry = IMAGE_REFERENCE.match(config.model.image)
    host = registry["registry"] if registry else None
    # A baked image holds the model (the builder pulled it with the run's password).
    needs_password = (
        bool(config.model.registry.username)
        and not store.identity_pull(host)
        and boots_by_identity(config)
    )
    if needs_password and not secrets.registry_password:
        problems.append(
            (
                ("fleet", "secrets", "registry_password"),
                f"scaling-group instances read the registry password at boot from {store.name}"
                f": give its reference (or pull from {store.registry}, with the instances' "
                "identity)",
            )
        )
    return problems


@dataclass(frozen=True)
class ConfigProblem:
    """One problem with an environment's configuration, located for a person to fix."""

    file: Path
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field}: {self.message}"


class ConfigError(Exception):
    """The environment's configuration is invalid; `problems` says where and why."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedEnvironment:
    config: EnvironmentConfig
    inventory_dir: Path
    source: Path  # the file that holds the `mlops_vm` variable
    # The variable's YAML mapping: the line of every setting, for the checks after loading.
    node: yaml.Node | None = field(default=None, compare=False, repr=False)


def node_line(node: yaml.Node | None, location: tuple[Any, ...]) -> int | None:
    """The line of the YAML key (or item) at LOCATION, or of its nearest parent."""
    line = node.start_mark.line + 1 if node else None
    for key in location:
        mark = None
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            node, mark = (pair[1], pair[0].start_mark) if pair else (None, None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            mark = node.start_mark
        else:
            node = None
        if node is None:
            break
        line = mark.line + 1
    return line


def templated_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Locations of Jinja expressions: resolved by Ansible, so only allowed in secrets."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in templated_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in templated_paths(v, (*prefix, i))]
    return [prefix] if isinstance(value, str) and TEMPLATED.search(value) else []


SECRET_FIELDS = {("model", "registry", "password"), ("model", "registry", "username")}
# Fields whose every item is a secret.
SECRET_LISTS = {("auth", "api_keys")}


def is_secret_field(location: tuple) -> bool:
    return location in SECRET_FIELDS or location[:-1] in SECRET_LISTS


def secrets_in_the_clear(data: dict) -> list[tuple]:
    """Locations of secret-list items written as plain values instead of references."""
    found = []
    for location in SECRET_LISTS:
        value: Any = data
        for key in location:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, list):
            found += [
                (*location, i)
                for i, item in enumerate(value)
                if not (isinstance(item, str) and TEMPLATED.search(item))
            ]
    return found


def validate_config(
    data: Any, *, source: Path, node: yaml.Node | None = None, env: str | None = None
) -> EnvironmentConfig:
    """Validate the `mlops_vm` mapping; ConfigError locates every problem in SOURCE."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(source, CONFIG_VARIABLE, "must be a mapping")])
    data = {"env": env, **data} if env and "env" not in data else data
    problems = []
    for location in templated_paths(data):
        if not is_secret_field(tuple(location)):
            problems.append(
                ConfigProblem(
                    source,
                    ".".join(map(str, (CONFIG_VARIABLE, *location))),
                    "Jinja templates are only allowed in secret fields "
                    "(model.registry.*, auth.api_keys)",
                    node_line(node, location),
                )
            )
    for location in secrets_in_the_clear(data):
        problems.append(
            ConfigProblem(
                source,
                ".".join(map(str, (CONFIG_VARIABLE, *location))),
                "an API key must come from a secret, not be written here: put it in a "
                'vault-encrypted file and refer to it ("{{ vault_api_key }}")',
                node_line(node, location),
            )
        )
    try:
        config = EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            location = tuple(item["loc"])
            problems.append(
                ConfigProblem(
                    source,
                    ".".join(map(str, (CONFIG_VARIABLE, *location)))
                    if location
                    else CONFIG_VARIABLE,
                    item["msg"].removeprefix("Value error, "),
                    node_line(node, location),
                )
            )
        raise ConfigError(problems) from None
    problems += [
        ConfigProblem(
            source,
            ".".join(map(str, (CONFIG_VARIABLE, *location))),
            message,
            node_line(node, location),
        )
        for location, message in [*target_problems(config), *boot_problems(config)]
    ]
    if problems:
        raise ConfigError(problems)
    return config


def resolve_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
