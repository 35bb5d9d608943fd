"""One fleet instance out of the load balancer and back: a release, host by host.

The fleet's instances reach the backend service through one unmanaged instance group per
zone (load_balancer.ensure_fleet_groups). Removing an instance from its group starts the
backend service's connection draining (connectionDraining.drainingTimeoutSec =
LoadBalancerSpec.drain_seconds): no new connection goes to it, those in flight may finish.
The API says nothing about when draining ends, so deregister waits out the draining time
after the removal operation is done. register adds it back; the LB's health checks decide
when it serves again (wait_target_healthy in base.py).

Instances of a managed instance group roll through the MIG's update policy instead.
"""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision import target_errors
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp import load_balancer
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.converge import ApiFix, apply_fix, get_global
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.provision.gcp.instances import manager_of
from mlops_vm.provision.gcp.names import same_link
from mlops_vm.provision.model import ROLE_MODEL, Instance, LoadBalancerSpec

# GCP's own upper bound of drainingTimeoutSec: a wait never goes past it.
MAX_DRAIN_WAIT_S = 3600


def _error(code: ErrorCode, message: str, hint: str, doing: str) -> ProvisionError:
    return ProvisionError(code, message, hint=hint, provider=PROVIDER, operation=doing)


def backend_service(ctx: Context, spec: LoadBalancerSpec, doing: str) -> dict[str, Any]:
    service = get_global(ctx, "backend_service", ctx.names.backend_service)
    if service is None:
        part = f"backend service {ctx.names.backend_service}"
        raise target_errors.no_load_balancer(PROVIDER, spec.env, part, doing)
    return service


def refuse_managed_instance(ctx: Context, instance: Instance, doing: str) -> None:
    """A MIG's instances carry the `created-by` metadata key (the MIG's link)."""
    resource = ctx.client.get(
        f"read instance {instance.name}",
        lambda s: s.instances().get(
            project=ctx.project, zone=instance.zone, instance=instance.name
        ),
    )
    if resource is None:
        message = f"instance {instance.name} does not exist in zone {instance.zone}"
        raise target_errors.instance_not_found(PROVIDER, message, doing)
    manager = manager_of(resource)
    if manager:
        raise target_errors.scaling_group_member(
            PROVIDER,
            f"{instance.name} belongs to managed instance group {manager.rsplit('/', 1)[-1]}",
            "the MIG's update policy",
            "the instance template",
            doing,
        )


def ensure_draining(
    ctx: Context, spec: LoadBalancerSpec, service: dict[str, Any], log: ChangeLog
) -> None:
    """The backend service's draining time is what bounds the drain: keep it in step."""
    if (service.get("connectionDraining") or {}).get("drainingTimeoutSec") == spec.drain_seconds:
        return
    patch = {
        "connectionDraining": {"drainingTimeoutSec": spec.drain_seconds},
        "fingerprint": service.get("fingerprint"),
    }
    fix = ApiFix("patch", patch, f"drain {spec.drain_seconds}s")
    apply_fix(ctx, "backend_service", service["name"], fix, log)


def _membership(
    ctx: Context, spec: LoadBalancerSpec, instance: Instance, doing: str
) -> tuple[dict[str, Any], str, str, bool, bool]:
    """INSTANCE as a target: (the backend service, its group's name, its link, whether the
    group backs the service, whether the instance is in it). MIG instances are refused."""
    service = backend_service(ctx, spec, doing)
    refuse_managed_instance(ctx, instance, doing)
    zone = instance.zone or ""
    name = ctx.names.instance_group(instance.role or ROLE_MODEL)
    group_link = ctx.links.zonal(zone, "instanceGroups", name)
    instance_link = ctx.links.zonal(zone, "instances", instance.name)
    backed = any(same_link(b.get("group"), group_link) for b in service.get("backends", []))
    if not backed:
        return service, name, instance_link, False, False
    members = load_balancer.group_members(ctx, zone, name)
    member = any(same_link(m, instance_link) for m in members)
    return service, name, instance_link, True, member


def deregister_target(
    ctx: Context, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog
) -> None:
    doing = f"deregister target {instance.name}"
    service, name, link, _, member = _membership(ctx, spec, instance, doing)
    ensure_draining(ctx, spec, service, log)
    if not member:
        return
    remove = load_balancer.members_request(ctx, instance.zone or "", name, "remove", [link])

    detail = f"{instance.name}, drain {spec.drain_seconds}s"
    log.delete("target", instance.id, remove, detail)
    log.follow_up(lambda: ctx.client.pause(min(spec.drain_seconds, MAX_DRAIN_WAIT_S)))


def register_target(
    ctx: Context, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog
) -> None:
    doing = f"register target {instance.name}"
    _, name, link, backed, member = _membership(ctx, spec, instance, doing)
    if not backed:
        raise _error(
            ErrorCode.NOT_FOUND,
            f"instance group {name} in {instance.zone} is not a backend of "
            f"{ctx.names.backend_service}",
            "run provision: the load balancer step creates one group per zone of the fleet",
            doing,
        )
    if member:
        return
    add = load_balancer.members_request(ctx, instance.zone or "", name, "add", [link])
    log.create("target", instance.id, add, f"{instance.name}, register")
