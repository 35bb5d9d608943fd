"""Resizing one Compute Engine instance in place: stop, setMachineType, start.

The machine type changes only while the instance is stopped (TERMINATED); its internal
address, disks and data stay. A GPU machine type (G2, A2) needs onHostMaintenance
TERMINATE, set while stopped too. Checked before anything changes: the machine type is
offered in the instance's zone. The boot disk grows online (disks.resize); it never
shrinks. A managed instance group's instances roll through the MIG's template instead.
"""

from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.gpus import GPU_SCHEDULING, needs_terminate
from mlops_vm.provision.gcp.instances import manager_of, wait_running
from mlops_vm.provision.gcp.names import basename
from mlops_vm.provision.gcp.validate import invalid
from mlops_vm.provision.model import FleetSpec, Instance


def read_instance(ctx: Context, instance: Instance) -> dict[str, Any]:
    return ctx.client.execute(
        f"read instance {instance.name}",
        lambda s: s.instances().get(
            project=ctx.project, zone=instance.zone, instance=instance.name
        ),
    )


def check_offered(ctx: Context, instance: Instance, machine_type: str) -> None:
    offered = ctx.client.get(
        f"read machine type {machine_type}",
        lambda s: s.machineTypes().get(
            project=ctx.project, zone=instance.zone, machineType=machine_type
        ),
    )
    if offered is None:
        raise invalid(
            f"machine type {machine_type!r} is not offered in {instance.zone}, the zone of "
            f"{instance.name}",
            "choose a machine type of that zone (gcloud compute machine-types list "
            f"--zones {instance.zone}); an instance cannot change zone in place",
        )


def boot_disk(ctx: Context, instance: Instance, resource: dict[str, Any]) -> dict[str, Any]:
    [disk] = [d for d in resource.get("disks", []) if d.get("boot")]
    name = basename(disk["source"])
    return ctx.client.execute(
        f"read disk {name}",
        lambda s: s.disks().get(project=ctx.project, zone=instance.zone, disk=name),
    )


def disk_growth(
    ctx: Context, instance: Instance, resource: dict[str, Any], wanted_gb: int
) -> tuple[str, str] | None:
    """(the boot disk's name, what growing it means), or None when it has WANTED_GB."""
    disk = boot_disk(ctx, instance, resource)
    size = int(disk["sizeGb"])
    if size == wanted_gb:
        return None
    if size > wanted_gb:
        raise invalid(
            f"{instance.name}'s disk is {size} GB; disks grow but never shrink",
            f"set fleet.disk_gb to {size} or more",
        )
    return disk["name"], f"grow {size} -> {wanted_gb} GB"


def resize_instance(
    ctx: Context, spec: FleetSpec, instance: Instance, *, dry_run: bool
) -> list[Change]:
    resource = read_instance(ctx, instance)
    if manager_of(resource):
        return []  # a managed instance group's: its template rolls
    current, wanted = basename(resource["machineType"]), spec.instance.machine_type
    # Both checked before anything changes.
    if current != wanted:
        check_offered(ctx, instance, wanted)
    disk = disk_growth(ctx, instance, resource, spec.instance.disk_gb)
    log = ChangeLog(dry_run=dry_run)
    if disk:
        name, detail = disk
        grow = {"sizeGb": str(spec.instance.disk_gb)}
        log.update(
            "disk",
            instance.name,
            lambda: ctx.client.mutate(
                f"grow disk {name}",
                lambda s: s.disks().resize(
                    project=ctx.project, zone=instance.zone, disk=name, body=grow
                ),
            ),
            detail,
        )
    if current != wanted:
        log.update(
            "instance",
            instance.name,
            lambda: change_machine_type(ctx, spec, instance, resource, wanted),
            f"resize {current} -> {wanted} (stop, setMachineType, start)",
        )
    return log.changes


def change_machine_type(
    ctx: Context, spec: FleetSpec, instance: Instance, resource: dict[str, Any], wanted: str
) -> None:
    def on_instance(method: str, **body: Any):
        def request(s):
            call = getattr(s.instances(), method)
            params = {"project": ctx.project, "zone": instance.zone, "instance": instance.name}
            return call(**params, body=body) if body else call(**params)

        return request

    ctx.client.mutate(f"stop instance {instance.name}", on_instance("stop"))
    scheduling = resource.get("scheduling") or {}
    if (
        needs_terminate(wanted, spec.instance.accelerator_type)
        and scheduling.get("onHostMaintenance") != "TERMINATE"
    ):
        ctx.client.mutate(
            f"set the scheduling of {instance.name}",
            on_instance("setScheduling", **{**scheduling, **GPU_SCHEDULING}),
        )
    ctx.client.mutate(
        f"change the machine type of {instance.name}",
        on_instance("setMachineType", machineType=f"zones/{instance.zone}/machineTypes/{wanted}"),
    )
    ctx.client.mutate(f"start instance {instance.name}", on_instance("start"))
    wait_running(ctx, instance.name, instance.zone or "")
