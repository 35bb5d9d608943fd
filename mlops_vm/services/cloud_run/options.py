"""service.cloud_run (the environment's own section) and the project, read once."""

from dataclasses import dataclass, field
from typing import Any

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services.base import ServiceSpec


@dataclass(frozen=True)
class CloudRunOptions:
    repository: str | None = None  # Artifact Registry repository id (default mlops-vm-<env>)
    keep_images: int = 10  # the repository's cleanup policy keeps this many versions
    gpu_type: str = "nvidia-l4"
    traffic_steps: tuple[int, ...] = (100,)  # percent of traffic to a new revision, in steps
    cpu_idle: bool = True  # CPU only while a request runs (GPU services: always on)
    service_account: str | None = None  # the revision's identity (default: compute default)
    # A registry standing in for <region>-docker.pkg.dev (tests: the local TLS registry).
    registry_host: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, options: dict[str, Any]) -> "CloudRunOptions":
        values = dict(options)
        steps = tuple(values.pop("traffic_steps", None) or (100,))
        known = {name for name in cls.__dataclass_fields__ if name != "extra"}
        return cls(
            **{key: value for key, value in values.items() if key in known and key != "extra"},
            traffic_steps=steps,
        )

    def repository_id(self, spec: ServiceSpec) -> str:
        return self.repository or f"mlops-vm-{spec.env}"


def project_of(settings: ProviderSettings) -> str:
    project = settings.options.get("project")
    if not project:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            "provider.options.project is required by the cloud_run target",
            hint="set provider.options.project to the Google Cloud project id",
            provider="gcp",
        )
    return str(project)


def region_of(settings: ProviderSettings) -> str:
    if not settings.region:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            "provider.region is required by the cloud_run target",
            hint="set provider.region, e.g. europe-west1",
            provider="gcp",
        )
    return settings.region
