"""A release's machine image (AMI): found by its fingerprint, or baked on a builder instance.

Baking: a builder instance is launched in the environment's network from the fleet's base
image (Debian 12 unless InstanceSpec.image says otherwise), ImageSpec.configure applies
the roles to it over SSH, CreateImage makes the AMI (tagged with the environment, the
release and the fingerprint; its snapshots tagged too, once they exist), and the builder
is terminated whatever happened: a failed configure step, a failed image, Ctrl-C. A
builder left behind by a run that was killed outright is terminated by the next bake (and
by destroy: it carries the environment's tag).

An AMI tagged with the same fingerprint is reused, never baked again. The environment's
images beyond ImageSpec.keep_images (newest first, the release's own always kept) are
deregistered and their snapshots deleted.
"""

import datetime
from dataclasses import replace
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import errors, instances, names
from mlops_vm.provision.aws.client import AwsContext, Lookup
from mlops_vm.provision.aws.network import NetworkIds
from mlops_vm.provision.model import (
    FINGERPRINT_SHOWN,
    ROLE_IMAGE,
    ROLE_IMAGE_BUILDER,
    TAG_BAKED_AT,
    TAG_FINGERPRINT,
    TAG_RELEASE,
    FleetSpec,
    ImageResult,
    ImageSpec,
)


def image_name(image: ImageSpec) -> str:
    return f"mlops-vm-{image.env}-{image.fingerprint[:FINGERPRINT_SHOWN]}"


def builder_name(env: str) -> str:
    return names.base_name(env, ROLE_IMAGE_BUILDER)


def environment_images(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    """This account's AMIs of ENV (any state but gone), newest first."""
    found = ctx.call(
        "ec2",
        "describe_images",
        "list the environment's images",
        Owners=["self"],
        Filters=names.env_filters(env, ROLE_IMAGE),
    )["Images"]
    # Checked again: these are deregistered beyond keep_images.
    own = [raw for raw in found if names.has_tags(raw.get("Tags"), env, ROLE_IMAGE)]
    return sorted(own, key=baked_at, reverse=True)


def baked_at(raw: dict[str, Any]) -> tuple[str, str]:
    tag_set = names.as_dict(raw.get("Tags"))
    return tag_set.get(TAG_BAKED_AT, ""), raw.get("CreationDate", "")


def with_fingerprint(images: list[dict[str, Any]], fingerprint: str) -> dict[str, Any] | None:
    for raw in images:
        tagged = names.as_dict(raw.get("Tags")).get(TAG_FINGERPRINT) == fingerprint
        if tagged and raw.get("State") in ("available", "pending"):
            return raw
    return None


def image_tags(image: ImageSpec) -> dict[str, str]:
    tag_set = names.tag_dict(image.env, ROLE_IMAGE, image_name(image))
    tag_set[TAG_RELEASE] = image.release
    tag_set[TAG_FINGERPRINT] = image.fingerprint
    tag_set[TAG_BAKED_AT] = datetime.datetime.now(datetime.UTC).isoformat()
    return tag_set


def snapshot_ids(raw: dict[str, Any]) -> list[str]:
    return [
        mapping["Ebs"]["SnapshotId"]
        for mapping in raw.get("BlockDeviceMappings", [])
        if mapping.get("Ebs", {}).get("SnapshotId")
    ]


# --- the builder ------------------------------------------------------------------------


def builder_spec(fleet: FleetSpec) -> FleetSpec:
    """FLEET's instance as a builder: its own role (so no fleet or group counts it) and no
    user-data (the roles come over SSH)."""
    return replace(fleet, role=ROLE_IMAGE_BUILDER, instance=replace(fleet.instance, user_data=None))


def stale_builders(ctx: AwsContext, env: str) -> list[str]:
    return [raw["InstanceId"] for raw in instances.describe_instances(ctx, env, ROLE_IMAGE_BUILDER)]


def bake(
    ctx: AwsContext,
    fleet: FleetSpec,
    image: ImageSpec,
    ids: NetworkIds,
    settings: dict[str, Any],
) -> str:
    """Launch a builder, configure it, image it; the builder is terminated in every case.
    Returns the new AMI's id once it is available."""
    if image.configure is None:
        raise errors.invalid(
            f"no configure step to bake the image of {image.env}",
            "bake through `mlops-vm image build` or playbooks/image.yml (they apply the roles)",
            "bake the release image",
        )
    assert ids.instance_security_group_id is not None
    spec = builder_spec(fleet)
    name = builder_name(fleet.env)
    builder_id: str | None = None
    try:
        raw = instances.launch_instance(
            ctx, spec, name, ids.subnet_ids[0], ids.instance_security_group_id, settings
        )
        builder_id = raw["InstanceId"]
        instances.wait_running(ctx, [builder_id])
        [running] = instances.describe_by_ids(ctx, [builder_id])
        image.configure(instances.to_instance(running))
        image_id = ctx.call(
            "ec2",
            "create_image",
            "image the builder instance",
            InstanceId=builder_id,
            Name=image_name(image),
            Description=f"mlops-vm {image.env} release {image.release}",
            TagSpecifications=names.tag_specifications("image", image_tags(image)),
        )["ImageId"]
        available = wait_available(ctx, image_id)
    finally:
        if builder_id is not None:
            instances.terminate(ctx, [builder_id])
    tag_snapshots(ctx, available, image)
    return image_id


# The image this bake has just made: unlike images.IMAGE, an unknown id is an error here.
BAKED_IMAGE = Lookup("ec2", "describe_images", "Images")


def wait_available(ctx: AwsContext, image_id: str) -> dict[str, Any]:
    def read() -> tuple[str, str, dict[str, Any]]:
        raw = ctx.first(BAKED_IMAGE, f"read image {image_id}", ImageIds=[image_id])
        raw = raw or {}
        reason = raw.get("StateReason", {}).get("Message", "no reason given")
        return raw.get("State", ""), reason, raw

    return ctx.wait_for_state(
        read,
        "available",
        f"image {image_id}",
        fix="look at the builder's console output; run again to bake anew",
    )


def tag_snapshots(ctx: AwsContext, raw: dict[str, Any], image: ImageSpec) -> None:
    """The AMI's snapshots carry its tags (found and cleaned up with it)."""
    snapshots = snapshot_ids(raw)
    if snapshots:
        tag_set = names.tag_dict(image.env, ROLE_IMAGE, image_name(image))
        tag_set[TAG_RELEASE] = image.release
        ctx.call(
            "ec2",
            "create_tags",
            "tag the image's snapshots",
            Resources=snapshots,
            Tags=names.tag_list(tag_set),
        )


# --- clean-up ---------------------------------------------------------------------------


def deregister(ctx: AwsContext, raw: dict[str, Any]) -> None:
    """Deregister the AMI, then delete its snapshots (AWS keeps them otherwise)."""
    ctx.delete(
        "ec2", "deregister_image", f"deregister image {raw['ImageId']}", ImageId=raw["ImageId"]
    )
    for snapshot_id in snapshot_ids(raw):
        ctx.delete(
            "ec2",
            "delete_snapshot",
            f"delete snapshot {snapshot_id} of image {raw['ImageId']}",
            SnapshotId=snapshot_id,
        )


def describe(raw: dict[str, Any]) -> str:
    tag_set = names.as_dict(raw.get("Tags"))
    return f"{raw['ImageId']}, release {tag_set.get(TAG_RELEASE, '?')}"


def remove_old_images(
    ctx: AwsContext, old: list[dict[str, Any]], keep_others: int, log: ChangeLog
) -> None:
    """OLD (newest first, the release's own image not among them) beyond KEEP_OTHERS."""
    for raw in old[max(0, keep_others) :]:
        log.delete("image", raw.get("Name") or raw["ImageId"], lambda raw=raw: deregister(ctx, raw))


# --- the step ---------------------------------------------------------------------------


def ensure_release_image(
    ctx: AwsContext,
    fleet: FleetSpec,
    image: ImageSpec,
    ids: NetworkIds,
    settings: dict[str, Any],
    log: ChangeLog,
) -> ImageResult:
    """IMAGE's AMI, reused or baked (in a dry run: a stand-in id), with the environment's
    images beyond IMAGE.keep_images removed. SETTINGS: the fleet's launch settings (the
    base image, type, disk, key) the builder boots with."""
    name = image_name(image)
    images = environment_images(ctx, image.env)
    found = with_fingerprint(images, image.fingerprint)
    for builder_id in stale_builders(ctx, image.env):
        log.delete(
            "instance",
            f"{builder_name(image.env)} ({builder_id})",
            lambda builder_id=builder_id: instances.terminate(ctx, [builder_id]),
            "an image builder left behind",
        )
    if found is not None:
        result = ImageResult(image_id=found["ImageId"], name=name, reused=True)
    else:
        image_id = log.create(
            "image",
            name,
            lambda: bake(ctx, fleet, image, ids, settings),
            f"release {image.release}, baked on a builder instance that is then terminated",
            planned=names.planned("ami", name),
        )
        result = ImageResult(image_id=image_id, name=name, reused=False)
    others = [raw for raw in images if found is None or raw["ImageId"] != found["ImageId"]]
    remove_old_images(ctx, others, image.keep_images - 1, log)
    return result
