"""Scaling-group mode: a launch template, an Auto Scaling group, target-tracking policies.

The instances are never reached over SSH: the launch template's user-data
(InstanceSpec.user_data, rendered by mlops_vm.bootstrap) makes each one configure itself.
A change of AMI, instance type, user-data (or anything else in the template) becomes a
new template version, made the default one; the group launches "$Default", and an
instance refresh (instance_refresh.py) replaces the running instances, launch before
terminate, so the change really rolls out.

The group's desired size is written only when FleetSpec.count changes (remembered in a
tag), so a later run does not undo what the autoscaler decided. The CPU policy belongs to
ensure_fleet; the ALBRequestCountPerTarget policy needs the ALB and target group ARNs in
its ResourceLabel, so ensure_load_balancer puts it in place once the target group exists.
"""

import base64
import hashlib
import json
from typing import Any

from mlops_vm.bootstrap.user_data import user_data_bytes
from mlops_vm.plan import Change
from mlops_vm.provision.aws import errors, instance_refresh, names
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import FleetSpec

CPU_POLICY = "mlops-vm-cpu-target"
REQUESTS_POLICY = "mlops-vm-alb-requests-target"
DIGEST_PREFIX = "mlops-vm:sha256:"
# Scaling activities that mean a launch did not happen.
FAILED_ACTIVITY = ("Failed", "Cancelled")
# Fields compared to say what a new template version changes.
WATCHED_FIELDS = ("ImageId", "InstanceType", "UserData", "KeyName", "SecurityGroupIds")


def group_name(env: str, role: str) -> str:
    return names.base_name(env, role)


def template_data(
    spec: FleetSpec, settings: dict[str, Any], security_group_id: str | None
) -> dict[str, Any]:
    """The launch template's LaunchTemplateData for SPEC."""
    data: dict[str, Any] = {**settings, "SecurityGroupIds": [security_group_id or "(new)"]}
    if spec.instance.user_data:
        # Launch templates take user-data base64-encoded (RunInstances encodes it itself).
        data["UserData"] = base64.b64encode(
            user_data_bytes(spec.instance.user_data, "aws")
        ).decode()
    instance_tags = names.tag_dict(spec.env, spec.role, group_name(spec.env, spec.role))
    instance_tags.update(spec.instance.tags)
    data["TagSpecifications"] = [
        {"ResourceType": resource, "Tags": names.tag_list(instance_tags)}
        for resource in ("instance", "volume")
    ]
    return data


def digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return DIGEST_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


# --- launch template --------------------------------------------------------------------


def find_template(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.first(
        "ec2",
        "describe_launch_templates",
        "find the launch template",
        "LaunchTemplates",
        missing_ok=True,
        LaunchTemplateNames=[name],
    )


def default_version(ctx: AwsContext, template_id: str) -> dict[str, Any]:
    return ctx.call(
        "ec2",
        "describe_launch_template_versions",
        "read the launch template's default version",
        LaunchTemplateId=template_id,
        Versions=["$Default"],
    )["LaunchTemplateVersions"][0]


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = [name for name in WATCHED_FIELDS if old.get(name) != new.get(name)]
    return changed or ["settings"]


def ensure_launch_template(
    ctx: AwsContext, spec: FleetSpec, data: dict[str, Any], *, dry_run: bool
) -> tuple[str | None, bool, list[Change]]:
    """(template id, whether a running group must be refreshed, changes)."""
    name = group_name(spec.env, spec.role)
    wanted = digest(data)
    template = find_template(ctx, name)
    if template is None:
        change = Change("create", "launch_template", name, spec.instance.machine_type)
        if dry_run:
            return None, False, [change]
        created = ctx.call(
            "ec2",
            "create_launch_template",
            "create the launch template",
            LaunchTemplateName=name,
            VersionDescription=wanted,
            LaunchTemplateData=data,
            TagSpecifications=names.tag_specifications(
                "launch-template", names.tag_dict(spec.env, spec.role, name, spec.instance.tags)
            ),
        )["LaunchTemplate"]
        return created["LaunchTemplateId"], False, [change]
    template_id = template["LaunchTemplateId"]
    current = default_version(ctx, template_id)
    if current.get("VersionDescription") == wanted:
        return template_id, False, []
    what = ", ".join(changed_fields(current.get("LaunchTemplateData", {}), data))
    change = Change("update", "launch_template", name, f"new default version: {what}")
    if dry_run:
        return template_id, True, [change]
    version = ctx.call(
        "ec2",
        "create_launch_template_version",
        "add a launch template version",
        LaunchTemplateId=template_id,
        VersionDescription=wanted,
        LaunchTemplateData=data,
    )["LaunchTemplateVersion"]["VersionNumber"]
    ctx.call(
        "ec2",
        "modify_launch_template",
        "make the new launch template version the default",
        LaunchTemplateId=template_id,
        DefaultVersion=str(version),
    )
    return template_id, True, [change]


# --- the group --------------------------------------------------------------------------


def find_group(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.first(
        "autoscaling",
        "describe_auto_scaling_groups",
        "find the scaling group",
        "AutoScalingGroups",
        AutoScalingGroupNames=[name],
    )


def tagged_groups(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    found = ctx.pages(
        "autoscaling",
        "describe_auto_scaling_groups",
        "AutoScalingGroups",
        "list the scaling groups",
        Filters=[{"Name": f"tag:{names.TAG_ENV}", "Values": [env]}],
    )
    # Checked again here: destroy deletes what this returns, whatever the filter did.
    return [group for group in found if names.has_tags(group.get("Tags"), env)]


def desired_size(spec: FleetSpec) -> int:
    scaling = spec.autoscaling
    if not scaling.min_size <= spec.count <= scaling.max_size:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"count {spec.count} is outside autoscaling min_size..max_size "
            f"({scaling.min_size}..{scaling.max_size})",
            hint="make min_size <= count <= max_size",
            provider=errors.PROVIDER,
            operation="check the scaling group size",
        )
    return spec.count


def group_tags(spec: FleetSpec, name: str) -> list[dict[str, Any]]:
    tag_set = names.tag_dict(spec.env, spec.role, name, spec.instance.tags)
    tag_set[names.TAG_SSH_USER] = spec.instance.ssh_user
    group_tag_list = [
        {
            "ResourceId": name,
            "ResourceType": "auto-scaling-group",
            "Key": key,
            "Value": value,
            "PropagateAtLaunch": True,
        }
        for key, value in sorted(tag_set.items())
    ]
    group_tag_list.append(desired_tag(name, spec.count))
    return group_tag_list


def desired_tag(name: str, count: int) -> dict[str, Any]:
    return {
        "ResourceId": name,
        "ResourceType": "auto-scaling-group",
        "Key": names.TAG_DESIRED,
        "Value": str(count),
        "PropagateAtLaunch": False,
    }


def ensure_group(
    ctx: AwsContext,
    spec: FleetSpec,
    template_id: str | None,
    subnet_ids: list[str | None],
    *,
    refresh: bool,
    dry_run: bool,
) -> list[Change]:
    name = group_name(spec.env, spec.role)
    desired = desired_size(spec)
    group = find_group(ctx, name)
    zone_identifier = ",".join(subnet_id or "(new)" for subnet_id in subnet_ids)
    settings = {
        "MinSize": spec.autoscaling.min_size,
        "MaxSize": spec.autoscaling.max_size,
        "VPCZoneIdentifier": zone_identifier,
        "HealthCheckType": "ELB",
        "HealthCheckGracePeriod": ctx.options.health_check_grace_s,
    }
    if group is None:
        change = Change(
            "create",
            "scaling_group",
            name,
            f"{spec.autoscaling.min_size}..{spec.autoscaling.max_size}, desired {desired}",
        )
        if dry_run:
            return [change]
        # No client token: a retry after a lost answer adopts the group by its name.
        ctx.create(
            "autoscaling",
            "create_auto_scaling_group",
            "create the scaling group",
            adopt=lambda: find_group(ctx, name),
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Default"},
            DesiredCapacity=desired,
            Tags=group_tags(spec, name),
            **settings,
        )
        return [change]
    changes = update_group(ctx, spec, group, template_id, settings, dry_run=dry_run)
    if ctx.options.instance_refresh:
        template = find_template(ctx, name) if template_id else None
        version = str(template["DefaultVersionNumber"]) if template else None
        changes += instance_refresh.ensure_rolled_out(
            ctx, group, template_id, version, template_changed=refresh, dry_run=dry_run
        )
    return changes


def update_group(
    ctx: AwsContext,
    spec: FleetSpec,
    group: dict[str, Any],
    template_id: str | None,
    settings: dict[str, Any],
    *,
    dry_run: bool,
) -> list[Change]:
    name = group["AutoScalingGroupName"]
    update: dict[str, Any] = {}
    for key, value in settings.items():
        current = group.get(key)
        if key == "VPCZoneIdentifier":
            same = set(str(current or "").split(",")) == set(value.split(","))
        else:
            same = current == value
        if not same:
            update[key] = value
    template = group.get("LaunchTemplate") or {}
    if template.get("LaunchTemplateId") != template_id or template.get("Version") != "$Default":
        update["LaunchTemplate"] = {"LaunchTemplateId": template_id, "Version": "$Default"}
    remembered = names.as_dict(group.get("Tags")).get(names.TAG_DESIRED)
    count_changed = remembered != str(spec.count)
    if count_changed:
        update["DesiredCapacity"] = spec.count
    if not update:
        return []
    change = Change("update", "scaling_group", name, ", ".join(sorted(update)))
    if dry_run:
        return [change]
    ctx.call(
        "autoscaling",
        "update_auto_scaling_group",
        "update the scaling group",
        AutoScalingGroupName=name,
        **update,
    )
    if count_changed:
        ctx.call(
            "autoscaling",
            "create_or_update_tags",
            "remember the scaling group's desired size",
            Tags=[desired_tag(name, spec.count)],
        )
    return [change]


def group_instance_ids(group: dict[str, Any]) -> list[str]:
    return sorted(instance["InstanceId"] for instance in group.get("Instances", []))


def activity_ids(ctx: AwsContext, name: str) -> set[str]:
    """The ids of the group's scaling activities so far: what a wait must not blame on
    the change it waits for."""
    return {activity["ActivityId"] for activity in scaling_activities(ctx, name)}


def scaling_activities(ctx: AwsContext, name: str) -> list[dict[str, Any]]:
    """The group's recent scaling activities, newest first ([] before it exists)."""
    return ctx.call(
        "autoscaling",
        "describe_scaling_activities",
        f"read the scaling activities of {name}",
        missing_ok=True,
        AutoScalingGroupName=name,
        MaxRecords=50,
    ).get("Activities", [])


def check_activities(ctx: AwsContext, name: str, known: set[str]) -> None:
    """A launch that failed (capacity, quota, a bad AMI, ...) fails the wait at once with
    AWS's reason, classified, instead of a TIMEOUT many minutes later."""
    failed = [
        activity
        for activity in scaling_activities(ctx, name)
        if activity.get("StatusCode") in FAILED_ACTIVITY and activity["ActivityId"] not in known
    ]
    if not failed:
        return
    reason = failed[0].get("StatusMessage") or failed[0].get("Description") or "no reason given"
    code = errors.classify_text(reason)
    raise ProvisionError(
        code,
        f"scaling group {name} could not launch: {reason}"
        + (f" (and {len(failed) - 1} more failed activities)" if len(failed) > 1 else ""),
        hint=errors.HINTS.get(code, ""),
        provider=errors.PROVIDER,
        operation=f"wait until the instances of {name} are in service",
    )


def wait_in_service(
    ctx: AwsContext, name: str, count: int, *, known_activities: set[str] | None = None
) -> list[str]:
    """Wait until COUNT instances of the group are InService; returns their ids. A scaling
    activity that failed since KNOWN_ACTIVITIES (ids seen before the change) ends the wait
    with its reason."""

    def in_service() -> list[str] | None:
        group = find_group(ctx, name)
        ready = [
            instance["InstanceId"]
            for instance in (group or {}).get("Instances", [])
            if instance.get("LifecycleState") == "InService"
        ]
        if len(ready) >= count:
            return sorted(ready)
        if known_activities is not None:
            check_activities(ctx, name, known_activities)
        return None

    return ctx.wait_until(in_service, f"{count} instance(s) of {name} are in service")


def delete_group(ctx: AwsContext, name: str) -> None:
    ctx.call(
        "autoscaling",
        "delete_auto_scaling_group",
        f"delete scaling group {name}",
        missing_ok=True,
        AutoScalingGroupName=name,
        ForceDelete=True,
    )
    ctx.wait_until(
        lambda: True if find_group(ctx, name) is None else None,
        f"scaling group {name} is deleted",
    )


def delete_template(ctx: AwsContext, template_id: str) -> None:
    ctx.call(
        "ec2",
        "delete_launch_template",
        f"delete launch template {template_id}",
        missing_ok=True,
        LaunchTemplateId=template_id,
    )


def tagged_templates(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    return names.tagged_ec2(
        ctx, env, "describe_launch_templates", "list the launch templates", "LaunchTemplates"
    )


# --- target-tracking policies -----------------------------------------------------------


def policies(ctx: AwsContext, name: str) -> dict[str, dict[str, Any]]:
    found = ctx.call(
        "autoscaling",
        "describe_policies",
        "read the scaling policies",
        AutoScalingGroupName=name,
    )["ScalingPolicies"]
    return {policy["PolicyName"]: policy for policy in found}


def ensure_target_tracking(
    ctx: AwsContext,
    group: str,
    policy_name: str,
    metric: dict[str, Any],
    target: float | None,
    *,
    dry_run: bool,
) -> list[Change]:
    """Policy POLICY_NAME tracks METRIC at TARGET; TARGET None removes it."""
    current = policies(ctx, group).get(policy_name)
    if target is None:
        if current is None:
            return []
        if not dry_run:
            ctx.call(
                "autoscaling",
                "delete_policy",
                f"delete scaling policy {policy_name}",
                missing_ok=True,
                AutoScalingGroupName=group,
                PolicyName=policy_name,
            )
        return [Change("delete", "scaling_policy", policy_name)]
    wanted = {"PredefinedMetricSpecification": metric, "TargetValue": float(target)}
    if current:
        config = current.get("TargetTrackingConfiguration", {})
        have = {
            "PredefinedMetricSpecification": config.get("PredefinedMetricSpecification"),
            "TargetValue": float(config.get("TargetValue", -1)),
        }
        if have == wanted:
            return []
    change = Change(
        "update" if current else "create",
        "scaling_policy",
        policy_name,
        f"{metric['PredefinedMetricType']} target {target:g}",
    )
    if not dry_run:
        ctx.call(
            "autoscaling",
            "put_scaling_policy",
            f"set scaling policy {policy_name}",
            AutoScalingGroupName=group,
            PolicyName=policy_name,
            PolicyType="TargetTrackingScaling",
            TargetTrackingConfiguration=wanted,
        )
    return [change]


def ensure_cpu_policy(
    ctx: AwsContext, group: str, target_percent: float | None, *, dry_run: bool
) -> list[Change]:
    metric = {"PredefinedMetricType": "ASGAverageCPUUtilization"}
    return ensure_target_tracking(ctx, group, CPU_POLICY, metric, target_percent, dry_run=dry_run)


def request_count_label(load_balancer_arn: str, target_group_arn: str) -> str:
    """app/<alb>/<id>/targetgroup/<tg>/<id>: the ResourceLabel ALBRequestCountPerTarget needs."""
    alb_part = load_balancer_arn.split(":loadbalancer/", 1)[1]
    tg_part = target_group_arn.split(":", 5)[5]
    return f"{alb_part}/{tg_part}"


def ensure_request_policy(
    ctx: AwsContext, group: str, label: str, target: float | None, *, dry_run: bool
) -> list[Change]:
    metric = {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}
    return ensure_target_tracking(ctx, group, REQUESTS_POLICY, metric, target, dry_run=dry_run)


def ensure_target_groups(
    ctx: AwsContext, group: str, target_group_arn: str | None, *, dry_run: bool
) -> list[Change]:
    """Attach the group to exactly TARGET_GROUP_ARN (its instances register themselves)."""
    current = find_group(ctx, group)
    attached = set((current or {}).get("TargetGroupARNs", []))
    wanted = {target_group_arn} if target_group_arn else set()
    changes: list[Change] = []
    stale = sorted(attached - wanted)
    if stale:
        changes += ctx.apply(
            Change("update", "scaling_group", group, "detach old target group"),
            "autoscaling",
            "detach_load_balancer_target_groups",
            "detach the scaling group from an old target group",
            dry_run=dry_run,
            AutoScalingGroupName=group,
            TargetGroupARNs=stale,
        )
    if target_group_arn and target_group_arn not in attached:
        changes += ctx.apply(
            Change("update", "scaling_group", group, "attach to the target group"),
            "autoscaling",
            "attach_load_balancer_target_groups",
            "attach the scaling group to the target group",
            dry_run=dry_run,
            AutoScalingGroupName=group,
            TargetGroupARNs=[target_group_arn],
        )
    return changes
