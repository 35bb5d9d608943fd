"""Delete an environment: the resource group it owns in one go (ARM deletes the contents in
dependency order), or, in a reused group, its tagged resources one kind at a time, users
before what they use: autoscale, scale sets, VMs, NICs, disks, baked images, gateway,
public IP, virtual network, managed identity, storage account, NSG. The role assignments of
the scale set's identity go first, in either case: they sit on vaults and registries
outside the group. What is already gone counts as deleted, so a second
destroy does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.azure import (
    boot_payload,
    generic,
    instance_identity,
    instances,
    scaling_group,
)
from mlops_vm.provision.azure.client import Arm, Json, lro_deleter
from mlops_vm.provision.azure.errors import status_of
from mlops_vm.provision.azure.inventory import EnvironmentGroup, environment_groups
from mlops_vm.provision.azure.names import has_tags


@dataclass(frozen=True)
class Kind:
    """One kind of resource: how to list a group's, and how to delete some by name."""

    kind: str  # Change.kind
    type_name: str  # the ARM type
    list: Callable[[Arm, str], list[Json]]
    delete: Callable[[Arm, str, list[str]], None]


def _list(operation: str, call: Callable[[Arm], Callable]) -> Callable[[Arm, str], list[Json]]:
    return lambda arm, group: arm.read_all(operation, call(arm), group)


def _listed_per_group(
    kind: str,
    type_name: str,
    what: str,
    operations: Callable[[Arm], Any],
    list_method: str = "list",
) -> Kind:
    """A kind whose SDK OPERATIONS list a group's resources (LIST_METHOD) and delete one
    through a poller (begin_delete)."""
    return Kind(
        kind,
        type_name,
        _list(f"list {what}s", lambda a: getattr(operations(a), list_method)),
        lro_deleter(f"delete {what}", lambda a: operations(a).begin_delete),
    )


def _delete_autoscale(arm: Arm, group: str, names: list[str]) -> None:
    for name in names:  # synchronous in ARM: no poller

        def delete(name: str = name) -> None:
            try:
                arm.monitor.autoscale_settings.delete(group, name)
            except HttpResponseError as error:
                if status_of(error) != 404:
                    raise

        arm.write("delete autoscale setting", delete)


def _generic_kind(kind: str, type_name: str, api_version: str) -> Kind:
    """A type with no typed SDK client: listed in the group by type, deleted by id."""

    def list_group(arm: Arm, group: str) -> list[Json]:
        return arm.read_all(
            f"list {kind}s",
            arm.resources.resources.list_by_resource_group,
            group,
            filter=f"resourceType eq '{type_name}'",
        )

    def delete(arm: Arm, group: str, names: list[str]) -> None:
        prefix = f"/subscriptions/{arm.subscription_id}/resourceGroups/{group}/providers"
        for name in names:
            generic.delete(arm, kind, f"{prefix}/{type_name}/{name}", api_version)

    return Kind(kind, type_name, list_group, delete)


ORDER = (
    Kind(
        "autoscale_setting",
        "Microsoft.Insights/autoscaleSettings",
        _list(
            "list autoscale settings", lambda a: a.monitor.autoscale_settings.list_by_resource_group
        ),
        _delete_autoscale,
    ),
    Kind(
        "scale_set",
        "Microsoft.Compute/virtualMachineScaleSets",
        scaling_group.list_scale_sets,
        lro_deleter(
            "delete scale set", lambda a: a.compute.virtual_machine_scale_sets.begin_delete
        ),
    ),
    Kind(
        "instance",
        "Microsoft.Compute/virtualMachines",
        lambda arm, group: instances.list_vms(arm, group),
        instances.delete_vms,
    ),
    Kind(
        "network_interface",
        "Microsoft.Network/networkInterfaces",
        instances.list_nics,
        instances.delete_nics,
    ),
    Kind("disk", "Microsoft.Compute/disks", instances.list_disks, instances.delete_disks),
    _listed_per_group(
        "image",
        "Microsoft.Compute/images",
        "image",
        lambda a: a.compute.images,
        "list_by_resource_group",
    ),
    _listed_per_group(
        "application_gateway",
        "Microsoft.Network/applicationGateways",
        "application gateway",
        lambda a: a.network.application_gateways,
    ),
    _listed_per_group(
        "public_ip",
        "Microsoft.Network/publicIPAddresses",
        "public IP",
        lambda a: a.network.public_ip_addresses,
    ),
    _listed_per_group(
        "virtual_network",
        "Microsoft.Network/virtualNetworks",
        "virtual network",
        lambda a: a.network.virtual_networks,
    ),
    _generic_kind(
        "managed_identity", instance_identity.IDENTITY_TYPE, instance_identity.IDENTITY_API
    ),
    _generic_kind("storage_account", boot_payload.STORAGE_TYPE, boot_payload.STORAGE_API),
    _listed_per_group(
        "network_security_group",
        "Microsoft.Network/networkSecurityGroups",
        "network security group",
        lambda a: a.network.network_security_groups,
    ),
)
KIND_BY_TYPE = {kind.type_name.lower(): kind.kind for kind in ORDER}
RANK_BY_TYPE = {kind.type_name.lower(): rank for rank, kind in enumerate(ORDER)}


def destroy(arm: Arm, env: str, *, dry_run: bool) -> list[Change]:
    log = ChangeLog(dry_run=dry_run)
    for group in environment_groups(arm, env):
        # Assigned at scopes outside the group (vaults, registries): not deleted with it.
        instance_identity.delete_role_assignments(arm, group.name, env, log)
        if group.owned:
            delete_owned_group(arm, group, log)
        else:
            delete_tagged(arm, group.name, env, log)
    return log.changes


def delete_owned_group(arm: Arm, group: EnvironmentGroup, log: ChangeLog) -> None:
    contents = arm.read_all(
        "list resources", arm.resources.resources.list_by_resource_group, group.name
    )
    contents.sort(key=lambda r: RANK_BY_TYPE.get(r["type"].lower(), len(ORDER)))
    changes = [
        Change("delete", KIND_BY_TYPE.get(r["type"].lower(), r["type"]), r["name"])
        for r in contents
    ]
    changes.append(Change("delete", "resource_group", group.name, "and everything in it"))
    log.apply_all(
        changes,
        lambda: arm.delete(
            "delete resource group", arm.resources.resource_groups.begin_delete, group.name
        ),
    )


def delete_tagged(arm: Arm, group: str, env: str, log: ChangeLog) -> None:
    for kind in ORDER:
        names = [r["name"] for r in kind.list(arm, group) if has_tags(r, env)]
        log.apply_all(
            [Change("delete", kind.kind, name) for name in names],
            lambda kind=kind, names=names: kind.delete(arm, group, names),
        )
