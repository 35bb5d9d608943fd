"""Resource names built on an environment's prefix (mlops-vm-<env>): the base of the
clouds' naming classes, and the names that are that prefix and a fixed suffix, declared
once each (`vnet = Prefixed("vnet")` reads as f"{names.prefix}-vnet") instead of one
property per name that repeats the same f-string."""

from dataclasses import dataclass
from typing import Any, overload


@dataclass(frozen=True)
class EnvironmentNames:
    """The names of the environment ENV's resources (a cloud's naming class extends it)."""

    env: str

    @property
    def prefix(self) -> str:
        return f"mlops-vm-{self.env}"


class Prefixed:
    """A class attribute of a naming class: on an instance, f"{instance.<BASE>}-{SUFFIX}"."""

    def __init__(self, suffix: str, *, base: str = "prefix") -> None:
        self.suffix = suffix
        self.base = base  # the attribute holding what the suffix extends

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> "Prefixed": ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> str: ...

    def __get__(self, instance: Any, owner: type | None = None) -> "str | Prefixed":
        if instance is None:
            return self
        return f"{getattr(instance, self.base)}-{self.suffix}"
