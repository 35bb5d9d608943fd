"""A release's machine image on Azure: a managed image, found by its fingerprint tag or baked.

A managed image (Microsoft.Compute/images), not a Compute Gallery version: an environment's
scale set runs in one region and one subscription, where a managed image is all a scale set
model needs, lives in the environment's resource group with its tags (found, listed and
deleted like every other resource of the environment), and costs no gallery and image
definition to keep. A gallery earns its keep for replication to other regions and sharing
across subscriptions, which this tool does not do.

Baking: a builder VM is created in the environment's subnet from the fleet's base image,
ImageSpec.configure applies the roles to it over SSH, the VM is deallocated and generalized,
the image is made from it (tagged env / role / release / fingerprint), and the builder's
VM, NIC and OS disk are deleted whatever happened: a failed configure step, a failed image,
Ctrl-C. A builder left behind by a run that was killed outright is deleted by the next bake.
The environment's images beyond ImageSpec.keep_images (newest first, the release's own
always kept) are deleted.
"""

from __future__ import annotations

import time
from dataclasses import replace

from mlops_vm.plan import ChangeLog
from mlops_vm.provision import model
from mlops_vm.provision.azure import instances
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.names import Names, has_tags, tags
from mlops_vm.provision.azure.network import Layout

IMAGES = "Microsoft.Compute/images"


def image_name(layout: Layout, image: model.ImageSpec) -> str:
    return f"{layout.names.prefix}-img-{image.fingerprint[: model.FINGERPRINT_SHOWN]}"


def builder_name(layout: Layout) -> str:
    return f"{layout.names.prefix}-{model.ROLE_IMAGE_BUILDER}"


def release_tags(image: model.ImageSpec) -> dict[str, str]:
    """What a release's image (and the scale set model that boots from it) is tagged with."""
    return {model.LABEL_RELEASE: image.release, model.LABEL_FINGERPRINT: image.fingerprint}


def environment_images(arm: Arm, layout: Layout, env: str) -> list[Json]:
    """ENV's images in its resource group, newest first (tags checked: these are deleted)."""
    found = arm.read_all(
        "list images", arm.compute.images.list_by_resource_group, layout.resource_group
    )
    own = [raw for raw in found if has_tags(raw, env, model.ROLE_IMAGE)]

    def baked_at(raw: Json) -> int:
        stamp = (raw.get("tags") or {}).get(model.LABEL_BAKED_AT, "0")
        return int(stamp) if stamp.isdigit() else 0

    return sorted(own, key=baked_at, reverse=True)


def with_fingerprint(images: list[Json], fingerprint: str) -> Json | None:
    for raw in images:
        state = str(raw.get("properties", {}).get("provisioningState", "Succeeded"))
        if (raw.get("tags") or {}).get(
            model.LABEL_FINGERPRINT
        ) == fingerprint and state == "Succeeded":
            return raw
    return None


# --- the builder ------------------------------------------------------------------------


def builder_spec(fleet: model.FleetSpec) -> model.FleetSpec:
    instance = replace(fleet.instance, user_data=None)
    return replace(fleet, role=model.ROLE_IMAGE_BUILDER, instance=instance, zones=())


def remove_builder(arm: Arm, group: str, name: str) -> None:
    """The builder's VM, then its NIC and OS disk (what is gone already counts)."""
    instances.delete_vms(arm, group, [name])
    instances.delete_nics(arm, group, [Names.nic(name)])
    instances.delete_disks(arm, group, [Names.os_disk(name)])


def bake(arm: Arm, layout: Layout, fleet: model.FleetSpec, image: model.ImageSpec) -> str:
    """Create a builder VM, configure it, deallocate and generalize it, image it; the builder
    is removed in every case. The image's id."""
    configure = image.configure_step("azure")
    group = layout.resource_group
    name = builder_name(layout)
    spec = builder_spec(fleet)
    disk_type = arm.options.os_disk_type
    try:
        instances.create_nics(arm, group, {Names.nic(name): instances.nic_body(layout, spec)})
        instances.create_vms(
            arm, group, {name: instances.vm_body(layout, spec, name, 0, disk_type)}
        )
        vm = arm.read("read image builder", arm.compute.virtual_machines.get, group, name)
        nics = {nic["id"].lower(): nic for nic in instances.list_nics(arm, group)}
        configure(instances.vm_instance(vm, nics))
        arm.run(
            "deallocate image builder", arm.compute.virtual_machines.begin_deallocate, group, name
        )
        arm.write("generalize image builder", arm.compute.virtual_machines.generalize, group, name)
        body = {
            "location": layout.location,
            "tags": {
                **tags(image.env, model.ROLE_IMAGE, release_tags(image)),
                model.LABEL_BAKED_AT: str(time.time_ns() // 1000),
            },
            "properties": {
                "sourceVirtualMachine": {"id": vm["id"]},
                "hyperVGeneration": "V2",
            },
        }
        made = arm.run(
            "create image",
            arm.compute.images.begin_create_or_update,
            group,
            image_name(layout, image),
            body,
        )
    finally:
        remove_builder(arm, group, name)
    return made["id"]


def delete_image(arm: Arm, group: str, name: str) -> None:
    arm.delete(f"delete image {name}", arm.compute.images.begin_delete, group, name)


# --- the step ---------------------------------------------------------------------------


def ensure_release_image(
    arm: Arm, layout: Layout, fleet: model.FleetSpec, image: model.ImageSpec, log: ChangeLog
) -> model.ImageResult:
    """IMAGE's managed image (its id), reused or baked, with the environment's images beyond
    IMAGE.keep_images deleted."""
    group = layout.resource_group
    name = image_name(layout, image)
    planned_id = layout.ids.of(IMAGES, name)
    images = environment_images(arm, layout, image.env)
    found = with_fingerprint(images, image.fingerprint)
    stale = [
        vm
        for vm in instances.list_vms(arm, group)
        if has_tags(vm, image.env, model.ROLE_IMAGE_BUILDER)
    ]
    for vm in stale:
        log.delete(
            "instance",
            vm["name"],
            lambda vm=vm: remove_builder(arm, group, vm["name"]),
            "an image builder left behind",
        )
    if found is not None:
        # The id as a bake writes it: the scale set model stays the same.
        result = model.ImageResult(
            image_id=layout.ids.of(IMAGES, found["name"]), name=found["name"], reused=True
        )
    else:
        log.create(
            "image",
            name,
            lambda: bake(arm, layout, fleet, image),
            f"release {image.release}, managed image of a generalized builder VM that is "
            "then deleted",
        )
        result = model.ImageResult(image_id=planned_id, name=name, reused=False)
    others = [raw for raw in images if found is None or raw["name"] != found["name"]]
    for raw in others[max(0, image.keep_images - 1) :]:
        log.delete("image", raw["name"], lambda raw=raw: delete_image(arm, group, raw["name"]))
    return result
