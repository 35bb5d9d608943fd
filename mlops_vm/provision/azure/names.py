"""Names, ARM ids, tags and image references for one environment.

Names are derived from the environment and role only, so that every run finds the same
resources again; ids are built from names (ARM ids are predictable), which is also how a
dry run can plan references to things that do not exist yet.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from mlops_vm.provision.model import LABEL_ENV, LABEL_ROLE
from mlops_vm.provision.prefixed import EnvironmentNames, Prefixed

DEFAULT_IMAGE = "Debian:debian-12:12-gen2:latest"
# Azure's Debian 12 images ship a 30 GiB OS disk; ARM refuses a smaller diskSizeGB.
IMAGE_OS_DISK_GB = 30
# Azure tags cannot hold "/", hence LABEL_* rather than TAG_*. These extra tags record what
# ARM never shows back (customData, PFX data) and who owns the desired size.
TAG_USER_DATA_SHA256 = "mlops-vm-user-data-sha256"
TAG_DESIRED_COUNT = "mlops-vm-desired-count"
TAG_CERTIFICATE = "mlops-vm-certificate"
ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

# Child names inside the network and the gateway: fixed, the environment is in the parent.
INSTANCE_SUBNET = "instances"
GATEWAY_SUBNET = "appgw"  # not "GatewaySubnet": that name is reserved for VPN gateways
GATEWAY_IP_CONFIG = "gateway-ip"
FRONTEND_IP = "public"
FRONTEND_PORT_HTTPS = "https"
FRONTEND_PORT_HTTP = "http"
CERTIFICATE = "default"
BACKEND_CA = "backend-ca"
PROBE = "healthz"
BACKEND_POOL = "model"
BACKEND_SETTINGS = "model"
LISTENER_HTTPS = "https"
LISTENER_HTTP = "http"
REDIRECT = "http-to-https"
RULE_HTTPS = "https"
RULE_HTTP = "http-redirect"
NIC_CONFIG = "primary"
IP_CONFIG = "primary"


@dataclass(frozen=True)
class Names(EnvironmentNames):
    """Resource names of one environment (and role, for the model-serving resources)."""

    role: str

    @property
    def resource_group(self) -> str:
        return self.prefix

    vnet = Prefixed("vnet")
    nsg = Prefixed("nsg")

    def vm(self, index: int) -> str:
        return f"{self.prefix}-{self.role}-{index}"

    @staticmethod
    def nic(vm_name: str) -> str:
        return f"{vm_name}-nic"

    @staticmethod
    def os_disk(vm_name: str) -> str:
        return f"{vm_name}-osdisk"

    @property
    def scale_set(self) -> str:
        return f"{self.prefix}-{self.role}"

    autoscale = Prefixed("autoscale", base="scale_set")

    @property
    def computer_name_prefix(self) -> str:
        return f"{self.env}-{self.role}-"[:58]

    gateway = Prefixed("appgw")
    public_ip = Prefixed("ip", base="gateway")

    def vm_index(self, vm_name: str) -> int | None:
        """The index in a VM name of this environment and role, or None."""
        match = re.fullmatch(re.escape(f"{self.prefix}-{self.role}-") + r"(\d+)", vm_name)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Ids:
    """ARM ids in one subscription and resource group."""

    subscription_id: str
    resource_group: str

    @property
    def group(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def of(self, provider_type: str, name: str, *children: str) -> str:
        """e.g. of("Microsoft.Network/virtualNetworks", "vnet", "subnets", "instances")."""
        return "/".join([f"{self.group}/providers/{provider_type}/{name}", *children])

    def vnet(self, name: str) -> str:
        return self.of("Microsoft.Network/virtualNetworks", name)

    def subnet(self, vnet: str, name: str) -> str:
        return self.of("Microsoft.Network/virtualNetworks", vnet, "subnets", name)

    def nsg(self, name: str) -> str:
        return self.of("Microsoft.Network/networkSecurityGroups", name)

    def nic(self, name: str) -> str:
        return self.of("Microsoft.Network/networkInterfaces", name)

    def public_ip(self, name: str) -> str:
        return self.of("Microsoft.Network/publicIPAddresses", name)

    def gateway(self, name: str) -> str:
        return self.of("Microsoft.Network/applicationGateways", name)

    def scale_set(self, name: str) -> str:
        return self.of("Microsoft.Compute/virtualMachineScaleSets", name)


def gateway_child(gateway_id: str, collection: str, name: str) -> dict[str, str]:
    """A reference to a part of a gateway: ARM ids of children extend the gateway's id."""
    return {"id": f"{gateway_id}/{collection}/{name}"}


def tags(env: str, role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), LABEL_ENV: env, LABEL_ROLE: role}


def has_tags(resource: dict, env: str, role: str | None = None) -> bool:
    found = resource.get("tags") or {}
    return found.get(LABEL_ENV) == env and (role is None or found.get(LABEL_ROLE) == role)


def image_reference(image: str | None) -> dict[str, str]:
    """A marketplace URN (publisher:offer:sku:version) or an image/gallery resource id."""
    urn = image or DEFAULT_IMAGE
    if urn.startswith("/subscriptions/"):
        return {"id": urn}
    parts = urn.split(":")
    if len(parts) != 4 or not all(parts):
        raise ValueError(
            f"image {urn!r} is neither a URN publisher:offer:sku:version nor a resource id"
        )
    publisher, offer, sku, version = parts
    return {"publisher": publisher, "offer": offer, "sku": sku, "version": version}


def sha256(text: str | bytes | None) -> str:
    if text is None:
        return "none"
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def resource_group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[4] if len(parts) > 4 else ""


def name_of(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def same_id(left: str | None, right: str | None) -> bool:
    """ARM ids are case-insensitive (resourceGroups vs resourcegroups, names)."""
    return bool(left) and bool(right) and left.lower() == right.lower()  # type: ignore[union-attr]
