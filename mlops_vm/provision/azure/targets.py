"""One fleet VM out of the Application Gateway's backend pool and back: a release, host by host.

A fleet VM is in the pool through its NIC's IP configuration
(applicationGatewayBackendAddressPools), as load_balancer.register_fleet puts it there. Taking
it out of that list, with connection draining on the backend settings (connectionDraining
{enabled, drainTimeoutInSec = drain_seconds}), stops new requests to it while those in flight
finish. ARM reports nothing when draining ends, so deregister waits out the drain time once
the NIC update has succeeded. register puts the pool back on the NIC; the gateway's probe
decides when it serves again (wait_target_healthy in base.py).

Scale set instances roll through the scale set's Rolling upgrade policy instead.
"""

from __future__ import annotations

import copy
import time

from mlops_vm.plan import ChangeLog
from mlops_vm.provision import target_errors
from mlops_vm.provision.azure import inventory, load_balancer
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.errors import PROVIDER
from mlops_vm.provision.azure.instances import list_nics
from mlops_vm.provision.azure.names import (
    BACKEND_POOL,
    BACKEND_SETTINGS,
    gateway_child,
    resource_group_of,
    same_id,
)
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import Instance, LoadBalancerSpec

# ARM's upper bound of drainTimeoutInSec: a wait never goes past it.
MAX_DRAIN_WAIT_S = 3600
sleep = time.sleep  # tests replace it to see the wait without waiting


def _error(code: ErrorCode, message: str, hint: str, doing: str) -> ProvisionError:
    return ProvisionError(code, message, hint=hint, provider=PROVIDER, operation=doing)


def refuse_scale_set_instance(instance: Instance, doing: str) -> None:
    if "/virtualmachinescalesets/" in instance.id.lower():
        raise target_errors.scaling_group_member(
            PROVIDER,
            f"{instance.name} is an instance of a VM scale set",
            "the scale set's Rolling upgrade policy",
            "the model",
            doing,
        )


def gateway_of(arm: Arm, spec: LoadBalancerSpec, doing: str) -> tuple[str, Json]:
    found = inventory.find_gateway(arm, spec.env)
    if found is None:
        raise target_errors.no_load_balancer(PROVIDER, spec.env, "Application Gateway", doing)
    return found


def nic_of(arm: Arm, instance: Instance, doing: str) -> Json:
    for nic in list_nics(arm, resource_group_of(instance.id)):
        if same_id((nic["properties"].get("virtualMachine") or {}).get("id"), instance.id):
            return nic
    raise target_errors.instance_not_found(
        PROVIDER, f"no network interface of {instance.name} found", doing
    )


def ensure_draining(
    arm: Arm, group: str, gateway: Json, spec: LoadBalancerSpec, log: ChangeLog
) -> None:
    """Keep the backend settings' draining at drain_seconds (a GET-modify-PUT of the gateway,
    which keeps its certificates when they are named without their data)."""
    wanted = load_balancer.connection_draining(spec)
    body = copy.deepcopy(gateway)
    settings = [
        s
        for s in body["properties"].get("backendHttpSettingsCollection", [])
        if s["name"] == BACKEND_SETTINGS
    ]
    if not settings or settings[0]["properties"].get("connectionDraining") == wanted:
        return
    settings[0]["properties"]["connectionDraining"] = wanted
    log.update(
        "application_gateway",
        gateway["name"],
        lambda: load_balancer.put_gateway(arm, group, gateway["name"], body),
        f"drain {wanted}",
    )


def _target(
    arm: Arm, spec: LoadBalancerSpec, instance: Instance, doing: str
) -> tuple[str, Json, str, Json]:
    """INSTANCE as a target: (the gateway's group, the gateway, its backend pool id, the
    instance's NIC). Scale set instances are refused."""
    refuse_scale_set_instance(instance, doing)
    group, gateway = gateway_of(arm, spec, doing)
    pool_id = gateway_child(gateway["id"], "backendAddressPools", BACKEND_POOL)["id"]
    return group, gateway, pool_id, nic_of(arm, instance, doing)


def _put_membership(arm: Arm, instance: Instance, nic: Json, pool_id: str, member: bool) -> None:
    body = load_balancer.nic_with_pool(nic, pool_id, member=member)
    load_balancer.put_nics(arm, resource_group_of(instance.id), {nic["name"]: body})


def deregister_target(arm: Arm, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog) -> None:
    doing = f"deregister target {instance.name}"
    group, gateway, pool_id, nic = _target(arm, spec, instance, doing)
    ensure_draining(arm, group, gateway, spec, log)
    if not load_balancer.in_pool(nic, pool_id):
        return

    def leave() -> None:
        _put_membership(arm, instance, nic, pool_id, member=False)
        sleep(min(spec.drain_seconds, MAX_DRAIN_WAIT_S))

    log.delete("target", instance.id, leave, f"{instance.name}, drain {spec.drain_seconds}s")


def register_target(arm: Arm, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog) -> None:
    doing = f"register target {instance.name}"
    _, _, pool_id, nic = _target(arm, spec, instance, doing)
    if not load_balancer.in_pool(nic, pool_id):
        log.create(
            "target",
            instance.id,
            lambda: _put_membership(arm, instance, nic, pool_id, member=True),
            f"{instance.name}, register",
        )
