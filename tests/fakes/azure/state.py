"""The fake's memory: ARM resources by id, long-running operations, injected failures.

Everything is keyed by the lower-cased resource id, because ARM ids are case-insensitive;
each stored resource keeps the id spelled the way ARM spells it. Stored documents hold what
the client sent (write-only fields included, such as customData or a PFX); the type rules
decide what a GET shows.
"""

from __future__ import annotations

import copy
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]


class ArmError(Exception):
    """An ARM error response: HTTP status and the {"error": {"code", "message"}} body."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})  # e.g. Retry-After on a 429

    def body(self) -> Json:
        return {"error": {"code": self.code, "message": self.message}}


def key(resource_id: str) -> str:
    return resource_id.rstrip("/").lower()


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class ResourcePath:
    """/subscriptions/S/resourceGroups/RG/providers/NS/type/name[/childType/childName...]."""

    subscription: str
    resource_group: str
    namespace: str
    pairs: list[tuple[str, str]]

    @property
    def top_id(self) -> str:
        kind, name = self.pairs[0]
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{self.namespace}/{kind}/{name}"
        )


def parse_id(resource_id: str) -> ResourcePath | None:
    parts = resource_id.strip("/").split("/")
    if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[4].lower() != "providers":
        return None
    if parts[2].lower() != "resourcegroups" or len(parts[6:]) % 2:
        return None
    rest = parts[6:]
    return ResourcePath(
        parts[1], parts[3], parts[5], [(rest[i], rest[i + 1]) for i in range(0, len(rest), 2)]
    )


@dataclass
class Operation:
    """One long-running operation; the client's polls drive it to its end."""

    id: str
    polls_left: int
    # Applies the final state when the operation ends; returns a POST's result body.
    complete: Callable[[], Json | None]
    # Restores the resource when the operation fails (provisioningState Failed, ...).
    fail: Callable[[], None] | None = None
    status: str = "InProgress"
    error: ArmError | None = None
    result: Json | None = None
    started: str = field(default_factory=now)


@dataclass
class Fault:
    """An injected failure: the next `times` requests that match answer with `error`."""

    error: ArmError
    method: str | None = None
    path_contains: str | None = None
    times: int = 1
    # Fail the long-running operation instead of the request (e.g. AllocationFailed).
    asynchronous: bool = False
    # Throttling: the wait the answer asks for (Retry-After). A retry that comes sooner is
    # answered with a new wait and not processed, and does not count towards TIMES.
    retry_after_s: float | None = None
    not_before: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return not self.path_contains or self.path_contains.lower() in path.lower()


@dataclass
class RequestRecord:
    method: str
    path: str
    api_version: str | None
    status: int = 0


class ArmState:
    """Resources, operations and hooks, behind one lock (the server is threaded)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.resources: dict[str, Json] = {}
        # Private per-resource state that ARM keeps but never shows as such (IP allocation,
        # scale set instances, parsed certificates).
        self.private: dict[str, Json] = {}
        self.operations: dict[str, Operation] = {}
        self.requests: list[RequestRecord] = []
        # Azure Monitor's platform metrics, as insights.py records and answers them.
        self.metric_samples: list[Any] = []
        # How many polls answer InProgress before an operation ends.
        self.polls_in_progress = 1
        self.reset_hooks()

    def reset_hooks(self) -> None:
        self.faults: list[Fault] = []
        self.denied_actions: list[str] = []
        self.tokens_rejected = False
        self.restricted_skus: set[str] = set()
        self.core_quota: int | None = None
        self.backend_health: dict[str, str] = {}
        self.public_ip_counter = getattr(self, "public_ip_counter", 0)

    # -- resources -------------------------------------------------------------------------

    def get(self, resource_id: str) -> Json | None:
        return self.resources.get(key(resource_id))

    def put(self, stored: Json) -> None:
        self.resources[key(stored["id"])] = stored

    def remove(self, resource_id: str) -> None:
        self.resources.pop(key(resource_id), None)
        self.private.pop(key(resource_id), None)

    def private_of(self, resource_id: str) -> Json:
        return self.private.setdefault(key(resource_id), {})

    def of_type(self, type_name: str) -> Iterator[Json]:
        wanted = type_name.lower()
        for stored in list(self.resources.values()):
            if stored.get("type", "").lower() == wanted:
                yield stored

    def resource_group(self, subscription: str, name: str) -> Json | None:
        return self.get(f"/subscriptions/{subscription}/resourceGroups/{name}")

    def in_resource_group(self, rg_id: str) -> list[Json]:
        prefix = key(rg_id) + "/providers/"
        return [r for k, r in self.resources.items() if k.startswith(prefix)]

    # -- operations ------------------------------------------------------------------------

    def start_operation(
        self,
        complete: Callable[[], Json | None],
        fail: Callable[[], None] | None = None,
        error: ArmError | None = None,
    ) -> Operation:
        operation = Operation(uuid.uuid4().hex, self.polls_in_progress, complete, fail, error=error)
        self.operations[operation.id] = operation
        return operation

    def poll(self, operation_id: str) -> Operation | None:
        operation = self.operations.get(operation_id)
        if operation is None or operation.status != "InProgress":
            return operation
        if operation.polls_left > 0:
            operation.polls_left -= 1
            return operation
        if operation.error is not None:
            operation.status = "Failed"
            if operation.fail is not None:
                operation.fail()
        else:
            operation.result = operation.complete()
            operation.status = "Succeeded"
        return operation

    # -- hooks -----------------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> ArmError | None:
        clock = time.monotonic()
        for fault in self.faults:
            if fault.asynchronous or not fault.matches(method, path):
                continue
            if clock < fault.not_before:
                error = fault.error
                wait = {"Retry-After": str(math.ceil(fault.not_before - clock))}
                return ArmError(error.status, error.code, error.message, wait)
            if fault.times > 0:
                fault.times -= 1
                if fault.retry_after_s is not None:
                    fault.not_before = clock + fault.retry_after_s
                return fault.error
        return None

    def arm_async_fault(self, method: str, path: str) -> ArmError | None:
        for fault in self.faults:
            if fault.asynchronous and fault.times > 0 and fault.matches(method, path):
                fault.times -= 1
                return fault.error
        return None


def render_copy(stored: Json) -> Json:
    return copy.deepcopy(stored)


def ref_id(value: Any) -> str | None:
    """The id of a {"id": ...} reference, or None."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def walk_refs(value: Any) -> Iterator[str]:
    """Every {"id": ...} reference nested anywhere in VALUE (the value itself excluded)."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name == "id":
                continue
            reference = ref_id(item)
            if reference:
                yield reference
            yield from walk_refs(item)
    elif isinstance(value, list):
        for item in value:
            reference = ref_id(item)
            if reference:
                yield reference
            yield from walk_refs(item)
