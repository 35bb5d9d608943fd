"""One error type for every provider, with a classified code and a hint a person can act on.

An error raised part-way through a converge carries the changes already made
(`changes_so_far`), so a failed run still reports what it created.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from mlops_vm.plan import Change


class ErrorCode(StrEnum):
    INVALID_INPUT = "invalid_input"  # caught before anything is created
    AUTH = "auth"  # no or bad credentials
    PERMISSION = "permission"  # credentials lack a permission
    QUOTA = "quota"  # account/project quota exceeded
    CAPACITY = "capacity"  # zone/region out of a resource, SKU not available
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # exists already / in use
    THROTTLED = "throttled"  # retried with backoff before it surfaces
    TIMEOUT = "timeout"  # a wait ran past its limit
    INTERNAL = "internal"  # anything else from the cloud
    CANARY = "canary"  # the new release served worse than the old one: traffic moved back


class ProvisionError(Exception):
    """A provider operation failed; `code` says what kind of failure, `hint` what to do."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        hint: str = "",
        provider: str = "",
        operation: str = "",
        changes_so_far: list[Change] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.hint = hint
        self.provider = provider
        self.operation = operation
        # Made before the failure (and not undone): the caller reports them.
        self.changes_so_far: list[Change] = list(changes_so_far or [])
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.provider, self.operation) if part)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text} [{self.code}]" + (f" — {self.hint}" if self.hint else "")

    def as_dict(self) -> dict[str, str]:
        return {
            "code": str(self.code),
            "message": self.message,
            "hint": self.hint,
            "provider": self.provider,
            "operation": self.operation,
        }


@contextmanager
def reporting_changes(changes: list[Change]) -> Iterator[None]:
    """A ProvisionError raised inside the block also carries CHANGES (the list as it is when
    the error passes: what earlier steps made), ahead of what the failing step made itself."""
    try:
        yield
    except ProvisionError as error:
        error.changes_so_far = [*changes, *error.changes_so_far]
        raise
