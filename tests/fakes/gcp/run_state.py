"""State of the Cloud Run / Artifact Registry / Secret Manager / Logging fake, and the
behaviour the APIs document:

- create, patch and delete answer a google.longrunning.Operation that starts not done and
  is done after `polls_to_done` GETs; meanwhile the service is `reconciling` with its
  terminalCondition CONDITION_RECONCILING, and the change takes effect when it is done;
- a template that changes makes a revision (named by template.revision, which must start
  with the service's name; a name taken by another configuration is ALREADY_EXISTS); the
  revision's Ready condition succeeds, or fails the way Cloud Run reports a container that
  never passes its startup probe (an image marked with fail_image) or a secret it cannot
  read (SECRETS_ACCESS_CHECK_FAILED);
- traffic must sum to 100 and name revisions that exist; a route with a revision that is
  not ready is not applied: the service's terminalCondition fails, trafficStatuses keep
  what was served, the operation ends with FAILED_PRECONDITION;
- etags: a patch or setIamPolicy whose etag is not the current one is ABORTED (409).
"""

import base64
import copy
import itertools
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.gcp.errors import ApiError, invalid, not_found

SERVICE_ID = re.compile(r"^[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?$")
READY = "CONDITION_SUCCEEDED"
FAILED = "CONDITION_FAILED"
RECONCILING = "CONDITION_RECONCILING"
OUTPUT_ONLY = (
    "uid",
    "generation",
    "createTime",
    "updateTime",
    "creator",
    "lastModifier",
    "observedGeneration",
    "terminalCondition",
    "conditions",
    "latestReadyRevision",
    "latestCreatedRevision",
    "trafficStatuses",
    "uri",
    "urls",
    "reconciling",
    "etag",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def condition(state: str, message: str = "", reason: str | None = None, **extra: str):
    found: dict[str, Any] = {"type": "Ready", "state": state, "lastTransitionTime": now()}
    if message:
        found["message"] = message
    if reason:
        found["reason"] = reason
    found.update(extra)
    return found


def aborted(message: str) -> ApiError:
    return ApiError(409, "aborted", message, status="ABORTED")


def failed_precondition(message: str) -> ApiError:
    return ApiError(400, "failedPrecondition", message, status="FAILED_PRECONDITION")


@dataclass
class Operation:
    name: str
    metadata: dict[str, Any]
    finish: Callable[[], dict[str, Any] | None]  # the effect; returns an error, or None
    polls: int = 0
    done: bool = False
    error: dict[str, Any] | None = None
    response: dict[str, Any] | None = None

    def render(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "metadata": self.metadata, "done": self.done}
        if self.done and self.error:
            body["error"] = self.error
        elif self.done and self.response is not None:
            body["response"] = self.response
        return body


@dataclass
class RunState:
    """Everything the fake holds, behind one lock."""

    base_url: str = ""
    polls_to_done: int = 2
    lock: threading.RLock = field(default_factory=threading.RLock)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    revisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)
    secret_versions: set[str] = field(default_factory=set)
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    operations: dict[str, Operation] = field(default_factory=dict)
    failing_images: dict[str, str] = field(default_factory=dict)  # image -> startup failure
    backends: dict[str, str] = field(default_factory=dict)  # image -> http://127.0.0.1:port
    _counter: Any = field(default_factory=lambda: itertools.count(1))

    # -- operations ----------------------------------------------------------------------

    def start(
        self, parent: str, target: str, verb: str, finish: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any]:
        name = f"{parent}/operations/{uuid.uuid4()}"
        operation = Operation(name, {"name": target, "target": target, "verb": verb}, finish)
        self.operations[name] = operation
        return operation.render()

    def poll(self, name: str) -> dict[str, Any]:
        operation = self.operations.get(name)
        if operation is None:
            raise not_found(name)
        operation.polls += 1
        if not operation.done and operation.polls >= self.polls_to_done:
            operation.error = operation.finish()
            operation.done = True
        return operation.render()

    def settle(self) -> None:
        for name, operation in list(self.operations.items()):
            while not operation.done:
                self.poll(name)

    def etag(self) -> str:
        return base64.b64encode(f"etag-{next(self._counter)}".encode()).decode()

    # -- services ------------------------------------------------------------------------

    def uri(self, service_name: str, tag: str | None = None) -> str:
        project, service = service_name.split("/")[1], service_name.rsplit("/", 1)[-1]
        url = f"{self.base_url}apps/{project}/{service}"
        return f"{url}/tags/{tag}" if tag else url

    def create_service(self, parent: str, service_id: str, body: dict[str, Any]) -> dict:
        if not SERVICE_ID.match(service_id or ""):
            raise invalid(
                f"serviceId {service_id!r}: must begin with a letter, up to 49 characters"
            )
        name = f"{parent}/services/{service_id}"
        if name in self.services:
            raise ApiError(
                409, "alreadyExists", f"Resource '{name}' already exists.", status="ALREADY_EXISTS"
            )
        service = {
            key: value for key, value in copy.deepcopy(body).items() if key not in OUTPUT_ONLY
        }
        service.update(
            name=name,
            uid=str(uuid.uuid4()),
            generation="1",
            createTime=now(),
            updateTime=now(),
            etag=self.etag(),
            uri=self.uri(name),
            urls=[self.uri(name)],
            trafficStatuses=[],
        )
        service.setdefault("template", {})
        service.setdefault(
            "traffic", [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
        )
        self.check_service(service, new_revision=True)
        self.reconcile_start(service)
        self.services[name] = service
        self.policies[name] = {"version": 1, "etag": self.etag(), "bindings": []}
        return self.start(
            parent.replace("/services", ""),
            name,
            "create",
            lambda: self.reconcile(name, new_revision=True),
        )

    def patch_service(self, name: str, body: dict[str, Any], mask: str | None) -> dict:
        service = self.services.get(name)
        if service is None:
            raise not_found(name)
        if body.get("etag") and body["etag"] != service["etag"]:
            raise aborted(f"etag {body['etag']} does not match the service's: read it again")
        fields = [f for f in (mask or "").split(",") if f] or [
            key for key in body if key not in OUTPUT_ONLY and key != "name"
        ]
        updated = copy.deepcopy(service)
        for key in fields:
            if key in OUTPUT_ONLY:
                raise invalid(f"updateMask names output-only field {key}")
            if key in body:
                updated[key] = copy.deepcopy(body[key])
            else:
                updated.pop(key, None)
        new_revision = updated.get("template") != service.get("template")
        self.check_service(updated, new_revision=new_revision)
        updated["generation"] = str(int(service["generation"]) + 1)
        updated["etag"] = self.etag()
        updated["updateTime"] = now()
        self.reconcile_start(updated)
        self.services[name] = updated
        parent = name.rsplit("/services/", 1)[0]
        return self.start(
            parent, name, "update", lambda: self.reconcile(name, new_revision=new_revision)
        )

    def delete_service(self, name: str) -> dict:
        if name not in self.services:
            raise not_found(name)
        parent = name.rsplit("/services/", 1)[0]

        def finish() -> None:
            self.services.pop(name, None)
            self.policies.pop(name, None)
            for revision in [r for r in self.revisions if r.startswith(name + "/")]:
                del self.revisions[revision]

        return self.start(parent, name, "delete", finish)

    def check_service(self, service: dict[str, Any], *, new_revision: bool) -> None:
        """What Cloud Run refuses when the request arrives (INVALID_ARGUMENT, 409)."""
        name = service["name"]
        short = name.rsplit("/", 1)[-1]
        template = service.get("template") or {}
        containers = template.get("containers") or []
        if len(containers) != 1 or not containers[0].get("image"):
            raise invalid("template.containers: exactly one container with an image is needed")
        container = containers[0]
        if len(container.get("ports") or []) > 1:
            raise invalid("template.containers[0].ports: at most one port")
        for env in container.get("env") or []:
            if env.get("name") in ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"):
                raise invalid(f"template.containers[0].env: {env['name']} is reserved")
        limits = (container.get("resources") or {}).get("limits") or {}
        if "nvidia.com/gpu" in limits:
            if not (template.get("nodeSelector") or {}).get("accelerator"):
                raise invalid("nvidia.com/gpu needs template.nodeSelector.accelerator")
            if (container.get("resources") or {}).get("cpuIdle", True):
                raise invalid("a GPU needs CPU always allocated (resources.cpuIdle: false)")
        concurrency = template.get("maxInstanceRequestConcurrency")
        if concurrency is not None and not 1 <= concurrency <= 1000:
            raise invalid("template.maxInstanceRequestConcurrency must be in 1..1000")
        scaling = template.get("scaling") or {}
        low, high = scaling.get("minInstanceCount", 0), scaling.get("maxInstanceCount", 100)
        if low > high:
            raise invalid("template.scaling: minInstanceCount above maxInstanceCount")
        revision = template.get("revision")
        if revision and not revision.startswith(short + "-"):
            raise invalid(f"template.revision {revision!r} must start with '{short}-'")
        if new_revision and revision and f"{name}/revisions/{revision}" in self.revisions:
            raise ApiError(
                409,
                "alreadyExists",
                f"Revision named '{revision}' with different configuration already exists.",
                status="ALREADY_EXISTS",
            )
        total, tags = 0, set()
        known = {r.rsplit("/", 1)[-1] for r in self.revisions if r.startswith(name + "/")}
        if revision:
            known.add(revision)
        for target in service.get("traffic") or []:
            total += target.get("percent", 0)
            if target.get("tag"):
                if target["tag"] in tags:
                    raise invalid(f"traffic tag {target['tag']!r} used twice")
                tags.add(target["tag"])
            rev = target.get("revision")
            if target.get("type") == "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION" and rev not in known:
                raise invalid(f"traffic names revision {rev!r}, which does not exist")
        if total != 100:
            raise invalid(f"traffic percents must sum to 100, not {total}")

    def reconcile_start(self, service: dict[str, Any]) -> None:
        service["reconciling"] = True
        service["terminalCondition"] = condition(RECONCILING, "Deploying revision.")

    def reconcile(self, name: str, *, new_revision: bool) -> dict[str, Any] | None:
        """The operation's effect: a revision from the template, then the route."""
        service = self.services[name]
        template = service["template"]
        if new_revision:
            revision = template.get("revision") or (
                f"{name.rsplit('/', 1)[-1]}-{int(service['generation']):05d}-{uuid.uuid4().hex[:3]}"
            )
            self.revisions[f"{name}/revisions/{revision}"] = self.make_revision(
                name, revision, template
            )
            service["latestCreatedRevision"] = f"{name}/revisions/{revision}"
        service["reconciling"] = False
        service["observedGeneration"] = service["generation"]
        routed = []
        for target in service.get("traffic") or []:
            rev = target.get("revision") or service["latestCreatedRevision"].rsplit("/", 1)[-1]
            resource = self.revisions[f"{name}/revisions/{rev}"]
            ready = resource["conditions"][0]
            if ready["state"] != READY:
                message = (
                    f"Revision '{rev}' is not ready and cannot serve traffic. "
                    f"{ready.get('message', '')}"
                ).strip()
                service["terminalCondition"] = condition(FAILED, message, "REVISION_FAILED")
                return {"code": 9, "message": message}
            status = {**target, "revision": rev}
            if target.get("tag"):
                status["uri"] = self.uri(name, target["tag"])
            routed.append(status)
        service["trafficStatuses"] = routed
        ready_names = [
            path
            for path, r in self.revisions.items()
            if path.startswith(name + "/") and r["conditions"][0]["state"] == READY
        ]
        if ready_names:
            service["latestReadyRevision"] = sorted(
                ready_names, key=lambda p: self.revisions[p]["createTime"]
            )[-1]
        service["terminalCondition"] = condition(READY)
        return None

    def make_revision(self, service: str, revision: str, template: dict[str, Any]) -> dict:
        container = template["containers"][0]
        problem = self.failing_images.get(container["image"])
        for env in container.get("env") or []:
            ref = ((env.get("valueSource") or {}).get("secretKeyRef")) or {}
            if ref and not self.secret_exists(ref["secret"], ref.get("version", "latest")):
                problem = problem or (
                    f"SECRETS_ACCESS_CHECK_FAILED: secret {ref['secret']} version "
                    f"{ref.get('version')} was not found or is not accessible"
                )
        if problem:
            ready = condition(FAILED, problem, revisionReason="HEALTH_CHECK_CONTAINER_ERROR")
        else:
            ready = condition(READY)
        resource = {
            "name": f"{service}/revisions/{revision}",
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "createTime": now(),
            "service": service,
            "labels": template.get("labels", {}),
            "annotations": template.get("annotations", {}),
            "containers": template["containers"],
            "scaling": template.get("scaling", {}),
            "conditions": [ready],
            "observedGeneration": "1",
            "reconciling": False,
        }
        for key in ("maxInstanceRequestConcurrency", "nodeSelector", "serviceAccount"):
            if key in template:
                resource[key] = template[key]
        return resource

    # -- secrets -------------------------------------------------------------------------

    def secret_exists(self, secret: str, version: str) -> bool:
        if version == "latest":
            return any(v.startswith(secret + "/versions/") for v in self.secret_versions)
        return f"{secret}/versions/{version}" in self.secret_versions
