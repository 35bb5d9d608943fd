"""Scaling-group mode: instance template + managed instance group (MIG) + autoscaler.

- Templates are immutable, so each configuration is its own template, named with a hash of
  its properties (`mlops-vm-<env>-<role>-<hash10>`); a change (user-data, machine type,
  image, ...) makes a new one, the MIG is patched to it with a PROACTIVE update policy (a
  rolling replacement, surge first, never below size), and the templates left unused are
  deleted once the MIG is stable on its new version (a rollback still needs the old one).
- One zone makes a zonal MIG, several a regional one spread over them.
- The instances configure themselves at boot from user-data (metadata key `user-data`);
  nothing reaches them over SSH.
- With an autoscaling policy the autoscaler owns the size: `count` is the size at creation
  and min/max/targets are converged. Without one the MIG is resized to `count`.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.converge import create, get_global
from mlops_vm.provision.gcp.errors import PROVIDER, operation_error, timed_out
from mlops_vm.provision.gcp.instances import vm_properties
from mlops_vm.provision.gcp.names import basename, description, digest, owner, same_link
from mlops_vm.provision.gcp.network import NetworkRefs
from mlops_vm.provision.model import LABEL_RELEASE, AutoscalingSpec, FleetSpec

NAMED_PORT = "https"
# The MIG version name "v-<template hash>-after-<hash of the template it replaced>".
AFTER = "-after-"
# LB utilisation target: a backend's maxRatePerInstance is set so that this fraction of it
# equals the wanted requests per instance (see backend_rate_per_instance).
LB_UTILIZATION_TARGET = 0.8


@dataclass(frozen=True)
class Location:
    """Where the MIG and its autoscaler live: one zone, or a region."""

    zone: str | None
    region: str | None

    @property
    def label(self) -> str:
        return f"zone {self.zone}" if self.zone else f"region {self.region}"

    def kwargs(self, ctx: Context) -> dict[str, str]:
        if self.zone:
            return {"project": ctx.project, "zone": self.zone}
        return {"project": ctx.project, "region": self.region or ctx.region}

    def managers(self, service: Any) -> Any:
        return (
            service.instanceGroupManagers()
            if self.zone
            else (service.regionInstanceGroupManagers())
        )

    def autoscalers(self, service: Any) -> Any:
        return service.autoscalers() if self.zone else service.regionAutoscalers()

    def link(self, ctx: Context, collection: str, name: str) -> str:
        if self.zone:
            return ctx.links.zonal(self.zone, collection, name)
        return ctx.links.regional(self.region or "", collection, name)


MIG = "instance_group_manager"
AUTOSCALER = "autoscaler"
# kind -> (its collection where a Location is, the parameter that names one)
SCOPED: dict[str, tuple[Callable[[Location, Any], Any], str]] = {
    MIG: (Location.managers, "instanceGroupManager"),
    AUTOSCALER: (Location.autoscalers, "autoscaler"),
}
VERBS = {"insert": "create", "patch": "update", "delete": "delete"}


def scoped_change(
    ctx: Context,
    log: ChangeLog,
    location: Location,
    action: Literal["create", "update", "delete"],
    kind: str,
    name: str,
    method: str,
    detail: str,
    **params: Any,
) -> None:
    """One METHOD call on the MIG or autoscaler NAME (KIND) where LOCATION says, waited on
    and logged as ACTION (deleting what is gone already counts as done)."""
    collection, param = SCOPED[kind]
    if method != "insert":
        params[param] = name
    run = ctx.client.delete if method == "delete" else ctx.client.mutate
    doing = f"{VERBS.get(method, method)} {kind.replace('_', ' ')} {name}"
    log.apply(
        action,
        kind,
        name,
        lambda: run(
            doing,
            lambda s: getattr(collection(location, s), method)(**location.kwargs(ctx), **params),
        ),
        detail=detail,
    )


def location_for(ctx: Context, zones: list[str]) -> Location:
    return Location(zone=zones[0], region=None) if len(zones) == 1 else Location(None, ctx.region)


def is_autoscaled(autoscaling: AutoscalingSpec) -> bool:
    return (
        autoscaling.target_cpu_percent is not None
        or autoscaling.target_requests_per_instance is not None
    )


def backend_rate_per_instance(autoscaling: AutoscalingSpec) -> float | None:
    """maxRatePerInstance (requests/s) for the backend when scaling on LB utilisation."""
    if autoscaling.target_requests_per_instance is None:
        return None
    return round(autoscaling.target_requests_per_instance / 60 / LB_UTILIZATION_TARGET, 3)


# -- template ------------------------------------------------------------------------------


def template_properties(ctx: Context, spec: FleetSpec, refs: NetworkRefs) -> dict[str, Any]:
    properties = {"machineType": spec.instance.machine_type, **vm_properties(ctx, spec, refs, None)}
    if spec.instance.release:
        # The release the template launches, for status and rollback (group_release.py):
        # metadata holds any string, a label value no "/" or ":".
        items = [
            *properties["metadata"]["items"],
            {"key": LABEL_RELEASE, "value": spec.instance.release},
        ]
        properties["metadata"] = {**properties["metadata"], "items": items}
    return properties


def ensure_template(ctx: Context, spec: FleetSpec, refs: NetworkRefs, log: ChangeLog) -> str:
    properties = template_properties(ctx, spec, refs)
    name = ctx.names.template(spec.role, digest(properties))
    link = ctx.links.global_("instanceTemplates", name)
    if get_global(ctx, "instance_template", name) is None:
        body = {
            "name": name,
            "description": description(spec.env, spec.role),
            "properties": properties,
        }
        create(ctx, "instance_template", body, log, detail=spec.instance.machine_type)
    return link


def owned_templates(ctx: Context, env: str, role: str | None = None) -> list[dict[str, Any]]:
    """The environment's templates (all roles unless ROLE), by name pattern and owner."""
    found = ctx.list_owned("instanceTemplates", "instance templates", env, role=role)
    return [t for t in found if ctx.names.is_template(owner(t)[1], t["name"])]


def delete_unused_templates(
    ctx: Context,
    spec: FleetSpec,
    keep: str,
    log: ChangeLog,
    *,
    settled: bool = True,
    previous: str | None = None,
) -> None:
    """Delete the role's templates other than KEEP and PREVIOUS (the one KEEP replaced,
    which `rollback` returns to); one still in use is left alone. While the MIG is still
    rolling out (not SETTLED), old templates stay: instances being replaced still refer to
    them. A later run deletes them."""
    for template in owned_templates(ctx, spec.env, spec.role):
        name = template["name"]
        # By name: a self link may spell the same template another way (host, project number).
        if name in (basename(keep), previous):
            continue
        if not settled:
            log.record(
                "update",
                "instance_template",
                name,
                detail="kept until the group's rollout is over; a later run deletes it",
            )
            continue
        try:
            log.delete(
                "instance_template",
                name,
                lambda n=name: ctx.client.delete(
                    f"delete instance template {n}",
                    lambda s: s.instanceTemplates().delete(project=ctx.project, instanceTemplate=n),
                ),
                detail="replaced",
            )
        except ProvisionError as error:
            if error.code is not ErrorCode.CONFLICT:
                raise
            # Still in use (by an instance being replaced, say): a later run deletes it.


# -- managed instance group ----------------------------------------------------------------


def _update_policy(zones: list[str]) -> dict[str, Any]:
    """A rolling replacement that never drops below size: each new instance (maxSurge; a
    regional MIG needs one per zone) is up before an old one goes (maxUnavailable 0), and
    SUBSTITUTE gives it a new name, so it can boot while its predecessor still serves.
    (minReadySec, the wait before a new instance counts as ready, exists only in the beta
    API, not in compute v1: readiness here is the instance's RUNNING state and, behind the
    load balancer, its health check.)"""
    return {
        "type": "PROACTIVE",
        "minimalAction": "REPLACE",
        "maxSurge": {"fixed": max(1, len(zones))},
        "maxUnavailable": {"fixed": 0},
        "replacementMethod": "SUBSTITUTE",
    }


def _policy_drift(current: dict[str, Any] | None, wanted: dict[str, Any]) -> list[str]:
    """The update policy fields that differ from WANTED (others, e.g. the redistribution
    type of a regional MIG, are left as they are)."""
    current = current or {}
    return sorted(key for key, value in wanted.items() if current.get(key) != value)


def _versions(template_link: str, replaced: str | None = None) -> list[dict[str, Any]]:
    """The MIG's one version; its name also records the template it REPLACED (a MIG has no
    labels): what status shows as the previous release and `rollback` returns to."""
    name = f"v-{basename(template_link)[-10:]}"
    if replaced and basename(replaced) != basename(template_link):
        name += f"{AFTER}{basename(replaced)[-10:]}"
    return [{"name": name, "instanceTemplate": template_link}]


def replaced_template(ctx: Context, manager: dict[str, Any] | None, role: str) -> str | None:
    """The name of the template MANAGER's current one replaced (recorded by _versions)."""
    versions = (manager or {}).get("versions") or [{}]
    name = versions[0].get("name") or ""
    return ctx.names.template(role, name.split(AFTER, 1)[1]) if AFTER in name else None


def initial_size(spec: FleetSpec) -> int:
    if not is_autoscaled(spec.autoscaling):
        return spec.count
    bounds = spec.autoscaling
    return max(bounds.min_size, min(bounds.max_size, spec.count))


def current_template(manager: dict[str, Any]) -> str | None:
    versions = manager.get("versions") or []
    return versions[0].get("instanceTemplate") if versions else manager.get("instanceTemplate")


def find_managers(ctx: Context, env: str) -> list[dict[str, Any]]:
    """The environment's MIGs, zonal and regional."""
    return ctx.list_owned("instanceGroupManagers", "instance group managers", env, aggregated=True)


def ensure_group_manager(
    ctx: Context, spec: FleetSpec, zones: list[str], template_link: str, log: ChangeLog
) -> dict[str, str]:
    """Converge the MIG; its self link and its instance group's, for the load balancer."""
    location = location_for(ctx, zones)
    name = ctx.names.group_manager(spec.role)
    links = {
        "instance_group_manager": location.link(ctx, "instanceGroupManagers", name),
        "instance_group": location.link(ctx, "instanceGroups", name),
    }
    current = ctx.client.get(
        f"read instance group manager {name}",
        lambda s: location.managers(s).get(**location.kwargs(ctx), instanceGroupManager=name),
    )
    if current is None:
        _refuse_other_location(ctx, spec, name, location)
        body: dict[str, Any] = {
            "name": name,
            "description": description(spec.env, spec.role),
            "baseInstanceName": ctx.names.base_instance_name(spec.role),
            "instanceTemplate": template_link,
            "versions": _versions(template_link),
            "targetSize": initial_size(spec),
            "namedPorts": [{"name": NAMED_PORT, "port": spec.service_port}],
            "updatePolicy": _update_policy(zones),
        }
        if location.region:
            body["distributionPolicy"] = {"zones": [{"zone": f"zones/{z}"} for z in zones]}
            body["updatePolicy"]["instanceRedistributionType"] = "PROACTIVE"
        detail = f"{body['targetSize']} instances in {location.label}"
        scoped_change(ctx, log, location, "create", MIG, name, "insert", detail, body=body)
        return links
    _converge_manager(ctx, spec, zones, location, current, template_link, log)
    return links


def _refuse_other_location(ctx: Context, spec: FleetSpec, name: str, location: Location):
    for manager in find_managers(ctx, spec.env):
        if manager["name"] == name and not same_link(
            manager["selfLink"], location.link(ctx, "instanceGroupManagers", name)
        ):
            raise ProvisionError(
                ErrorCode.CONFLICT,
                f"instance group manager {name} exists at {manager['selfLink']}, the inventory "
                f"now asks for {location.label}",
                hint="a MIG cannot move between a zone and a region: destroy the environment "
                "(or restore the zones) and provision again",
                provider=PROVIDER,
                operation=f"create instance group manager {name}",
            )


def _converge_manager(
    ctx: Context,
    spec: FleetSpec,
    zones: list[str],
    location: Location,
    current: dict[str, Any],
    template_link: str,
    log: ChangeLog,
) -> None:
    name = current["name"]
    patch: dict[str, Any] = {}
    details = []
    if not same_link(current_template(current), template_link):
        patch["versions"] = _versions(template_link, current_template(current))
        patch["updatePolicy"] = _update_policy(zones)
        details.append(f"rolling replacement to {basename(template_link)}")
    wanted_ports = [{"name": NAMED_PORT, "port": spec.service_port}]
    if current.get("namedPorts", []) != wanted_ports:
        patch["namedPorts"] = wanted_ports
        details.append(f"named port {NAMED_PORT}:{spec.service_port}")
    drift = _policy_drift(current.get("updatePolicy"), _update_policy(zones))
    if drift and "updatePolicy" not in patch:
        patch["updatePolicy"] = _update_policy(zones)
        details.append(f"update policy: {', '.join(drift)}")
    if patch:
        patch["fingerprint"] = current.get("fingerprint")
        detail = "; ".join(details)
        scoped_change(ctx, log, location, "update", MIG, name, "patch", detail, body=patch)
    size = int(current.get("targetSize", 0))
    if not is_autoscaled(spec.autoscaling) and size != spec.count:
        detail = f"resize {size} -> {spec.count}"
        scoped_change(ctx, log, location, "update", MIG, name, "resize", detail, size=spec.count)


def is_settled(manager: dict[str, Any]) -> bool:
    """No action in progress and every instance on the target version: a rollout is over."""
    status = manager.get("status") or {}
    return bool(status.get("isStable")) and bool(
        (status.get("versionTarget") or {}).get("isReached")
    )


def read_manager(ctx: Context, spec: FleetSpec, zones: list[str]) -> dict[str, Any] | None:
    location = location_for(ctx, zones)
    name = ctx.names.group_manager(spec.role)
    return ctx.client.get(
        f"read instance group manager {name}",
        lambda s: location.managers(s).get(**location.kwargs(ctx), instanceGroupManager=name),
    )


def manager_errors(ctx: Context, spec: FleetSpec, zones: list[str]) -> list[dict[str, Any]]:
    """The MIG's failed instance actions (listErrors); [] before the MIG exists."""
    location = location_for(ctx, zones)
    name = ctx.names.group_manager(spec.role)
    collection = "instanceGroupManagers" if location.zone else "regionInstanceGroupManagers"
    scope = {"zone": location.zone} if location.zone else {"region": location.region or ""}
    try:
        return ctx.client.list_post(
            f"read the errors of instance group manager {name}",
            collection,
            "listErrors",
            "items",
            instanceGroupManager=name,
            **scope,
        )
    except ProvisionError as error:
        if error.code is ErrorCode.NOT_FOUND:
            return []
        raise


def error_key(item: dict[str, Any]) -> tuple[str, str, str]:
    """What tells one failed instance action from another."""
    details = item.get("instanceActionDetails") or {}
    return (
        str(item.get("timestamp", "")),
        str(details.get("instance", "")),
        str((item.get("error") or {}).get("code", "")),
    )


def check_manager_errors(
    ctx: Context, spec: FleetSpec, zones: list[str], known: set[tuple[str, str, str]]
) -> None:
    """An instance the MIG failed to create (zone exhausted, quota, missing image, ...)
    fails the wait at once with Compute Engine's reason, instead of a TIMEOUT much later."""
    new = [item for item in manager_errors(ctx, spec, zones) if error_key(item) not in known]
    if not new:
        return
    errors = {"error": {"errors": [item.get("error") or {} for item in new]}}
    name = ctx.names.group_manager(spec.role)
    raise operation_error(errors, f"create the instances of instance group manager {name}")


def wait_stable(
    ctx: Context,
    spec: FleetSpec,
    zones: list[str],
    known_errors: set[tuple[str, str, str]] | None = None,
) -> None:
    """Wait until the MIG has no action in progress (created, replaced, resized) and has
    reached its version target. An instance error not in KNOWN_ERRORS (those from before
    the change) ends the wait with its reason."""
    location = location_for(ctx, zones)
    name = ctx.names.group_manager(spec.role)
    deadline = time.monotonic() + ctx.stable_timeout_s
    while True:
        manager = ctx.client.execute(
            f"read instance group manager {name}",
            lambda s: location.managers(s).get(**location.kwargs(ctx), instanceGroupManager=name),
        )
        if is_settled(manager):
            return
        if known_errors is not None:
            check_manager_errors(ctx, spec, zones, known_errors)
        if time.monotonic() > deadline:
            raise timed_out(
                f"wait for instance group manager {name}",
                f"instance group manager {name} not stable after {ctx.stable_timeout_s:.0f}s "
                f"(current actions: {manager.get('currentActions')})",
                "check the MIG's errors in the console (quota, image, startup); re-run to resume",
            )
        ctx.client.pause()


# -- autoscaler ----------------------------------------------------------------------------


def autoscaling_policy(autoscaling: AutoscalingSpec) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "minNumReplicas": autoscaling.min_size,
        "maxNumReplicas": autoscaling.max_size,
        "coolDownPeriodSec": 90,
        "mode": "ON",
    }
    if autoscaling.target_cpu_percent is not None:
        policy["cpuUtilization"] = {
            "utilizationTarget": round(autoscaling.target_cpu_percent / 100, 4)
        }
    if autoscaling.target_requests_per_instance is not None:
        policy["loadBalancingUtilization"] = {"utilizationTarget": LB_UTILIZATION_TARGET}
    return policy


def _policy_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def target(policy: dict[str, Any], key: str) -> float | None:
        value = (policy.get(key) or {}).get("utilizationTarget")
        return None if value is None else round(float(value), 4)

    return any(
        (
            int(current.get("minNumReplicas", 1)) != wanted["minNumReplicas"],
            int(current.get("maxNumReplicas", 0)) != wanted["maxNumReplicas"],
            target(current, "cpuUtilization") != target(wanted, "cpuUtilization"),
            target(current, "loadBalancingUtilization")
            != target(wanted, "loadBalancingUtilization"),
        )
    )


def ensure_autoscaler(
    ctx: Context, spec: FleetSpec, zones: list[str], manager_link: str, log: ChangeLog
) -> None:
    location = location_for(ctx, zones)
    name = ctx.names.autoscaler(spec.role)
    current = ctx.client.get(
        f"read autoscaler {name}",
        lambda s: location.autoscalers(s).get(**location.kwargs(ctx), autoscaler=name),
    )
    if not is_autoscaled(spec.autoscaling):
        if current is not None:
            detail = "no autoscaling policy"
            scoped_change(ctx, log, location, "delete", AUTOSCALER, name, "delete", detail)
        return
    wanted = autoscaling_policy(spec.autoscaling)
    body = {
        "name": name,
        "description": description(spec.env, spec.role),
        "target": manager_link,
        "autoscalingPolicy": wanted,
    }
    bounds = f"{spec.autoscaling.min_size}..{spec.autoscaling.max_size}"
    if current is None:
        scoped_change(ctx, log, location, "create", AUTOSCALER, name, "insert", bounds, body=body)
    elif _policy_differs(current.get("autoscalingPolicy") or {}, wanted):
        scoped_change(ctx, log, location, "update", AUTOSCALER, name, "update", bounds, body=body)


def ensure_scaling_group(
    ctx: Context, spec: FleetSpec, refs: NetworkRefs, zones: list[str], log: ChangeLog
) -> dict[str, str]:
    """Template, MIG, autoscaler and clean-up, in that order; the MIG's links."""
    template_link = ensure_template(ctx, spec, refs, log)
    previous = previous_template(ctx, spec, zones, template_link)
    # Instance errors from before this run are not this run's failure.
    known = {error_key(e) for e in manager_errors(ctx, spec, zones)}
    before = len(log.changes)
    links = ensure_group_manager(ctx, spec, zones, template_link, log)
    ensure_autoscaler(ctx, spec, zones, links["instance_group_manager"], log)
    manager_changed = len(log.changes) > before
    if manager_changed:
        log.follow_up(lambda: wait_stable(ctx, spec, zones, known))
    # After a change the run has waited for the rollout to be over (a dry run plans so).
    settled = manager_changed or is_settled(read_manager(ctx, spec, zones) or {})
    delete_unused_templates(ctx, spec, template_link, log, settled=settled, previous=previous)
    return links


def previous_template(
    ctx: Context, spec: FleetSpec, zones: list[str], template_link: str
) -> str | None:
    """The template the group's release replaced, kept for a rollback: the one it runs now
    when this run moves it to TEMPLATE_LINK, else the one its version name records."""
    manager = read_manager(ctx, spec, zones)
    running = current_template(manager or {})
    if running and basename(running) != basename(template_link):
        return basename(running)
    return replaced_template(ctx, manager, spec.role)
