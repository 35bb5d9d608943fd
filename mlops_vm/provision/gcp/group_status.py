"""`status` of a managed instance group and the release record behind `rollback`.

The release of each instance template is a metadata item (scaling_group.template_properties);
the MIG's version name records the template its current one replaced (scaling_group.
_versions), kept for a rollback. Each instance: listManagedInstances (zone from its link,
currentAction and instanceStatus as lifecycle, the template of its version as release);
health from the backend service. Compute Engine keeps no history of scaling decisions in
its API (Cloud Logging does), so the activities are what happens now: the MIG's current
actions and the autoscaler's status details, timed when read.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlops_vm.provision import model
from mlops_vm.provision.gcp import scaling_group
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.names import basename

# currentAction of a managed instance -> status's words (NONE: by the instance's status).
ACTIONS: dict[str, model.Lifecycle] = {
    "CREATING": "pending",
    "CREATING_WITHOUT_RETRIES": "pending",
    "VERIFYING": "pending",
    "STARTING": "pending",
    "RESUMING": "pending",
    "RESTARTING": "pending",
    "REFRESHING": "pending",
    "RECREATING": "terminating",
    "DELETING": "terminating",
    "ABANDONING": "terminating",
    "STOPPING": "terminating",
    "SUSPENDING": "terminating",
}


def template_releases(ctx: Context, env: str) -> dict[str, str | None]:
    """Each of ENV's model templates' release, by template name."""
    releases: dict[str, str | None] = {}
    for template in scaling_group.owned_templates(ctx, env, model.ROLE_MODEL):
        items = ((template.get("properties") or {}).get("metadata") or {}).get("items") or []
        found = [item.get("value") for item in items if item.get("key") == model.LABEL_RELEASE]
        releases[template["name"]] = found[0] if found else None
    return releases


def model_manager(ctx: Context, env: str) -> dict[str, Any] | None:
    name = ctx.names.group_manager(model.ROLE_MODEL)
    found = [m for m in scaling_group.find_managers(ctx, env) if m["name"] == name]
    return found[0] if found else None


def location_of(manager: dict[str, Any]) -> scaling_group.Location:
    link = manager["selfLink"]
    if "/zones/" in link:
        return scaling_group.Location(zone=link.split("/zones/")[1].split("/")[0], region=None)
    return scaling_group.Location(zone=None, region=link.split("/regions/")[1].split("/")[0])


def releases_of(ctx: Context, env: str) -> tuple[str | None, str | None]:
    """(the release ENV's MIG launches, the one it replaced); (None, None) without a MIG."""
    manager = model_manager(ctx, env)
    if manager is None:
        return None, None
    releases = template_releases(ctx, env)
    current = scaling_group.current_template(manager)
    previous = scaling_group.replaced_template(ctx, manager, model.ROLE_MODEL)
    return (
        releases.get(basename(current)) if current else None,
        releases.get(previous) if previous else None,
    )


def managed_instances(ctx: Context, manager: dict[str, Any]) -> list[dict[str, Any]]:
    location = location_of(manager)
    collection = "instanceGroupManagers" if location.zone else "regionInstanceGroupManagers"
    scope = {"zone": location.zone} if location.zone else {"region": location.region}
    return ctx.client.list_post(
        f"list the instances of instance group manager {manager['name']}",
        collection,
        "listManagedInstances",
        "managedInstances",
        instanceGroupManager=manager["name"],
        **scope,
    )


def group_instance(
    raw: dict[str, Any], releases: dict[str, str | None], health: dict[str, model.TargetHealth]
) -> model.GroupInstance:
    link = raw.get("instance", "")
    action = raw.get("currentAction", "NONE")
    status = raw.get("instanceStatus", "")
    lifecycle = ACTIONS.get(action, "in_service" if status == "RUNNING" else "pending")
    target = health.get(str(raw.get("id", ""))) or health.get(basename(link))
    if target is not None and target.reason == "DRAINING" and lifecycle == "in_service":
        lifecycle = "draining"
    template = (raw.get("version") or {}).get("instanceTemplate")
    return model.GroupInstance(
        id=basename(link) or str(raw.get("id", "")),
        zone=link.split("/zones/")[1].split("/")[0] if "/zones/" in link else None,
        release=releases.get(basename(template)) if template else None,
        lifecycle=lifecycle,
        lb_healthy=None if target is None else target.healthy,
        detail=" ".join(p for p in (status, action, target.reason if target else "") if p),
    )


def activities(
    manager: dict[str, Any], autoscaler: dict[str, Any] | None
) -> list[model.ScalingActivity]:
    """What the MIG does now and why the autoscaler says so."""
    now = datetime.now(UTC).isoformat()
    causes = [d.get("message", "") for d in (autoscaler or {}).get("statusDetails") or []]
    recommended = (autoscaler or {}).get("recommendedSize")
    if recommended is not None:
        causes.append(f"autoscaler recommends {recommended} instances")
    cause = "; ".join(c for c in causes if c) or "the group's own (template or size change)"
    found = [
        model.ScalingActivity(at=now, description=f"{action} {count} instance(s)", cause=cause)
        for action, count in sorted((manager.get("currentActions") or {}).items())
        if action != "none" and count
    ]
    if not found and causes:
        found.append(model.ScalingActivity(at=now, description="autoscaler status", cause=cause))
    return found


def group_status(
    ctx: Context, env: str, read_health: Callable[[], dict[str, model.TargetHealth]]
) -> model.GroupStatus | None:
    """ENV's MIG as status shows it; READ_HEALTH: the backend service's view, by id."""
    manager = model_manager(ctx, env)
    if manager is None:
        return None
    health = read_health()
    location = location_of(manager)
    autoscaler = ctx.client.get(
        "read the autoscaler",
        lambda s: location.autoscalers(s).get(
            **location.kwargs(ctx), autoscaler=ctx.names.autoscaler(model.ROLE_MODEL)
        ),
    )
    policy = (autoscaler or {}).get("autoscalingPolicy") or {}
    size = int(manager.get("targetSize", 0))
    releases = template_releases(ctx, env)
    current = scaling_group.current_template(manager)
    previous = scaling_group.replaced_template(ctx, manager, model.ROLE_MODEL)
    instances = sorted(
        (group_instance(raw, releases, health) for raw in managed_instances(ctx, manager)),
        key=lambda instance: instance.id,
    )
    return model.GroupStatus(
        name=manager["name"],
        min_size=int(policy.get("minNumReplicas", size)),
        desired=size,
        max_size=int(policy.get("maxNumReplicas", size)),
        release=releases.get(basename(current)) if current else None,
        previous_release=releases.get(previous) if previous else None,
        instances=tuple(instances),
        activities=tuple(activities(manager, autoscaler)),
    )
