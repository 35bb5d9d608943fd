"""service.app_service as the target reads it (validated by config.AppServiceConfig)."""

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class AppServiceOptions:
    sku: str = "P0v3"
    registry: str = "acr"
    registry_password_secret: str | None = None
    scale_out_cpu_percent: float = 70.0
    scale_in_cpu_percent: float = 30.0
    cooldown_minutes: int = 5

    @classmethod
    def from_spec(cls, options: dict[str, Any]) -> "AppServiceOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in known and v is not None})
