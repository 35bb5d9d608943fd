"""Find an environment's resources again from its name alone (no state file).

An environment lives in the resource group it owns (mlops-vm-<env>, tagged with it) or in a
reused one (NetworkSpec.existing), where only its tagged resources are its own. The owned
group is found by name; reused groups are found through ARM's tag index
(`resources.list(tagName/tagValue)`). That index can lag a few seconds behind writes, so
whatever follows reads each group through the resource providers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_vm.provision.azure import instances, scaling_group
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.names import Names, has_tags, resource_group_of
from mlops_vm.provision.model import LABEL_ENV, ROLE_MODEL, Instance


@dataclass(frozen=True)
class EnvironmentGroup:
    name: str
    # True: the environment created this group and deleting it deletes the environment.
    owned: bool


def list_tagged(arm: Arm, env: str) -> list[Json]:
    return arm.read_all(
        "find tagged resources",
        arm.resources.resources.list,
        filter=f"tagName eq '{LABEL_ENV}' and tagValue eq '{env}'",
    )


def environment_groups(arm: Arm, env: str) -> list[EnvironmentGroup]:
    own_name = Names(env, ROLE_MODEL).resource_group
    groups: list[EnvironmentGroup] = []
    own = arm.read("read resource group", arm.resources.resource_groups.get, own_name)
    if own is not None and has_tags(own, env):
        groups.append(EnvironmentGroup(own["name"], owned=True))
    seen = {group.name.lower() for group in groups}
    for resource in list_tagged(arm, env):
        name = resource_group_of(resource["id"])
        if name and name.lower() not in seen:
            seen.add(name.lower())
            groups.append(EnvironmentGroup(name, owned=False))
    return groups


def list_instances(arm: Arm, env: str, role: str | None) -> list[Instance]:
    found: list[Instance] = []
    for group in environment_groups(arm, env):
        found += instances.fleet_instances(arm, group.name, env, role)
        found += scaling_group.scale_set_instances(arm, group.name, env, role)
    return sorted(found, key=lambda instance: instance.name)


def find_gateway(arm: Arm, env: str) -> tuple[str, Json] | None:
    """(resource group, gateway) of the environment's Application Gateway, if any."""
    name = Names(env, ROLE_MODEL).gateway
    for group in environment_groups(arm, env):
        gateway = arm.read(
            "read application gateway", arm.network.application_gateways.get, group.name, name
        )
        if gateway is not None and has_tags(gateway, env):
            return group.name, gateway
    return None
