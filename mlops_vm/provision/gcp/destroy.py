"""Delete everything an environment owns, each part after whatever points at it.

    forwarding rules -> proxies -> URL maps -> certificates -> backend service
    -> health check -> address -> autoscalers -> MIGs (and their instances) -> templates
    -> unmanaged instance groups -> instances (and their boot disks) -> baked images
    -> firewalls
    -> subnetwork -> network

Labelled resources are found by label; the others by their deterministic names, and only
deleted when their description carries this environment's ownership marker. Not-found is
success, so a second destroy finds nothing and changes nothing.
"""

from collections.abc import Callable
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.gcp import bake, instances, load_balancer, scaling_group
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.converge import delete as delete_global
from mlops_vm.provision.gcp.converge import get_global
from mlops_vm.provision.gcp.names import basename, owned_by, same_link


def _remove(
    ctx: Context, log: ChangeLog, kind: str, name: str, request: Callable, detail: str = ""
) -> None:
    log.apply(
        "delete",
        kind,
        name,
        lambda: ctx.client.delete(f"delete {kind} {name}", request),
        detail=detail,
    )


def _delete_global(ctx: Context, log: ChangeLog, kind: str, name: str) -> None:
    log.apply("delete", kind, name, lambda: delete_global(ctx, kind, name))


def _remove_global(ctx: Context, log: ChangeLog, kind: str, name: str) -> None:
    """Delete a name-found global resource, if it exists and is ours."""
    if owned_by(get_global(ctx, kind, name), ctx.names.env):
        _delete_global(ctx, log, kind, name)


def destroy_load_balancer(ctx: Context, log: ChangeLog) -> None:
    names, env = ctx.names, ctx.names.env
    for rule in load_balancer.env_forwarding_rules(ctx, env):
        _delete_global(ctx, log, "forwarding_rule", rule["name"])
    _remove_global(ctx, log, "target_https_proxy", names.https_proxy)
    _remove_global(ctx, log, "target_http_proxy", names.http_proxy)
    _remove_global(ctx, log, "url_map", names.url_map)
    _remove_global(ctx, log, "url_map", names.redirect_url_map)
    for cert in load_balancer.owned_certificates(ctx, env):
        _remove_global(ctx, log, "ssl_certificate", cert["name"])
    _remove_global(ctx, log, "backend_service", names.backend_service)
    _remove_global(ctx, log, "health_check", names.health_check)
    _remove_global(ctx, log, "global_address", names.address)


def destroy_scaling_groups(ctx: Context, log: ChangeLog) -> list[str]:
    """The autoscalers, MIGs and templates; the links of the MIGs deleted (their instances
    go with them)."""
    env = ctx.names.env
    for autoscaler in ctx.list_owned("autoscalers", "autoscalers", env, aggregated=True):
        _remove_scoped(ctx, log, "autoscaler", autoscaler)
    managers = scaling_group.find_managers(ctx, env)
    for manager in managers:
        _remove_scoped(ctx, log, "instance_group_manager", manager)
    for template in scaling_group.owned_templates(ctx, env):
        _delete_global(ctx, log, "instance_template", template["name"])
    return [manager["selfLink"] for manager in managers]


def _remove_scoped(ctx: Context, log: ChangeLog, kind: str, resource: dict[str, Any]) -> None:
    """An autoscaler or MIG, zonal or regional."""
    name = resource["name"]
    zone = basename(resource["zone"]) if resource.get("zone") else None
    region = basename(resource.get("region", "")) or ctx.region
    where = {"zone": zone} if zone else {"region": region}
    if kind == "autoscaler":

        def request(s: Any) -> Any:
            collection = s.autoscalers() if zone else s.regionAutoscalers()
            return collection.delete(project=ctx.project, autoscaler=name, **where)
    else:

        def request(s: Any) -> Any:
            collection = s.instanceGroupManagers() if zone else s.regionInstanceGroupManagers()
            return collection.delete(project=ctx.project, instanceGroupManager=name, **where)

    _remove(ctx, log, kind, name, request, detail=zone or region)


def destroy_instances(ctx: Context, log: ChangeLog, managers: list[str]) -> None:
    """The fleet's groups and instances; an instance of one of MANAGERS (MIGs this run
    deletes) goes with its MIG, so it is neither deleted nor planned twice."""
    env = ctx.names.env
    for group in load_balancer.owned_fleet_groups(ctx, env):
        name, zone = group["name"], basename(group["zone"])
        _remove(
            ctx,
            log,
            "instance_group",
            name,
            lambda s, n=name, z=zone: s.instanceGroups().delete(
                project=ctx.project, zone=z, instanceGroup=n
            ),
            detail=zone,
        )
    # Every delete is started before waiting: instances go in parallel, as they would by hand.
    fleet = [
        resource
        for resource in instances.list_resources(ctx, env)
        if not any(same_link(instances.manager_of(resource), m) for m in managers)
    ]
    instances.delete_instances(ctx, fleet, log)


def destroy_network(ctx: Context, log: ChangeLog) -> None:
    names, env = ctx.names, ctx.names.env
    for name in (names.firewall_lb, names.firewall_ssh):
        _remove_global(ctx, log, "firewall", name)
    subnet = ctx.client.get(
        f"read subnetwork {names.subnetwork}",
        lambda s: s.subnetworks().get(
            project=ctx.project, region=ctx.region, subnetwork=names.subnetwork
        ),
    )
    if owned_by(subnet, env):
        _remove(
            ctx,
            log,
            "subnetwork",
            names.subnetwork,
            lambda s: s.subnetworks().delete(
                project=ctx.project, region=ctx.region, subnetwork=names.subnetwork
            ),
        )
    _remove_global(ctx, log, "network", names.network)


def destroy(ctx: Context, log: ChangeLog) -> None:
    destroy_load_balancer(ctx, log)
    managers = destroy_scaling_groups(ctx, log)
    destroy_instances(ctx, log, managers)
    for image in bake.environment_images(ctx, ctx.names.env):
        log.delete("image", image["name"], lambda n=image["name"]: bake.delete_image(ctx, n))
    destroy_network(ctx, log)
