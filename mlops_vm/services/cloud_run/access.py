"""Who may call the service: `public` is an IAM binding of allUsers to roles/run.invoker
on the service; `authenticated` is the same policy without it (callers need an identity
token and the invoker role). Read-modify-write with the policy's etag."""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.services.cloud_run.apis import CloudRunApis
from mlops_vm.services.cloud_run.service import services, short

INVOKER = "roles/run.invoker"
EVERYONE = "allUsers"


def with_public_invoker(policy: dict[str, Any], public: bool) -> dict[str, Any]:
    """POLICY with allUsers bound to the invoker role (PUBLIC) or not."""
    bindings = [dict(b) for b in policy.get("bindings", [])]
    invoker = next((b for b in bindings if b["role"] == INVOKER and not b.get("condition")), None)
    if public:
        if invoker is None:
            bindings.append({"role": INVOKER, "members": [EVERYONE]})
        elif EVERYONE not in invoker["members"]:
            invoker["members"] = [*invoker["members"], EVERYONE]
    elif invoker is not None:
        invoker["members"] = [m for m in invoker["members"] if m != EVERYONE]
        if not invoker["members"]:
            bindings.remove(invoker)
    return {**policy, "bindings": bindings}


def is_public(policy: dict[str, Any]) -> bool:
    return any(
        b["role"] == INVOKER and EVERYONE in b.get("members", []) and not b.get("condition")
        for b in policy.get("bindings", [])
    )


def ensure_access(apis: CloudRunApis, service_name: str, access: str, log: ChangeLog) -> None:
    public = access == "public"
    # A service that does not exist yet (a dry run's new one) has no policy: no binding.
    policy = (
        apis.run.get(
            "read the service's IAM policy",
            lambda s: services(s).getIamPolicy(resource=service_name),
        )
        or {}
    )
    if is_public(policy) == public:
        return
    # The etag read above goes back: a concurrent change makes this fail, not vanish.
    wanted = with_public_invoker(policy, public)
    log.update(
        "cloud_run_invoker",
        short(service_name),
        lambda: apis.run.execute(
            "set the service's IAM policy",
            lambda s: services(s).setIamPolicy(resource=service_name, body={"policy": wanted}),
        ),
        "allUsers may invoke" if public else "authenticated callers only",
    )
