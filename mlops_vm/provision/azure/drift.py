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

from mlops_vm.plan import Change

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
    kind: str,
    name: str,
    desired: dict[str, Any],
    actual: dict[str, Any] | None,
    apply: Callable[[], Any],
    *,
    dry_run: bool,
    create_detail: str = "",
) -> list[Change]:
    """Create or update one resource when it differs from DESIRED; [] when it already holds."""
    if actual is None:
        change = Change("create", kind, name, create_detail)
    else:
        changed = differences(desired, actual)
        if not changed:
            return []
        shown = ", ".join(changed[:3]) + (
            f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        )
        change = Change("update", kind, name, shown)
    if not dry_run:
        apply()
    return [change]
