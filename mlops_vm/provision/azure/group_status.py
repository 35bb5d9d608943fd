"""`status` of a VM scale set: its size (the autoscale setting's bounds), each instance
(zone, release, lifecycle from its provisioning and power state, the Application
Gateway's health) and the last rolling upgrade.

An instance's release: the scale set's when it runs the latest model (latestModelApplied),
else the previous one (an instance behind the model runs what the model was before). The
scaling history proper is in the Azure Monitor activity log, which this reads not; the
activities are the latest rolling upgrade (GET rollingUpgrades/latest: its state, start
time and progress), which the ARM fake answers like Azure.
"""

from collections.abc import Callable

from mlops_vm.provision import model
from mlops_vm.provision.azure import group_release, inventory, scaling_group
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.names import Names, has_tags

# A scale set VM's provisioningState -> status's words (Succeeded: by its power state).
PROVISIONING: dict[str, model.Lifecycle] = {
    "Creating": "pending",
    "Updating": "pending",
    "Migrating": "pending",
    "Failed": "pending",
    "Deleting": "terminating",
    "Deallocating": "terminating",
    "Deleted": "terminated",
}


def find_scale_set(arm: Arm, env: str) -> tuple[str, Json] | None:
    """(resource group, scale set) of ENV's model scale set, if any."""
    for group in inventory.environment_groups(arm, env):
        for scale_set in scaling_group.list_scale_sets(arm, group.name):
            if has_tags(scale_set, env, model.ROLE_MODEL):
                return group.name, scale_set
    return None


def power_state(vm: Json) -> str:
    statuses = ((vm.get("properties") or {}).get("instanceView") or {}).get("statuses") or []
    codes = [s.get("code", "") for s in statuses if s.get("code", "").startswith("PowerState/")]
    return codes[0].split("/", 1)[1] if codes else ""


def group_instance(
    vm: Json, release: str | None, previous: str | None, health: dict[str, model.TargetHealth]
) -> model.GroupInstance:
    props = vm.get("properties") or {}
    state = props.get("provisioningState", "")
    power = power_state(vm)
    lifecycle = PROVISIONING.get(state, "in_service" if power == "running" else "pending")
    target = health.get(vm["id"].lower())
    latest = props.get("latestModelApplied", True)
    return model.GroupInstance(
        id=vm["name"],
        zone=(vm.get("zones") or [None])[0],
        release=release if latest else previous,
        lifecycle=lifecycle,
        lb_healthy=None if target is None else target.healthy,
        detail=" ".join(
            p
            for p in (state, power, "" if latest else "behind the model", target and target.reason)
            if p
        ),
    )


def upgrade_activity(upgrade: Json | None) -> list[model.ScalingActivity]:
    if not upgrade:
        return []
    props = upgrade.get("properties") or {}
    running = props.get("runningStatus") or {}
    progress = props.get("progress") or {}
    counts = ", ".join(
        f"{progress[key]} {word}"
        for key, word in (
            ("successfulInstanceCount", "upgraded"),
            ("failedInstanceCount", "failed"),
            ("inProgressInstanceCount", "in progress"),
            ("pendingInstanceCount", "pending"),
        )
        if progress.get(key)
    )
    error = (props.get("error") or {}).get("message", "")
    return [
        model.ScalingActivity(
            at=str(running.get("startTime", "")),
            description=f"rolling upgrade to the latest model ({counts or 'no instance'})",
            cause=error or "a new scale set model (image or user data)",
            status=running.get("code", ""),
        )
    ]


def group_status(
    arm: Arm, env: str, read_health: Callable[[], list[model.TargetHealth]]
) -> model.GroupStatus | None:
    found = find_scale_set(arm, env)
    if found is None:
        return None
    group, scale_set = found
    name = scale_set["name"]
    autoscale = scaling_group.get_autoscale(arm, group, Names(env, model.ROLE_MODEL).autoscale)
    profiles = ((autoscale or {}).get("properties") or {}).get("profiles") or [{}]
    capacity = int(scale_set["sku"]["capacity"])
    bounds = profiles[0].get("capacity") or {}
    release, previous = group_release.releases(scale_set)
    health = {t.instance_id.lower(): t for t in read_health()}
    vms = scaling_group.list_scale_set_vms(arm, group, name)
    return model.GroupStatus(
        name=name,
        min_size=int(bounds.get("minimum", capacity)),
        desired=capacity,
        max_size=int(bounds.get("maximum", capacity)),
        release=release,
        previous_release=previous,
        instances=tuple(
            sorted(
                (group_instance(vm, release, previous, health) for vm in vms),
                key=lambda i: i.id,
            )
        ),
        activities=tuple(upgrade_activity(scaling_group.latest_rolling_upgrade(arm, group, name))),
    )
