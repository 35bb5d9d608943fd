"""The ECS target's own settings (the environment's service.ecs section), typed."""

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class EcsOptions:
    """service.ecs, as mlops_vm.environment.config.EcsServiceConfig validated it."""

    # Seconds the ALB health check is ignored after a task starts.
    health_check_grace_s: int = 120
    # Target tracking: average CPU percent per task; ALB requests per task per minute.
    target_cpu_percent: float | None = 60.0
    target_requests_per_task: float | None = None
    keep_images: int = 10  # images the ECR lifecycle policy keeps
    log_retention_days: int = 30
    drain_seconds: int = 30  # the target group's deregistration delay
    network: dict[str, Any] = field(default_factory=dict)  # cidr, existing (as fleet.network)
    # ECR's registry address when provider.endpoint_url aims the control plane at an
    # emulator (moto has no registry): the image is pushed there, with model.registry's
    # credentials, while the task definition still names the ECR repository.
    registry_endpoint: str | None = None
    # The container health check (ECS runs it in the task); default: python3 asks the
    # readiness path on 127.0.0.1.
    health_check_command: list[str] | None = None

    @classmethod
    def from_spec(cls, options: dict[str, Any]) -> "EcsOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in options.items() if key in known})
