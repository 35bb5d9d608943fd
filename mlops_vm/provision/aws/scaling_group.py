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
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import errors, instance_refresh, names
from mlops_vm.provision.aws.client import AwsContext, Lookup
from mlops_vm.provision.errors import ProvisionError
from mlops_vm.provision.model import TAG_RELEASE, FleetSpec

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
    spec: FleetSpec, settings: dict[str, Any], security_group_id: str
) -> dict[str, Any]:
    """The launch template's LaunchTemplateData for SPEC."""
    data: dict[str, Any] = {**settings, "SecurityGroupIds": [security_group_id]}
    if spec.instance.user_data:
        # Launch templates take user-data base64-encoded (RunInstances encodes it itself).
        data["UserData"] = base64.b64encode(
            user_data_bytes(spec.instance.user_data, "aws")
        ).decode()
    instance_tags = names.tag_dict(spec.env, spec.role, group_name(spec.env, spec.role))
    instance_tags.update(spec.instance.tags)
    if spec.instance.release:
        # Each version says which release it launches: status reads it per instance.
        instance_tags[TAG_RELEASE] = spec.instance.release
    data["TagSpecifications"] = [
        {"ResourceType": resource, "Tags": names.tag_list(instance_tags)}
        for resource in ("instance", "volume")
    ]
    return data


def digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return DIGEST_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


# --- launch template --------------------------------------------------------------------


LAUNCH_TEMPLATE = Lookup("ec2", "describe_launch_templates", "LaunchTemplates", missing_ok=True)


def find_template(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.first(LAUNCH_TEMPLATE, "find the launch template", LaunchTemplateNames=[name])


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
    ctx: AwsContext, spec: FleetSpec, data: dict[str, Any], log: ChangeLog
) -> tuple[str, bool]:
    """(template id, a stand-in when a dry run would create it; whether a running group
    must be refreshed)."""
    name = group_name(spec.env, spec.role)
    wanted = digest(data)
    template = find_template(ctx, name)
    if template is None:
        template_id = log.create(
            "launch_template",
            name,
            lambda: ctx.call(
                "ec2",
                "create_launch_template",
                "create the launch template",
                LaunchTemplateName=name,
                VersionDescription=wanted,
                LaunchTemplateData=data,
                TagSpecifications=names.tag_specifications(
                    "launch-template", names.tag_dict(spec.env, spec.role, name, spec.instance.tags)
                ),
            )["LaunchTemplate"]["LaunchTemplateId"],
            spec.instance.machine_type,
            planned=names.planned("lt", name),
        )
        return template_id, False
    template_id = template["LaunchTemplateId"]
    current = default_version(ctx, template_id)
    if current.get("VersionDescription") == wanted:
        return template_id, False
    what = ", ".join(changed_fields(current.get("LaunchTemplateData", {}), data))
    # A version with this very content exists (the release a rollback returns to): it
    # becomes the default again, so the group rolls back onto what it ran before.
    kept = version_with(ctx, template_id, wanted)
    if kept is not None:
        log.update(
            "launch_template",
            name,
            lambda: make_default(ctx, template_id, kept),
            f"default version {kept} again: {what}",
        )
        return template_id, True
    log.update(
        "launch_template",
        name,
        lambda: add_default_version(ctx, template_id, wanted, data),
        f"new default version: {what}",
    )
    return template_id, True


def template_versions(ctx: AwsContext, template_id: str) -> list[dict[str, Any]]:
    """Every version of the template (AWS keeps them until deleted), newest first."""
    found = ctx.pages(
        "ec2",
        "describe_launch_template_versions",
        "LaunchTemplateVersions",
        "read the launch template's versions",
        LaunchTemplateId=template_id,
    )
    return sorted(found, key=lambda version: -int(version["VersionNumber"]))


def version_with(ctx: AwsContext, template_id: str, description: str) -> int | None:
    """The newest version whose content digest is DESCRIPTION, if any."""
    for version in template_versions(ctx, template_id):
        if version.get("VersionDescription") == description:
            return int(version["VersionNumber"])
    return None


def make_default(ctx: AwsContext, template_id: str, version: int) -> None:
    ctx.call(
        "ec2",
        "modify_launch_template",
        "make a launch template version the default",
        LaunchTemplateId=template_id,
        DefaultVersion=str(version),
    )


def add_default_version(
    ctx: AwsContext, template_id: str, description: str, data: dict[str, Any]
) -> None:
    version = ctx.call(
        "ec2",
        "create_launch_template_version",
        "add a launch template version",
        LaunchTemplateId=template_id,
        VersionDescription=description,
        LaunchTemplateData=data,
    )["LaunchTemplateVersion"]["VersionNumber"]
    make_default(ctx, template_id, int(version))


# --- the group --------------------------------------------------------------------------


SCALING_GROUP = Lookup("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups")


def find_group(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.first(SCALING_GROUP, "find the scaling group", AutoScalingGroupNames=[name])


def tagged_groups(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    return names.tagged(
        ctx,
        "autoscaling",
        env,
        "describe_auto_scaling_groups",
        "list the scaling groups",
        "AutoScalingGroups",
    )


def desired_size(spec: FleetSpec) -> int:
    scaling = spec.autoscaling
    if not scaling.min_size <= spec.count <= scaling.max_size:
        raise errors.invalid(
            f"count {spec.count} is outside autoscaling min_size..max_size "
            f"({scaling.min_size}..{scaling.max_size})",
            "make min_size <= count <= max_size",
            "check the scaling group size",
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
    if spec.instance.release:
        group_tag_list.append(group_tag(name, TAG_RELEASE, spec.instance.release))
    return group_tag_list


def group_tag(name: str, key: str, value: str) -> dict[str, Any]:
    """A tag of the group itself (not given to its instances)."""
    return {
        "ResourceId": name,
        "ResourceType": "auto-scaling-group",
        "Key": key,
        "Value": value,
        "PropagateAtLaunch": False,
    }


def desired_tag(name: str, count: int) -> dict[str, Any]:
    return group_tag(name, names.TAG_DESIRED, str(count))


def ensure_group(
    ctx: AwsContext,
    spec: FleetSpec,
    template_id: str,
    subnet_ids: list[str],
    *,
    refresh: bool,
    log: ChangeLog,
) -> None:
    name = group_name(spec.env, spec.role)
    desired = desired_size(spec)
    group = find_group(ctx, name)
    settings = {
        "MinSize": spec.autoscaling.min_size,
        "MaxSize": spec.autoscaling.max_size,
        "VPCZoneIdentifier": ",".join(subnet_ids),
        "HealthCheckType": "ELB",
        "HealthCheckGracePeriod": ctx.options.health_check_grace_s,
    }
    if group is None:
        # No client token: a retry after a lost answer adopts the group by its name.
        log.create(
            "scaling_group",
            name,
            lambda: ctx.create(
                "autoscaling",
                "create_auto_scaling_group",
                "create the scaling group",
                adopt=lambda: find_group(ctx, name),
                AutoScalingGroupName=name,
                LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Default"},
                DesiredCapacity=desired,
                Tags=group_tags(spec, name),
                **settings,
            ),
            f"{spec.autoscaling.min_size}..{spec.autoscaling.max_size}, desired {desired}",
        )
        return
    update_group(ctx, spec, group, template_id, settings, log)
    if ctx.options.instance_refresh:
        template = find_template(ctx, name)
        version = str(template["DefaultVersionNumber"]) if template else None
        instance_refresh.ensure_rolled_out(
            ctx, group, template_id, version, template_changed=refresh, log=log
        )


def update_group(
    ctx: AwsContext,
    spec: FleetSpec,
    group: dict[str, Any],
    template_id: str,
    settings: dict[str, Any],
    log: ChangeLog,
) -> None:
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
    if remembered != str(spec.count):
        update["DesiredCapacity"] = spec.count
    if update:
        log.update(
            "scaling_group",
            name,
            lambda: apply_group_update(ctx, name, update, spec.count),
            ", ".join(sorted(update)),
        )


def apply_group_update(ctx: AwsContext, name: str, update: dict[str, Any], count: int) -> None:
    ctx.call(
        "autoscaling",
        "update_auto_scaling_group",
        "update the scaling group",
        AutoScalingGroupName=name,
        **update,
    )
    if "DesiredCapacity" in update:
        ctx.call(
            "autoscaling",
            "create_or_update_tags",
            "remember the scaling group's desired size",
            Tags=[desired_tag(name, count)],
        )


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
    ctx.delete(
        "autoscaling",
        "delete_auto_scaling_group",
        f"delete scaling group {name}",
        AutoScalingGroupName=name,
        ForceDelete=True,
    )
    ctx.wait_for(
        lambda: find_group(ctx, name) is None,
        f"scaling group {name} is deleted",
    )


def delete_template(ctx: AwsContext, template_id: str) -> None:
    ctx.delete(
        "ec2",
        "delete_launch_template",
        f"delete launch template {template_id}",
        LaunchTemplateId=template_id,
    )


def tagged_templates(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    return names.tagged_ec2(
        ctx, env, "describe_launch_templates", "list the launch templates", "LaunchTemplates"
    )


# --- target-tracking policies -----------------------------------------------------------


def policies(ctx: AwsContext, name: str) -> dict[str, dict[str, Any]]:
    """The group's scaling policies by name ({} before the group exists)."""
    found = ctx.call(
        "autoscaling",
        "describe_policies",
        "read the scaling policies",
        missing_ok=True,
        AutoScalingGroupName=name,
    ).get("ScalingPolicies", [])
    return {policy["PolicyName"]: policy for policy in found}


def ensure_target_tracking(
    ctx: AwsContext,
    group: str,
    policy_name: str,
    metric: dict[str, Any],
    target: float | None,
    log: ChangeLog,
) -> None:
    """Policy POLICY_NAME tracks METRIC at TARGET; TARGET None removes it."""
    current = policies(ctx, group).get(policy_name)
    if target is None:
        if current is not None:
            log.delete(
                "scaling_policy",
                policy_name,
                lambda: ctx.delete(
                    "autoscaling",
                    "delete_policy",
                    f"delete scaling policy {policy_name}",
                    AutoScalingGroupName=group,
                    PolicyName=policy_name,
                ),
            )
        return
    wanted = {"PredefinedMetricSpecification": metric, "TargetValue": float(target)}
    if current:
        config = current.get("TargetTrackingConfiguration", {})
        have = {
            "PredefinedMetricSpecification": config.get("PredefinedMetricSpecification"),
            "TargetValue": float(config.get("TargetValue", -1)),
        }
        if have == wanted:
            return
    log.apply(
        "update" if current else "create",
        "scaling_policy",
        policy_name,
        lambda: ctx.call(
            "autoscaling",
            "put_scaling_policy",
            f"set scaling policy {policy_name}",
            AutoScalingGroupName=group,
            PolicyName=policy_name,
            PolicyType="TargetTrackingScaling",
            TargetTrackingConfiguration=wanted,
        ),
        f"{metric['PredefinedMetricType']} target {target:g}",
    )


def ensure_cpu_policy(
    ctx: AwsContext, group: str, target_percent: float | None, log: ChangeLog
) -> None:
    metric = {"PredefinedMetricType": "ASGAverageCPUUtilization"}
    ensure_target_tracking(ctx, group, CPU_POLICY, metric, target_percent, log)


def request_count_label(load_balancer_arn: str, target_group_arn: str) -> str:
    """app/<alb>/<id>/targetgroup/<tg>/<id>: the ResourceLabel ALBRequestCountPerTarget needs."""
    alb_part = load_balancer_arn.split(":loadbalancer/", 1)[1]
    tg_part = target_group_arn.split(":", 5)[5]
    return f"{alb_part}/{tg_part}"


def ensure_request_policy(
    ctx: AwsContext, group: str, label: str, target: float | None, log: ChangeLog
) -> None:
    metric = {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}
    ensure_target_tracking(ctx, group, REQUESTS_POLICY, metric, target, log)


def ensure_target_groups(
    ctx: AwsContext, group: str, target_group_arn: str, log: ChangeLog
) -> None:
    """Attach the group to exactly TARGET_GROUP_ARN (its instances register themselves)."""
    current = find_group(ctx, group)
    attached = set((current or {}).get("TargetGroupARNs", []))
    stale = sorted(attached - {target_group_arn})
    if stale:
        log.update(
            "scaling_group",
            group,
            lambda: ctx.call(
                "autoscaling",
                "detach_load_balancer_target_groups",
                "detach the scaling group from an old target group",
                AutoScalingGroupName=group,
                TargetGroupARNs=stale,
            ),
            "detach old target group",
        )
    if target_group_arn not in attached:
        log.update(
            "scaling_group",
            group,
            lambda: ctx.call(
                "autoscaling",
                "attach_load_balancer_target_groups",
                "attach the scaling group to the target group",
                AutoScalingGroupName=group,
                TargetGroupARNs=[target_group_arn],
            ),
            "attach to the target group",
        )
