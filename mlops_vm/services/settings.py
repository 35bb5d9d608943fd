"""Each managed target's own section of the environment (service.ecs, service.lambda,
service.cloud_run, service.app_service): one pydantic model per section, declared once. The
environment's schema (environment/config.py) embeds them; each target reads its section back
through `parse_options`, which refuses a bad value naming the field before anything is made."""

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from mlops_vm.metrics import CanaryThresholds
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.schema import NetworkConfig, Strict

M = TypeVar("M", bound=BaseModel)


class CanaryConfig(Strict):
    """The metric gate of a release, one shape for VMs (release.canary) and managed targets
    (service.<platform>.canary): the new release gets its share (the first batch of hosts;
    Lambda's canary_percent, Cloud Run's first traffic step, App Service's canary_percent),
    the window passes, both releases' figures are read and metrics.judge decides: go on, or
    roll back and fail naming the figures. `deploy --canary/--no-canary` overrides
    `enabled` per run."""

    enabled: bool = False
    # Seconds of traffic observed on both sides before the decision.
    window_s: Annotated[float, Field(ge=0, le=3600)] = 120
    # The canary's 5xx share may exceed the old release's by this much (0.01: 1 point).
    max_error_share_increase: Annotated[float, Field(ge=0, le=1)] = 0.01
    # The canary's p99 latency may be at most this many times the old release's.
    max_p99_ratio: Annotated[float, Field(ge=1)] = 1.5
    # Fewer requests than this on either side: a quiet service is not judged on noise
    # (the release goes on, and says so).
    min_requests: Annotated[int, Field(ge=0)] = 50

    def thresholds(self) -> CanaryThresholds:
        return CanaryThresholds(
            max_error_share_increase=self.max_error_share_increase,
            max_p99_ratio=self.max_p99_ratio,
            min_requests=self.min_requests,
        )


class PlatformCanaryConfig(CanaryConfig):
    """service.<platform>.canary: the clouds' metrics come per minute, so a longer window."""

    window_s: Annotated[float, Field(ge=0, le=3600)] = 300


class EcsServiceConfig(Strict):
    """service.ecs: ECS on Fargate (mlops_vm/services/ecs)."""

    # Seconds the ALB health check is ignored after a task starts (the model loads).
    health_check_grace_s: Annotated[int, Field(ge=0, le=7200)] = 120
    # Target tracking: average CPU percent per task, ALB requests per task per minute.
    target_cpu_percent: Annotated[float, Field(gt=0, le=100)] | None = 60.0
    target_requests_per_task: Annotated[float, Field(gt=0)] | None = None
    # Images the ECR lifecycle policy keeps (older ones expire).
    keep_images: Annotated[int, Field(ge=1, le=1000)] = 10
    # Days the CloudWatch log group keeps the containers' logs.
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 180, 365] = 30
    # Seconds the ALB lets requests in flight finish on a task that leaves.
    drain_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    # The container health check ECS runs (default: python3 asks readiness_path).
    health_check_command: list[str] | None = None
    # ECR's registry address when provider.endpoint_url aims at an emulator (moto has no
    # registry): the image is pushed there with model.registry's credentials.
    registry_endpoint: str | None = None
    # With canary.enabled: the listener's weight for the canary target group, where a
    # service of the new revision serves while it is judged (services/ecs/canary.py).
    canary_percent: Annotated[int, Field(ge=1, le=50)] = 10
    canary: PlatformCanaryConfig = Field(default_factory=PlatformCanaryConfig)


class AppServiceConfig(Strict):
    """service.app_service: Azure App Service, Web App for Containers (services/app_service)."""

    sku: str = "P0v3"  # a Linux plan SKU with slots and autoscale (Standard, PremiumV3)
    # acr: an Azure Container Registry, the image copied into it, pulled by managed identity;
    # source: pulled from model.image's own registry (its password a Key Vault reference).
    registry: Literal["acr", "source"] = "acr"
    registry_password_secret: str | None = None  # Key Vault secret URI (registry: source)
    scale_out_cpu_percent: Annotated[float, Field(gt=0, le=100)] = 70.0
    scale_in_cpu_percent: Annotated[float, Field(gt=0, le=100)] = 30.0
    cooldown_minutes: Annotated[int, Field(ge=1, le=60)] = 5
    # With canary.enabled: the percent of production's traffic routed to the staging slot
    # (the new release) before the swap, while the canary is judged.
    canary_percent: Annotated[int, Field(ge=1, le=50)] = 10
    canary: PlatformCanaryConfig = Field(default_factory=PlatformCanaryConfig)


class CloudRunServiceConfig(Strict):
    """service.cloud_run: Google Cloud Run (mlops_vm/services/cloud_run)."""

    # The Artifact Registry Docker repository (default mlops-vm-<env>).
    repository: Annotated[str, Field(pattern=r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")] | None = None
    keep_images: Annotated[int, Field(ge=1, le=1000)] = 10  # the cleanup policy keeps these
    gpu_type: Literal["nvidia-l4"] = "nvidia-l4"  # with service.gpu: 1
    # Percent of the traffic a new revision gets, step by step (each step waited on).
    traffic_steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [100])
    cpu_idle: bool = True  # CPU only while requests run (GPU services: always allocated)
    service_account: str | None = None  # the revisions' identity
    # A registry that stands in for <region>-docker.pkg.dev (a private mirror; tests).
    registry_host: str | None = None
    # Who reaches the service: all (its *.run.app URL too), or load_balancer (only through
    # the load balancer service.domain puts in front). Default: load_balancer with a
    # domain, all without.
    ingress: Literal["all", "load_balancer"] | None = None
    # With canary.enabled: judged after the first traffic step (which must be below 100).
    canary: PlatformCanaryConfig = Field(default_factory=PlatformCanaryConfig)

    @model_validator(mode="after")
    def canary_needs_a_step(self) -> "CloudRunServiceConfig":
        if self.canary.enabled and len(self.traffic_steps) < 2:
            raise ValueError(
                "canary.enabled needs traffic_steps with a first step below 100, e.g. [10, 100]"
            )
        return self

    @field_validator("traffic_steps")
    @classmethod
    def steps_rise_to_100(cls, steps: list[int]) -> list[int]:
        if not steps or steps[-1] != 100 or steps != sorted(set(steps)):
            raise ValueError("must rise step by step and end at 100, e.g. [10, 50, 100]")
        return steps


class LambdaServiceConfig(Strict):
    """service.lambda: AWS Lambda from a container image (mlops_vm/services/lambda_). The
    bounds are Lambda's own limits; memory is service.memory_mb (128 .. 10,240 MB)."""

    timeout_s: Annotated[int, Field(ge=1, le=900)] = 30
    ephemeral_storage_mb: Annotated[int, Field(ge=512, le=10240)] = 512
    # Percent of the alias's traffic a new version gets first (AdditionalVersionWeights);
    # 0: the alias moves at once once the version answers its readiness check.
    canary_percent: Annotated[int, Field(ge=0, le=50)] = 0
    keep_images: Annotated[int, Field(ge=1, le=1000)] = 10
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 180, 365] = 30
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    # url: the function URL on the alias (its own name and certificate); alb: an HTTPS
    # Application Load Balancer invoking the alias, on service.domain with its certificate.
    endpoint: Literal["url", "alb"] = "url"
    # An emulated control plane only (provider.endpoint_url): the registry standing in for
    # ECR, and the Runtime Interface Emulator's URL for the readiness invokes.
    registry_endpoint: str | None = None
    invoke_endpoint_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    # With canary.enabled: judged while canary_percent of the alias's traffic is on the new
    # version.
    canary: PlatformCanaryConfig = Field(default_factory=PlatformCanaryConfig)

    @model_validator(mode="after")
    def canary_needs_a_share(self) -> "LambdaServiceConfig":
        if self.canary.enabled and not self.canary_percent:
            raise ValueError("canary.enabled needs canary_percent above 0, e.g. 10")
        return self


def parse_options(model: type[M], options: dict[str, Any], section: str, provider: str = "") -> M:
    """OPTIONS (ServiceSpec.options: a model_dump of MODEL, or a dict built by hand in tests)
    as MODEL; SECTION names the environment's section in the error (service.ecs, ...)."""
    try:
        return model.model_validate(options)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join([section, *map(str, problem['loc'])])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            problems,
            hint=f"fix {section} in the environment file",
            provider=provider,
            operation=f"check {section}",
        ) from None
