"""A stateful fake of Azure Resource Manager over HTTP, held to ARM's protocol.

- Every request needs a bearer Authorization header and the api-version query parameter.
- PUT answers 201 (create) or 200 (update) with an Azure-AsyncOperation header; the status
  URL answers InProgress for `polls_in_progress` polls, then Succeeded, and only then does the
  resource's provisioningState read Succeeded. DELETE and POST actions answer 202 with a
  Location header that answers 202 until done, then 200/204. DELETE of something that does not
  exist answers 204. Resource groups and autoscale settings are synchronous, as in ARM.
- Errors are {"error": {"code", "message"}} with ARM's status codes.
- Failure hooks: restricted SKUs, a regional vCPU quota, denied actions, rejected tokens and
  arbitrary injected faults (synchronous or failing the long-running operation).
"""

from __future__ import annotations

import copy
import json
import math
import re
import ssl
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.azure import (
    authorization,
    compute,
    container_registry,
    images,
    insights,
    key_vault,
    network,
    rbac,
    storage,
    web,
    web_domains,
)
from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import (
    ArmError,
    ArmState,
    Fault,
    Json,
    RequestRecord,
    key,
    now,
    parse_id,
)

RESOURCE_TYPES: dict[str, ResourceType] = {
    f"{t.namespace}/{t.collection}".lower(): t
    for t in (
        network.VirtualNetworks(),
        network.NetworkSecurityGroups(),
        network.NetworkInterfaces(),
        network.PublicIPAddresses(),
        network.ApplicationGateways(),
        compute.VirtualMachines(),
        compute.Disks(),
        compute.VirtualMachineScaleSets(),
        compute.AutoscaleSettings(),
        images.Images(),
        web.ServerFarms(),
        web.Sites(),
        web_domains.Certificates(),
        container_registry.Registries(),
        key_vault.Vaults(),
        storage.StorageAccounts(),
        authorization.UserAssignedIdentities(),
    )
}
RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"
TAG_FILTER = re.compile(r"tagName eq '([^']*)' and tagValue eq '([^']*)'", re.IGNORECASE)
TYPE_FILTER = re.compile(r"resourceType eq '([^']*)'", re.IGNORECASE)
LOCATION_FILTER = re.compile(r"location eq '([^']*)'", re.IGNORECASE)
FORBIDDEN_TAG_CHARACTERS = set("<>%&\\?/")
# App Service's managed identity endpoint, served beside ARM (see _managed_identity_token).
MANAGED_IDENTITY_PATH = "/msi/token"
MANAGED_IDENTITY_HEADER = "fake-identity-header"

Reply = tuple[int, Json | None, dict[str, str]]


def arm_location(location: object) -> str:
    """ARM takes a location's display name too ("West Europe") and answers with its name
    ("westeurope"), whatever was sent."""
    return "".join(str(location or "").split()).lower()


def merge_patch(target: Json, patch: Json) -> Json:
    for name, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(name), dict):
            merge_patch(target[name], value)
        elif value is None:
            target.pop(name, None)
        else:
            target[name] = copy.deepcopy(value)
    return target


class ArmProtocol:
    """Routes one request to the state and the type rules; returns (status, body, headers)."""

    def __init__(self, state: ArmState, base_url: str) -> None:
        self.state = state
        self.base_url = base_url

    # -- entry point -----------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Json, headers: dict[str, str]
    ) -> Reply:
        self._check_token(headers)
        require(
            bool(query.get("api-version")),
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
        fault = self.state.take_fault(method, path)
        if fault is not None:
            raise fault
        if "/" + rbac.ASSIGNMENTS in path.lower():
            index = path.lower().rindex("/" + rbac.ASSIGNMENTS)
            self._authorize(method, rbac.ASSIGNMENT_TYPE, path[:index] or "/")
            return authorization.RoleAssignments(self.state).handle(method, path, query, body)
        segments = [unquote(s) for s in path.strip("/").split("/") if s]
        if len(segments) < 2 or segments[0].lower() != "subscriptions":
            raise ArmError(404, "InvalidRequestUri", f"No route for {path}")
        subscription, rest = segments[1], segments[2:]
        lowered = [s.lower() for s in rest]
        if len(rest) == 6 and lowered[0] == "providers" and lowered[2] == "locations":
            return self._operation(lowered[4], rest[5])
        if lowered == ["providers", "microsoft.compute", "skus"]:
            self._authorize(method, "Microsoft.Compute/skus", f"/subscriptions/{subscription}")
            location = LOCATION_FILTER.search(query.get("$filter", ""))
            skus = compute.resource_skus(self.state, location.group(1) if location else None)
            return 200, {"value": skus}, {}
        if lowered == ["resources"]:
            return 200, {"value": self._generic_resources(subscription, None, query)}, {}
        if lowered == ["resourcegroups"]:
            return 200, {"value": self._resource_groups(subscription, query)}, {}
        if len(rest) == 2 and lowered[0] == "resourcegroups":
            return self._resource_group(method, subscription, rest[1], body, query)
        if len(rest) == 3 and lowered[0] == "resourcegroups" and lowered[2] == "resources":
            self._require_resource_group(subscription, rest[1])
            return 200, {"value": self._generic_resources(subscription, rest[1], query)}, {}
        if lowered[-3:] == ["providers", "microsoft.insights", "metrics"] and method == "GET":
            return 200, self._metrics("/" + "/".join(segments[:-3]), query), {}
        if len(rest) >= 5 and lowered[0] == "resourcegroups" and lowered[2] == "providers":
            return self._typed(method, subscription, rest, body, query)
        raise ArmError(404, "InvalidRequestUri", f"No route for {path}")

    def _metrics(self, resource_id: str, query: dict[str, str]) -> Json:
        """Azure Monitor's metrics of an existing resource (a web app's slot included)."""
        path = parse_id(resource_id)
        top = self.state.get(path.top_id) if path else None
        slots = self.state.private_of(top["id"]).get("slots", {}) if top else {}
        kinds = [kind.lower() for kind, _ in path.pairs] if path else []
        exists = top is not None and (
            len(kinds) == 1 or (kinds == ["sites", "slots"] and path.pairs[1][1] in slots)
        )
        if path is None or not exists:
            raise ArmError(404, "ResourceNotFound", f"The Resource '{resource_id}' was not found.")
        type_name = "/".join([path.namespace, *(kind for kind, _ in path.pairs)])
        return insights.Insights(self.state.metric_samples).metrics(
            resource_id, type_name, top["location"], query
        )

    # -- checks ----------------------------------------------------------------------------

    def _check_token(self, headers: dict[str, str]) -> None:
        authorization = headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        if self.state.tokens_rejected:
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid or has expired.",
            )

    def _authorize(self, method: str, resource_type: str, scope: str, verb: str = "") -> None:
        verb = verb or {"GET": "read", "HEAD": "read", "DELETE": "delete"}.get(method, "write")
        action = f"{resource_type}/{verb}"
        for denied in self.state.denied_actions:
            if action.lower().startswith(denied.lower()):
                raise ArmError(
                    403,
                    "AuthorizationFailed",
                    f"The client '00000000-0000-0000-0000-0000000000aa' with object id "
                    f"'00000000-0000-0000-0000-0000000000aa' does not have authorization to "
                    f"perform action '{action}' over scope '{scope}' or the scope is invalid. "
                    "If access was recently granted, please refresh your credentials.",
                )

    def _require_resource_group(self, subscription: str, name: str) -> Json:
        group = self.state.resource_group(subscription, name)
        if group is None:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
            )
        return group

    @staticmethod
    def _check_tags(body: Json) -> None:
        tags = body.get("tags") or {}
        require(isinstance(tags, dict), "InvalidTag", "tags must be an object")
        for name, value in tags.items():
            require(
                not (set(name) & FORBIDDEN_TAG_CHARACTERS),
                "InvalidTagNameCharacters",
                f"The tag names '{name}' have reserved characters '<,>,%,&,\\,?,/' or control "
                "characters.",
            )
            require(
                len(name) <= 512 and len(str(value)) <= 256,
                "InvalidTag",
                f"Tag {name} is too long.",
            )

    # -- long-running operations -----------------------------------------------------------

    def _operation_url(self, subscription: str, namespace: str, location: str, kind: str) -> str:
        return (
            f"{self.base_url}/subscriptions/{subscription}/providers/{namespace}"
            f"/locations/{location}/{kind}"
        )

    def _operation(self, kind: str, operation_id: str) -> Reply:
        operation = self.state.poll(operation_id)
        if operation is None:
            raise ArmError(404, "OperationNotFound", f"Operation {operation_id} not found.")
        if kind == "operations":  # Azure-AsyncOperation status monitor
            status: Json = {
                "id": operation.id,
                "name": operation.id,
                "status": operation.status,
                "startTime": operation.started,
            }
            if operation.status == "Failed" and operation.error is not None:
                status["error"] = operation.error.body()["error"]
            return 200, status, {}
        # Location monitor
        if operation.status == "InProgress":
            return 202, None, {}
        if operation.status == "Failed" and operation.error is not None:
            raise operation.error
        if operation.result is not None:
            return 200, operation.result, {}
        return 204, None, {}

    def _start(
        self,
        subscription: str,
        target: str,
        location: str,
        api_version: str,
        complete: Callable[[], Json | None],
        fail: Callable[[], None],
    ) -> tuple[str, str]:
        """Start a long-running operation on TARGET (a resource id); returns the
        Azure-AsyncOperation and the Location monitor URLs."""
        path = parse_id(target)
        namespace = path.namespace if path else "Microsoft.Resources"
        error = self.state.arm_async_fault("ASYNC", target)
        operation = self.state.start_operation(complete, fail, error)
        suffix = f"{operation.id}?api-version={api_version}"
        return (
            self._operation_url(subscription, namespace, location, "operations") + "/" + suffix,
            self._operation_url(subscription, namespace, location, "operationResults")
            + "/"
            + suffix,
        )

    # -- resource groups and generic listings ----------------------------------------------

    def _resource_group(
        self, method: str, subscription: str, name: str, body: Json, query: dict[str, str]
    ) -> Reply:
        scope = f"/subscriptions/{subscription}/resourceGroups/{name}"
        self._authorize(method, "Microsoft.Resources/subscriptions/resourceGroups", scope)
        existing = self.state.resource_group(subscription, name)
        if method == "HEAD":
            return (204 if existing else 404), None, {}
        if method == "GET":
            if existing is None:
                self._require_resource_group(subscription, name)
            return 200, copy.deepcopy(existing), {}
        if method == "PUT":
            location = arm_location(body.get("location"))
            require(bool(location), "LocationRequired", "The location property is required.")
            if existing is not None and existing["location"] != location:
                raise ArmError(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{location}'. The Resource group "
                    f"already exists in location '{existing['location']}'.",
                )
            self._check_tags(body)
            group = {
                "id": scope if existing is None else existing["id"],
                "name": name if existing is None else existing["name"],
                "type": RESOURCE_GROUP_TYPE,
                "location": location,
                "tags": dict(body.get("tags") or {}),
                "properties": {"provisioningState": "Succeeded"},
            }
            self.state.put(group)
            return (200 if existing else 201), copy.deepcopy(group), {}
        if method == "DELETE":
            if existing is None:
                self._require_resource_group(subscription, name)
            assert existing is not None
            existing["properties"]["provisioningState"] = "Deleting"

            def complete() -> None:
                for resource in self.state.in_resource_group(existing["id"]):
                    self.state.remove(resource["id"])
                self.state.remove(existing["id"])

            def fail() -> None:
                existing["properties"]["provisioningState"] = "Succeeded"

            _, location_url = self._start(
                subscription,
                existing["id"],
                existing["location"],
                query["api-version"],
                complete,
                fail,
            )
            return 202, None, {"Location": location_url}
        raise ArmError(405, "MethodNotAllowed", f"{method} is not supported on resource groups")

    def _resource_groups(self, subscription: str, query: dict[str, str]) -> list[Json]:
        tag = TAG_FILTER.search(query.get("$filter", ""))
        groups = []
        for resource in self.state.of_type(RESOURCE_GROUP_TYPE):
            if not resource["id"].lower().startswith(f"/subscriptions/{subscription.lower()}/"):
                continue
            if tag and resource.get("tags", {}).get(tag.group(1)) != tag.group(2):
                continue
            groups.append(copy.deepcopy(resource))
        return groups

    def _generic_resources(
        self, subscription: str, group: str | None, query: dict[str, str]
    ) -> list[Json]:
        text = query.get("$filter", "")
        tag, kind = TAG_FILTER.search(text), TYPE_FILTER.search(text)
        prefix = f"/subscriptions/{subscription}/resourcegroups/".lower()
        if group:
            prefix += group.lower() + "/"
        found = []
        for resource in list(self.state.resources.values()):
            if resource["type"] == RESOURCE_GROUP_TYPE or not key(resource["id"]).startswith(
                prefix
            ):
                continue
            if tag and resource.get("tags", {}).get(tag.group(1)) != tag.group(2):
                continue
            if kind and resource["type"].lower() != kind.group(1).lower():
                continue
            found.append(
                {
                    k: copy.deepcopy(resource[k])
                    for k in ("id", "name", "type", "location", "tags", "sku", "managedBy")
                    if k in resource
                }
            )
        return found

    # -- typed resources -------------------------------------------------------------------

    def _typed(
        self, method: str, subscription: str, rest: list[str], body: Json, query: dict[str, str]
    ) -> Reply:
        group_name, namespace, collection = rest[1], rest[3], rest[4]
        resource_type = RESOURCE_TYPES.get(f"{namespace}/{collection}".lower())
        if resource_type is None:
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type '{collection}' could not be found in the namespace "
                f"'{namespace}'.",
            )
        group = self.state.resource_group(subscription, group_name)
        group_id = (
            group["id"] if group else f"/subscriptions/{subscription}/resourceGroups/{group_name}"
        )
        scope_type = resource_type.type_name
        if len(rest) == 5:
            self._authorize(method, scope_type, group_id)
            require(method == "GET", "MethodNotAllowed", f"{method} on a collection", 405)
            self._require_resource_group(subscription, group_name)
            found = [
                resource_type.render(self.state, r, query)
                for r in self.state.of_type(scope_type)
                if key(r["id"]).startswith(key(group_id) + "/")
            ]
            return 200, {"value": found}, {}
        name, extra = rest[5], rest[6:]
        rid = f"{group_id}/providers/{resource_type.namespace}/{resource_type.collection}/{name}"
        if method == "POST":
            verb = f"{extra[0]}/action" if extra else "action"
            self._authorize(method, scope_type, rid, verb)
        else:
            self._authorize(method, scope_type, rid)
        if not extra:
            return self._top_level(method, subscription, group, resource_type, rid, body, query)
        return self._nested(method, subscription, resource_type, rid, extra, body, query)

    def _not_found(self, resource_type: ResourceType, rid: str, group: str) -> ArmError:
        return ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{resource_type.type_name}/{rid.rsplit('/', 1)[1]}' under resource "
            f"group '{group}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        )

    def _pending(self, rid: str) -> bool:
        operation_id = self.state.private_of(rid).get("pending")
        operation = self.state.operations.get(operation_id or "")
        return operation is not None and operation.status == "InProgress"

    def _top_level(
        self,
        method: str,
        subscription: str,
        group: Json | None,
        resource_type: ResourceType,
        rid: str,
        body: Json,
        query: dict[str, str],
    ) -> Reply:
        path = parse_id(rid)
        assert path is not None
        existing = self.state.get(rid)
        if method == "GET" and existing is None:
            existing = self._deferred_result(rid)
        if method == "GET":
            if group is None:
                self._require_resource_group(subscription, path.resource_group)
            if existing is None:
                raise self._not_found(resource_type, rid, path.resource_group)
            return 200, resource_type.render(self.state, existing, query), {}
        if method == "DELETE":
            if existing is None:
                return 204, None, {}
            return self._delete(subscription, resource_type, existing, query)
        if group is None:
            self._require_resource_group(subscription, path.resource_group)
        if method == "PATCH":
            if existing is None:
                raise self._not_found(resource_type, rid, path.resource_group)
            return self._patch(subscription, resource_type, existing, body, query)
        if method == "PUT":
            return self._put(subscription, resource_type, rid, existing, body, query)
        raise ArmError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _put(
        self,
        subscription: str,
        resource_type: ResourceType,
        rid: str,
        existing: Json | None,
        body: Json,
        query: dict[str, str],
    ) -> Reply:
        require(
            not (existing and self._pending(rid)),
            "AnotherOperationInProgress",
            f"Another operation on this or dependent resource is in progress: {rid}.",
            status=409,
        )
        location = arm_location(body.get("location"))
        require(
            bool(location),
            "LocationRequired",
            "The location property is required for this definition.",
        )
        body = {**body, "location": location}  # stored and shown as ARM spells it
        require(
            location in compute.LOCATIONS,
            "LocationNotAvailableForResourceType",
            f"The provided location '{location}' is not available for resource type "
            f"'{resource_type.type_name}'. List of available regions for the resource type is "
            f"'{','.join(compute.LOCATIONS)}'.",
        )
        require(
            existing is None or existing["location"] == location,
            "InvalidResourceLocation",
            f"The resource '{rid}' already exists in location '{existing and existing['location']}'"
            f". A resource with the same name cannot be created in location '{location}'.",
            status=409,
        )
        self._check_tags(body)
        stored = copy.deepcopy(body)
        stored.update(id=rid, name=rid.rsplit("/", 1)[1], type=resource_type.type_name)
        stored.setdefault("tags", {})
        stored = resource_type.prepare(self.state, rid, stored, existing)
        props = stored.setdefault("properties", {})
        status = 200 if existing else resource_type.created_status
        if resource_type.deferred(stored):
            return self._deferred_put(subscription, resource_type, stored, query)
        if not resource_type.long_running:
            props["provisioningState"] = "Succeeded"
            self.state.put(stored)
            return status, resource_type.render(self.state, stored, {}), {}
        props["provisioningState"] = "Updating" if existing else "Creating"
        self.state.put(stored)
        after_put = getattr(resource_type, "after_put", None)
        if after_put is not None:
            after_put(self.state, stored)
        async_url, _ = self._start_for(subscription, resource_type, stored, query)
        return (
            status,
            resource_type.render(self.state, stored, {}),
            {"Azure-AsyncOperation": async_url},
        )

    def _deferred_put(
        self, subscription: str, resource_type: ResourceType, stored: Json, query: dict[str, str]
    ) -> Reply:
        """202 + Location: the resource exists once the operation has ended (an App Service
        Managed Certificate, issued after the answer)."""

        def complete() -> Json:
            stored["properties"]["provisioningState"] = "Succeeded"
            self.state.put(stored)
            return resource_type.render(self.state, stored, {})

        _, location_url = self._start(
            subscription,
            stored["id"],
            stored["location"],
            query["api-version"],
            complete,
            lambda: None,
        )
        # Azure gets on with it whether or not the client polls: a GET moves it on too.
        operation_id = location_url.rsplit("/", 1)[1].split("?")[0]
        self.state.private_of(stored["id"])["deferred"] = operation_id
        return 202, None, {"Location": location_url}

    def _deferred_result(self, rid: str) -> Json | None:
        """The resource of a deferred PUT, once a poll has seen it through."""
        operation_id = self.state.private.get(key(rid), {}).get("deferred")
        if operation_id:
            self.state.poll(operation_id)
        return self.state.get(rid)

    def _start_for(
        self, subscription: str, resource_type: ResourceType, stored: Json, query: dict[str, str]
    ) -> tuple[str, str]:
        rid = stored["id"]

        def finish(state: str) -> None:
            current = self.state.get(rid)
            if current is not None:
                current.setdefault("properties", {})["provisioningState"] = state

        urls = self._start(
            subscription,
            rid,
            stored["location"],
            query["api-version"],
            lambda: finish("Succeeded"),
            lambda: finish("Failed"),
        )
        self.state.private_of(rid)["pending"] = urls[0].rsplit("/", 1)[1].split("?")[0]
        return urls

    def _patch(
        self,
        subscription: str,
        resource_type: ResourceType,
        existing: Json,
        body: Json,
        query: dict[str, str],
    ) -> Reply:
        """JSON merge-patch, as ARM's PATCH: objects merge, lists and values replace; the
        merged document is validated like a PUT."""
        require(
            not self._pending(existing["id"]),
            "AnotherOperationInProgress",
            f"Another operation on this or dependent resource is in progress: {existing['id']}.",
            status=409,
        )
        self._check_tags(body)
        merged = merge_patch(copy.deepcopy(existing), body)
        stored = resource_type.prepare(self.state, existing["id"], merged, existing)
        stored["properties"]["provisioningState"] = "Updating"
        self.state.put(stored)
        after_put = getattr(resource_type, "after_put", None)
        if after_put is not None:
            after_put(self.state, stored)
        async_url, _ = self._start_for(subscription, resource_type, stored, query)
        return (
            200,
            resource_type.render(self.state, stored, {}),
            {"Azure-AsyncOperation": async_url},
        )

    def _delete(
        self, subscription: str, resource_type: ResourceType, existing: Json, query: dict[str, str]
    ) -> Reply:
        resource_type.check_delete(self.state, existing)
        rid = existing["id"]
        if not resource_type.long_running:
            self.state.remove(rid)
            resource_type.on_deleted(self.state, existing)
            return 200, None, {}
        previous = existing.get("properties", {}).get("provisioningState")
        existing.setdefault("properties", {})["provisioningState"] = "Deleting"

        def complete() -> None:
            self.state.remove(rid)
            resource_type.on_deleted(self.state, existing)

        def fail() -> None:
            existing["properties"]["provisioningState"] = previous or "Failed"

        _, location_url = self._start(
            subscription,
            rid,
            existing["location"],
            query["api-version"],
            complete,
            fail,
        )
        return 202, None, {"Location": location_url}

    def _nested(
        self,
        method: str,
        subscription: str,
        resource_type: ResourceType,
        rid: str,
        extra: list[str],
        body: Json,
        query: dict[str, str],
    ) -> Reply:
        path = parse_id(rid)
        assert path is not None
        parent = self.state.get(rid)
        custom = getattr(resource_type, "nested", None)
        if custom is not None and parent is not None:
            return custom(self, method, subscription, parent, extra, body, query)
        if parent is None:
            if method == "DELETE":
                return 204, None, {}
            if self.state.resource_group(subscription, path.resource_group) is None:
                self._require_resource_group(subscription, path.resource_group)
            raise ArmError(
                404,
                "ParentResourceNotFound",
                f"Failed to perform '{method.lower()}' on resource(s) of type "
                f"'{resource_type.type_name}/{extra[0]}', because the parent resource "
                f"'{rid}' could not be found.",
            )
        if method == "GET":
            return 200, self._read_nested(resource_type, parent, extra, query), {}
        if method == "POST" and len(extra) == 1:
            complete = resource_type.action(self.state, parent, extra[0], body)
            if extra[0].lower() in resource_type.sync_actions:
                complete()
                return 200, None, {}
            _, location_url = self._start(
                subscription,
                rid,
                parent["location"],
                query["api-version"],
                complete,
                lambda: None,
            )
            return 202, None, {"Location": location_url}
        require(len(extra) == 2, "InvalidRequestUri", f"No route for {'/'.join(extra)}", 404)
        require(
            not self._pending(rid),
            "AnotherOperationInProgress",
            f"Another operation on this or dependent resource is in progress: {rid}.",
            status=409,
        )
        collection, name = extra
        if method == "PUT":
            child, created = resource_type.put_child(self.state, parent, collection, name, body)
            parent["properties"]["provisioningState"] = "Updating"
            async_url, _ = self._start_for(subscription, resource_type, parent, query)
            return (201 if created else 200), child, {"Azure-AsyncOperation": async_url}
        if method == "DELETE":
            if not resource_type.delete_child(self.state, parent, collection, name):
                return 204, None, {}
            _, location_url = self._start_for(subscription, resource_type, parent, query)
            return 202, None, {"Location": location_url}
        raise ArmError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _read_nested(
        self, resource_type: ResourceType, parent: Json, extra: list[str], query: dict[str, str]
    ) -> Json:
        reader = getattr(resource_type, "read", None)
        if reader is not None:
            shown = reader(self.state, parent, extra, query)
            if shown is not None:
                return shown
        lowered = [c.lower() for c in resource_type.child_collections]
        if extra[0].lower() in lowered:
            collection = resource_type.child_collections[lowered.index(extra[0].lower())]
            if len(extra) == 1:
                return {"value": resource_type.list_children(self.state, parent, collection) or []}
            if len(extra) == 2:
                child = resource_type.get_child(self.state, parent, collection, extra[1])
                if child is not None:
                    return child
                raise ArmError(
                    404,
                    "NotFound",
                    f"Resource {parent['id']}/{collection}/{extra[1]} not found.",
                )
        raise ArmError(404, "InvalidRequestUri", f"No route for {'/'.join(extra)}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms per request on loopback).
    disable_nagle_algorithm = True
    server: _ArmHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is kept in the state instead."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        if url.path == MANAGED_IDENTITY_PATH:
            self._managed_identity_token(headers, query)
            return
        if url.path.startswith((storage.PATH_PREFIX, container_registry.EXCHANGE_PREFIX)):
            self._data_plane(method, url.path, raw, headers)
            return
        with state.lock:
            record = RequestRecord(method, url.path, query.get("api-version"))
            state.requests.append(record)
            try:
                body = json.loads(raw) if raw else {}
                protocol = (
                    self.server.key_vault
                    if url.path.startswith(key_vault.PATH_PREFIX)
                    else self.server.protocol
                )
                status, payload, extra = protocol.handle(method, url.path, query, body, headers)
            except ArmError as error:
                status, payload, extra = error.status, error.body(), dict(error.headers)
            except json.JSONDecodeError as error:
                status, payload, extra = (
                    400,
                    {"error": {"code": "InvalidRequestContent", "message": str(error)}},
                    {},
                )
            except Exception as error:  # a bug in the fake: say so loudly, as a 500
                traceback.print_exc()
                status, payload, extra = (
                    500,
                    {"error": {"code": "FakeArmBug", "message": repr(error)}},
                    {},
                )
            record.status = status
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("x-ms-request-id", f"fake-{len(state.requests)}")
        self.send_header("Date", now())
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if data and method != "HEAD":
            self.wfile.write(data)

    def _data_plane(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> None:
        """Blob storage (bytes in and out) and ACR's token exchange (a form in)."""
        state = self.server.state
        with state.lock:
            record = RequestRecord(method, path, None)
            state.requests.append(record)
            if path.startswith(storage.PATH_PREFIX):
                status, data, extra = storage.BlobProtocol(state).handle(method, path, raw, headers)
            else:
                try:
                    answer = container_registry.exchange(state, path, raw)
                    status, extra = 200, {"Content-Type": "application/json"}
                except ArmError as error:
                    answer, status, extra = error.body(), error.status, {}
                data = json.dumps(answer).encode()
            record.status = status
        self.send_response(status)
        extra.setdefault("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def _managed_identity_token(self, headers: dict[str, str], query: dict[str, str]) -> None:
        """App Service's managed identity endpoint (IDENTITY_ENDPOINT, api-version
        2019-08-01), so that a process with no other credential gets a token for the fake
        through azure-identity's own code."""
        if headers.get("x-identity-header") != MANAGED_IDENTITY_HEADER or not query.get("resource"):
            status, payload = 400, {"error": "invalid_request"}
        else:
            status, payload = (
                200,
                {
                    "access_token": "fake-token",
                    "expires_on": "4102444800",
                    "resource": query["resource"],
                    "token_type": "Bearer",
                },
            )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ArmHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ArmState, tls: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)
            scheme = "https"
        self.protocol = ArmProtocol(state, f"{scheme}://127.0.0.1:{self.server_address[1]}")
        self.key_vault = key_vault.KeyVaultProtocol(state)


class FakeArm:
    """The fake ARM endpoint: start it, aim the SDK's base_url at `url`, inspect and inject.

    with FakeArm() as arm:
        client = ComputeManagementClient(cred, SUB, base_url=arm.url, ...)
    """

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        """TLS: (certificate, key) PEM paths to serve https (the SDK's bearer-token policy
        and azure-identity then work unchanged, as in a process the test does not own)."""
        self.state = ArmState()
        self.tls = tls
        self._server: _ArmHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return self._server.protocol.base_url

    def start(self) -> FakeArm:
        self._server = _ArmHttpServer(self.state, self.tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-arm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeArm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- failure hooks ---------------------------------------------------------------------

    def reset_hooks(self) -> None:
        with self.state.lock:
            self.state.reset_hooks()

    def restrict_sku(self, size: str) -> None:
        """SKU list shows NotAvailableForSubscription; PUTs with it answer 409 SkuNotAvailable."""
        with self.state.lock:
            self.state.restricted_skus.add(size)

    def set_core_quota(self, cores: int | None) -> None:
        """Regional vCPU quota; going over answers 409 OperationNotAllowed (quota text)."""
        with self.state.lock:
            self.state.core_quota = cores

    def deny(self, action_prefix: str) -> None:
        """403 AuthorizationFailed for actions that start with ACTION_PREFIX, e.g.
        'Microsoft.Network/virtualNetworks/write'."""
        with self.state.lock:
            self.state.denied_actions.append(action_prefix)

    def reject_tokens(self, rejected: bool = True) -> None:
        with self.state.lock:
            self.state.tokens_rejected = rejected

    def fail(
        self,
        status: int,
        code: str,
        message: str,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        asynchronous: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        """Inject a failure: the next TIMES requests whose path contains PATH_CONTAINS answer
        with it. asynchronous=True accepts the request and fails its long-running operation
        instead (e.g. AllocationFailed), for targets whose id contains PATH_CONTAINS.
        RETRY_AFTER_S (throttling): the answer asks for that wait, and a retry that comes
        sooner is throttled again without being processed, as ARM does."""
        headers = {} if retry_after_s is None else {"Retry-After": str(math.ceil(retry_after_s))}
        with self.state.lock:
            self.state.faults.append(
                Fault(
                    ArmError(status, code, message, headers),
                    "ASYNC" if asynchronous else method,
                    path_contains,
                    times,
                    asynchronous,
                    retry_after_s,
                )
            )

    def set_backend_health(self, address_or_ip_configuration_id: str, health: str) -> None:
        with self.state.lock:
            self.state.backend_health[address_or_ip_configuration_id.lower()] = health

    def fault_rolling_upgrade(
        self, scale_set_id: str, code: str = "Faulted", message: str | None = None
    ) -> None:
        """The next upgrade of the scale set's instances ends CODE (Faulted, Cancelled) and
        leaves them on their old model; MESSAGE is the upgrade's error."""
        fault: Json = {"code": code}
        if message:
            fault["error"] = {
                "code": "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade",
                "message": message,
                "details": [{"code": "VMExtensionHandlerNonTransientError", "message": message}],
            }
        with self.state.lock:
            self.state.private_of(scale_set_id)["upgrade_fault"] = fault

    def fail_scale_set_instances(self, scale_set_id: str, code: str, message: str) -> None:
        """The scale set's instance view shows an Error status CODE: MESSAGE (its instances
        could not be provisioned: allocation, quota, an extension), also before it exists."""
        with self.state.lock:
            self.state.private_of(scale_set_id)["instance_error"] = {
                "code": code,
                "message": message,
            }

    def set_polls_in_progress(self, polls: int) -> None:
        with self.state.lock:
            self.state.polls_in_progress = polls

    # -- inspection ------------------------------------------------------------------------

    def resource(self, resource_id: str) -> Json | None:
        """What a GET shows (write-only fields hidden, back-references filled in)."""
        with self.state.lock:
            stored = self.state.get(resource_id)
            if stored is None:
                return None
            if stored["type"] == RESOURCE_GROUP_TYPE:
                return copy.deepcopy(stored)
            resource_type = RESOURCE_TYPES[stored["type"].lower()]
            return resource_type.render(self.state, stored, {})

    def stored(self, resource_id: str) -> Json | None:
        """What the client sent (write-only fields included): for asserting on customData."""
        with self.state.lock:
            return copy.deepcopy(self.state.get(resource_id))

    def resources(self, type_name: str | None = None, resource_group: str | None = None) -> list:
        """Resources as GET shows them (resource groups only when TYPE_NAME asks for them)."""
        with self.state.lock:
            found = []
            for stored in list(self.state.resources.values()):
                if type_name and stored["type"].lower() != type_name.lower():
                    continue
                if not type_name and stored["type"] == RESOURCE_GROUP_TYPE:
                    continue
                path = parse_id(stored["id"])
                group = path.resource_group if path else stored["name"]
                if resource_group and group.lower() != resource_group.lower():
                    continue
                found.append(self.resource(stored["id"]))
            return found

    def scale_set_instances(self, scale_set_id: str) -> list[Json]:
        with self.state.lock:
            stored = self.state.get(scale_set_id)
            if stored is None:
                return []
            scale_sets = RESOURCE_TYPES["microsoft.compute/virtualmachinescalesets"]
            shown = scale_sets.read(self.state, stored, ["virtualMachines"], {})  # type: ignore[attr-defined]
            return shown["value"]

    def scale_set_custom_data(self, scale_set_id: str) -> list[str]:
        """The customData (base64, as sent) of the scale set's model and of each instance's
        model: every copy ARM keeps."""
        with self.state.lock:
            stored = self.state.get(scale_set_id)
            if stored is None:
                return []
            found = [stored["properties"]["virtualMachineProfile"]["osProfile"].get("customData")]
            for instance in self.state.private_of(scale_set_id).get("instances", {}).values():
                found.append((instance.get("snapshot") or {}).get("customData"))
            return [data for data in found if data]

    def scale_set_nics(self, scale_set_id: str) -> list[Json]:
        with self.state.lock:
            stored = self.state.get(scale_set_id)
            if stored is None:
                return []
            scale_sets = RESOURCE_TYPES["microsoft.compute/virtualmachinescalesets"]
            shown = scale_sets.read(self.state, stored, ["networkInterfaces"], {})  # type: ignore[attr-defined]
            return shown["value"]

    def certificate(self, gateway_id: str, name: str) -> Json | None:
        """What the fake parsed from a gateway's PFX (subject, sha256) or its Key Vault id."""
        with self.state.lock:
            known = self.state.private_of(gateway_id).get("certificates", {})
            return copy.deepcopy(known.get(name.lower()))

    @property
    def requests(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.requests)

    def writes(self) -> list[RequestRecord]:
        """Requests that change something (backend health, a read-only POST, excluded)."""
        return [
            r
            for r in self.requests
            if r.method in {"PUT", "PATCH", "DELETE", "POST"}
            and not r.path.lower().endswith("/backendhealth")
        ]

    def clear_requests(self) -> None:
        with self.state.lock:
            self.state.requests.clear()

    def create_resource_group(self, subscription: str, name: str, location: str) -> str:
        """A resource group that exists before the tool runs (nobody's tags on it)."""
        group_id = f"/subscriptions/{subscription}/resourceGroups/{name}"
        with self.state.lock:
            self.state.put(
                {
                    "id": group_id,
                    "name": name,
                    "type": RESOURCE_GROUP_TYPE,
                    "location": location,
                    "tags": {},
                    "properties": {"provisioningState": "Succeeded"},
                }
            )
        return group_id

    # -- Microsoft.Web and Microsoft.ContainerRegistry ------------------------------------

    def set_registry_login_server(self, login_server: str) -> None:
        """Registries made from now on show LOGIN_SERVER (a local registry stands in)."""
        with self.state.lock:
            self.state.private_of("acr")["login_server"] = login_server

    def site_slots(self, site_id: str) -> dict[str, Json]:
        """A web app's slots (production included): config, appsettings, auth."""
        with self.state.lock:
            return web.slot_state(self.state, site_id)

    # -- Key Vault's data plane -------------------------------------------------------------

    def add_secret(self, uri: str, value: str, *, enabled: bool = True) -> str:
        """A new version of the secret at URI (https://<vault>.vault.azure.net/secrets/<name>),
        the vault made if missing; returns the version."""
        host, _, name = uri.removeprefix("https://").partition("/secrets/")
        with self.state.lock:
            return key_vault.add_secret(
                self.state, host.split(".")[0], name.strip("/"), value, enabled=enabled
            )

    def create_vault(
        self, subscription: str, resource_group: str, name: str, *, rbac: bool = True
    ) -> str:
        """A Key Vault (its ARM resource) in RESOURCE_GROUP, made if missing; its id. RBAC:
        the Azure RBAC permission model (else access policies). Its secrets: add_secret."""
        body = {"properties": {"enableRbacAuthorization": rbac}}
        return self._seed(subscription, resource_group, key_vault.Vaults(), name, body)

    def create_registry(self, subscription: str, resource_group: str, name: str) -> str:
        """A container registry (Basic) in RESOURCE_GROUP; its id."""
        body = {"sku": {"name": "Basic"}}
        return self._seed(subscription, resource_group, container_registry.Registries(), name, body)

    def _seed(
        self, subscription: str, group: str, resource_type: ResourceType, name: str, body: Json
    ) -> str:
        """A resource that exists before the tool runs, in a group made if missing."""
        location = compute.LOCATIONS[0]
        group_id = self.create_resource_group(subscription, group, location)
        rid = f"{group_id}/providers/{resource_type.type_name}/{name}"
        stored = {"id": rid, "name": name, "type": resource_type.type_name, "location": location}
        with self.state.lock:
            stored = resource_type.prepare(self.state, rid, {**stored, "tags": {}, **body}, None)
            stored.setdefault("properties", {})["provisioningState"] = "Succeeded"
            self.state.put(stored)
        return rid

    def role_assignments(self) -> list[Json]:
        """Every role assignment (of every scope), as ARM shows them."""
        with self.state.lock:
            return [copy.deepcopy(a) for a in rbac.assignments(self.state).values()]

    def identity_principals(self) -> dict[str, str]:
        """clientId -> principalId of the user-assigned identities (what IMDS knows)."""
        with self.state.lock:
            return authorization.identity_principals(self.state)

    def blobs(self, account: str, container: str) -> dict[str, bytes]:
        """The blobs of a storage account's container, by name."""
        with self.state.lock:
            found = storage.find_account(self.state, account)
            return dict(storage.blobs_of(self.state, found, container)) if found else {}

    def deny_secrets(self, vault: str) -> None:
        """The caller may not get VAULT's secrets: 403 Forbidden."""
        with self.state.lock:
            key_vault.vaults(self.state).setdefault(vault.lower(), key_vault.Vault()).denied = True

    def record_metric(
        self,
        resource_id: str,
        name: str,
        value: float,
        at: datetime | None = None,
        **dimensions: str,
    ) -> None:
        """What Azure Monitor holds for RESOURCE_ID: NAME's value in the minute of AT (20 s
        ago by default), e.g. Requests 100, Http5xx 3, HttpResponseTime 0.042; DIMENSIONS:
        the series' (BackendServer="10.0.1.4", HttpStatusGroup="5xx")."""
        when = at or datetime.now(UTC) - timedelta(seconds=20)
        with self.state.lock:
            insights.Insights(self.state.metric_samples).record(
                resource_id, name, value, when, dimensions
            )

    def swaps(self, site_id: str) -> list[str]:
        """The slots swapped into production, oldest first."""
        with self.state.lock:
            return list(self.state.private_of(site_id).get("swaps", []))
