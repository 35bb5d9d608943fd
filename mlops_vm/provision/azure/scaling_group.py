"""Scaling-group mode: a VM scale set with rolling upgrades, and its autoscale setting.

Instances configure themselves at boot from the user data (customData, read by cloud-init);
nothing reaches them over SSH. A new image or new user data is a new scale set model: the
model is updated, then instances that do not run it are upgraded (update_instances, rolled in
batches by the Rolling policy; maxSurge brings new instances up before old ones go, which is
also how new custom data reaches them). The Application Health extension reports /healthz, as
a Rolling policy requires a health signal. After an upgrade the latest rolling upgrade status
is read: one that faulted (unhealthy new instances, rolled back) or was cancelled is an error.

Size: the scale set starts at FleetSpec.count. Between runs the autoscale setting owns the
capacity; a run changes it only when FleetSpec.count itself changed (remembered in a tag), or
to bring it back inside [min_size, max_size].
"""

from __future__ import annotations

import copy
from dataclasses import replace

from mlops_vm.plan import ChangeLog, Fix
from mlops_vm.provision.azure.client import Arm, Json, ResourceType
from mlops_vm.provision.azure.drift import differences
from mlops_vm.provision.azure.errors import HINTS, PROVIDER, classify_code
from mlops_vm.provision.azure.group_release import release_tags
from mlops_vm.provision.azure.instances import (
    os_disk_size_gb,
    os_profile,
    primary_private_ip,
    vm_status,
)
from mlops_vm.provision.azure.names import (
    IP_CONFIG,
    NIC_CONFIG,
    TAG_DESIRED_COUNT,
    TAG_USER_DATA_SHA256,
    has_tags,
    image_reference,
    sha256,
    tags,
)
from mlops_vm.provision.azure.network import Layout
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import (
    LABEL_PREVIOUS_RELEASE,
    LABEL_RELEASE,
    LABEL_ROLE,
    FleetSpec,
    Instance,
)

HEALTH_PATH = "/healthz"
# Small batches (at least one instance each), new instances up before old ones go (maxSurge);
# one upgraded instance failing its health signal stops the upgrade and rolls the failed ones
# back, and instances already unhealthy are replaced first.
ROLLING_POLICY: Json = {
    "maxBatchInstancePercent": 20,
    "maxUnhealthyInstancePercent": 20,
    "maxUnhealthyUpgradedInstancePercent": 0,
    "pauseTimeBetweenBatches": "PT0S",
    "prioritizeUnhealthyInstances": True,
    "rollbackFailedInstancesOnPolicyBreach": True,
    "maxSurge": True,
}
# Rolling upgrade states that mean the new model did not (fully) roll out.
UPGRADE_FAILED = {"Faulted": ErrorCode.INTERNAL, "Cancelled": ErrorCode.CONFLICT}
# Hysteresis: scale in only well below the target, so that one scale-in does not push the
# remaining instances straight back over it.
SCALE_IN_FRACTION = 0.5


# -- SDK calls -------------------------------------------------------------------------------


SCALE_SET = ResourceType(
    "scale_set",
    "scale set",
    lambda arm: arm.compute.virtual_machine_scale_sets,
    put_doing="create or update scale set",
)
AUTOSCALE = ResourceType(
    "autoscale_setting",
    "autoscale setting",
    lambda arm: arm.monitor.autoscale_settings,
    long_running=False,
)
get_scale_set, put_scale_set = SCALE_SET.get, SCALE_SET.put
get_autoscale, put_autoscale = AUTOSCALE.get, AUTOSCALE.put


def patch_scale_set(arm: Arm, group: str, name: str, body: Json) -> Json:
    return arm.run(
        "update scale set", arm.compute.virtual_machine_scale_sets.begin_update, group, name, body
    )


def list_scale_sets(arm: Arm, group: str) -> list[Json]:
    return arm.read_all("list scale sets", arm.compute.virtual_machine_scale_sets.list, group)


def list_scale_set_vms(arm: Arm, group: str, name: str) -> list[Json]:
    return arm.read_all(
        "list scale set instances",
        arm.compute.virtual_machine_scale_set_vms.list,
        group,
        name,
        expand="instanceView",
    )


def list_scale_set_nics(arm: Arm, group: str, name: str) -> list[Json]:
    return arm.read_all(
        "list scale set network interfaces",
        arm.network.network_interfaces.list_virtual_machine_scale_set_network_interfaces,
        group,
        name,
    )


def upgrade_instances(arm: Arm, group: str, name: str, instance_ids: list[str]) -> None:
    arm.run(
        "upgrade scale set instances to the latest model",
        arm.compute.virtual_machine_scale_sets.begin_update_instances,
        group,
        name,
        {"instanceIds": instance_ids},
    )


def latest_rolling_upgrade(arm: Arm, group: str, name: str) -> Json | None:
    """The scale set's most recent rolling upgrade (None when it never had one)."""
    return arm.read(
        "read the latest rolling upgrade",
        arm.compute.virtual_machine_scale_set_rolling_upgrades.get_latest,
        group,
        name,
    )


def check_rolling_upgrade(arm: Arm, group: str, name: str) -> None:
    """A rolling upgrade that faulted or was cancelled left instances on the old model: say
    so, with Azure's reason, rather than report success."""
    latest = latest_rolling_upgrade(arm, group, name) or {}
    props = latest.get("properties") or {}
    code = (props.get("runningStatus") or {}).get("code")
    if code not in UPGRADE_FAILED:
        return
    error = props.get("error") or {}
    progress = props.get("progress") or {}
    reasons = [error.get("message") or error.get("code") or "no reason given"]
    reasons += [d.get("message", "") for d in error.get("details") or [] if d.get("message")]
    raise ProvisionError(
        UPGRADE_FAILED[code],
        f"the rolling upgrade of scale set {name} {code.lower()}: {'; '.join(reasons)} "
        f"({progress.get('successfulInstanceCount', 0)} upgraded, "
        f"{progress.get('failedInstanceCount', 0)} failed, "
        f"{progress.get('pendingInstanceCount', 0)} pending)",
        hint="instances of the new model must answer the Application Health extension on "
        f"{HEALTH_PATH}: check the image and user data (or roll back), then run provision",
        provider=PROVIDER,
        operation="roll the scale set to the latest model",
    )


def check_instance_view(arm: Arm, group: str, name: str) -> None:
    """A scale set whose instances could not be provisioned (allocation, quota, an
    extension) says so in its instance view with level Error: fail now with that reason,
    classified, rather than report a scale set that will never serve."""
    view = (
        arm.read(
            "read the scale set's instance view",
            arm.compute.virtual_machine_scale_sets.get_instance_view,
            group,
            name,
        )
        or {}
    )
    failed = [s for s in view.get("statuses") or [] if str(s.get("level")).lower() == "error"]
    for extension in view.get("extensions") or []:
        failed += [
            s for s in extension.get("statuses") or [] if str(s.get("level")).lower() == "error"
        ]
    if not failed:
        return
    first = failed[0]
    arm_code = str(first.get("code", "")).rsplit("/", 1)[-1]
    code = classify_code(arm_code, message=str(first.get("message", "")))
    reasons = "; ".join(
        f"{s.get('code', '?')}: {s.get('message') or s.get('displayStatus') or ''}" for s in failed
    )
    raise ProvisionError(
        code,
        f"the instances of scale set {name} could not be provisioned: {reasons}",
        hint=HINTS.get(code, ""),
        provider=PROVIDER,
        operation="provision the scale set's instances",
    )


# -- desired state ---------------------------------------------------------------------------


def health_extension(spec: FleetSpec) -> Json:
    return {
        "name": "health",
        "properties": {
            "publisher": "Microsoft.ManagedServices",
            "type": "ApplicationHealthLinux",
            "typeHandlerVersion": "2.0",
            "autoUpgradeMinorVersion": True,
            "settings": {
                "protocol": "https" if spec.service_port == 443 else "http",
                "port": spec.service_port,
                "requestPath": HEALTH_PATH,
            },
        },
    }


def backend_pools(scale_set: Json | None) -> list[Json]:
    """The gateway pools the model references: the load balancer step owns them, so a fleet
    run keeps whatever it finds."""
    if scale_set is None:
        return []
    profile = scale_set["properties"]["virtualMachineProfile"]["networkProfile"]
    for config in profile["networkInterfaceConfigurations"]:
        for ipc in config["properties"]["ipConfigurations"]:
            pools = ipc["properties"].get("applicationGatewayBackendAddressPools") or []
            return [{"id": pool["id"]} for pool in pools]
    return []


def desired_capacity(scale_set: Json | None, spec: FleetSpec) -> int:
    if scale_set is None:
        return spec.count
    if (scale_set.get("tags") or {}).get(TAG_DESIRED_COUNT) != str(spec.count):
        return spec.count
    current = int(scale_set["sku"]["capacity"])
    return min(max(current, spec.autoscaling.min_size), spec.autoscaling.max_size)


def scale_set_body(
    layout: Layout,
    spec: FleetSpec,
    *,
    capacity: int,
    pools: list[Json],
    disk_type: str,
    identity_id: str | None = None,
) -> Json:
    instance = spec.instance
    nic_config: Json = {
        "name": NIC_CONFIG,
        "properties": {
            "primary": True,
            "ipConfigurations": [
                {
                    "name": IP_CONFIG,
                    "properties": {
                        "subnet": {"id": layout.instance_subnet_id},
                        "applicationGatewayBackendAddressPools": pools,
                    },
                }
            ],
        },
    }
    if layout.nic_nsg_id:
        nic_config["properties"]["networkSecurityGroup"] = {"id": layout.nic_nsg_id}
    body: Json = {
        "location": layout.location,
        "tags": tags(
            spec.env,
            spec.role,
            {
                **instance.tags,
                TAG_USER_DATA_SHA256: sha256(instance.user_data),
                TAG_DESIRED_COUNT: str(spec.count),
            },
        ),
        "sku": {"name": instance.machine_type, "tier": "Standard", "capacity": capacity},
        "properties": {
            "orchestrationMode": "Uniform",
            # Exactly `capacity` VMs: overprovisioning would briefly boot extra instances
            # that configure themselves and register with the gateway for nothing.
            "overprovision": False,
            "upgradePolicy": {"mode": "Rolling", "rollingUpgradePolicy": ROLLING_POLICY},
            "virtualMachineProfile": {
                "osProfile": os_profile(
                    instance, computerNamePrefix=layout.names.computer_name_prefix
                ),
                "storageProfile": {
                    "imageReference": image_reference(instance.image),
                    "osDisk": {
                        "createOption": "FromImage",
                        "caching": "ReadWrite",
                        "diskSizeGB": os_disk_size_gb(instance),
                        "managedDisk": {"storageAccountType": disk_type},
                    },
                },
                "networkProfile": {"networkInterfaceConfigurations": [nic_config]},
                "extensionProfile": {"extensions": [health_extension(spec)]},
            },
        },
    }
    if spec.zones:
        body["zones"] = list(spec.zones)
    if identity_id:  # what the instances boot with (instance_identity)
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}}
    return body


def comparable(body: Json) -> Json:
    """What ARM shows back: customData is write-only (the user data tag stands for it)."""
    shown = copy.deepcopy(body)
    shown["properties"]["virtualMachineProfile"]["osProfile"].pop("customData", None)
    return lowered_identity_ids(shown)


def lowered_identity_ids(scale_set: Json) -> Json:
    """ARM may answer the identities' ids (the keys of userAssignedIdentities) in its own
    case ("resourcegroups"); ids compare case-insensitively, so lower them all."""
    identity = scale_set.get("identity") or {}
    if not identity.get("userAssignedIdentities"):
        return scale_set
    shown = copy.deepcopy(scale_set)
    assigned = shown["identity"]["userAssignedIdentities"]
    shown["identity"]["userAssignedIdentities"] = {k.lower(): v for k, v in assigned.items()}
    return shown


def autoscale_body(layout: Layout, spec: FleetSpec, scale_set_id: str) -> Json:
    scaling = spec.autoscaling
    rules: list[Json] = []
    if scaling.target_cpu_percent is not None:
        target = float(scaling.target_cpu_percent)
        rules = [
            cpu_rule(scale_set_id, "GreaterThan", target, "Increase", "PT5M"),
            cpu_rule(scale_set_id, "LessThan", target * SCALE_IN_FRACTION, "Decrease", "PT10M"),
        ]
    # Requests per instance (AutoscalingSpec.target_requests_per_instance) would need the
    # gateway's metrics, which exist only after the load balancer step: CPU rules only here.
    return {
        "location": layout.location,
        "tags": tags(spec.env, spec.role),
        "properties": {
            "enabled": True,
            "targetResourceUri": scale_set_id,
            "profiles": [
                {
                    "name": "default",
                    "capacity": {
                        "minimum": str(scaling.min_size),
                        "maximum": str(scaling.max_size),
                        "default": str(spec.count),
                    },
                    "rules": rules,
                }
            ],
        },
    }


def cpu_rule(
    resource_id: str,
    operator: str,
    threshold: float,
    direction: str,
    cooldown: str,
    *,
    metric: tuple[str, str] = ("Percentage CPU", "microsoft.compute/virtualmachinescalesets"),
    window: str = "PT5M",
) -> Json:
    """A one-instance step on average CPU of RESOURCE_ID (a scale set; for another resource
    METRIC is its metric's name and namespace: an App Service plan's is CpuPercentage)."""
    return {
        "metricTrigger": {
            "metricName": metric[0],
            "metricNamespace": metric[1],
            "metricResourceUri": resource_id,
            "timeGrain": "PT1M",
            "statistic": "Average",
            "timeWindow": window,
            "timeAggregation": "Average",
            "operator": operator,
            "threshold": threshold,
        },
        "scaleAction": {
            "direction": direction,
            "type": "ChangeCount",
            "value": "1",
            "cooldown": cooldown,
        },
    }


# -- convergence -----------------------------------------------------------------------------


def converge_scale_set(
    arm: Arm,
    layout: Layout,
    spec: FleetSpec,
    log: ChangeLog,
    *,
    disk_type: str,
    identity_id: str | None = None,
) -> int:
    """The scale set and its autoscale setting; returns the capacity it was given.
    IDENTITY_ID: the user-assigned identity its instances boot with."""
    group, name = layout.resource_group, layout.names.scale_set
    actual = get_scale_set(arm, group, name)
    capacity = desired_capacity(actual, spec)
    desired = scale_set_body(
        layout,
        spec,
        capacity=capacity,
        pools=backend_pools(actual),
        disk_type=disk_type,
        identity_id=identity_id,
    )
    desired["tags"].update(release_tags(actual, spec))

    def put() -> None:
        put_scale_set(arm, group, name, desired)
        check_instance_view(arm, group, name)

    changed = (
        [] if actual is None else differences(comparable(desired), lowered_identity_ids(actual))
    )
    log.ensure(
        "scale_set",
        name,
        current=actual,
        create=put,
        fixes=lambda current: [Fix(describe(changed, current, desired), put)] if changed else [],
        detail=f"{capacity} x {spec.instance.machine_type}",
    )
    if actual is not None:
        roll_stale_instances(arm, group, name, log, model_changed=model_changed(changed))
    converge_autoscale(arm, layout, spec, log)
    return capacity


def model_changed(changed_paths: list[str]) -> bool:
    """Capacity and tags alone do not change what an instance runs."""
    return any(not p.startswith(("sku.capacity", "tags")) for p in changed_paths) or any(
        p == f"tags.{TAG_USER_DATA_SHA256}" for p in changed_paths
    )


def describe(changed: list[str], actual: Json, desired: Json) -> str:
    parts = []
    if "sku.capacity" in changed:
        parts.append(f"capacity {actual['sku']['capacity']} -> {desired['sku']['capacity']}")
    if any("imageReference" in p for p in changed):
        parts.append("new image")
    if f"tags.{TAG_USER_DATA_SHA256}" in changed:
        parts.append("new user data")
    if f"tags.{LABEL_RELEASE}" in changed:
        parts.append(f"release {desired['tags'][LABEL_RELEASE]}")
    shown = (TAG_USER_DATA_SHA256, LABEL_RELEASE, LABEL_PREVIOUS_RELEASE)
    rest = [
        p
        for p in changed
        if p != "sku.capacity"
        and "imageReference" not in p
        and not any(p == f"tags.{tag}" for tag in shown)
    ]
    if rest:
        parts.append(", ".join(rest[:3]))
    return "; ".join(parts)


def roll_stale_instances(
    arm: Arm, group: str, name: str, log: ChangeLog, *, model_changed: bool, planned: int = 0
) -> None:
    """Upgrade the instances that do not run the latest model (after a model change, or left
    behind by an interrupted run). PLANNED: instances a dry run plans to create first."""
    instances = list_scale_set_vms(arm, group, name)
    # After a model change every instance is stale (a dry run did not change the model, so
    # latestModelApplied cannot tell yet; a run may find Azure's own roll already under way).
    stale = [
        vm["instanceId"]
        for vm in instances
        if model_changed or not vm["properties"].get("latestModelApplied", True)
    ]
    count = len(stale) + planned
    if not count:
        return
    detail = f"roll {count} instance(s) to the latest model"
    already = " (Azure's rolling upgrade is already under way)"

    def upgrade() -> str:
        try:
            upgrade_instances(arm, group, name, stale)
        except ProvisionError as error:
            # Under the Rolling policy Azure may already be rolling the new model out on its
            # own (and refuse a second upgrade meanwhile): that is the outcome we asked for.
            if error.code != ErrorCode.CONFLICT:
                raise
            return already
        check_rolling_upgrade(arm, group, name)
        return ""

    note = log.update("scale_set", name, upgrade, detail)
    if note:  # what Azure said is part of the change (a dry run plans no note)
        log.changes[-1] = replace(log.changes[-1], detail=detail + note)


def converge_autoscale(arm: Arm, layout: Layout, spec: FleetSpec, log: ChangeLog) -> None:
    group, name = layout.resource_group, layout.names.autoscale
    scale_set_id = layout.ids.scale_set(layout.names.scale_set)
    scaling = spec.autoscaling
    AUTOSCALE.converge(
        arm,
        log,
        group,
        name,
        autoscale_body(layout, spec, scale_set_id),
        create_detail=f"{scaling.min_size}-{scaling.max_size}, CPU {scaling.target_cpu_percent}%",
    )


def attach_backend_pool(
    arm: Arm, layout: Layout, pool_id: str, log: ChangeLog, *, capacity: int
) -> None:
    """Put the scale set's NICs in the gateway's backend pool (model, then instances).
    CAPACITY: its instances, all of which roll when the scale set exists only in the plan."""
    group, name = layout.resource_group, layout.names.scale_set
    actual = get_scale_set(arm, group, name)
    pools = backend_pools(actual)
    if any(p["id"].lower() == pool_id.lower() for p in pools):
        roll_stale_instances(arm, group, name, log, model_changed=False)
        return
    configs = copy.deepcopy(
        (actual or {})
        .get("properties", {})
        .get("virtualMachineProfile", {})
        .get("networkProfile", {})
        .get("networkInterfaceConfigurations")
        or []
    )
    for config in configs:
        for ipc in config["properties"]["ipConfigurations"]:
            ipc["properties"]["applicationGatewayBackendAddressPools"] = [*pools, {"id": pool_id}]
    # PATCH only the network profile: a PUT would have to resend the write-only customData.
    patch = {
        "properties": {
            "virtualMachineProfile": {"networkProfile": {"networkInterfaceConfigurations": configs}}
        }
    }
    log.update(
        "scale_set", name, lambda: patch_scale_set(arm, group, name, patch), "join backend pool"
    )
    planned = capacity if actual is None else 0
    roll_stale_instances(arm, group, name, log, model_changed=True, planned=planned)


# -- records ---------------------------------------------------------------------------------


def scale_set_instances(arm: Arm, group: str, env: str, role: str | None) -> list[Instance]:
    found: list[Instance] = []
    for scale_set in list_scale_sets(arm, group):
        if not has_tags(scale_set, env, role):
            continue
        nics = {
            (nic["properties"].get("virtualMachine") or {}).get("id", "").lower(): nic
            for nic in list_scale_set_nics(arm, group, scale_set["name"])
        }
        for vm in list_scale_set_vms(arm, group, scale_set["name"]):
            found.append(
                Instance(
                    id=vm["id"],
                    name=vm["name"],
                    status=vm_status(vm),
                    private_ip=primary_private_ip(nics.get(vm["id"].lower())),
                    zone=(vm.get("zones") or [None])[0],
                    role=(scale_set.get("tags") or {}).get(LABEL_ROLE, ""),
                    connection="ssh",
                    ssh_user=vm["properties"].get("osProfile", {}).get("adminUsername"),
                    tags=dict(scale_set.get("tags") or {}),
                )
            )
    return found
