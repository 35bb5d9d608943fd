"""Checks made before anything is created: what the cloud would refuse, refused up front.

Local checks (names, labels, sizes, the certificate source) need no API; then read-only
calls: the region exists, each zone exists and belongs to it, the machine type is offered in
each zone (machineTypes.get), the image resolves, a reused network exists. Every failure is
ProvisionError(INVALID_INPUT) naming the field to fix.
"""

import re
from typing import Any

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp import load_balancer, network
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.provision.gcp.instances import image_link
from mlops_vm.provision.gcp.names import (
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    NAME_PATTERN,
    Names,
    basename,
    path_of,
)
from mlops_vm.provision.gcp.scaling_group import is_autoscaled
from mlops_vm.provision.machine_types import lookup
from mlops_vm.provision.model import FleetSpec, LoadBalancerSpec

_IMAGE_PATH = re.compile(r"projects/([^/]+)/global/images/(?:family/([^/]+)|([^/]+))")


def invalid(message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT, message, hint=hint, provider=PROVIDER, operation="validate"
    )


def check_local(names: Names, fleet: FleetSpec, lb: LoadBalancerSpec | None) -> None:
    """No API call: names, labels, sizes, the load balancer's settings."""
    longest = names.longest(fleet.role)
    if not NAME_PATTERN.fullmatch(longest):
        raise invalid(
            f"environment {fleet.env!r} / role {fleet.role!r} make the resource name "
            f"{longest!r}, which GCP refuses (lowercase letters, digits and '-', at most 63)",
            "use a shorter, lowercase environment name (e.g. 'prod', 'staging-eu')",
        )
    for key, value in {**fleet.instance.tags, "env": fleet.env, "role": fleet.role}.items():
        if not LABEL_KEY_PATTERN.fullmatch(key) or not LABEL_VALUE_PATTERN.fullmatch(value):
            raise invalid(
                f"label {key}={value!r} is not a valid GCP label",
                "label keys: lowercase letter first, then [a-z0-9_-], at most 63; values "
                "[a-z0-9_-] only",
            )
    if fleet.count < 0:
        raise invalid(f"count {fleet.count} is negative", "set count to 0 or more")
    if fleet.mode == "scaling_group" and is_autoscaled(fleet.autoscaling):
        bounds = fleet.autoscaling
        if not 0 <= bounds.min_size <= bounds.max_size or bounds.max_size < 1:
            raise invalid(
                f"autoscaling min_size {bounds.min_size} / max_size {bounds.max_size}",
                "use 0 <= min_size <= max_size and max_size >= 1",
            )
        cpu = bounds.target_cpu_percent
        if cpu is not None and not 0 < cpu <= 100:
            raise invalid(f"target_cpu_percent {cpu} is out of range", "use a value in (0, 100]")
    if fleet.instance.disk_gb < 10:
        raise invalid(
            f"disk_gb {fleet.instance.disk_gb} is below the 10 GB Debian image",
            "set disk_gb to 10 or more",
        )
    if lb is not None:
        load_balancer.check_spec(lb, fleet.service_port)


def check_remote(ctx: Context, fleet: FleetSpec, zones: list[str]) -> None:
    for zone in zones:
        found = ctx.client.get(
            f"read zone {zone}", lambda s, z=zone: s.zones().get(project=ctx.project, zone=z)
        )
        if found is None or basename(found.get("region", "")) != ctx.region:
            raise invalid(
                f"zone {zone} does not exist in region {ctx.region}",
                f"list the zones of {ctx.region} in FleetSpec.zones "
                f"(gcloud compute zones list --filter=region:{ctx.region})",
            )
        machine_type = fleet.instance.machine_type
        offered = ctx.client.get(
            f"read machine type {machine_type} in {zone}",
            lambda s, z=zone, m=machine_type: s.machineTypes().get(
                project=ctx.project, zone=z, machineType=m
            ),
        )
        if offered is None:
            raise invalid(
                f"machine type {machine_type} is not offered in zone {zone}",
                "pick another machine type or other zones (gcloud compute machine-types list "
                f"--filter=zone:{zone})",
            )
        check_gpus_in_zone(ctx, fleet, zone)
    _check_image(ctx, image_link(fleet.instance))
    network.existing_refs(ctx, fleet.network)


def check_gpus_in_zone(ctx: Context, fleet: FleetSpec, zone: str) -> None:
    """The GPU the instances get (attached, or built into G2/A2) exists in ZONE, and the
    count attached is no more than one instance can take."""
    machine = lookup("gcp", fleet.instance.machine_type)
    gpu = fleet.instance.accelerator_type or (machine.gpu if machine else None)
    if not gpu:
        return
    found = ctx.client.get(
        f"read accelerator type {gpu} in {zone}",
        lambda s: s.acceleratorTypes().get(project=ctx.project, zone=zone, acceleratorType=gpu),
    )
    if found is None:
        raise invalid(
            f"GPU {gpu} is not offered in zone {zone}",
            "list zones that have it in fleet.zones (gcloud compute accelerator-types list "
            f"--filter=name:{gpu}), or choose another GPU type",
        )
    most = int(found.get("maximumCardsPerInstance", 0))
    if fleet.instance.accelerator_type and fleet.instance.accelerator_count > most:
        raise invalid(
            f"{fleet.instance.accelerator_count} x {gpu} per instance: {zone} allows {most}",
            f"set fleet.accelerator.count to at most {most}",
        )


def _check_image(ctx: Context, image: str) -> None:
    match = _IMAGE_PATH.fullmatch(path_of(image))
    if match is None:
        raise invalid(
            f"image {image!r} is not an image URL",
            "use projects/<project>/global/images/family/<family>, .../images/<name>, or a "
            "bare debian-cloud family name such as debian-12",
        )
    project, family, name = match.groups()

    def request(s: Any) -> Any:
        if family:
            return s.images().getFromFamily(project=project, family=family)
        return s.images().get(project=project, image=name)

    if ctx.client.get(f"read image {image}", request) is None:
        raise invalid(
            f"image {image} does not exist", "check InstanceSpec.image (gcloud compute images list)"
        )


def region_zones(ctx: Context) -> list[str]:
    """The region's zones (raises INVALID_INPUT when the region does not exist)."""
    region = ctx.client.get(
        f"read region {ctx.region}",
        lambda s: s.regions().get(project=ctx.project, region=ctx.region),
    )
    if region is None:
        raise invalid(
            f"region {ctx.region} does not exist (or is not visible to project {ctx.project})",
            "set ProviderSettings.region to a Compute Engine region, e.g. europe-west1",
        )
    return sorted(basename(zone) for zone in region.get("zones", []))
