"""Resizing one Azure VM in place, deallocating it only where Azure needs it.

A running VM takes a size of its current hardware cluster (list_available_sizes) in one
update, which restarts it; another size needs the VM deallocated first, then started
again. Growing the OS disk needs it deallocated too; a disk never shrinks. Checked before
anything changes: the size is offered in the location and not restricted for the
subscription (validate.check_vm_size). A scale set's instances roll through its model.
"""

from dataclasses import replace

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.instances import os_disk_size_gb
from mlops_vm.provision.azure.names import name_of, resource_group_of
from mlops_vm.provision.azure.validate import check_vm_size, invalid
from mlops_vm.provision.model import FleetSpec, Instance


def sizes_in_place(arm: Arm, group: str, name: str) -> set[str]:
    """The sizes VM NAME can take without deallocation."""
    sizes = arm.read_all(
        f"list the sizes of {name}", arm.compute.virtual_machines.list_available_sizes, group, name
    )
    return {size["name"].lower() for size in sizes}


def disk_growth(vm: Json, spec: FleetSpec) -> int | None:
    """The OS disk's new size, or None; INVALID_INPUT for a smaller one."""
    current = vm["properties"]["storageProfile"]["osDisk"].get("diskSizeGB")
    wanted = os_disk_size_gb(spec.instance)
    if current is None or current == wanted:
        return None
    if current > wanted:
        raise invalid(
            f"{vm['name']}'s OS disk is {current} GiB; disks grow but never shrink",
            f"set fleet.disk_gb to {current} or more",
        )
    return wanted


def resize_instance(
    arm: Arm, spec: FleetSpec, instance: Instance, *, dry_run: bool
) -> list[Change]:
    if "/virtualmachinescalesets/" in instance.id.lower():
        return []  # a scale set's: its model rolls
    group, name = resource_group_of(instance.id), name_of(instance.id)
    vm = arm.read(f"read VM {name}", arm.compute.virtual_machines.get, group, name)
    current, wanted = vm["properties"]["hardwareProfile"]["vmSize"], spec.instance.machine_type
    resizing = current.lower() != wanted.lower()
    in_place = True
    changes: list[Change] = []
    if resizing:
        check_vm_size(arm, replace(spec, zones=tuple(vm.get("zones") or ())))
        in_place = wanted.lower() in sizes_in_place(arm, group, name)
        how = "in place, Azure restarts it" if in_place else "deallocate, resize, start"
        changes.append(Change("update", "instance", name, f"resize {current} -> {wanted} ({how})"))
    grown = disk_growth(vm, spec)
    if grown:
        old = vm["properties"]["storageProfile"]["osDisk"]["diskSizeGB"]
        changes.append(Change("update", "disk", name, f"grow {old} -> {grown} GiB (deallocated)"))
    deallocate = grown is not None or not in_place
    update: Json = {"properties": {}}
    if resizing:
        update["properties"]["hardwareProfile"] = {"vmSize": wanted}
    if grown:
        update["properties"]["storageProfile"] = {"osDisk": {"diskSizeGB": grown}}

    def resize() -> None:
        if deallocate:
            arm.run(
                f"deallocate VM {name}", arm.compute.virtual_machines.begin_deallocate, group, name
            )
        arm.run(f"resize VM {name}", arm.compute.virtual_machines.begin_update, group, name, update)
        if deallocate:
            arm.run(f"start VM {name}", arm.compute.virtual_machines.begin_start, group, name)

    log = ChangeLog(dry_run=dry_run)
    log.apply_all(changes, resize)
    return log.changes
