"""`status`: what runs against the release the inventory asks for (the rules of
`provision`), read directly, no playbook run: per instance on VMs (fleets and scaling
groups without a status of their own: the provider's instances, the load balancer's health,
each model host's release record over SSH; a scaling group: commands/group_status.py), per
revision on a managed target (from the platform). What is not as it
should be is listed in `problems`, and status then exits 1.

On VMs, each model host's request figures over the last WINDOW seconds (rate, 5xx share,
p50 / p99), per host and per release: its exporter (roles/nginx_proxy) keeps its cumulative
counters of the past, so both ends of the window are read at once, over the same SSH call,
and status never waits for a window to pass.

Request figures over the last WINDOW seconds (rate, 5xx share, p50 / p99 or the mean where
the source keeps no percentiles) come from the platform's metrics service: per revision
on a managed target (ServiceTarget.figures), per load balancer backend on a cloud's VMs
(Provider.figures). A metrics service that cannot be read leaves the figures out and says
why (platform_figures_error); it is not a problem of the service."""

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from mlops_vm import display
from mlops_vm.commands.checks import load, provider_for, service_target_for
from mlops_vm.commands.exits import EXIT_FAILED, EXIT_OK, fail
from mlops_vm.commands.group_status import group_payload, group_summary
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.environment.inventory import host_vars_of
from mlops_vm.environment.specs import load_balancer_spec
from mlops_vm.metrics import Figures
from mlops_vm.metrics.prometheus import HostReading as MetricsReading
from mlops_vm.metrics.prometheus import host_figures, read_host_metrics, window_figures
from mlops_vm.provision import Provider, ProvisionError
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.release.choose import choose_release
from mlops_vm.release.hosts import HostReading, read_hosts
from mlops_vm.services.base import ServiceRecord, ServiceTarget
from mlops_vm.services.releases import choose_service_release

Rows = list[tuple[str, str]]  # (label, text) for display.print_summary


DEFAULT_WINDOW_S = 60


def status(env: str, *, as_json: bool, window_s: float = DEFAULT_WINDOW_S) -> int:
    loaded = load(env, as_json)
    try:
        if loaded.config.managed:
            target = service_target_for(loaded, as_json)
            payload = service_status(loaded, target)
            payload.update(platform_figures(target.figures, loaded.config.env, window_s))
            rows = service_summary(payload) + figures_rows(payload)
        else:
            provider = provider_for(loaded, as_json)
            group = provider.group_status(loaded.config.env)
            if group is not None:
                payload = group_payload(loaded, group)
                rows = group_summary(payload)
            else:
                payload = host_status(loaded, provider, window_s)
                rows = host_summary(payload)
            payload.update(platform_figures(provider.figures, loaded.config.env, window_s))
            rows += figures_rows(payload) if rows else []
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


def metrics_windows(readings: dict[str, HostReading]) -> dict[str, tuple[MetricsReading, ...]]:
    """Each host's two metrics readings (a window ago, now), for the hosts that have them."""
    windows = {}
    for name, reading in readings.items():
        if reading.metrics is None:
            continue
        texts = [read_host_metrics(text) for text in reading.metrics]
        if all(texts):
            windows[name] = tuple(next(iter(t.values())) for t in texts)
    return windows


def figures_json(windows: dict[str, tuple[MetricsReading, ...]], window_s: float) -> dict:
    """The environment's figures over the window: all model hosts, and per release."""
    pairs = [(start, end) for start, end in windows.values()]
    releases = sorted({r for _, end in pairs for r in end.releases})
    per_release = {r: window_figures(pairs, r) for r in releases}
    return {
        "window_s": window_s,
        # When the window ended (epoch seconds): the hosts' latest reading.
        "until": max((end.taken_at for _, end in pairs), default=None),
        "total": window_figures(pairs).as_json(),
        "releases": {r: f.as_json() for r, f in per_release.items() if f.requests},
    }


def host_status(
    loaded: LoadedEnvironment, provider: Provider, window_s: float | None = DEFAULT_WINDOW_S
) -> dict[str, Any]:
    """One row per instance (release, replicas, LB health, request figures over the last
    WINDOW_S seconds), the release the inventory asks for (a fleet's; a scaling group's
    instances boot with the inventory's image) and what is not as it should be."""
    config = loaded.config
    instances = provider.list_instances(config.env)
    health = {
        t.instance_id: t
        for t in provider.target_health(load_balancer_spec(config, loaded.inventory_dir))
    }
    model_hosts = [i for i in instances if i.role == ROLE_MODEL]
    connections = host_vars_of(config, loaded.inventory_dir)
    readings = read_hosts(model_hosts, connections, window_s) if model_hosts else {}
    windows = metrics_windows(readings)
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
            if i.name in windows:
                row["figures"] = host_figures(*windows[i.name]).as_json()
            elif reading.metrics_error:
                row["figures_error"] = reading.metrics_error
        rows.append(row)
    problems = host_problems(rows, wanted)
    return {
        "env": config.env,
        "ok": not problems,
        "release": wanted,
        "inventory_image": config.model.image,
        "instances": rows,
        "figures": figures_json(windows, window_s) if window_s else None,
        "problems": problems,
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
        if "figures" in r:
            line += "\n  " + figures_line(r["figures"])
        rows.append((r["name"], line))
    figures = payload.get("figures") or {}
    for release, f in (figures.get("releases") or {}).items():
        rows.append((f"release {release or '(none)'}", figures_line(f)))
    return rows


# Figures from the platform's metrics service


def platform_figures(
    read: Callable[[str, float], dict[str, Figures]], env: str, window_s: float
) -> dict[str, Any]:
    """{"platform_figures": place -> Figures.as_json()} (none read: {}), or the reason they
    could not be read ({"platform_figures_error": ...})."""
    try:
        found = read(env, window_s)
    except ProvisionError as error:
        return {"platform_figures_error": str(error)}
    return {"platform_figures": {place: f.as_json() for place, f in found.items()}} if found else {}


def figures_rows(payload: dict[str, Any]) -> Rows:
    rows = [(place, figures_line(f)) for place, f in payload.get("platform_figures", {}).items()]
    if payload.get("platform_figures_error"):
        rows.append(("figures", f"not read: {payload['platform_figures_error']}"))
    return rows


def figures_line(f: dict[str, Any]) -> str:
    """One window's figures (Figures.as_json()) in a line."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    latency = (
        f"p50 {ms(f['p50_ms'])}, p99 {ms(f['p99_ms'])}"
        if f["p99_ms"] is not None or f.get("mean_ms") is None
        else f"mean {ms(f['mean_ms'])}"
    )
    return (
        f"{f['window_s']:.0f} s: {f['requests_per_s']:.1f} req/s, 5xx {f['error_share']:.1%}, "
        + latency
    )


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
