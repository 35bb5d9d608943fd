"""The fake's state: resources keyed by their path, operations, references between them.

A resource's key is its path under the API root, exactly the tail of its selfLink:
`projects/p/zones/us-central1-a/instances/web-1`. The scope (global, a zone, a region) and the
collection come from the path, so one table holds every kind of resource. Fields whose name
starts with "_" are the fake's bookkeeping and never leave the server.

Operations start PENDING and are DONE after `polls_to_done` polls (get or wait); their effect
is applied at that moment, so a client that does not wait sees nothing happen.
"""

import base64
import copy
import ipaddress
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.gcp.errors import invalid, not_found

BASE = "https://www.googleapis.com/compute/v1/"

# Fields that name other resources, per collection. Resources named there must exist when
# the referencing one is written, and cannot be deleted while it exists.
REFERENCE_FIELDS: dict[str, tuple[str, ...]] = {
    "subnetworks": ("network",),
    "firewalls": ("network",),
    "instances": ("networkInterfaces[].network", "networkInterfaces[].subnetwork"),
    "instanceTemplates": (
        "properties.networkInterfaces[].network",
        "properties.networkInterfaces[].subnetwork",
    ),
    "instanceGroupManagers": ("instanceTemplate", "versions[].instanceTemplate"),
    "autoscalers": ("target",),
    "instanceGroups": ("network", "subnetwork"),
    "backendServices": ("healthChecks[]", "backends[].group"),
    "urlMaps": ("defaultService",),
    "targetHttpsProxies": ("urlMap", "sslCertificates[]"),
    "targetHttpProxies": ("urlMap",),
    "forwardingRules": ("target", "IPAddress"),
}
# Referrers that exist but do not hold what they name in use (as in the real API).
NON_BLOCKING_REFERRERS = {"instanceTemplates"}


def link(path: str) -> str:
    return BASE + path


def now_rfc3339() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ResourcePath:
    """`projects/p/<scope>/<collection>/<name>` taken apart."""

    project: str
    scope: str  # "global", "zones/<zone>", "regions/<region>"
    collection: str
    name: str

    @property
    def path(self) -> str:
        return f"projects/{self.project}/{self.scope}/{self.collection}/{self.name}"

    @property
    def zone(self) -> str | None:
        return self.scope.split("/")[1] if self.scope.startswith("zones/") else None

    @property
    def region(self) -> str | None:
        return self.scope.split("/")[1] if self.scope.startswith("regions/") else None


def parse_path(path: str) -> ResourcePath:
    parts = path.split("/")
    if len(parts) == 6 and parts[0] == "projects" and parts[2] in ("zones", "regions"):
        return ResourcePath(parts[1], f"{parts[2]}/{parts[3]}", parts[4], parts[5])
    if len(parts) == 5 and parts[0] == "projects" and parts[2] == "global":
        return ResourcePath(parts[1], "global", parts[3], parts[4])
    if len(parts) == 4 and parts[0] == "projects":  # scope-less global paths (setUrlMap ...)
        return ResourcePath(parts[1], "global", parts[2], parts[3])
    raise invalid(f"The URL is malformed: '{path}'")


def to_path(value: str, project: str) -> str | None:
    """A full or partial URL as a resource path; None when VALUE is not a URL at all."""
    if "/compute/v1/" in value:
        return value.split("/compute/v1/", 1)[1]
    if value.startswith("projects/"):
        return value
    if value.startswith(("global/", "zones/", "regions/")):
        return f"projects/{project}/{value}"
    return None


def iter_field(resource: dict[str, Any], spec: str) -> Iterator[tuple[str, Any]]:
    """Values at SPEC ("backends[].group", "healthChecks[]") with their display paths."""

    def walk(value: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
        if not parts:
            if value is not None:
                yield where, value
            return
        part, rest = parts[0], parts[1:]
        is_list = part.endswith("[]")
        key = part.removesuffix("[]")
        if not isinstance(value, dict):
            return
        child = value.get(key) if key else value
        if is_list:
            for index, item in enumerate(child or []):
                yield from walk(item, rest, f"{where}.{key}[{index}]")
        else:
            yield from walk(child, rest, f"{where}.{key}")

    yield from walk(resource, spec.split("."), "resource")


@dataclass
class Operation:
    resource: dict[str, Any]
    apply: Callable[[], None] | None
    failure: dict[str, Any] | None  # {"code", "message", "http_status"}: ends in error
    release: Callable[[], None] | None = None  # runs when DONE, success or not
    polls: int = 0


@dataclass
class Store:
    polls_to_done: int = 2
    page_size: int = 500
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    reserved: set[str] = field(default_factory=set)  # names of inserts not yet DONE
    # (project, requestId) -> operation path: a repeated requestId gets the same operation.
    request_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(4_611_686_018_427_387))
    _private_ips: Iterator[int] = field(default_factory=lambda: itertools.count(2))
    _public_ips: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- identities ----------------------------------------------------------------------

    def new_id(self) -> str:
        return str(next(self._ids))

    def new_public_ip(self) -> str:
        return str(ipaddress.IPv4Address("34.120.0.0") + next(self._public_ips))

    def new_private_ip(self, cidr: str) -> str:
        network = ipaddress.ip_network(cidr, strict=False)
        return str(network.network_address + next(self._private_ips))

    # -- resources -----------------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any]:
        resource = self.resources.get(path)
        if resource is None:
            raise not_found(path)
        return resource

    def find(self, path: str) -> dict[str, Any] | None:
        return self.resources.get(path)

    def put(self, path: str, resource: dict[str, Any], *, kind: str) -> dict[str, Any]:
        """Store a new resource with the output fields the real API adds."""
        where = parse_path(path)
        resource.update(
            kind=kind,
            id=self.new_id(),
            creationTimestamp=now_rfc3339(),
            selfLink=link(path),
        )
        if where.zone:
            resource["zone"] = link(f"projects/{where.project}/zones/{where.zone}")
        if where.region:
            resource["region"] = link(f"projects/{where.project}/regions/{where.region}")
        self.resources[path] = resource
        return resource

    def remove(self, path: str) -> None:
        self.resources.pop(path, None)

    def collection(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """Resources directly under the collection path PREFIX, in creation order."""
        depth = prefix.count("/") + 1
        return [
            (path, resource)
            for path, resource in self.resources.items()
            if path.startswith(prefix + "/") and path.count("/") == depth
        ]

    def fingerprint(self, resource: dict[str, Any], key: str = "fingerprint") -> None:
        resource[key] = base64.b64encode(os.urandom(8)).decode()

    # -- references ----------------------------------------------------------------------

    def canonical_references(self, collection: str, body: dict[str, Any], project: str) -> None:
        """Check that every referenced resource exists; store references as full URLs."""
        for spec in REFERENCE_FIELDS.get(collection, ()):
            self._canonicalise(body, spec, project)

    def _canonicalise(self, body: dict[str, Any], spec: str, project: str) -> None:
        *parents, last = spec.split(".")
        containers: list[dict[str, Any]] = [body]
        for part in parents:
            key = part.removesuffix("[]")
            next_level: list[dict[str, Any]] = []
            for container in containers:
                child = container.get(key)
                if part.endswith("[]"):
                    next_level.extend(c for c in child or [] if isinstance(c, dict))
                elif isinstance(child, dict):
                    next_level.append(child)
            containers = next_level
        key = last.removesuffix("[]")
        for container in containers:
            value = container.get(key)
            if value is None:
                continue
            if last.endswith("[]"):
                container[key] = [self._resolve(v, spec, project) for v in value]
            else:
                container[key] = self._resolve(value, spec, project)

    def _resolve(self, value: str, spec: str, project: str) -> str:
        if spec == "IPAddress" and re.fullmatch(r"[\d.]+", value):
            return value  # a literal address is allowed on forwarding rules
        path = to_path(value, project)
        if path is None:
            raise invalid(
                f"Invalid value for field 'resource.{spec}': '{value}'. The URL is malformed."
            )
        if path not in self.resources:
            raise not_found(path)
        return link(path)

    def users_of(self, path: str) -> list[str]:
        """Paths of resources that hold PATH in use."""
        target = link(path)
        address = self.resources.get(path, {}).get("address")
        users = []
        for user_path, resource in self.resources.items():
            collection = parse_path(user_path).collection
            if collection in NON_BLOCKING_REFERRERS or user_path == path:
                continue
            for spec in REFERENCE_FIELDS.get(collection, ()):
                values = [value for _, value in iter_field(resource, spec)]
                if target in values or (spec == "IPAddress" and address in values):
                    users.append(user_path)
                    break
        return users

    # -- rendering -----------------------------------------------------------------------

    def render(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {
            key: copy.deepcopy(value) for key, value in resource.items() if not key.startswith("_")
        }

    # -- operations ----------------------------------------------------------------------

    def start_operation(
        self,
        *,
        project: str,
        scope: str,
        operation_type: str,
        target_path: str,
        apply: Callable[[], None] | None,
        failure: dict[str, Any] | None = None,
        release: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{next(self._ids):x}"
        path = f"projects/{project}/{scope}/operations/{name}"
        target = self.resources.get(target_path)
        resource: dict[str, Any] = {
            "kind": "compute#operation",
            "id": self.new_id(),
            "name": name,
            "operationType": operation_type,
            "targetLink": link(target_path),
            "status": "PENDING",
            "progress": 0,
            "user": "fake@mlops-vm.test",
            "insertTime": now_rfc3339(),
            "selfLink": link(path),
        }
        if target is not None:
            resource["targetId"] = target["id"]
        if scope.startswith("zones/"):
            resource["zone"] = link(f"projects/{project}/{scope}")
        elif scope.startswith("regions/"):
            resource["region"] = link(f"projects/{project}/{scope}")
        self.operations[path] = Operation(resource, apply, failure, release)
        return copy.deepcopy(resource)

    def poll_operation(self, path: str) -> dict[str, Any]:
        operation = self.operations.get(path)
        if operation is None:
            raise not_found(path)
        resource = operation.resource
        if resource["status"] != "DONE":
            operation.polls += 1
            if operation.polls >= self.polls_to_done:
                self._finish(operation)
            else:
                resource.update(status="RUNNING", progress=50, startTime=now_rfc3339())
        return copy.deepcopy(resource)

    def _finish(self, operation: Operation) -> None:
        resource = operation.resource
        resource.update(status="DONE", progress=100, endTime=now_rfc3339())
        resource.setdefault("startTime", resource["endTime"])
        if operation.release is not None:
            operation.release()
        if operation.failure is not None:
            failure = operation.failure
            resource["error"] = {
                "errors": [{"code": failure["code"], "message": failure["message"]}]
            }
            resource["httpErrorStatusCode"] = failure.get("http_status", 400)
            resource["httpErrorMessage"] = failure.get("http_message", "BAD REQUEST")
        elif operation.apply is not None:
            operation.apply()
        operation.apply = None
        target = self.resources.get(to_path(resource["targetLink"], "") or "")
        if target is not None:
            resource["targetId"] = target["id"]


# -- list filters ------------------------------------------------------------------------

_FILTER_TERM = re.compile(
    r"""\s*(?P<field>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|=|\beq\b|\bne\b)\s*
        (?:"(?P<quoted>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>[^\s()]+))\s*""",
    re.VERBOSE,
)


def parse_filter(text: str) -> list[tuple[str, str, str]]:
    """`(labels.env = "prod") AND (name eq "web-.*")` -> [(field, op, value), ...]."""
    terms = []
    rest = text.strip()
    groups = re.findall(r"\(([^()]*)\)", rest) if rest.startswith("(") else [rest]
    if rest.startswith("("):
        leftover = re.sub(r"\([^()]*\)", "", rest).replace("AND", "").strip()
        if leftover:
            raise invalid(f"Invalid value for field 'filter': '{text}'. Invalid list filter.")
    for group in groups:
        match = _FILTER_TERM.fullmatch(group)
        if not match:
            raise invalid(f"Invalid value for field 'filter': '{text}'. Invalid list filter.")
        value = match["quoted"] if match["quoted"] is not None else match["single"]
        if value is None:
            value = match["bare"]
        terms.append((match["field"], match["op"], value))
    return terms


def matches_filter(resource: dict[str, Any], terms: list[tuple[str, str, str]]) -> bool:
    for field_path, op, expected in terms:
        value: Any = resource
        for part in field_path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        text = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        if op == "=" and not (value is not None and text == expected):
            return False
        if op == "!=" and value is not None and text == expected:
            return False
        if op == "eq" and not (value is not None and re.fullmatch(expected, text)):
            return False
        if op == "ne" and value is not None and re.fullmatch(expected, text):
            return False
    return True
