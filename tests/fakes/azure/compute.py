"""Microsoft.Compute and Microsoft.Insights rules: VMs and their implicit OS disks, scale
sets with per-instance models, resource SKUs (with restrictions), the regional vCPU quota,
and autoscale settings."""

from __future__ import annotations

import base64
import binascii
import copy
import re
import uuid
from collections.abc import Callable

from tests.fakes.azure.images import check_image_reference
from tests.fakes.azure.rules import (
    ResourceType,
    allocate_private_ip,
    require,
    require_child_ref,
    require_optional_ref,
    same_id,
    vm_using_nic,
)
from tests.fakes.azure.state import ArmError, ArmState, Json, now, parse_id, ref_id

LOCATIONS = ("westeurope", "northeurope", "eastus")
# name -> (vCPUs, family)
VM_SIZES = {
    "Standard_B1s": (1, "standardBSFamily"),
    "Standard_B2s": (2, "standardBSFamily"),
    "Standard_D2s_v5": (2, "standardDSv5Family"),
    "Standard_D4s_v5": (4, "standardDSv5Family"),
    "Standard_NC4as_T4_v3": (4, "standardNCASv3_T4Family"),
}
IMAGE_OS_DISK_GB = 30  # the Debian 12 marketplace image's OS disk
DISALLOWED_ADMIN_NAMES = {
    "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1",
    "1", "123", "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david",
    "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0", "sys",
    "test2", "test3", "user4", "user5",
}  # fmt: skip


def resource_skus(state: ArmState, location: str | None) -> list[Json]:
    skus = []
    for name, (cpus, family) in VM_SIZES.items():
        for loc in LOCATIONS:
            if location and loc != location.lower():
                continue
            restrictions = []
            if name in state.restricted_skus:
                restrictions.append(
                    {
                        "type": "Location",
                        "values": [loc],
                        "restrictionInfo": {"locations": [loc]},
                        "reasonCode": "NotAvailableForSubscription",
                    }
                )
            skus.append(
                {
                    "resourceType": "virtualMachines",
                    "name": name,
                    "tier": "Standard",
                    "size": name.removeprefix("Standard_"),
                    "family": family,
                    "locations": [loc],
                    "locationInfo": [{"location": loc, "zones": ["1", "2", "3"]}],
                    "capabilities": [
                        {"name": "vCPUs", "value": str(cpus)},
                        {"name": "MemoryGB", "value": str(cpus * 4)},
                    ],
                    "restrictions": restrictions,
                }
            )
    return skus


def _check_size(state: ArmState, size: str | None, location: str) -> int:
    require(
        size in VM_SIZES and location in LOCATIONS,
        "InvalidParameter",
        f"The value {size} provided for the VM size is not valid in location {location}.",
    )
    assert size is not None
    if size in state.restricted_skus:
        raise ArmError(
            409,
            "SkuNotAvailable",
            f"The requested VM size for resource 'Following SKUs have failed for Capacity "
            f"Restrictions: {size}' is currently not available in location '{location}'. "
            "Please try another size or deploy to a different location or different zone. "
            "See https://aka.ms/azureskunotavailable for details.",
        )
    return VM_SIZES[size][0]


def cores_in_use(state: ArmState, location: str) -> int:
    used = 0
    for vm in state.of_type("Microsoft.Compute/virtualMachines"):
        if vm["location"] == location:
            used += VM_SIZES[vm["properties"]["hardwareProfile"]["vmSize"]][0]
    for scale_set in state.of_type("Microsoft.Compute/virtualMachineScaleSets"):
        if scale_set["location"] == location:
            cpus = VM_SIZES[scale_set["sku"]["name"]][0]
            used += cpus * len(state.private_of(scale_set["id"]).get("instances", {}))
    return used


def _check_quota(state: ArmState, location: str, size: str, additional: int) -> None:
    if state.core_quota is None or additional <= 0:
        return
    used = cores_in_use(state, location)
    if used + additional > state.core_quota:
        family = VM_SIZES[size][1]
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Operation could not be completed as it results in exceeding approved {family} "
            f"Cores quota. Additional details - Deployment Model: Resource Manager, Location: "
            f"{location}, Current Limit: {state.core_quota}, Current Usage: {used}, Additional "
            f"Required: {additional}, (Minimum) New Limit Required: {used + additional}. Submit "
            "a request for Quota increase at https://aka.ms/ProdportalCRP.",
        )


def _check_os_profile(profile: Json | None, owner: str) -> None:
    require(profile is not None, "InvalidParameter", f"{owner}: osProfile is required")
    assert profile is not None
    admin = profile.get("adminUsername", "")
    require(bool(admin), "InvalidParameter", "Required parameter 'adminUsername' is missing.")
    require(
        admin.lower() not in DISALLOWED_ADMIN_NAMES,
        "InvalidParameter",
        "The Admin Username specified is not allowed.",
    )
    linux = profile.get("linuxConfiguration", {})
    if linux.get("disablePasswordAuthentication"):
        require(
            bool(linux.get("ssh", {}).get("publicKeys")),
            "InvalidParameter",
            "Password authentication is disabled but no SSH public key was given.",
        )
        require(
            "adminPassword" not in profile,
            "InvalidParameter",
            "adminPassword cannot be set when password authentication is disabled.",
        )
    else:
        require(
            bool(profile.get("adminPassword")),
            "InvalidParameter",
            "Required parameter 'adminPassword' is missing (null).",
        )
    data = profile.get("customData")
    if data is not None:
        try:
            decoded = base64.b64decode(data, validate=True)
        except binascii.Error:
            raise ArmError(
                400, "InvalidParameter", "Custom data in OSProfile must be in Base64 encoding."
            ) from None
        require(
            len(decoded) <= 65535,
            "InvalidParameter",
            "Custom data in OSProfile must be 64 KiB or less.",
        )


def _check_storage_profile(profile: Json | None, owner: str, state: ArmState) -> None:
    require(profile is not None, "InvalidParameter", f"{owner}: storageProfile is required")
    assert profile is not None
    image = profile.get("imageReference") or {}
    check_image_reference(state, image)
    require(
        bool(image.get("id")) or all(image.get(k) for k in ("publisher", "offer", "sku")),
        "InvalidParameter",
        "The value of parameter imageReference is invalid.",
    )
    os_disk = profile.get("osDisk", {})
    require(
        os_disk.get("createOption") == "FromImage",
        "InvalidParameter",
        "osDisk.createOption must be FromImage for a marketplace image.",
    )
    size = os_disk.get("diskSizeGB")
    require(
        size is None or size >= IMAGE_OS_DISK_GB,
        "InvalidParameter",
        f"The specified disk size {size} GB is smaller than the size of the corresponding "
        f"disk in the VM image: {IMAGE_OS_DISK_GB} GB. This is not allowed. Please choose "
        "equal or greater size or do not specify an explicit size.",
    )


def _unchanged(old: Json, new: Json, path: tuple[str, ...], label: str) -> None:
    def dig(doc: Json) -> object:
        for part in path:
            doc = (doc or {}).get(part)  # type: ignore[assignment]
        return doc

    require(
        dig(old) == dig(new),
        "PropertyChangeNotAllowed",
        f"Changing property '{label}' is not allowed.",
        status=409,
    )


def _without(document: Json, paths: list[tuple[str, ...]]) -> Json:
    shown = copy.deepcopy(document)
    for path in paths:
        node = shown
        for part in path[:-1]:
            node = node.get(part, {})
        node.pop(path[-1], None)
    return shown


WRITE_ONLY_VM = [
    ("properties", "osProfile", "customData"),
    ("properties", "osProfile", "adminPassword"),
]
WRITE_ONLY_SCALE_SET = [
    ("properties", "virtualMachineProfile", "osProfile", "customData"),
    ("properties", "virtualMachineProfile", "osProfile", "adminPassword"),
]


def _instance_view(computer_name: str, power: str = "running") -> Json:
    return {
        "computerName": computer_name,
        "osName": "debian",
        "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "time": now()},
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ],
    }


# A VM's power state, changed by its deallocate / powerOff / start actions.
POWER_ACTIONS = {"deallocate": "deallocated", "poweroff": "stopped", "start": "running"}


def power_of(state: ArmState, vm_id: str) -> str:
    return state.private_of(vm_id).get("power", "running")


def same_cluster_sizes(size: str) -> list[str]:
    """The sizes a running VM can take without deallocation: those of its hardware
    cluster, modelled as its size family (Azure's real answer is per cluster)."""
    return [name for name, (_, family) in VM_SIZES.items() if family == VM_SIZES[size][1]]


def _check_resize(state: ArmState, vm_id: str, old: Json, props: Json) -> None:
    """A running VM takes only a size of its hardware cluster; its OS disk grows only while
    it is deallocated, and never shrinks (what ARM answers)."""
    power = power_of(state, vm_id)
    old_size, size = old["hardwareProfile"]["vmSize"], props["hardwareProfile"]["vmSize"]
    if size != old_size and power != "deallocated" and size not in same_cluster_sizes(old_size):
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Unable to resize the VM because the requested size {size} is not available in "
            "the current hardware cluster. The available sizes in this cluster are: "
            f"{', '.join(same_cluster_sizes(old_size))}. Deallocate the VM to resize it to "
            "a size of another cluster.",
        )
    old_gb = old["storageProfile"]["osDisk"].get("diskSizeGB", IMAGE_OS_DISK_GB)
    new_gb = props["storageProfile"]["osDisk"].get("diskSizeGB", old_gb)
    if new_gb != old_gb:
        require(new_gb > old_gb, "PropertyChangeNotAllowed", "Disk size cannot be decreased.")
        require(
            power == "deallocated",
            "OperationNotAllowed",
            "Disk resizing is allowed only when creating a VM or when the VM is deallocated.",
            status=409,
        )


class VirtualMachines(ResourceType):
    namespace = "Microsoft.Compute"
    collection = "virtualMachines"
    sync_actions = ("generalize",)  # answers 200 when done, not an operation

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        name = rid.rsplit("/", 1)[1]
        location = body["location"]
        size = props.get("hardwareProfile", {}).get("vmSize")
        cpus = _check_size(state, size, location)
        _check_os_profile(props.get("osProfile"), name)
        props["osProfile"].setdefault("computerName", name)
        _check_storage_profile(props.get("storageProfile"), name, state)
        nics = props.get("networkProfile", {}).get("networkInterfaces") or []
        require(bool(nics), "InvalidParameter", "At least one network interface is required.")
        for nic in nics:
            self._check_nic(state, rid, ref_id(nic) or "", location)
        if existing is None:
            _check_quota(state, location, size, cpus)
        else:
            old = existing["properties"]
            for path, label in [
                (("storageProfile", "imageReference"), "imageReference"),
                (("osProfile", "customData"), "customData"),
                (("osProfile", "adminUsername"), "adminUsername"),
                (("osProfile", "computerName"), "computerName"),
            ]:
                _unchanged(old, props, path, label)
            old_cpus = VM_SIZES[old["hardwareProfile"]["vmSize"]][0]
            _check_quota(state, location, size, cpus - old_cpus)
            _check_resize(state, rid, old, props)
        props["vmId"] = (existing or {}).get("properties", {}).get("vmId") or str(uuid.uuid4())
        props.setdefault("timeCreated", now())
        self._attach_os_disk(state, rid, body, existing)
        return body

    @staticmethod
    def _check_nic(state: ArmState, vm_id: str, nic_id: str, location: str) -> None:
        nic = state.get(nic_id)
        require(
            nic is not None,
            "InvalidParameter",
            f"Network interface {nic_id} referenced by {vm_id} was not found.",
        )
        assert nic is not None
        require(
            nic["location"] == location,
            "NicLocationMismatch",
            f"NIC {nic_id} is in {nic['location']}, the VM in {location}.",
        )
        user = vm_using_nic(state, nic_id)
        require(
            user is None or same_id(user["id"], vm_id),
            "NicInUse",
            f"Network Interface {nic_id} is used by existing resource {user and user['id']}.",
        )

    @staticmethod
    def _attach_os_disk(state: ArmState, vm_id: str, body: Json, existing: Json | None) -> None:
        os_disk = body["properties"]["storageProfile"]["osDisk"]
        if existing is not None:
            old = existing["properties"]["storageProfile"]["osDisk"]
            os_disk["name"] = old["name"]
            os_disk.setdefault("managedDisk", {})["id"] = old["managedDisk"]["id"]
            disk = state.get(old["managedDisk"]["id"])
            if disk is not None and "diskSizeGB" in os_disk:
                disk["properties"]["diskSizeGB"] = os_disk["diskSizeGB"]
            return
        path = parse_id(vm_id)
        assert path is not None
        name = os_disk.get("name") or f"{path.pairs[0][1]}_OsDisk_1_{uuid.uuid4().hex}"
        disk_id = (
            f"/subscriptions/{path.subscription}/resourceGroups/{path.resource_group}"
            f"/providers/Microsoft.Compute/disks/{name}"
        )
        require(
            state.get(disk_id) is None,
            "ConflictingUserInput",
            f"Disk {name} already exists in resource group {path.resource_group}. Only "
            "CreateOption.Attach is supported.",
            status=409,
        )
        os_disk["name"] = name
        os_disk.setdefault("managedDisk", {})["id"] = disk_id
        state.put(
            {
                "id": disk_id,
                "name": name,
                "type": "Microsoft.Compute/disks",
                "location": body["location"],
                "managedBy": vm_id,
                "sku": {"name": os_disk["managedDisk"].get("storageAccountType", "Standard_LRS")},
                "properties": {
                    "osType": "Linux",
                    "diskSizeGB": os_disk.get("diskSizeGB", IMAGE_OS_DISK_GB),
                    "diskState": "Attached",
                    "creationData": {"createOption": "FromImage"},
                    "provisioningState": "Succeeded",
                    "timeCreated": now(),
                },
            }
        )

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = _without(stored, WRITE_ONLY_VM)
        if query.get("$expand", "").lower() == "instanceview":
            computer = stored["properties"]["osProfile"]["computerName"]
            power = power_of(state, stored["id"])
            shown["properties"]["instanceView"] = _instance_view(computer, power)
        return shown

    def read(self, state: ArmState, stored: Json, segments: list[str], query) -> Json | None:
        lowered = [s.lower() for s in segments]
        if lowered == ["instanceview"]:
            computer = stored["properties"]["osProfile"]["computerName"]
            return _instance_view(computer, power_of(state, stored["id"]))
        if lowered == ["vmsizes"]:  # the sizes it can take now (list_available_sizes)
            size = stored["properties"]["hardwareProfile"]["vmSize"]
            deallocated = power_of(state, stored["id"]) == "deallocated"
            names = list(VM_SIZES) if deallocated else same_cluster_sizes(size)
            return {
                "value": [
                    {"name": name, "numberOfCores": VM_SIZES[name][0], "memoryInMB": 4096}
                    for name in names
                ]
            }
        return None

    def action(
        self, state: ArmState, stored: Json, name: str, body: Json
    ) -> Callable[[], Json | None]:
        if name.lower() == "generalize":
            require(
                power_of(state, stored["id"]) == "deallocated",
                "OperationNotAllowed",
                f"VM {stored['name']} must be deallocated before it is generalized.",
                status=409,
            )
            return lambda: state.private_of(stored["id"]).update(generalized=True)
        power = POWER_ACTIONS.get(name.lower())
        require(power is not None, "InvalidResourceType", f"no action {name}", 404)

        def apply() -> None:
            state.private_of(stored["id"])["power"] = power

        return apply

    def on_deleted(self, state: ArmState, stored: Json) -> None:
        disk = state.get(stored["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"])
        if disk is not None:
            disk.pop("managedBy", None)
            disk["properties"]["diskState"] = "Unattached"


class Disks(ResourceType):
    namespace = "Microsoft.Compute"
    collection = "disks"

    def check_delete(self, state: ArmState, stored: Json) -> None:
        require(
            not stored.get("managedBy"),
            "OperationNotAllowed",
            f"Disk {stored['name']} is attached to VM {stored.get('managedBy')}.",
            status=409,
        )


def _model_snapshot(stored: Json) -> Json:
    """What an instance takes from the scale set model (and keeps until it is upgraded)."""
    profile = stored["properties"]["virtualMachineProfile"]
    return copy.deepcopy(
        {
            "vmSize": stored["sku"]["name"],
            "imageReference": profile["storageProfile"]["imageReference"],
            "customData": profile["osProfile"].get("customData"),
            "adminUsername": profile["osProfile"]["adminUsername"],
            "publicKeys": profile["osProfile"].get("linuxConfiguration", {}).get("ssh"),
            "networkInterfaceConfigurations": profile["networkProfile"][
                "networkInterfaceConfigurations"
            ],
            "extensions": profile.get("extensionProfile", {}),
        }
    )


def _check_identity(state: ArmState, body: Json) -> None:
    """identity: the user-assigned identities must exist; ARM shows each one's principalId
    and clientId (and, for a UserAssigned-only identity, no principal of its own)."""
    identity = body.get("identity")
    if not identity:
        return
    kind = identity.get("type")
    require(
        kind in {"None", "SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned"},
        "InvalidParameter",
        f"Identity type {kind} is not valid.",
    )
    assigned = identity.get("userAssignedIdentities") or {}
    require(
        ("UserAssigned" in kind) == bool(assigned),
        "InvalidParameter",
        "userAssignedIdentities must be given with the type UserAssigned, and only then.",
    )
    for identity_id in assigned:
        found = state.get(identity_id)
        require(
            found is not None,
            "FailedIdentityOperation",
            f"Identity (principal id) operation failed: resource '{identity_id}' not found.",
        )
        assert found is not None
        assigned[identity_id] = {
            "principalId": found["properties"]["principalId"],
            "clientId": found["properties"]["clientId"],
        }


class VirtualMachineScaleSets(ResourceType):
    namespace = "Microsoft.Compute"
    collection = "virtualMachineScaleSets"
    child_collections = ("virtualMachines",)

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        name = rid.rsplit("/", 1)[1]
        props = body.setdefault("properties", {})
        location = body["location"]
        sku = body.get("sku") or {}
        cpus = _check_size(state, sku.get("name"), location)
        capacity = sku.get("capacity")
        if capacity is None:
            capacity = (existing or {}).get("sku", {}).get("capacity", 0)
            sku["capacity"] = capacity
        require(
            isinstance(capacity, int) and 0 <= capacity <= 1000,
            "InvalidParameter",
            f"Capacity {capacity} is outside 0-1000.",
        )
        profile = props.get("virtualMachineProfile") or {}
        require(bool(profile), "InvalidParameter", "virtualMachineProfile is required")
        _check_os_profile(profile.get("osProfile"), name)
        prefix = profile["osProfile"].get("computerNamePrefix") or ""
        require(
            1 <= len(prefix) <= 58,
            "InvalidParameter",
            "computerNamePrefix must be 1 to 58 characters long.",
        )
        _check_storage_profile(profile.get("storageProfile"), name, state)
        _check_identity(state, body)
        self._check_network(state, rid, profile)
        self._check_upgrade_policy(props, profile)
        old_cores = 0
        if existing is not None:
            old_cores = VM_SIZES[existing["sku"]["name"]][0] * len(self._instances(state, rid))
        _check_quota(state, location, sku["name"], cpus * capacity - old_cores)
        props.setdefault("orchestrationMode", "Uniform")
        props["uniqueId"] = (existing or {}).get("properties", {}).get("uniqueId") or str(
            uuid.uuid4()
        )
        return body

    @staticmethod
    def _check_network(state: ArmState, rid: str, profile: Json) -> None:
        configs = profile.get("networkProfile", {}).get("networkInterfaceConfigurations") or []
        require(bool(configs), "InvalidParameter", "networkInterfaceConfigurations is required")
        for config in configs:
            for ipc in config.get("properties", {}).get("ipConfigurations", []):
                ip_props = ipc.get("properties", {})
                subnet_id = ref_id(ip_props.get("subnet"))
                require_child_ref(state, subnet_id, rid)
                for pool in ip_props.get("applicationGatewayBackendAddressPools", []):
                    require_child_ref(state, ref_id(pool), rid)
            nsg = ref_id(config.get("properties", {}).get("networkSecurityGroup"))
            require_optional_ref(state, nsg, rid)

    @staticmethod
    def _check_upgrade_policy(props: Json, profile: Json) -> None:
        mode = props.get("upgradePolicy", {}).get("mode", "Manual")
        require(
            mode in {"Manual", "Automatic", "Rolling"},
            "InvalidParameter",
            f"Upgrade mode {mode} is not valid.",
        )
        if mode != "Rolling":
            return
        extensions = profile.get("extensionProfile", {}).get("extensions", [])
        has_health_extension = any(
            e.get("properties", {}).get("type") in {"ApplicationHealthLinux", "ApplicationHealth"}
            for e in extensions
        )
        has_probe = profile.get("networkProfile", {}).get("healthProbe") is not None
        require(
            has_health_extension or has_probe,
            "InvalidParameter",
            "Rolling Upgrade mode is not supported for this Virtual Machine Scale Set because a "
            "health probe or health extension was not provided.",
        )

    @staticmethod
    def _instances(state: ArmState, rid: str) -> dict[str, Json]:
        return state.private_of(rid).setdefault("instances", {})

    def after_put(self, state: ArmState, stored: Json) -> None:
        """Scale to the model's capacity: new instances take the current model; scale-in
        removes the highest instance ids first (the default scale-in policy here)."""
        instances = self._instances(state, stored["id"])
        private = state.private_of(stored["id"])
        capacity = stored["sku"]["capacity"]
        prefix = stored["properties"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"]
        while len(instances) > capacity:
            instances.pop(max(instances, key=int))
        while len(instances) < capacity:
            instance_id = str(private.get("next_instance", 0))
            private["next_instance"] = int(instance_id) + 1
            instances[instance_id] = {
                "vmId": str(uuid.uuid4()),
                "computerName": f"{prefix}{int(instance_id):06x}",
                "snapshot": _model_snapshot(stored),
                "nics": [],
            }
            self._apply_snapshot(state, stored, instance_id)

    def _apply_snapshot(self, state: ArmState, stored: Json, instance_id: str) -> None:
        instance = self._instances(state, stored["id"])[instance_id]
        old_ips = {
            ipc["id"].lower(): (ipc["subnet_id"], ipc["privateIPAddress"])
            for nic in instance["nics"]
            for ipc in nic["ipConfigurations"]
        }
        vm_id = f"{stored['id']}/virtualMachines/{instance_id}"
        nics = []
        for config in instance["snapshot"]["networkInterfaceConfigurations"]:
            nic_id = f"{vm_id}/networkInterfaces/{config['name']}"
            ip_configs = []
            for ipc in config["properties"]["ipConfigurations"]:
                ipc_id = f"{nic_id}/ipConfigurations/{ipc['name']}"
                subnet_id = ipc["properties"]["subnet"]["id"]
                old = old_ips.get(ipc_id.lower())
                address = (
                    old[1]
                    if old and same_id(old[0], subnet_id)
                    else allocate_private_ip(state, subnet_id)
                )
                ip_configs.append(
                    {
                        "id": ipc_id,
                        "name": ipc["name"],
                        "subnet_id": subnet_id,
                        "pool_ids": [
                            p["id"]
                            for p in ipc["properties"].get(
                                "applicationGatewayBackendAddressPools", []
                            )
                        ],
                        "privateIPAddress": address,
                    }
                )
            nics.append({"id": nic_id, "name": config["name"], "ipConfigurations": ip_configs})
        instance["nics"] = nics

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        return _without(stored, WRITE_ONLY_SCALE_SET)

    def _render_vm(self, state: ArmState, stored: Json, instance_id: str, expand: bool) -> Json:
        instance = self._instances(state, stored["id"])[instance_id]
        snapshot = instance["snapshot"]
        vm = {
            "id": f"{stored['id']}/virtualMachines/{instance_id}",
            "name": f"{stored['name']}_{instance_id}",
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "location": stored["location"],
            "tags": copy.deepcopy(stored.get("tags", {})),
            "instanceId": instance_id,
            "sku": {"name": snapshot["vmSize"], "tier": "Standard"},
            "properties": {
                "latestModelApplied": snapshot == _model_snapshot(stored),
                "vmId": instance["vmId"],
                "provisioningState": "Succeeded",
                "hardwareProfile": {"vmSize": snapshot["vmSize"]},
                "storageProfile": {"imageReference": copy.deepcopy(snapshot["imageReference"])},
                "osProfile": {
                    "computerName": instance["computerName"],
                    "adminUsername": snapshot["adminUsername"],
                },
                "networkProfile": {
                    "networkInterfaces": [{"id": n["id"]} for n in instance["nics"]]
                },
            },
        }
        if expand:
            vm["properties"]["instanceView"] = _instance_view(instance["computerName"])
        return vm

    def _render_nic(self, instance_vm_id: str, nic: Json) -> Json:
        return {
            "id": nic["id"],
            "name": nic["name"],
            "type": "Microsoft.Network/networkInterfaces",
            "properties": {
                "primary": True,
                "virtualMachine": {"id": instance_vm_id},
                "provisioningState": "Succeeded",
                "ipConfigurations": [
                    {
                        "id": ipc["id"],
                        "name": ipc["name"],
                        "properties": {
                            "primary": True,
                            "privateIPAddress": ipc["privateIPAddress"],
                            "privateIPAllocationMethod": "Dynamic",
                            "subnet": {"id": ipc["subnet_id"]},
                            "applicationGatewayBackendAddressPools": [
                                {"id": p} for p in ipc["pool_ids"]
                            ],
                            "provisioningState": "Succeeded",
                        },
                    }
                    for ipc in nic["ipConfigurations"]
                ],
            },
        }

    @staticmethod
    def _scale_set_view(state: ArmState, stored: Json, instances: dict) -> Json:
        """virtualMachineScaleSets/{name}/instanceView: the set's statuses, an Error one when
        FakeArm.fail_scale_set_instances said its instances cannot be provisioned."""
        statuses: list[Json] = [{"code": "ProvisioningState/succeeded", "level": "Info"}]
        failure = state.private_of(stored["id"]).get("instance_error")
        if failure:
            statuses = [
                {
                    "code": f"ProvisioningState/failed/{failure['code']}",
                    "level": "Error",
                    "displayStatus": "Provisioning failed",
                    "message": failure["message"],
                    "time": now(),
                }
            ]
        state_code = "failed" if failure else "succeeded"
        return {
            "virtualMachine": {
                "statusesSummary": [
                    {"code": f"ProvisioningState/{state_code}", "count": len(instances)}
                ]
            },
            "statuses": statuses,
        }

    def read(
        self, state: ArmState, stored: Json, segments: list[str], query: dict[str, str]
    ) -> Json | None:
        instances = self._instances(state, stored["id"])
        expand = query.get("$expand", "").lower() == "instanceview"
        lowered = [s.lower() for s in segments]
        ordered = sorted(instances, key=int)
        if lowered == ["virtualmachines"]:
            return {"value": [self._render_vm(state, stored, i, expand) for i in ordered]}
        if lowered == ["networkinterfaces"]:
            return {
                "value": [
                    self._render_nic(f"{stored['id']}/virtualMachines/{i}", nic)
                    for i in ordered
                    for nic in instances[i]["nics"]
                ]
            }
        if lowered == ["instanceview"]:
            return self._scale_set_view(state, stored, instances)
        if lowered == ["rollingupgrades", "latest"]:
            latest = state.private_of(stored["id"]).get("rolling_upgrade")
            if latest is None:
                raise ArmError(
                    404, "NotFound", f"No rolling upgrade found for scale set {stored['name']}."
                )
            return copy.deepcopy(latest)
        if len(lowered) >= 2 and lowered[0] == "virtualmachines":
            instance_id = segments[1]
            if instance_id not in instances:
                raise ArmError(
                    404,
                    "NotFound",
                    f"The entity was not found in this Azure location. Instance {instance_id}.",
                )
            vm_id = f"{stored['id']}/virtualMachines/{instance_id}"
            if len(lowered) == 2:
                return self._render_vm(state, stored, instance_id, expand)
            if lowered[2:] == ["instanceview"]:
                return _instance_view(instances[instance_id]["computerName"])
            if lowered[2:] == ["networkinterfaces"]:
                nics = instances[instance_id]["nics"]
                return {"value": [self._render_nic(vm_id, nic) for nic in nics]}
        return None

    def action(
        self, state: ArmState, stored: Json, name: str, body: Json
    ) -> Callable[[], Json | None]:
        require(name.lower() == "manualupgrade", "InvalidResourceType", f"no action {name}")
        wanted = body.get("instanceIds") or []
        instances = self._instances(state, stored["id"])
        require(bool(wanted), "InvalidParameter", "instanceIds is required.")
        for instance_id in wanted:
            require(
                instance_id in instances,
                "InvalidParameter",
                f"The provided instanceId {instance_id} is not an active Virtual Machine Scale "
                "Set VM instanceId.",
            )

        def upgrade() -> None:
            # FakeArm.fault_rolling_upgrade: the upgraded instances fail their health signal,
            # the upgrade stops and rolls them back (rollbackFailedInstancesOnPolicyBreach).
            fault = state.private_of(stored["id"]).pop("upgrade_fault", None)
            if fault is None:
                for instance_id in wanted:
                    if instance_id in instances:
                        instances[instance_id]["snapshot"] = _model_snapshot(stored)
                        self._apply_snapshot(state, stored, instance_id)
            state.private_of(stored["id"])["rolling_upgrade"] = _rolling_upgrade(
                stored, len(wanted), fault
            )

        return upgrade


def _rolling_upgrade(stored: Json, count: int, fault: Json | None) -> Json:
    """A RollingUpgradeStatusInfo as GET .../rollingUpgrades/latest answers it."""
    props = stored["properties"]
    status: Json = {
        "policy": copy.deepcopy(props.get("upgradePolicy", {}).get("rollingUpgradePolicy", {})),
        "runningStatus": {
            "code": fault["code"] if fault else "Completed",
            "startTime": now(),
            "lastAction": "Cancel" if fault and fault["code"] == "Cancelled" else "Start",
            "lastActionTime": now(),
        },
        "progress": {
            "successfulInstanceCount": 0 if fault else count,
            "failedInstanceCount": count if fault else 0,
            "inProgressInstanceCount": 0,
            "pendingInstanceCount": 0,
        },
    }
    if fault and fault.get("error"):
        status["error"] = copy.deepcopy(fault["error"])
    return {
        "name": "latest",
        "type": "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades",
        "location": stored["location"],
        "properties": status,
    }


ISO_DURATION = re.compile(r"^P(T(\d+H)?(\d+M)?(\d+S)?|\d+D)$")


class AutoscaleSettings(ResourceType):
    namespace = "Microsoft.Insights"
    collection = "autoscalesettings"
    long_running = False

    @property
    def type_name(self) -> str:
        return "Microsoft.Insights/autoscaleSettings"

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        profiles = props.get("profiles") or []
        require(
            1 <= len(profiles) <= 20,
            "InvalidRequestContent",
            "An autoscale setting needs 1 to 20 profiles.",
        )
        target = props.get("targetResourceUri")
        require(
            bool(target) and state.get(target) is not None,
            "TargetResourceNotFound",
            f"The target resource id '{target}' was not found.",
            status=400,
        )
        for profile in profiles:
            self._check_profile(state, profile)
        props["name"] = rid.rsplit("/", 1)[1]
        props.setdefault("enabled", True)
        return body

    @staticmethod
    def _check_profile(state: ArmState, profile: Json) -> None:
        capacity = profile.get("capacity", {})
        try:
            low, high, default = (int(capacity[k]) for k in ("minimum", "maximum", "default"))
        except (KeyError, ValueError):
            raise ArmError(
                400, "InvalidRequestContent", "capacity needs minimum, maximum and default."
            ) from None
        require(
            0 <= low <= default <= high <= 1000,
            "InvalidRequestContent",
            f"Invalid capacity: minimum {low} <= default {default} <= maximum {high} is required.",
        )
        rules = profile.get("rules", [])
        require(len(rules) <= 10, "InvalidRequestContent", "At most 10 rules per profile.")
        for rule in rules:
            trigger = rule.get("metricTrigger", {})
            action = rule.get("scaleAction", {})
            require(
                all(
                    trigger.get(k) is not None
                    for k in (
                        "metricName",
                        "metricResourceUri",
                        "timeGrain",
                        "statistic",
                        "timeWindow",
                        "timeAggregation",
                        "operator",
                        "threshold",
                    )
                ),
                "InvalidRequestContent",
                "metricTrigger is missing a required field.",
            )
            require(
                state.get(trigger["metricResourceUri"]) is not None,
                "TargetResourceNotFound",
                f"The metric resource '{trigger['metricResourceUri']}' was not found.",
            )
            require(
                action.get("direction") in {"Increase", "Decrease"}
                and action.get("type") in {"ChangeCount", "PercentChangeCount", "ExactCount"}
                and bool(ISO_DURATION.match(str(action.get("cooldown", "")))),
                "InvalidRequestContent",
                "scaleAction needs direction, type and an ISO 8601 cooldown.",
            )
