"""The Lambda target's own settings (the environment's service.lambda section), typed."""

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class LambdaOptions:
    """service.lambda, as mlops_vm.environment.config.LambdaServiceConfig validated it."""

    timeout_s: int = 30
    ephemeral_storage_mb: int = 512
    canary_percent: int = 0  # share of the alias a new version gets first
    keep_images: int = 10  # images the ECR lifecycle policy keeps
    log_retention_days: int = 30
    architecture: str = "x86_64"
    # An emulated control plane (provider.endpoint_url: moto) has no registry and cannot
    # run image functions: the image is pushed to REGISTRY_ENDPOINT instead of ECR (with
    # model.registry's credentials), and readiness invokes go to INVOKE_ENDPOINT_URL (the
    # Lambda Runtime Interface Emulator, which serves the Invoke API) instead of Lambda.
    registry_endpoint: str | None = None
    invoke_endpoint_url: str | None = None

    @classmethod
    def from_spec(cls, options: dict[str, Any]) -> "LambdaOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in options.items() if key in known})
