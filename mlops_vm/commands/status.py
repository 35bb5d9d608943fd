"""`status`: what runs against the release the inventory asks for (the rules of
`provision`), read directly, no playbook run: per instance on VMs (fleets and scaling
groups: the provider's instances, the load balancer's health, each model host's release
record over SSH), per revision on a managed target (from the platform). What is not as it
should be is listed in `problems`, and status then exits 1."""

from dataclasses import asdict
from typing import Any

from mlops_vm import display
from mlops_vm.commands.checks import load, provider_for, service_target_for
from mlops_vm.commands.exits import EXIT_FAILED, EXIT_OK, fail
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.environment.inventory import host_vars_of
from mlops_vm.environment.specs import load_balancer_spec
from mlops_vm.provision import Provider, ProvisionError
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.release.choose import choose_release
from mlops_vm.release.hosts import read_hosts
from mlops_vm.services.base import ServiceRecord, ServiceTarget
from mlops_vm.services.releases import choose_service_release

Rows = list[tuple[str, str]]  # (label, text) for display.print_summary


def status(env: str, *, as_json: bool) -> int:
    loaded = load(env, as_json)
    try:
        if loaded.config.managed:
            payload = service_status(loaded, service_target_for(loaded, as_json))
            rows = service_summary(payload)
        else:
            payload = host_status(loaded, provider_for(loaded, as_json))
            rows = host_summary(payload)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "status failed", [str(error)], as_json) from None
    code = EXIT_FAILED if payload["problems"] else EXIT_OK
    if as_json:
        display.print_json(payload)
    elif not rows:
        display.out.print(f"environment {loaded.config.env}: no instances")
    else:
        display.print_summary(rows, f"environment {loaded.config.env}")
        if payload["problems"]:
            display.print_problems("not as it should be:", payload["problems"])
    return code


# VMs


def host_status(loaded: LoadedEnvironment, provider: Provider) -> dict[str, Any]:
    """One row per instance (release, replicas, LB health), the release the inventory asks
    for (a fleet's; a scaling group's instances boot with the inventory's image) and what
    is not as it should be."""
    config = loaded.config
    instances = provider.list_instances(config.env)
    health = {
        t.instance_id: t
        for t in provider.target_health(load_balancer_spec(config, loaded.inventory_dir))
    }
    # A scaling group's instances configure themselves and take no SSH: the group's own
    # record (provider.group_status) says what they run.
    group = provider.group_status(config.env) if config.fleet.mode == "scaling_group" else None
    model_hosts = [i for i in instances if i.role == ROLE_MODEL and group is None]
    connections = host_vars_of(config, loaded.inventory_dir)
    readings = read_hosts(model_hosts, connections) if model_hosts else {}
    wanted = None
    records = {name: r.record for name, r in readings.items() if not r.error}
    if config.fleet.mode == "fleet":
        wanted = choose_release("provision", config.model.model_dump(), records).release["image"]
    rows = []
    for i in instances:
        reading = readings.get(i.name)
        row: dict[str, Any] = {
            "name": i.name,
            "role": i.role,
            "status": str(i.status),
            "address": i.address,
            "healthy": health[i.id].healthy if i.id in health else None,
            "health": health[i.id].reason if i.id in health else "",
        }
        if reading is not None:
            row.update(
                running_image=reading.current.get("image"),
                previous_image=reading.previous.get("image"),
                deployed_by=reading.current.get("source"),
                deployed_at=reading.current.get("deployed_at"),
                replicas_ready=sum(r["ready"] for r in reading.replicas),
                replicas=reading.current.get("replicas"),
                read_error=reading.error,
            )
        rows.append(row)
    problems = host_problems(rows, wanted) + (group.problems() if group else [])
    return {
        "env": config.env,
        "ok": not problems,
        "release": group.release if group else wanted,
        "inventory_image": config.model.image,
        "instances": rows,
        "problems": problems,
        **({"group": asdict(group)} if group else {}),
    }


def host_problems(rows: list[dict[str, Any]], wanted: str | None) -> list[str]:
    problems = []
    for row in rows:
        name = row["name"]
        if row["role"] != ROLE_MODEL:
            continue
        if row["healthy"] is False:
            problems.append(f"{name}: not healthy behind the load balancer ({row['health']})")
        if row.get("read_error"):
            problems.append(f"{name}: could not be read ({row['read_error']})")
        elif wanted and "running_image" in row and row["running_image"] != wanted:
            problems.append(f"{name}: runs {row['running_image']}, the release is {wanted}")
        if row.get("replicas") and row.get("replicas_ready", 0) < row["replicas"]:
            problems.append(f"{name}: {row['replicas_ready']}/{row['replicas']} replicas ready")
    return problems


def host_summary(payload: dict[str, Any]) -> Rows:
    """The release, then one row per instance; none when there are no instances."""
    if not payload["instances"]:
        return []
    rows = [("release", f"{payload['release'] or '-'} (inventory: {payload['inventory_image']})")]
    for r in payload["instances"]:
        line = (
            f"{r['role']:6} {r['status']:8} {r['address'] or '-':15} "
            f"{'healthy' if r['healthy'] else r['health'] or '-'}"
        )
        if "running_image" in r:
            line += (
                f"\n  running {r['running_image'] or '-'} ({r['deployed_by'] or '-'}, "
                f"{r['deployed_at'] or '-'}), replicas ready {r['replicas_ready']}/"
                f"{r['replicas'] or '-'}\n  previous {r['previous_image'] or '-'}"
            )
        rows.append((r["name"], line))
    return rows + group_summary(payload.get("group"))


def group_summary(group: dict[str, Any] | None) -> Rows:
    """A scaling group: its size, each instance's release and lifecycle, its last activities."""
    if not group:
        return []
    rows = [
        (
            group["name"],
            f"min {group['min_size']} / desired {group['desired']} / max {group['max_size']}, "
            f"release {group['release'] or '-'} (previous {group['previous_release'] or '-'})",
        )
    ]
    rows += [
        (i["id"], f"{i['lifecycle']:11} {i['release'] or '-'} {i['detail']}")
        for i in group["instances"]
    ]
    rows += [
        (a["at"], f"{a['description']}: {a['cause']} {a['status']}".strip())
        for a in group["activities"][:10]
    ]
    return rows


# Managed targets


def service_status(loaded: LoadedEnvironment, target: ServiceTarget) -> dict[str, Any]:
    """The service, the release the inventory asks for and what is not as it should be."""
    config = loaded.config
    record = target.status(config.env)
    wanted = choose_service_release("provision", config.model.model_dump(), record).release
    problems = service_problems(record, wanted["image"])
    return {
        "env": config.env,
        "target": config.target,
        "ok": not problems,
        "release": wanted["image"],
        "inventory_image": config.model.image,
        "service": asdict(record) if record else None,
        "problems": problems,
    }


def service_problems(record: ServiceRecord | None, wanted_image: str) -> list[str]:
    if record is None:
        return ["no service deployed (run `mlops-vm provision ENV`)"]
    problems = []
    if record.healthy is False:
        problems.append(f"{record.name}: not healthy ({record.reason or 'unhealthy'})")
    if record.active is None:
        problems.append(f"{record.name}: no active revision")
    elif record.active.image != wanted_image:
        problems.append(f"{record.name}: runs {record.active.image}, the release is {wanted_image}")
    return problems


def custom_domain_rows(service: dict[str, Any]) -> Rows:
    """Behind a load balancer on the user's domain: the platform's own URL, and the DNS
    record the user creates (mlops-vm never changes DNS)."""
    resources = service.get("resources") or {}
    rows: Rows = []
    if resources.get("platform_url"):
        rows.append(("platform URL", resources["platform_url"]))
    # dns_records when the platform needs more than one (App Service: the CNAME and the TXT
    # record that proves the domain is the user's), else the one dns_record.
    records = resources.get("dns_records") or [resources.get("dns_record")]
    for record in filter(None, records):
        rows.append(("DNS record", f"{record['name']} {record['type']} {record['value'] or '-'}"))
    return rows


def service_summary(payload: dict[str, Any]) -> Rows:
    """The release, then the service's endpoint, health, revisions and traffic."""
    rows = [("release", f"{payload['release']} (inventory: {payload['inventory_image']})")]
    service = payload["service"]
    if not service:
        return rows
    active, previous = service.get("active") or {}, service.get("previous") or {}
    traffic = ", ".join(f"{rev}={share}%" for rev, share in service["traffic"].items())
    health = "healthy" if service["healthy"] else service["reason"] or "-"
    rows += [
        ("service", f"{service['name']} on {payload['target']}"),
        ("endpoint", service["url"] or "-"),
        *custom_domain_rows(service),
        ("health", f"{health}, {service['running']}/{service['desired']} running"),
        (
            "running",
            f"{active.get('image', '-')} ({active.get('source') or '-'}, "
            f"{active.get('created_at') or '-'}) revision {active.get('id', '-')}",
        ),
        ("previous", f"{previous.get('image', '-')} revision {previous.get('id', '-')}"),
        ("traffic", traffic or "-"),
    ]
    return rows
