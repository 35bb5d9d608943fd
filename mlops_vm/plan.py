"""One change, one record: the plan every provider and managed target writes to.

Every create, update and delete of a cloud object goes through a ChangeLog: in a dry run
(`--check`) the call is skipped and the change is recorded as planned; otherwise the call
is made and the change recorded once it succeeded. Because the same line both plans and
does, a dry run cannot plan less than the real run does (no `if dry_run` branch to forget).

A change is recorded only after its call succeeded, so when a step fails the log holds
exactly what was done before the failure (reported through PartialProvisionError).

Steps that need what a create returns (an id, an ARN) get a stand-in in a dry run:
`log.create(..., planned="(new vpc)")` returns the stand-in instead of the call's result,
so the steps after it plan against it instead of branching on dry_run.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

Action = Literal["create", "update", "delete"]
T = TypeVar("T")


@dataclass(frozen=True)
class Change:
    """One change to a resource: planned (dry run) or done."""

    action: Action
    kind: str  # "vpc", "instance", "target_group", "container", ...
    name: str
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.action} {self.kind} {self.name}{extra}"


@dataclass(frozen=True)
class Fix:
    """One call that brings an existing resource back to what is wanted."""

    detail: str  # what the Change says ("labels", "health check path", ...)
    do: Callable[[], object]


class ChangeLog:
    """The changes of one run, planned (dry run) or done."""

    def __init__(self, *, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.changes: list[Change] = []

    def apply(
        self,
        action: Action,
        kind: str,
        name: str,
        do: Callable[[], T],
        detail: str = "",
        *,
        planned: Any = None,
    ) -> T | Any:
        """Run DO (unless dry run), then record the change. Returns DO's result, or PLANNED
        in a dry run (a stand-in for what the call would have returned)."""
        result = planned if self.dry_run else do()
        self.changes.append(Change(action, kind, name, detail))
        return result

    def create(
        self, kind: str, name: str, do: Callable[[], T], detail: str = "", *, planned: Any = None
    ) -> T | Any:
        return self.apply("create", kind, name, do, detail, planned=planned)

    def update(self, kind: str, name: str, do: Callable[[], T], detail: str = "") -> T | None:
        return self.apply("update", kind, name, do, detail)

    def delete(self, kind: str, name: str, do: Callable[[], T], detail: str = "") -> T | None:
        return self.apply("delete", kind, name, do, detail)

    def ensure(
        self,
        kind: str,
        name: str,
        *,
        current: T | None,
        create: Callable[[], object],
        fixes: Callable[[T], Iterable[Fix]] = lambda _current: (),
        detail: str = "",
        planned: Any = None,
    ) -> T | Any:
        """Get-or-create-then-fix: CREATE when CURRENT (what was read) is None, otherwise
        apply each of FIXES(current); no fix is no change. Returns CURRENT, or what CREATE
        returned (PLANNED in a dry run)."""
        if current is None:
            return self.create(kind, name, create, detail, planned=planned)
        for fix in fixes(current):
            self.update(kind, name, fix.do, fix.detail)
        return current

    def delete_each(
        self,
        kind: str,
        found: Iterable[T],
        name: Callable[[T], str],
        delete: Callable[[T], object],
        detail: str | Callable[[T], str] = "",
    ) -> None:
        """Delete each of FOUND (what was read: resources of KIND) one after the other,
        each recorded once its call succeeded. NAME and DETAIL (a text, or one per item)
        say what the Change records."""
        for item in found:
            self.delete(
                kind,
                name(item),
                partial(delete, item),
                detail(item) if callable(detail) else detail,
            )

    def apply_all(self, changes: Iterable[Change], do: Callable[[], object]) -> None:
        """One call that makes several changes at once (a batch of VMs started together):
        run DO (unless dry run, or there is nothing to change), then record every change."""
        batch = list(changes)
        if batch and not self.dry_run:
            do()
        self.changes.extend(batch)

    def apply_together(
        self,
        action: Action,
        kind: str,
        wanted: Iterable[tuple[str, str]],
        do: Callable[[], tuple[list[tuple[str, str]], Exception | None]],
    ) -> list[tuple[str, str]]:
        """Several changes of one KIND whose calls are started together (one after the
        other would take minutes each). WANTED: the (name, detail) of each change. DO makes
        them and returns the (name, detail) of those done and the error of the rest, if
        any; what was done is recorded before that error is raised, so a partial failure
        reports what exists. Returns what DO did; in a dry run WANTED, as a stand-in (as
        `planned=` is for one change), so the steps after it plan against it."""
        if self.dry_run:
            done, error = list(wanted), None
        else:
            done, error = do()
        for name, detail in done:
            self.record(action, kind, name, detail)
        if error is not None:
            raise error
        return done

    def follow_up(self, do: Callable[[], T], *, planned: Any = None) -> T | Any:
        """Run DO in a real run only: a step that is no change of its own but follows up
        on what this run changed (a wait for a rollout, a drain or a boot, a health gate,
        reading back what was created; the environment's key given to its VMs). Neither
        planned nor recorded. Returns DO's result, or PLANNED in a dry run."""
        return planned if self.dry_run else do()

    def record(self, action: Action, kind: str, name: str, detail: str = "") -> None:
        """Record a change whose call was made (and succeeded) elsewhere, or a change the
        dry run plans that another log's call will make."""
        self.changes.append(Change(action, kind, name, detail))

    def extend(self, changes: Iterable[Change]) -> None:
        """Take in the changes of a step that kept its own list (or a sub-log)."""
        self.changes.extend(changes)

    def reported(self, planned: Change, do: Callable[[], Change]) -> Change:
        """A call whose answer says what it did (say, "already running"): DO (unless dry
        run) returns the change to record; PLANNED is recorded in a dry run."""
        change = planned if self.dry_run else do()
        self.changes.append(change)
        return change


def changes_of(step: Callable[[ChangeLog], object], *, dry_run: bool) -> list[Change]:
    """What STEP records in a change log of its own (made, or only planned in a dry run):
    a provider method that returns its changes around a step that writes to a log."""
    log = ChangeLog(dry_run=dry_run)
    step(log)
    return log.changes
