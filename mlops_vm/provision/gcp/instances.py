"""Fleet mode: exactly `count` instances, found by label, named `mlops-vm-<env>-<role>-<n>`.

Growing creates the lowest free indexes, spread round-robin over the zones; shrinking deletes
the highest. Inserts (and deletes) are started together and their zone operations waited on
one by one; what succeeded is recorded even when another one failed, so a failure reports
what exists. Also here: the instance configuration shared with instance templates (boot disk
from an image family, metadata with user-data, service account scopes, labels, tags).
"""

import time
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.client import Request
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.errors import timed_out
from mlops_vm.provision.gcp.gpus import gpu_fields
from mlops_vm.provision.gcp.names import DEFAULT_IMAGE, basename, label_filter, labels
from mlops_vm.provision.gcp.network import NetworkRefs
from mlops_vm.provision.model import (
    LABEL_ENV,
    LABEL_ROLE,
    ROLE_MODEL,
    FleetSpec,
    Instance,
    InstanceSpec,
    InstanceStatus,
)

STATUSES: dict[str, InstanceStatus] = {
    "PROVISIONING": InstanceStatus.PENDING,
    "STAGING": InstanceStatus.PENDING,
    "REPAIRING": InstanceStatus.PENDING,
    "RUNNING": InstanceStatus.RUNNING,
    "STOPPING": InstanceStatus.STOPPING,
    "SUSPENDING": InstanceStatus.STOPPING,
    "SUSPENDED": InstanceStatus.STOPPED,
    # Compute Engine's TERMINATED is a stopped instance that can be started again.
    "TERMINATED": InstanceStatus.STOPPED,
    "STOPPED": InstanceStatus.STOPPED,
}


# -- configuration shared with instance templates ------------------------------------------


def image_link(instance: InstanceSpec) -> str:
    """InstanceSpec.image as a source image: a full/partial URL as is, a bare name as an
    image family of debian-cloud; None means Debian 12."""
    if not instance.image:
        return DEFAULT_IMAGE
    if "/" in instance.image:
        return instance.image
    return f"projects/debian-cloud/global/images/family/{instance.image}"


def resource_labels(spec: FleetSpec) -> dict[str, str]:
    return labels(spec.env, spec.role, spec.instance.tags)


def metadata(instance: InstanceSpec) -> dict[str, Any]:
    items = []
    if instance.user_data:
        items.append({"key": "user-data", "value": instance.user_data})
    if instance.ssh_public_key:
        items.append(
            {"key": "ssh-keys", "value": f"{instance.ssh_user}:{instance.ssh_public_key.strip()}"}
        )
    return {"items": items}


def boot_disk(spec: FleetSpec) -> dict[str, Any]:
    return {
        "boot": True,
        "autoDelete": True,
        "type": "PERSISTENT",
        "initializeParams": {
            "sourceImage": image_link(spec.instance),
            "diskSizeGb": str(spec.instance.disk_gb),
            "labels": resource_labels(spec),
        },
    }


def network_interface(ctx: Context, refs: NetworkRefs) -> dict[str, Any]:
    nic: dict[str, Any] = {"network": refs.network, "subnetwork": refs.subnetwork}
    if ctx.instance_options.external_ip:
        nic["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
    return nic


def service_accounts(ctx: Context) -> list[dict[str, Any]]:
    options = ctx.instance_options
    return [{"email": options.service_account, "scopes": list(options.scopes)}]


def vm_properties(
    ctx: Context, spec: FleetSpec, refs: NetworkRefs, zone: str | None
) -> dict[str, Any]:
    """What an instance and an instance template of SPEC share (all but the machine type's
    form, the name and the description); ZONE None for a template."""
    return {
        "disks": [boot_disk(spec)],
        "networkInterfaces": [network_interface(ctx, refs)],
        "metadata": metadata(spec.instance),
        "serviceAccounts": service_accounts(ctx),
        "labels": resource_labels(spec),
        "tags": {"items": [ctx.names.network_tag]},
        **gpu_fields(spec.instance, zone),
    }


def instance_body(
    ctx: Context, spec: FleetSpec, refs: NetworkRefs, zone: str, name: str
) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"mlops-vm {spec.env} {spec.role} instance",
        "machineType": f"zones/{zone}/machineTypes/{spec.instance.machine_type}",
        **vm_properties(ctx, spec, refs, zone),
    }


# -- reading -------------------------------------------------------------------------------


def list_resources(ctx: Context, env: str, role: str | None = None) -> list[dict[str, Any]]:
    """The environment's instances as the API returns them, across zones. Their labels are
    checked here again, whatever the filter did: destroy and shrinking delete what this
    returns, and must never reach another environment's instances."""
    found = ctx.client.list_aggregated(
        f"list instances of {env}", "instances", filter=label_filter(env, role)
    )
    return [resource for resource in found if has_labels(resource, env, role)]


def has_labels(resource: dict[str, Any], env: str, role: str | None = None) -> bool:
    found = resource.get("labels") or {}
    return found.get(LABEL_ENV) == env and (role is None or found.get(LABEL_ROLE) == role)


def manager_of(resource: dict[str, Any]) -> str | None:
    """The link of the managed instance group that made the instance (its `created-by`
    metadata), or None for an instance of a fixed fleet."""
    items = (resource.get("metadata") or {}).get("items") or []
    return next((i.get("value") for i in items if i.get("key") == "created-by"), None)


def ssh_user_of(resource: dict[str, Any]) -> str | None:
    for item in resource.get("metadata", {}).get("items", []):
        if item.get("key") == "ssh-keys" and ":" in item.get("value", ""):
            return item["value"].split(":", 1)[0]
    return None


def to_instance(resource: dict[str, Any]) -> Instance:
    nic = (resource.get("networkInterfaces") or [{}])[0]
    access = (nic.get("accessConfigs") or [{}])[0]
    resource_labels = resource.get("labels", {})
    return Instance(
        id=str(resource["id"]),
        name=resource["name"],
        status=STATUSES.get(resource.get("status", ""), InstanceStatus.UNKNOWN),
        private_ip=nic.get("networkIP"),
        public_ip=access.get("natIP"),
        zone=basename(resource["zone"]),
        role=resource_labels.get(LABEL_ROLE, ROLE_MODEL),
        connection="ssh",
        ssh_user=ssh_user_of(resource),
        tags=dict(resource_labels),
    )


# -- converging the count ------------------------------------------------------------------


def _first_error(failures: list[tuple[str, ProvisionError]]) -> ProvisionError:
    what, error = failures[0]
    if len(failures) == 1:
        return error
    others = ", ".join(w for w, _ in failures[1:])
    return ProvisionError(
        error.code,
        f"{error.message} (also failed: {others})",
        hint=error.hint,
        provider=error.provider,
        operation=what,
    )


def ensure_count(
    ctx: Context, spec: FleetSpec, refs: NetworkRefs, zones: list[str], log: ChangeLog
) -> list[tuple[str, str]]:
    """Exactly spec.count instances: the (name, zone) of those created (planned in a dry
    run, where no list shows them yet)."""
    existing = list_resources(ctx, spec.env, spec.role)
    surplus = len(existing) - spec.count
    if surplus > 0:
        _delete_surplus(ctx, spec, existing, surplus, log)
    elif surplus < 0:
        return _create_missing(ctx, spec, refs, zones, existing, -surplus, log)
    return []


def _run_together(
    ctx: Context,
    requests: list[tuple[str, tuple[str, str], Request]],
    *,
    missing_ok: bool,
) -> tuple[list[tuple[str, str]], ProvisionError | None]:
    """Start every request, (what, (name, zone), request) each, before waiting for any (one
    instance after the other would take minutes each). The (name, zone) of those that
    succeeded (or, with MISSING_OK, found nothing to do), and the error of the rest."""

    def failed(error: ProvisionError) -> bool:
        return not (missing_ok and error.code is ErrorCode.NOT_FOUND)

    started, names, failures = [], [], []
    for what, name_zone, request in requests:
        try:
            started.append((what, ctx.client.start(what, request)))
            names.append(name_zone)
        except ProvisionError as error:
            if failed(error):
                failures.append((what, error))
    done = []
    for name_zone, (what, _), error in zip(
        names, started, ctx.client.wait_all(started), strict=True
    ):
        if error is None or not failed(error):
            done.append(name_zone)
        else:
            failures.append((what, error))
    return done, _first_error(failures) if failures else None


def delete_instances(ctx: Context, resources: list[dict[str, Any]], log: ChangeLog) -> None:
    """Delete the instance RESOURCES together and log each one gone (what was already
    gone counts); raises the first failure once the others are done."""
    wanted = [(r["name"], basename(r["zone"])) for r in resources]

    def delete_all() -> tuple[list[tuple[str, str]], ProvisionError | None]:
        return _run_together(
            ctx,
            [
                (
                    f"delete instance {name}",
                    (name, zone),
                    lambda s, n=name, z=zone: s.instances().delete(
                        project=ctx.project, zone=z, instance=n
                    ),
                )
                for name, zone in wanted
            ],
            missing_ok=True,
        )

    log.apply_together("delete", "instance", wanted, delete_all)


def surplus_resources(
    ctx: Context, spec: FleetSpec, existing: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The instances a smaller count removes: the highest indexes first."""

    def newest_first(resource: dict[str, Any]) -> tuple[int, str]:
        index = ctx.names.instance_index(spec.role, resource["name"])
        return (-1 if index is None else index, resource["name"])

    surplus = max(len(existing) - spec.count, 0)
    return sorted(existing, key=newest_first, reverse=True)[:surplus]


def _delete_surplus(
    ctx: Context, spec: FleetSpec, existing: list[dict[str, Any]], surplus: int, log: ChangeLog
) -> None:
    delete_instances(ctx, surplus_resources(ctx, spec, existing), log)


def _create_missing(
    ctx: Context,
    spec: FleetSpec,
    refs: NetworkRefs,
    zones: list[str],
    existing: list[dict[str, Any]],
    missing: int,
    log: ChangeLog,
) -> list[tuple[str, str]]:
    """Create the MISSING lowest free indexes: their (name, zone) (planned in a dry run)."""
    used = {ctx.names.instance_index(spec.role, r["name"]) for r in existing}
    wanted: list[tuple[str, str]] = []
    index = 0
    while len(wanted) < missing:
        if index not in used:
            wanted.append((ctx.names.instance(spec.role, index), zones[index % len(zones)]))
        index += 1
    machine_type = spec.instance.machine_type
    zone_of = dict(wanted)

    def in_zone(made: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(name, f"{machine_type} in {zone}") for name, zone in made]

    def create_all() -> tuple[list[tuple[str, str]], ProvisionError | None]:
        requests: list[tuple[str, tuple[str, str], Request]] = []
        for name, zone in wanted:
            body = instance_body(ctx, spec, refs, zone, name)
            requests.append(
                (
                    f"create instance {name} in {zone}",
                    (name, zone),
                    lambda s, z=zone, b=body: s.instances().insert(
                        project=ctx.project, zone=z, body=b
                    ),
                )
            )
        created, error = _run_together(ctx, requests, missing_ok=False)
        return in_zone(created), error

    made = log.apply_together("create", "instance", in_zone(wanted), create_all)
    log.follow_up(lambda: [wait_running(ctx, name, zone_of[name]) for name, _ in made])
    return [(name, zone_of[name]) for name, _ in made]


def wait_running(ctx: Context, name: str, zone: str) -> dict[str, Any]:
    """Poll the instance until RUNNING (a DONE insert may still be STAGING)."""
    deadline = time.monotonic() + ctx.running_timeout_s
    while True:
        resource = ctx.client.execute(
            f"read instance {name}",
            lambda s: s.instances().get(project=ctx.project, zone=zone, instance=name),
        )
        status = resource.get("status")
        if status == "RUNNING":
            return resource
        if status in ("TERMINATED", "STOPPED", "SUSPENDED") or time.monotonic() > deadline:
            raise timed_out(
                f"wait for instance {name}",
                f"instance {name} is {status}, not RUNNING, after creation",
                "check the instance's serial console output in the console; re-run to converge",
            )
        ctx.client.pause()
