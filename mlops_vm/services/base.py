"""The managed-target interface: what every platform package (ECS, Lambda, Cloud Run,
App Service) implements. A service has revisions, traffic and a URL, not instances.

Contract for every implementation:
- Idempotent by tags: everything the target creates carries TAG_ENV (or LABEL_ENV where
  the cloud forbids "/") and is found again by it; a second `ensure_service` with the same
  spec returns no changes. There is no local state file.
- dry_run=True returns the planned changes (the `Change`s of the VM providers) and changes
  nothing: this is `--check`.
- `validate` checks what the cloud would refuse (sizes, limits, regions, secret references
  that do not exist) and raises ProvisionError(INVALID_INPUT) before anything is created.
- SDK calls go through the cloud's wrapper shared with the VM provider (retries with
  backoff, classified ProvisionError with a hint): e.g. mlops_vm.provision.aws.client.
- A release is a new revision, health-gated: traffic moves to it only once it is healthy;
  a revision that never becomes healthy leaves the traffic where it was (the platform's own
  rollback or ours) and `release` raises ProvisionError(TIMEOUT or INTERNAL) with the reason.
- Each revision records the release it carries (source image, what made it, the
  inventory's image at the time: `Revision`), so which release runs is read from the
  platform (mlops_vm/services/releases.py applies the rules of mlops_vm/release/choose.py).
- Not-found on delete is success; `destroy` twice is a no-op the second time.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from mlops_vm.metrics import Figures
from mlops_vm.plan import Change
from mlops_vm.provision.model import ProviderSettings

# Tags on revisions: the release they carry (see Revision).
TAG_IMAGE = "mlops-vm/image"
TAG_SOURCE = "mlops-vm/source"
TAG_INVENTORY_IMAGE = "mlops-vm/inventory-image"


@dataclass(frozen=True)
class RegistryAuth:
    """How to read the model image from its source registry (push_image copies it)."""

    username: str = ""
    password: str = ""  # never logged: the module marks it no_log, the CLI censors it
    ca_file: str | None = None  # PEM CA of a private registry (absolute path)

    def __repr__(self) -> str:
        return f"RegistryAuth(username={self.username!r}, ca_file={self.ca_file!r})"


@dataclass(frozen=True)
class ServiceSpec:
    """One environment's model service on a managed platform."""

    env: str  # the environment: every resource is tagged with it
    name: str  # the service's name on the platform (unique per account/project/region)
    image: str  # the model image in its source registry: the release to run
    port: int = 8080  # the port the container listens on
    env_vars: dict[str, str] = field(default_factory=dict)  # plain environment values
    # Environment variable name -> reference into the cloud's secret store (a Secrets
    # Manager / SSM parameter ARN, projects/../secrets/..:version, a Key Vault secret URI).
    # The value never passes through mlops-vm: the platform injects it.
    secrets: dict[str, str] = field(default_factory=dict)
    cpu: float = 1.0  # vCPUs per instance (task, function, container)
    memory_mb: int = 2048  # memory per instance
    gpu: int = 0  # GPUs per instance, where the platform offers them
    min_instances: int = 1  # kept warm (0: scale to zero where the platform can)
    max_instances: int = 3  # the autoscaling ceiling
    concurrency: int | None = None  # requests per instance at once; None: the platform's
    health_path: str = "/healthz"  # liveness: the instance is replaced when it fails
    readiness_path: str = "/readyz"  # traffic only once this answers 200
    access: Literal["public", "authenticated"] = "public"  # who may call the URL
    domain: str | None = None  # a custom domain name for the endpoint
    # The endpoint's certificate: a reference the cloud holds (ACM ARN, ...), or PEM files
    # to import (absolute paths); None: the platform's own (*.run.app, *.azurewebsites.net).
    certificate: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    registry: RegistryAuth = field(default_factory=RegistryAuth)  # the source registry
    # Seconds a new revision has to become healthy before the release is rolled back.
    healthy_timeout_s: int = 600
    # The release this spec carries, recorded on the revision (mlops_vm/services/releases.py).
    source: str = "provision"  # provision, deploy or rollback
    inventory_image: str = ""  # the inventory's model.image when this release was made
    # The platform's own section (service.<platform> in the environment), validated by it.
    options: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # extra tags for every resource


@dataclass(frozen=True)
class Revision:
    """One revision of the service (a task definition revision, a function version, a
    Cloud Run revision, a deployment slot) and the release it carries."""

    id: str  # the platform's id (ARN, version number, revision name, slot name)
    image: str  # the SOURCE image it runs (not the platform registry's copy)
    source: str = ""  # what made it: provision, deploy, rollback
    inventory_image: str = ""  # the inventory's model.image when it was made
    created_at: str = ""  # ISO 8601

    def as_release_record(self) -> dict[str, Any]:
        """The shape of a host's release.json entry, for mlops_vm.release.choose."""
        return {
            "image": self.image,
            "source": self.source,
            "inventory_image": self.inventory_image or self.image,
            "fingerprint": self.id,
            "deployed_at": self.created_at,
        }


@dataclass
class ServiceRecord:
    """The service as the platform reports it."""

    name: str
    url: str | None  # the endpoint (https://...); None until it exists
    active: Revision | None = None  # serving (most of) the traffic
    previous: Revision | None = None  # what `rollback` returns to
    traffic: dict[str, int] = field(default_factory=dict)  # revision id -> percent
    healthy: bool | None = None  # None: nothing to ask (not deployed)
    reason: str = ""  # why not healthy, in the platform's words
    running: int = 0  # instances (tasks, containers) running now
    desired: int = 0  # instances the platform wants
    resources: dict[str, Any] = field(default_factory=dict)  # platform ids (ARNs, names)


@dataclass
class ServiceResult:
    """What an operation did (or, dry run, would do) and the service afterwards."""

    record: ServiceRecord | None
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. which release was kept and why

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass
class PushResult:
    """The model image in the platform's registry."""

    image: str  # the platform registry's reference (by digest where it can)
    changes: list[Change] = field(default_factory=list)


class ServiceTarget(ABC):
    """One managed platform. Implementations live in mlops_vm/services/<platform>/."""

    name: str = ""  # the `target` value in the environment: ecs, lambda, ...
    cloud: str = ""  # the provider.name it runs on: aws, gcp, azure
    # Gates a release on its metrics where the platform splits the traffic (its section's
    # canary settings: services/canary.py).
    has_canary: bool = False

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    @abstractmethod
    def check_offline(self, spec: ServiceSpec) -> None:
        """Raise ProvisionError(INVALID_INPUT) for what the platform would refuse that can be
        seen without credentials or network (sizes and documented limits, options)."""

    @abstractmethod
    def validate(self, spec: ServiceSpec) -> None:
        """Raise ProvisionError(INVALID_INPUT) for what the platform would refuse (sizes and
        limits, options, secret references that do not exist), before anything exists: the
        offline checks and those that ask the platform's API."""

    @abstractmethod
    def push_image(self, spec: ServiceSpec, *, dry_run: bool = False) -> PushResult:
        """Copy spec.image from its source registry into the platform's registry (created,
        with its retention policy, if needed). Already there: no change."""

    @abstractmethod
    def ensure_service(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        """Everything the service needs (registry, roles, logs, network, endpoint, scaling)
        converged to SPEC, the image pushed; a first revision deployed and healthy. A service
        that runs another image is released the health-gated way (`release`)."""

    @abstractmethod
    def release(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        """A new revision of SPEC, health-gated: traffic moves once it is healthy. One that is
        not healthy within spec.healthy_timeout_s leaves traffic on the revision that had it
        and raises ProvisionError with the reason. Same release running: no change."""

    @abstractmethod
    def rollback(self, env: str, *, dry_run: bool = False) -> ServiceResult:
        """Traffic back to the previous revision (ServiceRecord.previous), health-gated like a
        release; ProvisionError(INVALID_INPUT) when there is none."""

    @abstractmethod
    def status(self, env: str) -> ServiceRecord | None:
        """The service as it is now; None when the environment has none."""

    @abstractmethod
    def logs(self, env: str, *, tail: int = 100) -> list[str]:
        """The last TAIL lines the model containers wrote, oldest first."""

    @abstractmethod
    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        """Delete everything tagged with ENV, in dependency order."""

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """Request figures over the last WINDOW_S from the platform's metrics service, per
        revision serving traffic (a label naming it -> Figures); empty where the target
        reads none."""
        return {}

    def record_to_roll_back(self, env: str, service: str, no_previous: str) -> ServiceRecord:
        """ENV's service, which has a previous revision to return to; ProvisionError
        (INVALID_INPUT) naming what is missing (SERVICE: "no function", NO_PREVIOUS: "no
        previous version", in the platform's words) otherwise."""
        from mlops_vm.provision.errors import ErrorCode, ProvisionError

        record = self.status(env)
        if record is None or record.previous is None:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                f"nothing to roll back to: {env} has "
                + (service if record is None else no_previous),
                hint="a rollback needs a release before the running one",
                provider=self.cloud,
                operation="roll back",
            )
        return record
