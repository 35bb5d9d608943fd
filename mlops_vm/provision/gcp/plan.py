"""The change log every ensure_* step writes to: planned in a dry run, done otherwise.

A change is recorded only after its API call succeeded, so when a step fails the log holds
exactly what was done before the failure (reported through PartialProvisionError).
"""

from collections.abc import Callable
from typing import Literal

from mlops_vm.provision.model import Change


class ChangeLog:
    def __init__(self, *, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.changes: list[Change] = []

    def apply(
        self,
        action: Literal["create", "update", "delete"],
        kind: str,
        name: str,
        do: Callable[[], object],
        detail: str = "",
    ) -> None:
        """Run DO (unless dry run), then record the change."""
        if not self.dry_run:
            do()
        self.changes.append(Change(action, kind, name, detail))

    def record(
        self,
        action: Literal["create", "update", "delete"],
        kind: str,
        name: str,
        detail: str = "",
    ) -> None:
        """Record a change whose call was made (and succeeded) elsewhere."""
        self.changes.append(Change(action, kind, name, detail))
