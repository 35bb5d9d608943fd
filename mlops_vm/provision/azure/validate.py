"""Check what can be checked before anything is created: ProvisionError(INVALID_INPUT).

Offline checks (names, sizes, keys, certificate files) come first; then the subscription's
resource SKUs for the location (an unknown location offers none), the VM size and its
restrictions, and the resources NetworkSpec.existing names.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from mlops_vm.provision.azure import instance_identity
from mlops_vm.provision.azure.certificate import check_pem_pair
from mlops_vm.provision.azure.client import Arm, AzureOptions, Json
from mlops_vm.provision.azure.errors import PROVIDER
from mlops_vm.provision.azure.key_vault import KeyVaultSecrets
from mlops_vm.provision.azure.names import ENV_NAME, image_reference
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import FleetSpec, LoadBalancerSpec

# Azure refuses these admin user names on Linux VMs.
RESERVED_ADMIN_NAMES = {
    "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1",
    "1", "123", "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david",
    "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0", "sys",
    "test2", "test3", "user4", "user5",
}  # fmt: skip


def invalid(message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT, message, hint=hint, provider=PROVIDER, operation="validate"
    )


def check_fleet_spec(spec: FleetSpec) -> None:
    """Offline checks of a fleet spec (no API call)."""
    if not ENV_NAME.match(spec.env):
        raise invalid(
            f"environment name {spec.env!r} is not usable in Azure resource names",
            "use 1-40 lowercase letters, digits and hyphens, starting with a letter or digit",
        )
    if spec.count < 0:
        raise invalid(f"count {spec.count} is negative", "set count to 0 or more")
    instance = spec.instance
    if not instance.ssh_public_key:
        raise invalid(
            "instance.ssh_public_key is missing: Azure VMs here accept SSH keys only",
            "set instance.ssh_public_key to an OpenSSH public key (ssh-ed25519/ssh-rsa ...)",
        )
    if instance.ssh_user.lower() in RESERVED_ADMIN_NAMES:
        raise invalid(
            f"ssh_user {instance.ssh_user!r} is a name Azure refuses for the admin account",
            "set instance.ssh_user to another name, e.g. azureuser",
        )
    try:
        image_reference(instance.image)
    except ValueError as error:
        raise invalid(str(error), "use e.g. Debian:debian-12:12-gen2:latest") from None
    network = spec.network
    try:
        cidr = ipaddress.ip_network(network.cidr)
    except ValueError as error:
        raise invalid(
            f"network.cidr: {error}", "use a private range such as 10.42.0.0/16"
        ) from None
    if cidr.prefixlen > 25:
        raise invalid(
            f"network.cidr {network.cidr} is too small for two subnets",
            "use a /25 or larger: the gateway subnet alone needs a /26",
        )
    if network.existing.get("vnet") and not (
        network.existing.get("subnet") and network.existing.get("gateway_subnet")
    ):
        raise invalid(
            "network.existing.vnet needs subnet and gateway_subnet too",
            "name the instances' subnet and a dedicated Application Gateway subnet",
        )
    if network.existing.get("vnet") and not (
        network.existing.get("resource_group") or network.existing.get("vnet_resource_group")
    ):
        raise invalid(
            "network.existing.vnet needs the resource group it lives in",
            "set network.existing.vnet_resource_group (or resource_group)",
        )
    if spec.mode == "scaling_group":
        scaling = spec.autoscaling
        if not scaling.min_size <= spec.count <= scaling.max_size:
            raise invalid(
                f"count {spec.count} is outside autoscaling {scaling.min_size}-{scaling.max_size}",
                "set min_size <= count <= max_size",
            )


def check_lb_spec(spec: LoadBalancerSpec, options: AzureOptions) -> None:
    certificate = spec.certificate
    if certificate.arn or certificate.managed_domains:
        raise invalid(
            "certificate.arn and certificate.managed_domains are AWS/GCP ways",
            "on Azure give cert_file + key_file, or key_vault_secret_id",
        )
    from_files = bool(certificate.cert_file or certificate.key_file)
    if from_files == bool(certificate.key_vault_secret_id):
        raise invalid(
            "the certificate needs exactly one source",
            "give cert_file and key_file (PEM), or key_vault_secret_id",
        )
    if from_files:
        if not (certificate.cert_file and certificate.key_file):
            raise invalid("cert_file and key_file go together", "give both PEM files")
        for path in (certificate.cert_file, certificate.key_file):
            if not Path(path).is_file():
                raise invalid(f"certificate file {path} does not exist", "check the path")
        try:
            check_pem_pair(certificate.cert_file, certificate.key_file)
        except ValueError as error:
            raise invalid(f"certificate: {error}", "give a PEM certificate and its key") from None
    elif not options.gateway_identity_id:
        raise invalid(
            "a Key Vault certificate needs a managed identity for the gateway",
            "set provider.options.gateway_identity_id to a user-assigned identity that can "
            "get the secret",
        )
    if spec.https_port == spec.http_port:
        raise invalid("https_port and http_port are the same", "use two different ports")
    if not spec.health_path.startswith("/"):
        raise invalid(f"health_path {spec.health_path!r}", "start it with '/', e.g. /healthz")
    if options.backend_ca_file and not Path(options.backend_ca_file).is_file():
        raise invalid(f"backend_ca_file {options.backend_ca_file} does not exist", "check it")


def check_vm_size(arm: Arm, spec: FleetSpec) -> None:
    location = arm.location
    skus = arm.read_all(
        "list VM sizes", arm.compute.resource_skus.list, filter=f"location eq '{location}'"
    )
    sizes = [s for s in skus if s.get("resourceType") == "virtualMachines"]
    if not sizes:
        raise invalid(
            f"location {location!r} is unknown or offers no VM sizes to this subscription",
            "set provider.region to an Azure location name, e.g. westeurope "
            "(`az account list-locations -o table`)",
        )
    wanted = spec.instance.machine_type
    sku = next((s for s in sizes if s["name"].lower() == wanted.lower()), None)
    if sku is None:
        offered = ", ".join(sorted(s["name"] for s in sizes)[:8])
        raise invalid(
            f"VM size {wanted} is not offered in {location}",
            f"pick another machine_type (e.g. {offered})",
        )
    for restriction in sku.get("restrictions") or []:
        check_restriction(restriction, wanted, location, spec.zones)


def check_restriction(restriction: Json, size: str, location: str, zones: tuple) -> None:
    reason = restriction.get("reasonCode", "restricted")
    if restriction.get("type") == "Location" and location.lower() in [
        v.lower() for v in restriction.get("values", [])
    ]:
        raise invalid(
            f"VM size {size} is not available in {location} for this subscription ({reason})",
            "pick another machine_type or location, or ask Azure support to enable the size "
            f"(`az vm list-skus --location {location} --size {size} --all`)",
        )
    blocked = set(restriction.get("restrictionInfo", {}).get("zones") or [])
    if restriction.get("type") == "Zone" and blocked & set(zones):
        raise invalid(
            f"VM size {size} is not available in zone(s) {sorted(blocked & set(zones))} of "
            f"{location} ({reason})",
            "pick other zones, or leave zones empty",
        )


def check_existing(arm: Arm, spec: FleetSpec) -> None:
    existing = spec.network.existing
    group = existing.get("resource_group")
    if group and arm.read("read resource group", arm.resources.resource_groups.get, group) is None:
        raise invalid(
            f"resource group {group!r} (network.existing.resource_group) does not exist",
            "create it, or remove network.existing.resource_group",
        )
    if not existing.get("vnet"):
        return
    vnet_group = existing.get("vnet_resource_group") or group
    for subnet in (existing["subnet"], existing["gateway_subnet"]):
        found = arm.read(
            "read subnet", arm.network.subnets.get, vnet_group, existing["vnet"], subnet
        )
        if found is None:
            raise invalid(
                f"subnet {subnet!r} of virtual network {existing['vnet']!r} does not exist",
                "check network.existing (vnet, subnet, gateway_subnet, vnet_resource_group)",
            )


def check_offline(options: AzureOptions, fleet: FleetSpec, lb: LoadBalancerSpec | None) -> None:
    """No API call: names, sizes, the load balancer's settings."""
    check_fleet_spec(fleet)
    if lb is not None:
        check_lb_spec(lb, options)


def validate(
    arm: Arm,
    fleet: FleetSpec,
    lb: LoadBalancerSpec | None,
    *,
    key_vault: KeyVaultSecrets | None = None,
) -> None:
    check_offline(arm.options, fleet, lb)
    check_vm_size(arm, fleet)
    check_existing(arm, fleet)
    if key_vault is not None:
        check_boot_secrets(arm, key_vault, fleet)


def check_boot_secrets(arm: Arm, key_vault: KeyVaultSecrets, fleet: FleetSpec) -> None:
    """Each secret the instances read at boot exists and the operator can read it (a
    permission error said as such), and its vault and the registry are where the identity
    can be given access: refused before anything is created."""
    plan = fleet.instance.boot
    if plan is None:
        return
    for field, reference in sorted(plan.fields.items()):
        key_vault.check(f"fleet.secrets.{field}", reference)
    instance_identity.grants(arm, plan, None)
