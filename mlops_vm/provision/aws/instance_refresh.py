"""Rolling a scaling group onto its launch template: the instance refresh.

A refresh launches before it terminates (MinHealthyPercentage 100, MaxHealthyPercentage 200),
so capacity never drops; it skips instances that already run the wanted template
(SkipMatching) and rolls back on its own when new instances do not become healthy within
the warm-up (AutoRollback). It runs inside AWS after provision returns, so every run looks
at the latest one: one still running is reported; one that failed, was cancelled or rolled
back is started again while instances still run an older template version, as is a group
whose instances are behind for any other reason (no refresh ever started: an earlier run
stopped halfway; or the template moved on while the last refresh ran).
"""

from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws.client import AwsContext, Lookup
from mlops_vm.provision.errors import ErrorCode, ProvisionError

RUNNING = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
ENDED_BADLY = frozenset({"Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"})
IN_PROGRESS_CODE = "InstanceRefreshInProgress"
ALREADY_RUNNING = "instance refresh already running: run provision again once it has ended"
INSTANCE_REFRESH = Lookup("autoscaling", "describe_instance_refreshes", "InstanceRefreshes")


def preferences(ctx: AwsContext) -> dict[str, Any]:
    return {
        "MinHealthyPercentage": ctx.options.refresh_min_healthy_percent,
        "MaxHealthyPercentage": 200,  # launch before terminate
        "InstanceWarmup": ctx.options.health_check_grace_s,
        "SkipMatching": True,
        "AutoRollback": True,
    }


def latest_refresh(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    """The group's most recent instance refresh (AWS lists the newest first)."""
    doing = "read the scaling group's instance refreshes"
    return ctx.first(INSTANCE_REFRESH, doing, AutoScalingGroupName=name, MaxRecords=1)


def stale_instances(group: dict[str, Any], template_id: str, version: str) -> list[str]:
    """Instances launched from another template or another version than VERSION."""
    stale = []
    for instance in group.get("Instances", []):
        template = instance.get("LaunchTemplate") or {}
        if template.get("LaunchTemplateId") != template_id or template.get("Version") != version:
            stale.append(instance["InstanceId"])
    return sorted(stale)


def start(ctx: AwsContext, name: str, template_id: str) -> str | None:
    """Start a refresh; its id, or None when one is already running (AWS allows one)."""
    try:
        return ctx.call(
            "autoscaling",
            "start_instance_refresh",
            "start an instance refresh (roll out the new launch template)",
            AutoScalingGroupName=name,
            Strategy="Rolling",
            DesiredConfiguration={
                "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": "$Default"}
            },
            Preferences=preferences(ctx),
        )["InstanceRefreshId"]
    except ProvisionError as error:
        if error.code == ErrorCode.CONFLICT and IN_PROGRESS_CODE in error.message:
            return None
        raise


def describe(refresh: dict[str, Any]) -> str:
    done = refresh.get("PercentageComplete")
    reason = refresh.get("StatusReason")
    parts = [f"instance refresh {refresh.get('InstanceRefreshId', '')} {refresh['Status']}"]
    if done is not None:
        parts.append(f"{done}% done")
    if reason:
        parts.append(reason)
    return ", ".join(parts)


def ensure_rolled_out(
    ctx: AwsContext,
    group: dict[str, Any],
    template_id: str,
    default_version: str | None,
    *,
    template_changed: bool,
    log: ChangeLog,
) -> None:
    """Start, restart or report the refresh that brings the group onto its template."""
    name = group["AutoScalingGroupName"]
    if not group.get("Instances"):
        return
    if template_changed:
        reason = "instance refresh"
    else:
        if default_version is None:
            return
        latest = latest_refresh(ctx, name)
        if latest is not None and latest["Status"] in RUNNING:
            # Reported, not made: the refresh of an earlier run is still rolling.
            log.record("update", "scaling_group", name, describe(latest))
            return
        stale = stale_instances(group, template_id, default_version)
        if not stale:
            return
        behind = f"{len(stale)} instance(s) behind launch template version {default_version}"
        if latest is None:
            reason = f"instance refresh ({behind}, none started before)"
        elif latest["Status"] in ENDED_BADLY:
            reason = f"instance refresh restarted ({describe(latest)}; {behind})"
        else:  # it ended well, but the template moved on while it ran
            reason = f"instance refresh ({behind})"

    def start_refresh() -> Change:
        started = start(ctx, name, template_id) is not None
        return Change("update", "scaling_group", name, reason if started else ALREADY_RUNNING)

    log.reported(Change("update", "scaling_group", name, reason), start_refresh)
