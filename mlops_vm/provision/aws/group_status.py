"""`status` of an Auto Scaling group: its size, each instance (zone, the release of the
launch template version it was launched from, lifecycle, target group health) and its last
scaling activities (DescribeScalingActivities, with AWS's own cause for each)."""

from typing import Any

from mlops_vm.provision.aws import group_release, load_balancer, scaling_group
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import (
    TAG_RELEASE,
    GroupInstance,
    GroupStatus,
    Lifecycle,
    ScalingActivity,
)

# The scaling activities status shows, newest first.
ACTIVITIES_SHOWN = 10
# ASG lifecycle states -> status's words. Terminating:Wait is a termination lifecycle hook
# holding the instance; Detaching / Standby take it out of the target group: both drain.
LIFECYCLE: dict[str, Lifecycle] = {
    "Pending": "pending",
    "Pending:Wait": "pending",
    "Pending:Proceed": "pending",
    "InService": "in_service",
    "Detaching": "draining",
    "EnteringStandby": "draining",
    "Standby": "draining",
    "Terminating:Wait": "draining",
    "Terminating": "terminating",
    "Terminating:Proceed": "terminating",
    "Terminated": "terminated",
}


def version_releases(ctx: AwsContext, template_id: str) -> tuple[dict[str, str | None], str]:
    """Each template version's release (from the tags it gives instances), by version
    number; and the default version's number."""
    by_version: dict[str, str | None] = {}
    default = ""
    for version in scaling_group.template_versions(ctx, template_id):
        number = str(version["VersionNumber"])
        if version.get("DefaultVersion"):
            default = number
        specs = version.get("LaunchTemplateData", {}).get("TagSpecifications", [])
        tags = {
            tag["Key"]: tag["Value"]
            for spec in specs
            if spec.get("ResourceType") == "instance"
            for tag in spec.get("Tags", [])
        }
        by_version[number] = tags.get(TAG_RELEASE)
    return by_version, default


def target_states(ctx: AwsContext, group: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each registered instance's TargetHealth in the group's target groups."""
    states: dict[str, dict[str, str]] = {}
    for arn in group.get("TargetGroupARNs", []):
        for description in load_balancer.describe_health(ctx, arn):
            states[description["Target"]["Id"]] = description.get("TargetHealth", {})
    return states


def group_instance(
    raw: dict[str, Any], releases: dict[str, str | None], default: str, health: dict | None
) -> GroupInstance:
    version = str((raw.get("LaunchTemplate") or {}).get("Version", ""))
    version = default if version in ("$Default", "") else version
    lifecycle = LIFECYCLE.get(raw.get("LifecycleState", ""), "pending")
    state = (health or {}).get("State")
    if state == "draining" and lifecycle == "in_service":
        lifecycle = "draining"
    reason = " ".join(
        part
        for part in (state, (health or {}).get("Reason"), (health or {}).get("Description"))
        if part and state != "healthy"
    )
    return GroupInstance(
        id=raw["InstanceId"],
        zone=raw.get("AvailabilityZone"),
        release=releases.get(version),
        lifecycle=lifecycle,
        lb_healthy=None if health is None else state == "healthy",
        detail=" ".join(p for p in (raw.get("LifecycleState"), reason) if p),
    )


def activity(raw: dict[str, Any]) -> ScalingActivity:
    started = raw.get("StartTime")
    return ScalingActivity(
        at=started.isoformat() if hasattr(started, "isoformat") else str(started or ""),
        description=raw.get("Description", ""),
        cause=raw.get("Cause", ""),
        status=raw.get("StatusCode", ""),
    )


def group_status(ctx: AwsContext, env: str) -> GroupStatus | None:
    group = group_release.model_group(ctx, env)
    if group is None:
        return None
    template_id = (group.get("LaunchTemplate") or {}).get("LaunchTemplateId")
    releases, default = version_releases(ctx, template_id) if template_id else ({}, "")
    recorded, previous = group_release.releases(group)
    health = target_states(ctx, group)
    instances = tuple(
        group_instance(raw, releases, default, health.get(raw["InstanceId"]))
        for raw in sorted(group.get("Instances", []), key=lambda i: i["InstanceId"])
    )
    name = group["AutoScalingGroupName"]
    return GroupStatus(
        name=name,
        min_size=int(group["MinSize"]),
        desired=int(group["DesiredCapacity"]),
        max_size=int(group["MaxSize"]),
        release=releases.get(default) or recorded,
        previous_release=previous,
        instances=instances,
        activities=tuple(
            activity(raw) for raw in scaling_group.scaling_activities(ctx, name)[:ACTIVITIES_SHOWN]
        ),
    )
