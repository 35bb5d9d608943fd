"""What `mlops-vm status` and `logs` show for a managed service: read from the platform in
Python directly (as the VM side reads the hosts over SSH), no playbook run."""

from dataclasses import asdict
from typing import Any

from mlops_vm.config import LoadedEnvironment
from mlops_vm.services.base import ServiceRecord, ServiceTarget
from mlops_vm.services.releases import choose_service_release


def service_status(loaded: LoadedEnvironment, target: ServiceTarget) -> dict[str, Any]:
    """The service, the release the inventory asks for (the rules of `provision`) and what
    is not as it should be (`problems`: status exits 1 when there are any)."""
    config = loaded.config
    record = target.status(config.env)
    wanted = choose_service_release("provision", config.model.model_dump(), record).release
    problems = status_problems(record, wanted["image"])
    return {
        "env": config.env,
        "target": config.target,
        "ok": not problems,
        "release": wanted["image"],
        "inventory_image": config.model.image,
        "service": asdict(record) if record else None,
        "problems": problems,
    }


def status_problems(record: ServiceRecord | None, wanted_image: str) -> list[str]:
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


def status_rows(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The status as (label, text) rows for display.print_summary."""
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
