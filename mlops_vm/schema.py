"""The pydantic base every settings model shares, and the settings section that VMs and
managed targets both use (network). The lowest layer: the environment's schema
(environment/config.py) and the managed targets' own sections (services/settings.py) build
on it, so that each setting is declared once."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Unknown keys refused (a typo is an error, not a silently ignored setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(Strict):
    cidr: str = "10.42.0.0/16"
    ssh_cidr: str | None = None
    existing: dict[str, Any] = Field(default_factory=dict)
