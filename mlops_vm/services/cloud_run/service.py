"""The Cloud Run service: create it, read it (revisions, traffic, conditions), patch its
template (a new revision) and its traffic, each change waited on as a long-running
operation and the service's `reconciling` / `terminalCondition` read back."""

from dataclasses import replace
from typing import Any

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.provision.model import LABEL_ENV
from mlops_vm.services.base import (
    TAG_IMAGE,
    TAG_INVENTORY_IMAGE,
    TAG_SOURCE,
    Revision,
    ServiceRecord,
)
from mlops_vm.services.cloud_run.apis import CloudRunApis, condition_problem, ready_state

# The service annotation that remembers the revision traffic left (what `rollback` returns to).
PREVIOUS = "mlops-vm/previous-revision"
# The revision the last traffic move was for: its release (source, inventory image) is the
# service's TAG_SOURCE / TAG_INVENTORY_IMAGE annotations, as a host's release.json is.
ACTIVE = "mlops-vm/active-revision"
STEPS = "mlops-vm/traffic-steps"  # service.cloud_run.traffic_steps, for rollbacks
CANDIDATE_TAG = "candidate"
# service.domain, when a load balancer is in front: what status shows and what tells a run
# without a domain (or destroy) that there is a load balancer to remove, without asking
# Compute Engine on every run of a service that never had one.
DOMAIN = "mlops-vm/domain"


def domain_of(service: dict[str, Any] | None) -> str | None:
    return ((service or {}).get("annotations") or {}).get(DOMAIN) or None


def service_path(apis: CloudRunApis, name: str) -> str:
    return f"{apis.where.parent}/services/{name}"


def services(s: Any) -> Any:
    return s.projects().locations().services()


def get_service(apis: CloudRunApis, name: str) -> dict[str, Any] | None:
    path = service_path(apis, name)
    return apis.run.get(f"read service {name}", lambda s: services(s).get(name=path))


def find_service(apis: CloudRunApis, env: str) -> dict[str, Any] | None:
    """The environment's service, found by its label (no local state)."""
    listed = apis.run.paged(
        "list services",
        lambda s, t: services(s).list(parent=apis.where.parent, pageToken=t),
        lambda page: page.get("services", []),
    )
    return next((item for item in listed if item.get("labels", {}).get(LABEL_ENV) == env), None)


def list_revisions(apis: CloudRunApis, service: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's revisions, oldest first."""
    revisions = apis.run.paged(
        "list revisions",
        lambda s, t: services(s).revisions().list(parent=service["name"], pageToken=t),
        lambda page: page.get("revisions", []),
    )
    return sorted(revisions, key=lambda r: (r.get("createTime", ""), r["name"]))


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def as_revision(resource: dict[str, Any]) -> Revision:
    annotations = resource.get("annotations", {})
    containers = resource.get("containers") or [{}]
    return Revision(
        id=short(resource["name"]),
        image=annotations.get(TAG_IMAGE) or containers[0].get("image", ""),
        source=annotations.get(TAG_SOURCE, ""),
        inventory_image=annotations.get(TAG_INVENTORY_IMAGE, ""),
        created_at=resource.get("createTime", ""),
    )


def serving(service: dict[str, Any]) -> dict[str, int]:
    """Revision -> percent, as the service serves it now (trafficStatuses)."""
    shares: dict[str, int] = {}
    for status in service.get("trafficStatuses", []):
        revision = status.get("revision") or short(service.get("latestReadyRevision", ""))
        if status.get("percent"):
            shares[revision] = shares.get(revision, 0) + int(status["percent"])
    return shares


def record_of(service: dict[str, Any], revisions: list[dict[str, Any]]) -> ServiceRecord:
    by_id = {short(r["name"]): r for r in revisions}
    traffic = serving(service)
    active_id = max(traffic, key=lambda rev: traffic[rev]) if traffic else None
    previous_id = service.get("annotations", {}).get(PREVIOUS)
    active = as_revision(by_id[active_id]) if active_id in by_id else None
    annotations = service.get("annotations", {})
    if active is not None and annotations.get(ACTIVE) == active.id:
        active = replace(
            active,
            source=annotations.get(TAG_SOURCE, active.source),
            inventory_image=annotations.get(TAG_INVENTORY_IMAGE, active.inventory_image),
        )
    previous = as_revision(by_id[previous_id]) if previous_id in by_id else None
    state = ready_state(service)
    reason = condition_problem(service)
    if service.get("reconciling"):
        reason = reason or "reconciling"
    scaling = (service.get("template") or {}).get("scaling", {})
    return ServiceRecord(
        name=short(service["name"]),
        url=service.get("uri"),
        active=active,
        previous=previous,
        traffic=traffic,
        healthy=state == "CONDITION_SUCCEEDED" and not service.get("reconciling"),
        reason=reason or ("" if state == "CONDITION_SUCCEEDED" else state),
        # The run API reports no instance counts (Cloud Monitoring does): left at 0, the
        # scaling bounds are in resources.
        resources={
            "min_instances": int(scaling.get("minInstanceCount", 0)),
            "max_instances": int(scaling.get("maxInstanceCount", 0)),
            "service": service["name"],
            "revisions": [short(r["name"]) for r in revisions],
            "tags": {
                status["tag"]: status.get("uri")
                for status in service.get("trafficStatuses", [])
                if status.get("tag")
            },
        },
    )


def wait_service(
    apis: CloudRunApis, name: str, what: str, operation: dict[str, Any]
) -> dict[str, Any]:
    """OPERATION waited on (its error raised), then service NAME read back."""
    apis.run_operation(what, operation)
    service = apis.run.execute(f"read back after {what}", lambda s: services(s).get(name=name))
    return service


def create_service(apis: CloudRunApis, name: str, body: dict[str, Any]) -> dict[str, Any]:
    operation = apis.run.execute(
        f"create service {name}",
        lambda s: services(s).create(parent=apis.where.parent, serviceId=name, body=body),
    )
    return wait_service(apis, service_path(apis, name), f"create service {name}", operation)


def patch_service(
    apis: CloudRunApis, service: dict[str, Any], body: dict[str, Any], mask: str
) -> dict[str, Any]:
    """Patch MASK's fields (with the service's etag: a concurrent change is refused)."""
    name = service["name"]
    what = f"update service {short(name)} ({mask})"
    operation = apis.run.execute(
        what,
        lambda s: services(s).patch(
            name=name, updateMask=mask, body={**body, "etag": service.get("etag")}
        ),
    )
    return wait_service(apis, name, what, operation)


def traffic_to(revision: str, percent: int, other: dict[str, int]) -> list[dict[str, Any]]:
    """REVISION gets PERCENT, the rest shared as OTHER had it (scaled to 100 - PERCENT)."""
    targets: list[dict[str, Any]] = []
    rest = 100 - percent
    if rest and other:
        total = sum(other.values())
        shares = {rev: share * rest // total for rev, share in other.items() if rev != revision}
        first = next(iter(shares), None)
        if first is not None:
            shares[first] += rest - sum(shares.values())
        targets += [
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": rev, "percent": p}
            for rev, p in shares.items()
        ]
    targets.append(
        {
            "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
            "revision": revision,
            "percent": percent,
        }
    )
    return targets


def revision_failure(apis: CloudRunApis, revision_path: str) -> str:
    """Why REVISION_PATH is not ready, read from its conditions."""
    revision = apis.run.get(
        "read the new revision", lambda s: services(s).revisions().get(name=revision_path)
    )
    if revision is None:
        return "the revision was never created"
    return condition_problem(revision) or ready_state(revision)


def not_ready(name: str, reason: str, kept: dict[str, int]) -> ProvisionError:
    where = ", ".join(f"{rev} {share}%" for rev, share in kept.items()) or "none"
    return ProvisionError(
        ErrorCode.INTERNAL,
        f"revision {name} never became ready: {reason}; traffic stays on {where}",
        hint="fix the image or its settings and deploy again; `mlops-vm logs ENV` shows its output",
        provider=PROVIDER,
        operation="release",
    )
