"""Fleet mode: exactly `count` VMs, each with its NIC (no public IP) and managed OS disk.

VMs are numbered (<env>-<role>-0, -1, ...). Shrinking deletes the highest numbers first,
with their NIC and OS disk; growing fills the lowest free numbers. Existing VMs are left as
they are: Azure does not allow changing a VM's image or custom data in place, and a fleet's
instances are configured over SSH by Ansible, not at boot.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.azure.client import Arm, Json, lro_deleter
from mlops_vm.provision.azure.names import (
    IMAGE_OS_DISK_GB,
    IP_CONFIG,
    Names,
    has_tags,
    image_reference,
    name_of,
    same_id,
    tags,
)
from mlops_vm.provision.azure.network import Layout
from mlops_vm.provision.model import LABEL_ROLE, FleetSpec, Instance, InstanceSpec, InstanceStatus

POWER_STATES = {
    "running": InstanceStatus.RUNNING,
    "starting": InstanceStatus.PENDING,
    "stopping": InstanceStatus.STOPPING,
    "deallocating": InstanceStatus.STOPPING,
    "stopped": InstanceStatus.STOPPED,
    "deallocated": InstanceStatus.STOPPED,
}
PROVISIONING_STATES = {
    "creating": InstanceStatus.PENDING,
    "updating": InstanceStatus.PENDING,
    "deleting": InstanceStatus.STOPPING,
    "failed": InstanceStatus.UNKNOWN,
}


# -- SDK calls -------------------------------------------------------------------------------


def list_vms(arm: Arm, group: str) -> list[Json]:
    return arm.read_all(
        "list virtual machines", arm.compute.virtual_machines.list, group, expand="instanceView"
    )


def list_nics(arm: Arm, group: str) -> list[Json]:
    return arm.read_all("list network interfaces", arm.network.network_interfaces.list, group)


def list_disks(arm: Arm, group: str) -> list[Json]:
    return arm.read_all("list disks", arm.compute.disks.list_by_resource_group, group)


def create_nics(arm: Arm, group: str, bodies: dict[str, Json]) -> None:
    arm.run_all(
        "create network interface",
        arm.network.network_interfaces.begin_create_or_update,
        [(group, name, body) for name, body in bodies.items()],
    )


def create_vms(arm: Arm, group: str, bodies: dict[str, Json]) -> None:
    arm.run_all(
        "create virtual machine",
        arm.compute.virtual_machines.begin_create_or_update,
        [(group, name, body) for name, body in bodies.items()],
    )


def tag_disks(arm: Arm, group: str, disk_tags: dict[str, dict[str, str]]) -> None:
    # Azure does not copy a VM's tags to the OS disk it creates; tag it so that the disk is
    # found (and cleaned up) by its environment like everything else.
    arm.run_all(
        "tag OS disk",
        arm.compute.disks.begin_update,
        [(group, name, {"tags": value}) for name, value in disk_tags.items()],
    )


delete_vms = lro_deleter(
    "delete virtual machine", lambda a: a.compute.virtual_machines.begin_delete
)
delete_nics = lro_deleter(
    "delete network interface", lambda a: a.network.network_interfaces.begin_delete
)
delete_disks = lro_deleter("delete disk", lambda a: a.compute.disks.begin_delete)


# -- desired state ---------------------------------------------------------------------------


def custom_data(user_data: str | None) -> str | None:
    """ARM wants customData base64-encoded; cloud-init reads it at first boot."""
    return base64.b64encode(user_data.encode()).decode() if user_data is not None else None


def linux_configuration(instance: InstanceSpec) -> Json:
    return {
        "disablePasswordAuthentication": True,
        "ssh": {
            "publicKeys": [
                {
                    "path": f"/home/{instance.ssh_user}/.ssh/authorized_keys",
                    "keyData": (instance.ssh_public_key or "").strip(),
                }
            ]
        },
    }


def os_profile(instance: InstanceSpec, **computer_name: str) -> Json:
    """The OS profile of one VM (computerName=...) or of a scale set's (computerNamePrefix=...)."""
    profile: Json = {
        **computer_name,
        "adminUsername": instance.ssh_user,
        "linuxConfiguration": linux_configuration(instance),
    }
    data = custom_data(instance.user_data)
    if data is not None:
        profile["customData"] = data
    return profile


def os_disk_size_gb(instance: InstanceSpec) -> int:
    return max(instance.disk_gb, IMAGE_OS_DISK_GB)


def nic_body(layout: Layout, spec: FleetSpec) -> Json:
    properties: Json = {
        "ipConfigurations": [
            {
                "name": IP_CONFIG,
                "properties": {
                    "subnet": {"id": layout.instance_subnet_id},
                    "privateIPAllocationMethod": "Dynamic",
                    "primary": True,
                },
            }
        ]
    }
    if layout.nic_nsg_id:
        properties["networkSecurityGroup"] = {"id": layout.nic_nsg_id}
    return {
        "location": layout.location,
        "tags": tags(spec.env, spec.role, spec.instance.tags),
        "properties": properties,
    }


def vm_body(layout: Layout, spec: FleetSpec, vm_name: str, index: int, disk_type: str) -> Json:
    instance = spec.instance
    body: Json = {
        "location": layout.location,
        "tags": tags(spec.env, spec.role, instance.tags),
        "properties": {
            "hardwareProfile": {"vmSize": instance.machine_type},
            "storageProfile": {
                "imageReference": image_reference(instance.image),
                "osDisk": {
                    "name": Names.os_disk(vm_name),
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "diskSizeGB": os_disk_size_gb(instance),
                    "managedDisk": {"storageAccountType": disk_type},
                },
            },
            "osProfile": os_profile(instance, computerName=vm_name),
            "networkProfile": {
                "networkInterfaces": [
                    {"id": layout.ids.nic(Names.nic(vm_name)), "properties": {"primary": True}}
                ]
            },
        },
    }
    if spec.zones:
        body["zones"] = [spec.zones[index % len(spec.zones)]]
    return body


# -- convergence -----------------------------------------------------------------------------


def split_fleet(arm: Arm, layout: Layout, spec: FleetSpec) -> tuple[list[Json], list[Json]]:
    """(the VMs kept, the surplus ones) for fleet.count: the lowest numbers stay."""
    names = layout.names
    ours = [vm for vm in list_vms(arm, layout.resource_group) if has_tags(vm, spec.env, spec.role)]
    ours.sort(key=lambda vm: (names.vm_index(vm["name"]) is None, names.vm_index(vm["name"]) or 0))
    return ours[: spec.count], ours[spec.count :]


def surplus_instances(arm: Arm, layout: Layout, spec: FleetSpec) -> list[Instance]:
    """The VMs a smaller fleet.count removes, in converge_fleet's order (highest first)."""
    _, surplus = split_fleet(arm, layout, spec)
    if not surplus:
        return []
    nics = {nic["id"].lower(): nic for nic in list_nics(arm, layout.resource_group)}
    return [vm_instance(vm, nics) for vm in reversed(surplus)]


def converge_fleet(
    arm: Arm, layout: Layout, spec: FleetSpec, log: ChangeLog, *, disk_type: str
) -> list[str]:
    """Exactly spec.count VMs; returns the names of those it creates (or plans to)."""
    names = layout.names
    group = layout.resource_group
    keep, surplus = split_fleet(arm, layout, spec)
    used = {names.vm_index(vm["name"]) for vm in keep}
    free = (i for i in itertools.count() if i not in used)
    new = {names.vm(index): index for index in [next(free) for _ in range(spec.count - len(keep))]}
    remove_vms(arm, group, list(reversed(surplus)), log)
    remove_orphans(arm, layout, spec, set(new), log)
    add_vms(arm, layout, spec, new, log, disk_type=disk_type)
    return sorted(new)


def remove_vms(arm: Arm, group: str, vms: list[Json], log: ChangeLog) -> None:
    """Delete VMs, then their NICs, then their OS disks (each waits for the one before)."""
    nics: list[str] = []
    disks: list[str] = []
    for vm in vms:
        props = vm["properties"]
        nics += [name_of(nic["id"]) for nic in props["networkProfile"]["networkInterfaces"]]
        disk_id = props["storageProfile"]["osDisk"].get("managedDisk", {}).get("id")
        if disk_id:
            disks.append(name_of(disk_id))
    log.apply_all(
        [
            Change("delete", "instance", vm["name"], vm["properties"]["hardwareProfile"]["vmSize"])
            for vm in vms
        ],
        lambda: delete_vms(arm, group, [vm["name"] for vm in vms]),
    )
    log.apply_all(
        [Change("delete", "network_interface", nic) for nic in nics],
        lambda: delete_nics(arm, group, nics),
    )
    log.apply_all(
        [Change("delete", "disk", disk, "OS disk") for disk in disks],
        lambda: delete_disks(arm, group, disks),
    )


def remove_orphans(
    arm: Arm, layout: Layout, spec: FleetSpec, about_to_create: set[str], log: ChangeLog
) -> None:
    """NICs and disks of this fleet whose VM is gone (an interrupted run): they would block
    re-creating the VM under the same name, or just cost money."""
    group = layout.resource_group
    expected = {Names.nic(name) for name in about_to_create}
    orphan_nics = [
        nic["name"]
        for nic in list_nics(arm, group)
        if has_tags(nic, spec.env, spec.role)
        and not nic["properties"].get("virtualMachine")
        and nic["name"] not in expected
    ]
    # A disk left by a VM deleted before its disk was tagged blocks that VM's name: its
    # name says whose it is.
    blocking = {Names.os_disk(name) for name in about_to_create}
    orphan_disks = [
        disk["name"]
        for disk in list_disks(arm, group)
        if not disk.get("managedBy")
        and (has_tags(disk, spec.env, spec.role) or disk["name"] in blocking)
    ]
    log.apply_all(
        [Change("delete", "network_interface", n, "orphaned") for n in orphan_nics],
        lambda: delete_nics(arm, group, orphan_nics),
    )
    log.apply_all(
        [Change("delete", "disk", d, "orphaned") for d in orphan_disks],
        lambda: delete_disks(arm, group, orphan_disks),
    )


def add_vms(
    arm: Arm,
    layout: Layout,
    spec: FleetSpec,
    new: dict[str, int],
    log: ChangeLog,
    *,
    disk_type: str,
) -> None:
    size = spec.instance.machine_type
    image = spec.instance.image or "Debian 12 (default)"
    group = layout.resource_group
    log.apply_all(
        [Change("create", "network_interface", Names.nic(vm), "no public IP") for vm in new],
        lambda: create_nics(arm, group, {Names.nic(vm): nic_body(layout, spec) for vm in new}),
    )

    def create() -> None:
        create_vms(
            arm,
            group,
            {vm: vm_body(layout, spec, vm, index, disk_type) for vm, index in new.items()},
        )
        disk_tags = tags(spec.env, spec.role, spec.instance.tags)
        tag_disks(arm, group, {Names.os_disk(vm): disk_tags for vm in new})

    log.apply_all([Change("create", "instance", vm, f"{size}, {image}") for vm in new], create)


# -- records ---------------------------------------------------------------------------------


def vm_status(vm: Json) -> InstanceStatus:
    props = vm.get("properties", {})
    provisioning = str(props.get("provisioningState", "")).lower()
    if provisioning in PROVISIONING_STATES:
        return PROVISIONING_STATES[provisioning]
    for status in props.get("instanceView", {}).get("statuses", []):
        code = str(status.get("code", ""))
        if code.startswith("PowerState/"):
            return POWER_STATES.get(code.split("/", 1)[1], InstanceStatus.UNKNOWN)
    return InstanceStatus.UNKNOWN


def primary_private_ip(nic: Json | None) -> str | None:
    if not nic:
        return None
    configs = nic.get("properties", {}).get("ipConfigurations", [])
    primary = next((c for c in configs if c.get("properties", {}).get("primary")), None)
    chosen = primary or (configs[0] if configs else {})
    return chosen.get("properties", {}).get("privateIPAddress")


def vm_instance(vm: Json, nics_by_id: dict[str, Json]) -> Instance:
    props = vm["properties"]
    nic_refs = props.get("networkProfile", {}).get("networkInterfaces", [])
    nic = nics_by_id.get(nic_refs[0]["id"].lower()) if nic_refs else None
    vm_tags: dict[str, Any] = vm.get("tags") or {}
    return Instance(
        id=vm["id"],
        name=vm["name"],
        status=vm_status(vm),
        private_ip=primary_private_ip(nic),
        public_ip=None,
        zone=(vm.get("zones") or [None])[0],
        role=vm_tags.get(LABEL_ROLE, ""),
        connection="ssh",
        ssh_user=props.get("osProfile", {}).get("adminUsername"),
        tags=dict(vm_tags),
    )


def fleet_instances(arm: Arm, group: str, env: str, role: str | None) -> list[Instance]:
    vms = [vm for vm in list_vms(arm, group) if has_tags(vm, env, role)]
    if not vms:
        return []
    nics = {nic["id"].lower(): nic for nic in list_nics(arm, group)}
    return [vm_instance(vm, nics) for vm in vms]


def nic_of(vm: Json) -> str | None:
    refs = vm.get("properties", {}).get("networkProfile", {}).get("networkInterfaces", [])
    return refs[0]["id"] if refs else None


def is_vm_of(nic: Json, vm_ids: set[str]) -> bool:
    owner = (nic.get("properties", {}).get("virtualMachine") or {}).get("id")
    return any(same_id(owner, vm_id) for vm_id in vm_ids)
