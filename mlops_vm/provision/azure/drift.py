"""Does a resource already hold what we want? Compare a desired body with ARM's answer.

ARM answers with more than was sent (ids, etags, provisioningState, back-references such as
subnet.ipConfigurations), so the comparison is a subset match: every field we set must hold
our value; fields we do not set are not ours to judge. Lists must have the same length;
lists of named children (subnets, rules, listeners) are matched by name, others by position.
An empty list and an absent one are the same (ARM shows [] for a list nobody set, and may
leave out one set to []). Ids compare case-insensitively, as ARM does, and locations also
without spaces ("West Europe" is ARM's "westeurope").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops_vm.plan import ChangeLog, Fix

# Fields ARM compares loosely: how each is normalised before comparing.
LOOSE_TEXT: dict[str, Callable[[str], str]] = {
    "id": str.lower,
    "location": lambda location: "".join(location.split()).lower(),
}


def differences(desired: Any, actual: Any, path: str = "") -> list[str]:
    """The paths (e.g. "properties.subnets[appgw].addressPrefix") where ACTUAL differs."""
    if desired is None:
        return []
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return [path or "."]
        found: list[str] = []
        for name, value in desired.items():
            where = f"{path}.{name}" if path else name
            if name in LOOSE_TEXT and isinstance(value, str) and isinstance(actual.get(name), str):
                if LOOSE_TEXT[name](value) != LOOSE_TEXT[name](actual[name]):
                    found.append(where)
                continue
            found += differences(value, actual.get(name), where)
        return found
    if isinstance(desired, list):
        if actual is None and not desired:
            return []
        if not isinstance(actual, list) or len(actual) != len(desired):
            return [path]
        if all(isinstance(item, dict) and "name" in item for item in desired):
            by_name = {
                str(item.get("name", "")).lower(): item for item in actual if isinstance(item, dict)
            }
            found = []
            for item in desired:
                name = str(item["name"])
                found += differences(item, by_name.get(name.lower()), f"{path}[{name}]")
            return found
        found = []
        for index, (want, have) in enumerate(zip(desired, actual, strict=True)):
            found += differences(want, have, f"{path}[{index}]")
        return found
    return [] if desired == actual else [path]


def converge(
    log: ChangeLog,
    kind: str,
    name: str,
    desired: dict[str, Any],
    actual: dict[str, Any] | None,
    apply: Callable[[], Any],
    *,
    create_detail: str = "",
) -> None:
    """Create or update one resource through LOG when it differs from DESIRED; no change
    when it already holds. APPLY is the PUT that does either."""
    log.ensure(
        kind,
        name,
        current=actual,
        create=apply,
        fixes=lambda current: (
            [Fix(shown(changed), apply)] if (changed := differences(desired, current)) else []
        ),
        detail=create_detail,
    )


def shown(changed: list[str]) -> str:
    """The first paths that differ, as a Change's detail."""
    more = f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
    return ", ".join(changed[:3]) + more
