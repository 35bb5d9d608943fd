"""A release's machine image on GCP: found by its fingerprint label, or baked on a builder.

Baking: a builder instance is created in the environment's subnetwork from the fleet's
base image, ImageSpec.configure applies the roles to it over SSH, the builder is stopped
(a consistent disk), its boot disk becomes an image in the environment's family
(`mlops-vm-<env>-img`, labelled env / role / release / fingerprint), and the builder is
deleted with its disk whatever happened: a failed configure step, a failed image, Ctrl-C.
A builder left behind by a run that was killed outright is deleted by the next bake (and
by destroy: it carries the environment's label).

An image labelled with the same fingerprint is reused. The environment's images beyond
ImageSpec.keep_images (newest first, the release's own always kept) are deleted (a GCP
image owns its storage: nothing else to remove).
"""

import re
import time
from dataclasses import replace
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision import model
from mlops_vm.provision.gcp import instances
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.names import basename, description, label_filter, labels
from mlops_vm.provision.gcp.network import NetworkRefs

LABEL_VALUE_MAX = 63


def label_value(text: str) -> str:
    """TEXT as a label value (lowercase letters, digits, _ and -; at most 63)."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:LABEL_VALUE_MAX]


def family(ctx: Context) -> str:
    return f"{ctx.names.prefix}-img"


def image_name(ctx: Context, image: model.ImageSpec) -> str:
    return f"{family(ctx)}-{image.fingerprint[: model.FINGERPRINT_SHOWN]}"


def builder_name(ctx: Context) -> str:
    return f"{ctx.names.prefix}-{model.ROLE_IMAGE_BUILDER}"


def release_labels(image: model.ImageSpec) -> dict[str, str]:
    """What a release's image (and the instances its template makes) is labelled with."""
    return {
        model.LABEL_RELEASE: label_value(image.release),
        model.LABEL_FINGERPRINT: image.fingerprint[:LABEL_VALUE_MAX],
    }


def environment_images(ctx: Context, env: str) -> list[dict[str, Any]]:
    """ENV's images, newest first; labels checked again (these are deleted beyond keep)."""
    found = ctx.client.list_all(
        f"list images of {env}", "images", filter=label_filter(env, model.ROLE_IMAGE)
    )
    own = [raw for raw in found if instances.has_labels(raw, env, model.ROLE_IMAGE)]

    def baked_at(raw: dict[str, Any]) -> tuple[int, str]:
        stamp = (raw.get("labels") or {}).get(model.LABEL_BAKED_AT, "0")
        return int(stamp) if stamp.isdigit() else 0, raw.get("creationTimestamp", "")

    return sorted(own, key=baked_at, reverse=True)


def with_fingerprint(images: list[dict[str, Any]], fingerprint: str) -> dict[str, Any] | None:
    wanted = fingerprint[:LABEL_VALUE_MAX]
    for raw in images:
        if (raw.get("labels") or {}).get(model.LABEL_FINGERPRINT) == wanted and raw.get(
            "status"
        ) in (
            "READY",
            "PENDING",
        ):
            return raw
    return None


# --- the builder ------------------------------------------------------------------------


def builder_spec(fleet: model.FleetSpec) -> model.FleetSpec:
    return replace(
        fleet, role=model.ROLE_IMAGE_BUILDER, instance=replace(fleet.instance, user_data=None)
    )


def delete_builder(ctx: Context, name: str, zone: str) -> None:
    ctx.client.delete(
        f"delete image builder {name}",
        lambda s: s.instances().delete(project=ctx.project, zone=zone, instance=name),
    )


def bake(
    ctx: Context, fleet: model.FleetSpec, image: model.ImageSpec, refs: NetworkRefs, zone: str
) -> str:
    """Create a builder, configure it, stop it, image its disk; the builder is deleted in
    every case. The new image's self link."""
    configure = image.configure_step("gcp")
    name = builder_name(ctx)
    body = instances.instance_body(ctx, builder_spec(fleet), refs, zone, name)
    created = False
    try:
        ctx.client.mutate(
            f"create image builder {name}",
            lambda s: s.instances().insert(project=ctx.project, zone=zone, body=body),
        )
        created = True
        running = instances.wait_running(ctx, name, zone)
        configure(instances.to_instance(running))
        ctx.client.mutate(
            f"stop image builder {name}",
            lambda s: s.instances().stop(project=ctx.project, zone=zone, instance=name),
        )
        disk = running["disks"][0]["source"]
        image_body = {
            "name": image_name(ctx, image),
            "family": family(ctx),
            "description": f"{description(image.env, model.ROLE_IMAGE)}; release={image.release}",
            "sourceDisk": disk,
            "labels": {
                **labels(image.env, model.ROLE_IMAGE, release_labels(image)),
                model.LABEL_BAKED_AT: str(time.time_ns() // 1000),
            },
        }
        ctx.client.mutate(
            f"create image {image_body['name']}",
            lambda s: s.images().insert(project=ctx.project, body=image_body),
        )
    finally:
        if created:
            delete_builder(ctx, name, zone)
    return ctx.links.global_("images", image_name(ctx, image))


def delete_image(ctx: Context, name: str) -> None:
    ctx.client.delete(
        f"delete image {name}", lambda s: s.images().delete(project=ctx.project, image=name)
    )


# --- the step ---------------------------------------------------------------------------


def ensure_release_image(
    ctx: Context,
    fleet: model.FleetSpec,
    image: model.ImageSpec,
    refs: NetworkRefs,
    zone: str,
    log: ChangeLog,
) -> model.ImageResult:
    """IMAGE's image (its self link), reused or baked in ZONE, with the environment's images
    beyond IMAGE.keep_images deleted."""
    name = image_name(ctx, image)
    images = environment_images(ctx, image.env)
    found = with_fingerprint(images, image.fingerprint)
    for stale in instances.list_resources(ctx, image.env, model.ROLE_IMAGE_BUILDER):
        log.delete(
            "instance",
            stale["name"],
            lambda stale=stale: delete_builder(ctx, stale["name"], basename(stale["zone"])),
            "an image builder left behind",
        )
    if found is not None:
        link = ctx.links.global_("images", found["name"])  # as a bake's: the same template
        result = model.ImageResult(image_id=link, name=found["name"], reused=True)
    else:
        link = log.create(
            "image",
            name,
            lambda: bake(ctx, fleet, image, refs, zone),
            f"release {image.release} in family {family(ctx)}, baked on a builder "
            "that is then deleted",
            planned=ctx.links.global_("images", name),
        )
        result = model.ImageResult(image_id=link, name=name, reused=False)
    others = [raw for raw in images if found is None or raw["name"] != found["name"]]
    for raw in others[max(0, image.keep_images - 1) :]:
        log.delete("image", raw["name"], lambda raw=raw: delete_image(ctx, raw["name"]))
    return result
