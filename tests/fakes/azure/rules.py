"""How one ARM resource type behaves: validation on PUT, what GET shows, delete checks.

The server runs the protocol (auth, api-version, long-running operations, errors); a
ResourceType subclass holds what is specific to a type. Shared look-ups across types (which
NIC a VM uses, which IP configurations sit in a subnet) live at the bottom of this module,
so that network and compute rules need not import each other.
"""

from __future__ import annotations

import copy
import ipaddress
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.fakes.azure.state import ArmError, ArmState, Json, key, parse_id, ref_id


class ResourceType:
    namespace = ""
    collection = ""
    # Synchronous types (resource groups, autoscale settings) answer PUT/DELETE at once.
    long_running = True
    # What a creating PUT answers (Microsoft.Web answers 200, its SDK refuses 201).
    created_status = 201
    # Child collections that can be read by id (subnets, gateway parts, scale set VMs).
    child_collections: tuple[str, ...] = ()
    # POST actions that answer 200 once done instead of an operation (VM generalize).
    sync_actions: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        return f"{self.namespace}/{self.collection}"

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        """Validate BODY and return what to store (ids filled in); raise ArmError."""
        return body

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        return copy.deepcopy(stored)

    def deferred(self, stored: Json) -> bool:
        """Whether a PUT of STORED answers 202 + Location and the resource appears only once
        that operation ends (instead of at once, or with Azure-AsyncOperation)."""
        return False

    def check_delete(self, state: ArmState, stored: Json) -> None:
        """Raise ArmError when the resource is still in use."""

    def on_deleted(self, state: ArmState, stored: Json) -> None:
        """Side effects once a delete has finished."""

    def get_child(self, state: ArmState, stored: Json, collection: str, name: str) -> Json | None:
        return None

    def list_children(self, state: ArmState, stored: Json, collection: str) -> list[Json] | None:
        return None

    def put_child(
        self, state: ArmState, stored: Json, collection: str, name: str, body: Json
    ) -> tuple[Json, bool]:
        raise ArmError(405, "MethodNotAllowed", f"PUT of {collection} is not supported")

    def delete_child(self, state: ArmState, stored: Json, collection: str, name: str) -> bool:
        raise ArmError(405, "MethodNotAllowed", f"DELETE of {collection} is not supported")

    def action(
        self, state: ArmState, stored: Json, name: str, body: Json
    ) -> Callable[[], Json | None]:
        raise ArmError(404, "InvalidResourceType", f"no action {name!r} on {self.type_name}")


def named_children(items: list[Json], parent_id: str, collection: str, child_type: str) -> None:
    """Give each child of a PUT body its id, type, etag and provisioning state."""
    seen: set[str] = set()
    for item in items:
        name = item.get("name")
        if not name:
            raise ArmError(400, "InvalidRequestFormat", f"an item of {collection} has no name")
        if name.lower() in seen:
            raise ArmError(400, "InvalidRequestFormat", f"duplicate name {name!r} in {collection}")
        seen.add(name.lower())
        item["id"] = f"{parent_id}/{collection}/{name}"
        item["type"] = child_type
        item["etag"] = f'W/"{uuid.uuid4()}"'
        item.setdefault("properties", {})["provisioningState"] = "Succeeded"


def same_id(left: str | None, right: str | None) -> bool:
    return bool(left) and bool(right) and key(left) == key(right)  # type: ignore[arg-type]


def require(condition: bool, code: str, message: str, status: int = 400) -> None:
    if not condition:
        raise ArmError(status, code, message)


def require_child_ref(state: ArmState, child_id: str | None, referrer: str) -> None:
    """A reference to a child resource (a subnet, a backend pool) must name one that exists."""
    require(
        child_id is not None and find_child(state, child_id) is not None,
        "InvalidResourceReference",
        f"Resource {child_id} referenced by resource {referrer} was not found.",
    )


def require_optional_ref(state: ArmState, resource_id: str | None, referrer: str) -> None:
    """An optional reference to a resource (a network security group) must, when set, name
    one that exists."""
    require(
        resource_id is None or state.get(resource_id) is not None,
        "InvalidResourceReference",
        f"Resource {resource_id} referenced by resource {referrer} was not found.",
    )


# -- shared look-ups ------------------------------------------------------------------------


@dataclass
class IpConfiguration:
    """An IP configuration of a NIC or of a scale set VM's NIC, wherever it comes from."""

    id: str
    subnet_id: str | None
    pool_ids: list[str]
    private_ip: str | None
    owner_id: str  # the NIC (standalone) or the scale set


def find_child(state: ArmState, child_id: str) -> Json | None:
    """A child resource by id: a subnet, a gateway part, a NIC's IP configuration."""
    path = parse_id(child_id)
    if path is None or len(path.pairs) != 2:
        return None
    parent = state.get(path.top_id)
    if parent is None:
        return None
    collection, name = path.pairs[1]
    for item in parent.get("properties", {}).get(collection, []) or []:
        if item.get("name", "").lower() == name.lower():
            return item
    return None


def ip_configurations(state: ArmState) -> Iterator[IpConfiguration]:
    for nic in state.of_type("Microsoft.Network/networkInterfaces"):
        for ipc in nic["properties"].get("ipConfigurations", []):
            props = ipc.get("properties", {})
            yield IpConfiguration(
                ipc["id"],
                ref_id(props.get("subnet")),
                [ref_id(p) or "" for p in props.get("applicationGatewayBackendAddressPools", [])],
                props.get("privateIPAddress"),
                nic["id"],
            )
    for scale_set in state.of_type("Microsoft.Compute/virtualMachineScaleSets"):
        for instance in state.private_of(scale_set["id"]).get("instances", {}).values():
            for nic in instance["nics"]:
                for ipc in nic["ipConfigurations"]:
                    yield IpConfiguration(
                        ipc["id"],
                        ipc["subnet_id"],
                        list(ipc["pool_ids"]),
                        ipc["privateIPAddress"],
                        scale_set["id"],
                    )


def scale_set_model_pool_ids(state: ArmState) -> Iterator[tuple[str, str]]:
    """(pool id, scale set id) for every pool a scale set model references."""
    for scale_set in state.of_type("Microsoft.Compute/virtualMachineScaleSets"):
        profile = scale_set["properties"].get("virtualMachineProfile", {})
        for nic in profile.get("networkProfile", {}).get("networkInterfaceConfigurations", []):
            for ipc in nic.get("properties", {}).get("ipConfigurations", []):
                for pool in ipc.get("properties", {}).get(
                    "applicationGatewayBackendAddressPools", []
                ):
                    yield ref_id(pool) or "", scale_set["id"]


def vm_using_nic(state: ArmState, nic_id: str) -> Json | None:
    for vm in state.of_type("Microsoft.Compute/virtualMachines"):
        for nic in vm["properties"].get("networkProfile", {}).get("networkInterfaces", []):
            if same_id(ref_id(nic), nic_id):
                return vm
    return None


def gateways_using_subnet(state: ArmState, subnet_id: str) -> list[str]:
    users = []
    for gateway in state.of_type("Microsoft.Network/applicationGateways"):
        for ipc in gateway["properties"].get("gatewayIPConfigurations", []):
            if same_id(ref_id(ipc.get("properties", {}).get("subnet")), subnet_id):
                users.append(ipc["id"])
    return users


def allocate_private_ip(state: ArmState, subnet_id: str) -> str:
    """The next free address of a subnet (Azure keeps the first four for itself)."""
    subnet = find_child(state, subnet_id)
    if subnet is None:
        raise ArmError(400, "InvalidResourceReference", f"Subnet {subnet_id} was not found.")
    network = ipaddress.ip_network(subnet["properties"]["addressPrefix"], strict=False)
    counter = state.private_of(subnet_id)
    offset = counter.get("next", 4)
    counter["next"] = offset + 1
    return str(network.network_address + offset)


def resource_group_of(resource_id: str) -> str:
    path = parse_id(resource_id)
    return path.resource_group if path else ""


def any_value(value: Any) -> bool:
    return value is not None and value != "" and value != []
