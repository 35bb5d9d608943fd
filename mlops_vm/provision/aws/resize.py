"""Resizing one EC2 instance in place: stop, modify the instance type, start.

The instance type changes only while the instance is stopped; its private address, its
volumes and its data stay (the public address may change: the caller reads it again).
Checked before anything changes: the new type exists, is offered in the instance's zone
and runs the instance's CPU architecture, and, if it needs the ENA driver (Nitro types),
the instance has ENA enabled. The root volume grows online (modify-volume); it never shrinks.
"""

from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import instances, names
from mlops_vm.provision.aws.client import AwsContext, Lookup
from mlops_vm.provision.aws.validate import invalid, offered_in
from mlops_vm.provision.model import FleetSpec, Instance

INSTANCE_TYPE = Lookup("ec2", "describe_instance_types", "InstanceTypes", missing_ok=True)


def instance_type_info(ctx: AwsContext, machine_type: str) -> dict[str, Any]:
    found = ctx.first(INSTANCE_TYPE, "read the instance type", InstanceTypes=[machine_type])
    if found is None:
        raise invalid(
            f"instance type {machine_type!r} does not exist in {ctx.region}",
            "choose an instance type of aws ec2 describe-instance-types",
            "check the resize",
        )
    return found


def ena_enabled(raw: dict[str, Any], current: dict[str, Any]) -> bool:
    # An instance running on a type that requires ENA has it, whatever describe says.
    return bool(raw.get("EnaSupport")) or current["NetworkInfo"].get("EnaSupport") == "required"


def check_type_change(ctx: AwsContext, raw: dict[str, Any], name: str, wanted: str) -> None:
    """INVALID_INPUT when the instance cannot run WANTED (nothing changes here)."""
    new = instance_type_info(ctx, wanted)
    current = instance_type_info(ctx, raw["InstanceType"])
    architecture = raw.get("Architecture", "x86_64")
    supported = new["ProcessorInfo"]["SupportedArchitectures"]
    if architecture not in supported:
        raise invalid(
            f"{name} runs a {architecture} image; {wanted} runs {', '.join(supported)} only",
            f"choose a {architecture} instance type, or replace the fleet for the other "
            "architecture (another environment, or fleet.image and new instances)",
            "check the resize",
        )
    zone = raw.get("Placement", {}).get("AvailabilityZone")
    if zone and zone not in offered_in(ctx, wanted, [zone], "availability-zone"):
        raise invalid(
            f"{wanted} is not offered in {zone}, the zone of {name}",
            "choose a type offered there (aws ec2 describe-instance-type-offerings "
            "--location-type availability-zone); an instance cannot change zone in place",
            "check the resize",
        )
    if new["NetworkInfo"].get("EnaSupport") == "required" and not ena_enabled(raw, current):
        raise invalid(
            f"{name} does not have ENA enabled, which {wanted} requires",
            "enable it (aws ec2 modify-instance-attribute --ena-support, with the ENA driver "
            "in the image) or choose a type without ENA",
            "check the resize",
        )


def root_volume(ctx: AwsContext, raw: dict[str, Any]) -> dict[str, Any] | None:
    root = raw.get("RootDeviceName")
    ids = [
        mapping["Ebs"]["VolumeId"]
        for mapping in raw.get("BlockDeviceMappings", [])
        if "Ebs" in mapping and (mapping["DeviceName"] == root or root is None)
    ]
    if not ids:
        return None
    volumes = ctx.call("ec2", "describe_volumes", "read the root volume", VolumeIds=ids[:1])
    return volumes["Volumes"][0]


def disk_change(
    ctx: AwsContext, raw: dict[str, Any], name: str, wanted_gb: int
) -> tuple[str, Change] | None:
    volume = root_volume(ctx, raw)
    if volume is None or volume["Size"] == wanted_gb:
        return None
    if volume["Size"] > wanted_gb:
        raise invalid(
            f"{name}'s disk is {volume['Size']} GiB; disks grow but never shrink",
            f"set fleet.disk_gb to {volume['Size']} or more",
            "check the resize",
        )
    return volume["VolumeId"], Change(
        "update", "disk", name, f"grow {volume['Size']} -> {wanted_gb} GiB"
    )


def resize_instance(ctx: AwsContext, spec: FleetSpec, instance: Instance, log: ChangeLog) -> None:
    """One resize: the disk grown online, then the type changed (stop, modify, start);
    both checked before either changes."""
    [raw] = instances.describe_by_ids(ctx, [instance.id])
    if instances.ASG_TAG in names.as_dict(raw.get("Tags")):
        return  # a scaling group's: its launch template rolls
    wanted = spec.instance.machine_type
    changes: list[Change] = []
    if raw["InstanceType"] != wanted:
        check_type_change(ctx, raw, instance.name, wanted)
        changes.append(
            Change(
                "update",
                "instance",
                instance.name,
                f"resize {raw['InstanceType']} -> {wanted} (stop, modify, start)",
            )
        )
    disk = disk_change(ctx, raw, instance.name, spec.instance.disk_gb)
    if disk:
        changes.append(disk[1])

    def resize() -> None:
        if disk:
            ctx.call(
                "ec2",
                "modify_volume",
                f"grow the disk of {instance.name}",
                VolumeId=disk[0],
                Size=spec.instance.disk_gb,
            )
        if raw["InstanceType"] != wanted:
            change_type(ctx, instance, wanted)

    log.apply_all(changes, resize)


def change_type(ctx: AwsContext, instance: Instance, wanted: str) -> None:
    ctx.call("ec2", "stop_instances", f"stop {instance.name}", InstanceIds=[instance.id])
    wait_state(ctx, instance.id, "stopped")
    ctx.call(
        "ec2",
        "modify_instance_attribute",
        f"change the type of {instance.name}",
        InstanceId=instance.id,
        InstanceType={"Value": wanted},
    )
    ctx.call("ec2", "start_instances", f"start {instance.name}", InstanceIds=[instance.id])
    instances.wait_running(ctx, [instance.id])


def wait_state(ctx: AwsContext, instance_id: str, state: str) -> None:
    def reached() -> bool:
        [raw] = instances.describe_by_ids(ctx, [instance_id])
        return raw["State"]["Name"] == state

    ctx.wait_for(reached, f"instance {instance_id} is {state}")
