"""The environment's network: resource group, virtual network with an instance subnet and a
dedicated Application Gateway subnet, and the network security group.

The NSG lets the gateway subnet reach the instances on the service port and on 80, and SSH
in from NetworkSpec.ssh_cidr only. On a virtual network the environment owns, the NSG sits on
the instance subnet; on a reused one (NetworkSpec.existing) the environment does not touch the
subnets and puts the NSG on its own NICs instead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.azure.client import Arm, Json, ResourceType
from mlops_vm.provision.azure.drift import converge
from mlops_vm.provision.azure.errors import PROVIDER
from mlops_vm.provision.azure.names import (
    GATEWAY_SUBNET,
    INSTANCE_SUBNET,
    Ids,
    Names,
    tags,
)
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ROLE_NETWORK, FleetSpec

SSH_PORT = 22
# The HTTP port the gateway may also use towards the instances (redirects, plain probes).
HTTP_PORT = 80
# Layout fields whose FleetResult.network key is longer than the field's name.
NETWORK_KEYS = {
    "nsg_id": "network_security_group_id",
    "nic_nsg_id": "nic_network_security_group_id",
}


@dataclass(frozen=True)
class Layout:
    """Where an environment's resources live, and which of them the environment owns."""

    env: str
    role: str
    location: str
    resource_group: str
    owns_resource_group: bool
    subscription_id: str
    vnet_id: str
    instance_subnet_id: str
    gateway_subnet_id: str
    nsg_id: str
    # Set when the NSG goes on the NICs (reused network) rather than on the subnet.
    nic_nsg_id: str | None
    owns_vnet: bool

    @property
    def names(self) -> Names:
        return Names(self.env, self.role)

    @property
    def ids(self) -> Ids:
        return Ids(self.subscription_id, self.resource_group)

    def as_dict(self) -> dict[str, Any]:
        """FleetResult.network: what the load balancer step needs to find its way."""
        return {NETWORK_KEYS.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, network: dict[str, Any]) -> Layout:
        return cls(**{f.name: network[NETWORK_KEYS.get(f.name, f.name)] for f in fields(cls)})


def split_cidr(cidr: str) -> tuple[str, str]:
    """The instance subnet and the gateway subnet: the first two /24s (or halves of a small
    network; a v2 gateway needs at least a /26)."""
    network = ipaddress.ip_network(cidr, strict=False)
    new_prefix = max(network.prefixlen + 1, 24)
    first, second = list(network.subnets(new_prefix=new_prefix))[:2]
    return str(first), str(second)


def resolve_layout(arm: Arm, spec: FleetSpec) -> Layout:
    existing = spec.network.existing
    names = Names(spec.env, spec.role)
    group = existing.get("resource_group") or names.resource_group
    ids = Ids(arm.subscription_id, group)
    nsg_id = ids.nsg(names.nsg)
    owns_vnet = not existing.get("vnet")
    if owns_vnet:
        vnet_ids, vnet = ids, names.vnet
        instance_subnet, gateway_subnet = INSTANCE_SUBNET, GATEWAY_SUBNET
    else:
        vnet_ids = Ids(arm.subscription_id, existing.get("vnet_resource_group") or group)
        vnet = existing["vnet"]
        instance_subnet, gateway_subnet = existing["subnet"], existing["gateway_subnet"]
    return Layout(
        env=spec.env,
        role=spec.role,
        location=arm.location,
        resource_group=group,
        owns_resource_group=not existing.get("resource_group"),
        subscription_id=arm.subscription_id,
        vnet_id=vnet_ids.vnet(vnet),
        instance_subnet_id=vnet_ids.subnet(vnet, instance_subnet),
        gateway_subnet_id=vnet_ids.subnet(vnet, gateway_subnet),
        nsg_id=nsg_id,
        # A reused subnet is not ours to attach the NSG to: the NICs carry it instead.
        nic_nsg_id=None if owns_vnet else nsg_id,
        owns_vnet=owns_vnet,
    )


# -- SDK calls -------------------------------------------------------------------------------


def get_resource_group(arm: Arm, name: str) -> Json | None:
    return arm.read("read resource group", arm.resources.resource_groups.get, name)


def put_resource_group(arm: Arm, name: str, body: Json) -> Json:
    return arm.write(
        "create resource group", arm.resources.resource_groups.create_or_update, name, body
    )


VNET = ResourceType("virtual_network", "virtual network", lambda arm: arm.network.virtual_networks)
NSG = ResourceType(
    "network_security_group",
    "network security group",
    lambda arm: arm.network.network_security_groups,
)
get_vnet, put_vnet = VNET.get, VNET.put
get_nsg, put_nsg = NSG.get, NSG.put


def get_subnet(arm: Arm, group: str, vnet: str, name: str) -> Json | None:
    return arm.read("read subnet", arm.network.subnets.get, group, vnet, name)


# -- desired state ---------------------------------------------------------------------------


def nsg_body(layout: Layout, spec: FleetSpec, gateway_prefix: str) -> Json:
    ports = sorted({str(spec.service_port), str(HTTP_PORT)}, key=int)
    rules: list[Json] = [
        {
            "name": "allow-gateway-to-service",
            "properties": {
                "description": "The Application Gateway subnet reaches Nginx on the instances",
                "priority": 100,
                "direction": "Inbound",
                "access": "Allow",
                "protocol": "Tcp",
                "sourceAddressPrefix": gateway_prefix,
                "sourcePortRange": "*",
                "destinationAddressPrefix": "*",
                "destinationPortRanges": ports,
            },
        }
    ]
    if spec.network.ssh_cidr:
        rules.append(
            {
                "name": "allow-ssh",
                "properties": {
                    "description": "SSH for Ansible, from the operators' network only",
                    "priority": 110,
                    "direction": "Inbound",
                    "access": "Allow",
                    "protocol": "Tcp",
                    "sourceAddressPrefix": spec.network.ssh_cidr,
                    "sourcePortRange": "*",
                    "destinationAddressPrefix": "*",
                    "destinationPortRange": str(SSH_PORT),
                },
            }
        )
    return {
        "location": layout.location,
        "tags": tags(layout.env, ROLE_NETWORK),
        "properties": {"securityRules": rules},
    }


def vnet_body(layout: Layout, spec: FleetSpec) -> Json:
    instance_prefix, gateway_prefix = split_cidr(spec.network.cidr)
    return {
        "location": layout.location,
        "tags": tags(layout.env, ROLE_NETWORK),
        "properties": {
            "addressSpace": {"addressPrefixes": [spec.network.cidr]},
            "subnets": [
                {
                    "name": INSTANCE_SUBNET,
                    "properties": {
                        "addressPrefix": instance_prefix,
                        "networkSecurityGroup": {"id": layout.nsg_id},
                    },
                },
                # The gateway subnet carries no NSG: a v2 gateway needs its management ports
                # (65200-65535) open, and nothing else may live in that subnet anyway.
                {"name": GATEWAY_SUBNET, "properties": {"addressPrefix": gateway_prefix}},
            ],
        },
    }


# -- convergence -----------------------------------------------------------------------------


def ensure_network(arm: Arm, layout: Layout, spec: FleetSpec, log: ChangeLog) -> None:
    ensure_resource_group(arm, layout, log)
    gateway_prefix = gateway_subnet_prefix(arm, layout, spec)
    names = layout.names
    group = layout.resource_group
    NSG.converge(
        arm,
        log,
        group,
        names.nsg,
        nsg_body(layout, spec, gateway_prefix),
        create_detail=f"{spec.service_port}/80 from {gateway_prefix}, "
        f"SSH from {spec.network.ssh_cidr or 'nowhere'}",
    )
    if layout.owns_vnet:
        VNET.converge(
            arm,
            log,
            group,
            names.vnet,
            vnet_body(layout, spec),
            create_detail=f"{spec.network.cidr}: subnets {INSTANCE_SUBNET}, {GATEWAY_SUBNET}",
        )


def ensure_resource_group(arm: Arm, layout: Layout, log: ChangeLog) -> None:
    actual = get_resource_group(arm, layout.resource_group)
    if not layout.owns_resource_group:
        if actual is None:
            raise ProvisionError(
                ErrorCode.NOT_FOUND,
                f"resource group {layout.resource_group!r} (network.existing) does not exist",
                hint="create it first, or drop network.existing.resource_group to let the "
                "environment own one",
                provider=PROVIDER,
                operation="read resource group",
            )
        return
    desired = {"location": layout.location, "tags": tags(layout.env, ROLE_NETWORK)}
    converge(
        log,
        "resource_group",
        layout.resource_group,
        desired,
        actual,
        lambda: put_resource_group(arm, layout.resource_group, desired),
        create_detail=layout.location,
    )


def gateway_subnet_prefix(arm: Arm, layout: Layout, spec: FleetSpec) -> str:
    if layout.owns_vnet:
        return split_cidr(spec.network.cidr)[1]
    existing = spec.network.existing
    group = existing.get("vnet_resource_group") or layout.resource_group
    subnet = get_subnet(arm, group, existing["vnet"], existing["gateway_subnet"])
    if subnet is None:
        raise ProvisionError(
            ErrorCode.NOT_FOUND,
            f"gateway subnet {existing['gateway_subnet']!r} of virtual network "
            f"{existing['vnet']!r} does not exist",
            hint="create a dedicated subnet (/24 recommended) for the Application Gateway and "
            "name it in network.existing.gateway_subnet",
            provider=PROVIDER,
            operation="read subnet",
        )
    return subnet["properties"]["addressPrefix"]
