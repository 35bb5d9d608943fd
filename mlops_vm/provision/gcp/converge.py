"""Get-or-create-then-fix for the global resources of the load balancer, written once.

Every global part (health check, backend service, URL maps, certificate, proxies, address,
forwarding rules) converges the same way: read it by name; create it from the desired body
when it is missing; otherwise ask the caller which fixes it needs (a `patch`, or one of the
setX methods for what a patch cannot change: setUrlMap, setSslCertificates, setTarget,
setLabels) and apply each; no fix is no change. Dry runs plan the same calls (ChangeLog).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.gcp.context import Context

# kind -> (discovery collection, name parameter)
GLOBAL: dict[str, tuple[str, str]] = {
    "health_check": ("healthChecks", "healthCheck"),
    "backend_service": ("backendServices", "backendService"),
    "url_map": ("urlMaps", "urlMap"),
    "ssl_certificate": ("sslCertificates", "sslCertificate"),
    "target_https_proxy": ("targetHttpsProxies", "targetHttpsProxy"),
    "target_http_proxy": ("targetHttpProxies", "targetHttpProxy"),
    "global_address": ("globalAddresses", "address"),
    "forwarding_rule": ("globalForwardingRules", "forwardingRule"),
    # Global too, outside the load balancer: destroy deletes them by name.
    "instance_template": ("instanceTemplates", "instanceTemplate"),
    "firewall": ("firewalls", "firewall"),
    "network": ("networks", "network"),
}


@dataclass(frozen=True)
class ApiFix:
    """One Compute API call (a patch or a setter) that brings an existing resource back to
    what is wanted; converge applies it through the ChangeLog (plan.Fix is the generic kind)."""

    method: str  # "patch", or a setter: "setUrlMap", "setSslCertificates", "setLabels", ...
    body: dict[str, Any]
    detail: str  # what the Change says


def get_global(ctx: Context, kind: str, name: str) -> dict[str, Any] | None:
    collection, param = GLOBAL[kind]
    return ctx.client.get(
        f"read {kind} {name}",
        lambda s: getattr(s, collection)().get(project=ctx.project, **{param: name}),
    )


def create(ctx: Context, kind: str, body: dict[str, Any], log: ChangeLog, detail: str = "") -> None:
    collection, _ = GLOBAL[kind]
    name = body["name"]
    log.apply(
        "create",
        kind,
        name,
        lambda: ctx.client.mutate(
            f"create {kind} {name}",
            lambda s: getattr(s, collection)().insert(project=ctx.project, body=body),
        ),
        detail=detail,
    )


def apply_fix(ctx: Context, kind: str, name: str, fix: ApiFix, log: ChangeLog) -> None:
    collection, param = GLOBAL[kind]
    # setLabels names the resource `resource`; patch and the other setters by its parameter.
    key = "resource" if fix.method == "setLabels" else param
    doing = f"update {kind} {name}" if fix.method == "patch" else f"{fix.method} of {kind} {name}"
    log.apply(
        "update",
        kind,
        name,
        lambda: ctx.client.mutate(
            doing,
            lambda s: getattr(getattr(s, collection)(), fix.method)(
                project=ctx.project, **{key: name}, body=fix.body
            ),
        ),
        detail=fix.detail,
    )


def delete(ctx: Context, kind: str, name: str) -> bool:
    collection, param = GLOBAL[kind]
    return ctx.client.delete(
        f"delete {kind} {name}",
        lambda s: getattr(s, collection)().delete(project=ctx.project, **{param: name}),
    )


def converge(
    ctx: Context,
    kind: str,
    desired: dict[str, Any],
    log: ChangeLog,
    *,
    fixes: Callable[[dict[str, Any]], list[ApiFix]],
    detail: str = "",
    current: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Create DESIRED (named desired["name"]) when missing, else apply FIXES(current).
    Returns the resource as it was read (None: it is being created). CURRENT, when the
    caller already read it, saves a second read."""
    name = desired["name"]
    if current is None:
        current = get_global(ctx, kind, name)
    if current is None:
        create(ctx, kind, desired, log, detail)
        return None
    for fix in fixes(current):
        apply_fix(ctx, kind, name, fix, log)
    return current


def patch_fields(
    current: dict[str, Any], desired: dict[str, Any], differs: bool, detail: str, *skip: str
) -> list[ApiFix]:
    """One patch with every desired field but the name (and SKIP), when DIFFERS; the
    current fingerprint goes with it where the resource has one (optimistic locking)."""
    if not differs:
        return []
    body = {k: v for k, v in desired.items() if k not in ("name", *skip)}
    if "fingerprint" in current:
        body["fingerprint"] = current["fingerprint"]
    return [ApiFix("patch", body, detail)]


def label_fix(current: dict[str, Any], wanted: dict[str, str]) -> list[ApiFix]:
    """setLabels when the labels differ (labels are not patchable on these resources)."""
    if current.get("labels", {}) == wanted:
        return []
    body = {"labels": wanted, "labelFingerprint": current.get("labelFingerprint")}
    return [ApiFix("setLabels", body, "labels")]
