"""ARM resources this provider has no typed SDK client for (storage accounts, managed
identities, role assignments), read and written by id through azure-mgmt-resource's generic
resource operations, with each type's own api-version. The same Arm wrapper (retries,
translated errors, 404 as None) as every other call."""

from __future__ import annotations

from typing import Any

from azure.core.rest import HttpRequest

from mlops_vm.provision.azure.client import Arm, Json


def get(arm: Arm, what: str, resource_id: str, api_version: str) -> Json | None:
    # The SDK puts the id after a "/" of its own.
    ops = arm.resources.resources
    return arm.read(f"read {what}", ops.get_by_id, resource_id.lstrip("/"), api_version=api_version)


def put(arm: Arm, what: str, resource_id: str, api_version: str, body: Json) -> Json:
    ops = arm.resources.resources

    def begin() -> Any:
        return ops.begin_create_or_update_by_id(
            resource_id.lstrip("/"), body, api_version=api_version
        )

    return arm.run(f"create {what}", begin)


def delete(arm: Arm, what: str, resource_id: str, api_version: str) -> None:
    ops = arm.resources.resources
    arm.delete(
        f"delete {what}",
        lambda: ops.begin_delete_by_id(resource_id.lstrip("/"), api_version=api_version),
    )


def find_by_name(arm: Arm, what: str, resource_type: str, name: str) -> Json | None:
    """The subscription's resource of RESOURCE_TYPE named NAME (names of vaults and
    registries are global: one at most), or None."""
    found = arm.read_all(
        f"find {what} {name}",
        arm.resources.resources.list,
        filter=f"resourceType eq '{resource_type}'",
    )
    return next((r for r in found if r["name"].lower() == name.lower()), None)


def list_at(arm: Arm, what: str, path: str, api_version: str, filter: str) -> list[Json]:
    """GET PATH (under the subscription) with $filter: for collections the generic
    operations do not list (role assignments of a principal)."""

    def attempt() -> list[Json]:
        request = HttpRequest(
            "GET",
            f"/subscriptions/{arm.subscription_id}{path}",
            params={"api-version": api_version, "$filter": filter},
        )
        response = arm.resources.send_request(request)
        response.raise_for_status()
        return list(response.json().get("value") or [])

    return arm.write(f"list {what}", attempt)
