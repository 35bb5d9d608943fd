"""An Auto Scaling group's release record: what it serves and what that replaced.

Each launch template version tags the instances it launches with its release
(mlops-vm/release, scaling_group.template_data). The group itself carries its release and
the one it replaced (mlops-vm/previous-release), rewritten whenever the release changes.
`rollback` is a release of the previous one, through the same path (a template version
made the default, an instance refresh): AWS keeps every template version and
scaling_group.ensure_launch_template makes the version with the same content the default
again, so the group goes back to the very version it ran before, and a second rollback
goes forward again.
"""

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import names, scaling_group
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import ROLE_MODEL, TAG_PREVIOUS_RELEASE, TAG_RELEASE, FleetSpec


def releases(group: dict) -> tuple[str | None, str | None]:
    """(the release, the previous one) recorded on GROUP."""
    tags = names.as_dict(group.get("Tags"))
    return tags.get(TAG_RELEASE), tags.get(TAG_PREVIOUS_RELEASE)


def record_release(ctx: AwsContext, spec: FleetSpec, log: ChangeLog) -> None:
    """The group's release becomes SPEC's, the one it had becomes the previous one. A group
    made by this run has its release tag from its creation (scaling_group.group_tags)."""
    release = spec.instance.release
    name = scaling_group.group_name(spec.env, spec.role)
    group = scaling_group.find_group(ctx, name)
    if not release or group is None:
        return
    current, _ = releases(group)
    if current == release:
        return
    tags = [scaling_group.group_tag(name, TAG_RELEASE, release)]
    if current:
        tags.append(scaling_group.group_tag(name, TAG_PREVIOUS_RELEASE, current))
    log.update(
        "scaling_group",
        name,
        lambda: ctx.call(
            "autoscaling",
            "create_or_update_tags",
            "record the scaling group's release",
            Tags=tags,
        ),
        f"release {release}" + (f" (previous: {current})" if current else ""),
    )


def model_group(ctx: AwsContext, env: str) -> dict | None:
    """ENV's scaling group of model instances, None when it has none."""
    return scaling_group.find_group(ctx, scaling_group.group_name(env, ROLE_MODEL))


def previous_release(ctx: AwsContext, env: str) -> str | None:
    group = model_group(ctx, env)
    return releases(group)[1] if group else None
