"""A release on Cloud Run: a new revision deployed with no traffic and a tag, checked
through its tag URL, then given the traffic (in steps: service.cloud_run.traffic_steps).
A revision that never becomes ready leaves the traffic where it was (the tag removed) and
the release fails with Cloud Run's reason. With canary.enabled the first step's share is
judged on Cloud Monitoring's figures (services/canary.py) before the next step; a canary
that does not hold puts the traffic back. A rollback moves the traffic back."""

from collections.abc import Callable, Sequence
from typing import Any

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.services.base import TAG_INVENTORY_IMAGE, TAG_SOURCE
from mlops_vm.services.cloud_run import probe
from mlops_vm.services.cloud_run.apis import CloudRunApis
from mlops_vm.services.cloud_run.service import (
    ACTIVE,
    CANDIDATE_TAG,
    PREVIOUS,
    STEPS,
    list_revisions,
    not_ready,
    patch_service,
    revision_failure,
    serving,
    short,
    traffic_to,
)

REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


def release_annotations(
    service: dict[str, Any],
    revision: str,
    source: str,
    inventory_image: str,
    steps: Sequence[int] = (),
) -> dict[str, str]:
    """The service's annotations after traffic moves to REVISION: which release it carries
    (source, the inventory's image) and the revision that had the traffic (rollback's)."""
    annotations = dict(service.get("annotations", {}))
    traffic = serving(service)
    had = max(traffic, key=lambda rev: traffic[rev]) if traffic else None
    if had and had != revision:
        annotations[PREVIOUS] = had
    annotations.update({ACTIVE: revision, TAG_SOURCE: source, TAG_INVENTORY_IMAGE: inventory_image})
    if steps:
        annotations[STEPS] = ",".join(map(str, steps))
    return annotations


def pinned(traffic: dict[str, int]) -> list[dict[str, Any]]:
    return [{"type": REVISION, "revision": rev, "percent": share} for rev, share in traffic.items()]


def deploy_candidate(
    apis: CloudRunApis,
    service: dict[str, Any],
    template: dict[str, Any],
    *,
    readiness_path: str,
    token: str | None,
    timeout_s: float,
    check_url: bool = True,
) -> dict[str, Any]:
    """TEMPLATE as a new revision with no traffic and the candidate tag, ready and answering
    through its tag URL (CHECK_URL); otherwise the traffic as it was and ProvisionError."""
    revision = template["revision"]
    before = serving(service)
    traffic = [*pinned(before), {"type": REVISION, "revision": revision, "tag": CANDIDATE_TAG}]
    try:
        service = patch_service(
            apis, service, {"template": template, "traffic": traffic}, "template,traffic"
        )
    except ProvisionError as error:
        if error.code in (ErrorCode.INVALID_INPUT, ErrorCode.CONFLICT, ErrorCode.PERMISSION):
            raise  # refused as asked: nothing was deployed
        reason = revision_failure(apis, f"{service['name']}/revisions/{revision}")
        restore(apis, service["name"], before)
        raise not_ready(revision, reason or error.message, before) from None
    if not check_url:
        return service
    url = tag_url(service, CANDIDATE_TAG)
    problem = (
        probe.wait_until_ready(url + readiness_path, token=token, timeout_s=timeout_s)
        if url
        else "no tag URL"
    )
    if problem:
        restore(apis, service["name"], before)
        raise not_ready(revision, f"{url}{readiness_path} answered {problem}", before)
    return service


def restore(apis: CloudRunApis, name: str, traffic: dict[str, int]) -> None:
    """The traffic as it was, without the candidate's tag (the revision stays, unserved)."""
    current = apis.run.execute(
        "read the service", lambda s: s.projects().locations().services().get(name=name)
    )
    if traffic:
        patch_service(apis, current, {"traffic": pinned(traffic)}, "traffic")


def tag_url(service: dict[str, Any], tag: str) -> str | None:
    for status in service.get("trafficStatuses", []):
        if status.get("tag") == tag:
            return status.get("uri")
    return None


def move_traffic(
    apis: CloudRunApis,
    service: dict[str, Any],
    revision: str,
    steps: Sequence[int],
    *,
    source: str,
    inventory_image: str,
    gate: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, Any]:
    """Traffic to REVISION in STEPS (percent), each step waited on; the release recorded.
    GATE (the canary's: given the traffic as it was) runs after the first step when that
    is a share; when it raises, the traffic goes back to what it was."""
    before = serving(service)
    annotations = release_annotations(service, revision, source, inventory_image, steps)
    for index, percent in enumerate(steps):
        targets = traffic_to(revision, percent, before)
        try:
            service = patch_service(
                apis,
                service,
                {"traffic": targets, "annotations": annotations},
                "traffic,annotations",
            )
        except ProvisionError as error:
            restore(apis, service["name"], before)
            raise not_ready(revision, error.message, before) from None
        if gate is not None and index == 0 and percent < 100 and before:
            try:
                gate(before)
            except ProvisionError:
                restore(apis, service["name"], before)
                raise
    return service


def traffic_detail(revision: str, steps: Sequence[int]) -> str:
    """What a traffic move's Change says: the revision and its steps."""
    return f"{revision} " + " -> ".join(f"{p}%" for p in steps)


def check_ready(apis: CloudRunApis, service: dict[str, Any], revision: str) -> None:
    """An existing REVISION (a rollback's, an earlier release's) must be ready."""
    names = {short(r["name"]): r for r in list_revisions(apis, service)}
    if revision not in names:
        raise ProvisionError(
            ErrorCode.NOT_FOUND,
            f"revision {revision} is gone",
            hint="deploy the release again (a new revision)",
            provider=PROVIDER,
            operation="release",
        )
    reason = revision_failure(apis, names[revision]["name"])
    if reason != "CONDITION_SUCCEEDED" and reason:
        raise not_ready(revision, reason, serving(service))
