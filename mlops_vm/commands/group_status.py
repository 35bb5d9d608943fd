"""`status` of a scaling group, the same on every provider (Provider.group_status): its
size, the release it launches and the one `rollback` returns to, each instance (zone,
release, lifecycle, load balancer health) and its last scaling activities with their
causes. GroupStatus.problems() says what makes status exit 1."""

from dataclasses import asdict
from typing import Any

from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.provision.model import GroupStatus

Rows = list[tuple[str, str]]  # (label, text) for display.print_summary
# Activities the text view shows (--json carries all the provider read).
ACTIVITIES_SHOWN = 5


def group_payload(loaded: LoadedEnvironment, group: GroupStatus) -> dict[str, Any]:
    problems = group.problems()
    return {
        "env": loaded.config.env,
        "ok": not problems,
        "release": group.release,
        "inventory_image": loaded.config.model.image,
        "scaling_group": {
            "name": group.name,
            "min_size": group.min_size,
            "desired": group.desired,
            "max_size": group.max_size,
            "release": group.release,
            "previous_release": group.previous_release,
            "activities": [asdict(a) for a in group.activities],
        },
        "instances": [asdict(i) for i in group.instances],
        "problems": problems,
    }


def health_text(instance: dict[str, Any]) -> str:
    if instance["lb_healthy"] is None:
        return "not in the load balancer"
    return "healthy" if instance["lb_healthy"] else f"unhealthy {instance['detail']}".strip()


def group_summary(payload: dict[str, Any]) -> Rows:
    """Size and releases, one row per instance, then the last activities."""
    group = payload["scaling_group"]
    rows: Rows = [
        (
            "scaling group",
            f"{group['name']}: min {group['min_size']} / desired {group['desired']} / "
            f"max {group['max_size']}",
        ),
        (
            "release",
            f"{group['release'] or '-'} (previous: {group['previous_release'] or '-'}; "
            f"inventory: {payload['inventory_image']})",
        ),
    ]
    for instance in payload["instances"]:
        rows.append(
            (
                instance["id"],
                f"{instance['zone'] or '-'}  {instance['lifecycle']}  "
                f"{instance['release'] or '-'}  {health_text(instance)}",
            )
        )
    for activity in group["activities"][:ACTIVITIES_SHOWN]:
        status = f" [{activity['status']}]" if activity["status"] else ""
        rows.append(
            (
                "activity",
                f"{activity['at']}{status} {activity['description']}"
                + (f"\n  {activity['cause']}" if activity["cause"] else ""),
            )
        )
    return rows
