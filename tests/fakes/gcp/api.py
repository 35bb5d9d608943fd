"""The request dispatcher: discovery checks first, then generic verbs over the resource table.

Every verb that the discovery document calls insert/get/list/aggregatedList/delete/patch/
update/setLabels is handled once, for every collection, keyed by the discovery method; what
differs between kinds of resources (defaults, checks, side effects) lives in resources.py as
hooks. Methods the fake does not implement answer 501, so a test shows the gap at once.
"""

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gcp.catalog import Catalog
from tests.fakes.gcp.discovery import Discovery, Method
from tests.fakes.gcp.errors import ApiError, already_exists, in_use, invalid, not_found
from tests.fakes.gcp.faults import Faults
from tests.fakes.gcp.monitoring import Monitoring
from tests.fakes.gcp.state import (
    Store,
    link,
    matches_filter,
    parse_filter,
    parse_path,
)


def _template_shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396), which is what Compute Engine's PATCH methods apply."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


_OUTPUT_FIELDS = ("kind", "id", "creationTimestamp", "selfLink", "zone", "region", "name")


@dataclass
class Call:
    """One request, routed and checked against the discovery document."""

    method: Method
    params: dict[str, str]  # path parameters
    query: dict[str, str]
    body: Any
    path: str  # request path below /compute/v1/

    @property
    def project(self) -> str:
        return self.params["project"]


@dataclass
class Answer:
    """What the server sends back: status, JSON body, extra headers, or nothing at all."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection instead of answering (a lost response)


@dataclass
class Hooks:
    """What differs per collection; every hook is optional."""

    check: Callable[[Call, Any, dict[str, Any]], None] | None = None  # insert/patch/update body
    prepare: Callable[[Call, Any, dict[str, Any]], None] | None = None  # insert defaults
    created: Callable[[Any, dict[str, Any]], None] | None = None
    changed: Callable[[Any, dict[str, Any], dict[str, Any]], None] | None = None
    blockers: Callable[[Any, dict[str, Any]], list[str]] | None = None  # extra in-use users
    deleting: Callable[[Any, dict[str, Any]], None] | None = None
    render: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None


@dataclass
class ComputeApi:
    discovery: Discovery
    store: Store
    catalog: Catalog
    faults: Faults
    hooks: dict[str, Hooks] = field(default_factory=dict)  # by collection
    custom: dict[str, Callable[[Call], Any]] = field(default_factory=dict)  # by method id
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method id, path)
    health: dict[str, str] = field(default_factory=dict)  # instance name -> health state
    # The Cloud Run services a serverless NEG may name, as (project, region, service); None
    # when no Cloud Run fake shares this root (the NEG's service is then not checked).
    cloud_run_services: Callable[[], set[tuple[str, str, str]]] | None = None
    # Cloud Monitoring v3 on the same root: the load balancer's request metrics.
    monitoring: Monitoring = field(default_factory=Monitoring)

    # -- entry point ---------------------------------------------------------------------

    def handle(self, http_method: str, path: str, query: dict[str, str], raw_body: bytes) -> Answer:
        try:
            method, params = self.discovery.route(http_method, path)
            with self.store.lock:
                self.calls.append((method.id, path))
            self.discovery.check_parameters(method, params, query)
            body = None
            if raw_body.strip():
                try:
                    body = json.loads(raw_body)
                except ValueError:
                    raise invalid("Invalid JSON payload received.") from None
            self.discovery.check_body(method, body)
            with self.store.lock:
                error = self.faults.request_error(method.id, params)
                if error is not None:
                    raise error
                result = self.repeated(params, query) or self.dispatch(
                    Call(method, params, query, body, path)
                )
                self.remember_request_id(params, query, result)
                return Answer(200, result, drop=self.faults.take_drop(method.id))
        except ApiError as error:
            return Answer(error.code, error.body(), error.headers)

    def repeated(self, params: dict[str, str], query: dict[str, str]) -> dict[str, Any] | None:
        """The operation a request with the same requestId started, as it is now: Compute
        Engine carries out one request per requestId (for an hour, here for ever)."""
        request_id = query.get("requestId")
        path = self.store.request_ids.get((params.get("project", ""), request_id or ""))
        operation = self.store.operations.get(path or "")
        return None if operation is None else copy.deepcopy(operation.resource)

    def remember_request_id(self, params: dict[str, str], query: dict[str, str], result: Any):
        request_id = query.get("requestId")
        if request_id and isinstance(result, dict) and result.get("kind") == "compute#operation":
            path = result["selfLink"].split("/compute/v1/", 1)[1]
            self.store.request_ids[(params.get("project", ""), request_id)] = path

    def dispatch(self, call: Call) -> Any:
        handler = self.custom.get(call.method.id) or getattr(self, f"verb_{call.method.name}", None)
        if handler is None:
            raise ApiError(
                501, "notImplemented", f"{call.method.id} is not implemented by the fake"
            )
        return handler(call)

    # -- helpers -------------------------------------------------------------------------

    def _resource_methods(self, call: Call) -> dict[str, Any]:
        return self.discovery.document["resources"][call.method.resource]["methods"]

    def item_path(self, call: Call) -> str:
        """The path of the one resource CALL is about."""
        methods = self._resource_methods(call)
        shape = _template_shape(call.method.path)
        get_shape = _template_shape(methods.get("get", {}).get("path", "-"))
        collection_shape = _template_shape(
            methods.get("list", methods.get("insert", {})).get("path", "-")
        )
        if call.method.name == "insert":
            return f"{call.path}/{call.body['name']}"
        if shape == get_shape:
            return call.path
        if shape.startswith(get_shape + "/"):
            return call.path.rsplit("/", 1)[0]
        if shape == collection_shape:  # autoscalers.patch/update name the item in the query
            names = [
                value
                for key, value in call.query.items()
                if call.method.parameters.get(key, {}).get("location") == "query"
                and key != "requestId"
            ]
            name = names[0] if names else (call.body or {}).get("name")
            if not name:
                raise invalid("The resource name is missing from the request")
            return f"{call.path}/{name}"
        return parse_path(call.path.rsplit("/", 1)[0]).path  # scope-less global actions

    def kind_of(self, call: Call) -> str:
        schema_name = self._resource_methods(call)["get"]["response"]["$ref"]
        return self.discovery.schemas[schema_name]["properties"]["kind"]["default"]

    def hooks_for(self, collection: str) -> Hooks:
        return self.hooks.get(collection, Hooks())

    def render(self, path: str, resource: dict[str, Any]) -> dict[str, Any]:
        where = parse_path(path)
        hook = self.hooks_for(where.collection).render
        return hook(where, resource) if hook else self.store.render(resource)

    def operation(
        self,
        call: Call,
        path: str,
        apply: Callable[[], None] | None,
        *,
        release: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        where = parse_path(path)
        return self.store.start_operation(
            project=where.project,
            scope=where.scope,
            operation_type=call.method.name,
            target_path=path,
            apply=apply,
            failure=self.faults.operation_failure(call.method.id, call.params),
            release=release,
        )

    def _page(self, call: Call, items: list[Any]) -> tuple[list[Any], str | None]:
        size = min(int(call.query.get("maxResults", 500)), self.store.page_size)
        start = int(call.query.get("pageToken") or 0)
        page = items[start : start + size]
        token = str(start + size) if start + size < len(items) else None
        return page, token

    def list_answer(self, call: Call, kind: str, path: str, items: list[Any]) -> dict[str, Any]:
        """The page of ITEMS the call asks for, as a list method answers: `items` only when
        there are some, `nextPageToken` while more pages follow."""
        page, token = self._page(call, items)
        answer: dict[str, Any] = {"kind": kind, "id": path, "selfLink": link(path)}
        if page:
            answer["items"] = page
        if token:
            answer["nextPageToken"] = token
        return answer

    def _filtered(self, call: Call, rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
        text = call.query.get("filter")
        if not text:
            return rendered
        terms = parse_filter(text)
        return [resource for resource in rendered if matches_filter(resource, terms)]

    # -- generic verbs -------------------------------------------------------------------

    def verb_insert(self, call: Call) -> dict[str, Any]:
        path = self.item_path(call)
        where = parse_path(path)
        if path in self.store.resources or path in self.store.reserved:
            raise already_exists(path)
        body = copy.deepcopy(call.body)
        self.store.canonical_references(where.collection, body, where.project)
        hooks = self.hooks_for(where.collection)
        if hooks.check:
            hooks.check(call, where, body)
        if hooks.prepare:
            hooks.prepare(call, where, body)
        kind = self.kind_of(call)
        self.store.reserved.add(path)

        def apply() -> None:
            resource = self.store.put(path, body, kind=kind)
            if hooks.created:
                hooks.created(where, resource)

        return self.operation(call, path, apply, release=lambda: self.store.reserved.discard(path))

    def verb_get(self, call: Call) -> dict[str, Any]:
        path = self.item_path(call)
        return self.render(path, self.store.get(path))

    def verb_list(self, call: Call) -> dict[str, Any]:
        prefix = call.path
        rendered = [self.render(p, r) for p, r in self.store.collection(prefix)]
        schema = self.discovery.schemas[call.method.response_schema or ""]
        return self.list_answer(
            call, schema["properties"]["kind"]["default"], prefix, self._filtered(call, rendered)
        )

    def verb_aggregatedList(self, call: Call) -> dict[str, Any]:
        collection = call.path.rsplit("/", 1)[1]
        rendered = [
            (parse_path(path).scope, self.render(path, resource))
            for path, resource in list(self.store.resources.items())
            if parse_path(path).project == call.project
            and parse_path(path).collection == collection
        ]
        kept = self._filtered(call, [resource for _, resource in rendered])
        kept_ids = {id(resource) for resource in kept}
        flat = [(scope, resource) for scope, resource in rendered if id(resource) in kept_ids]
        page, token = self._page(call, flat)
        schema = self.discovery.schemas[call.method.response_schema or ""]
        scoped_schema = self.discovery.schemas[
            schema["properties"]["items"]["additionalProperties"]["$ref"]
        ]
        key = next(k for k in scoped_schema["properties"] if k != "warning")
        items: dict[str, Any] = {}
        for scope, resource in page:
            items.setdefault(scope, {key: []})[key].append(resource)
        for zone in self.catalog.zones():
            items.setdefault(
                f"zones/{zone}",
                {
                    "warning": {
                        "code": "NO_RESULTS_ON_PAGE",
                        "message": f"There are no results for scope 'zones/{zone}' on this page.",
                    }
                },
            )
        answer: dict[str, Any] = {
            "kind": schema["properties"]["kind"]["default"],
            "id": f"projects/{call.project}/aggregated/{collection}",
            "items": items,
            "selfLink": link(call.path),
        }
        if token:
            answer["nextPageToken"] = token
        return answer

    def verb_delete(self, call: Call) -> dict[str, Any]:
        path = self.item_path(call)
        where = parse_path(path)
        resource = self.store.get(path)
        hooks = self.hooks_for(where.collection)
        users = self.store.users_of(path)
        if hooks.blockers:
            users += hooks.blockers(where, resource)
        if users:
            raise in_use(path, users[0])

        def apply() -> None:
            if path not in self.store.resources:
                return
            if hooks.deleting:
                hooks.deleting(where, resource)
            self.store.remove(path)

        return self.operation(call, path, apply)

    def _change(self, call: Call, path: str, build: Callable[[dict[str, Any]], dict[str, Any]]):
        """Validate the changed resource now; apply the change when the operation is DONE."""
        where = parse_path(path)
        resource = self.store.get(path)
        trial = build(copy.deepcopy(resource))
        self.store.canonical_references(where.collection, trial, where.project)
        hooks = self.hooks_for(where.collection)
        if hooks.check:
            hooks.check(call, where, trial)

        def apply() -> None:
            current = self.store.resources.get(path)
            if current is None:
                return
            before = copy.deepcopy(current)
            after = build(copy.deepcopy(current))
            self.store.canonical_references(where.collection, after, where.project)
            for key in ("fingerprint",):
                if key in current:
                    self.store.fingerprint(after, key)
            current.clear()
            current.update(after)
            if hooks.changed:
                hooks.changed(where, before, current)

        return self.operation(call, path, apply)

    def _check_fingerprint(self, resource: dict[str, Any], body: dict[str, Any], key: str):
        if key in body and resource.get(key) and body[key] != resource[key]:
            raise ApiError(
                412,
                "conditionNotMet",
                f"Supplied fingerprint does not match current {key} of the resource.",
            )

    def verb_patch(self, call: Call) -> dict[str, Any]:
        path = self.item_path(call)
        self._check_fingerprint(self.store.get(path), call.body, "fingerprint")
        patch = {k: v for k, v in call.body.items() if k not in _OUTPUT_FIELDS}
        return self._change(call, path, lambda current: merge_patch(current, patch))

    def verb_update(self, call: Call) -> dict[str, Any]:
        path = self.item_path(call)
        self._check_fingerprint(self.store.get(path), call.body, "fingerprint")

        def replace(current: dict[str, Any]) -> dict[str, Any]:
            kept = {k: v for k, v in current.items() if k in _OUTPUT_FIELDS or k.startswith("_")}
            fresh = {k: v for k, v in copy.deepcopy(call.body).items() if k not in _OUTPUT_FIELDS}
            return {**fresh, **kept}

        return self._change(call, path, replace)

    def verb_setLabels(self, call: Call) -> dict[str, Any]:
        path = self.item_path(call)
        resource = self.store.get(path)
        if call.body.get("labelFingerprint") != resource.get("labelFingerprint"):
            raise ApiError(
                412,
                "conditionNotMet",
                "Labels fingerprint either invalid or resource labels have changed",
            )
        labels = call.body.get("labels", {})

        def apply() -> None:
            current = self.store.resources.get(path)
            if current is not None:
                current["labels"] = dict(labels)
                self.store.fingerprint(current, "labelFingerprint")

        return self.operation(call, path, apply)

    def set_fields(self, call: Call, fields: dict[str, Any]) -> dict[str, Any]:
        """setUrlMap / setTarget / setSslCertificates: replace a few fields."""
        path = self.item_path(call)
        return self._change(call, path, lambda current: {**current, **copy.deepcopy(fields)})

    # -- operations ----------------------------------------------------------------------

    def poll_operation(self, call: Call) -> dict[str, Any]:
        path = call.path.removesuffix("/wait")
        return self.store.poll_operation(path)

    # -- catalog -------------------------------------------------------------------------

    def region(self, call: Call) -> dict[str, Any]:
        region = call.params["region"]
        if region not in self.catalog.regions:
            raise not_found(call.path)
        return self.catalog.region_resource(link(""), call.project, region)

    def zone(self, call: Call) -> dict[str, Any]:
        zone = call.params["zone"]
        if self.catalog.region_of(zone) is None:
            raise not_found(call.path)
        return self.catalog.zone_resource(link(""), call.project, zone)

    def machine_type(self, call: Call) -> dict[str, Any]:
        zone, name = call.params["zone"], call.params["machineType"]
        if not self.catalog.offers(zone, name):
            raise not_found(call.path)
        return self.catalog.machine_type_resource(link(""), call.project, zone, name)

    def accelerator_type(self, call: Call) -> dict[str, Any]:
        zone, name = call.params["zone"], call.params["acceleratorType"]
        if name not in self.catalog.accelerators.get(zone, set()):
            raise not_found(call.path)
        return self.catalog.accelerator_resource(link(""), call.project, zone, name)

    def image_from_family(self, call: Call) -> dict[str, Any]:
        name = self.catalog.image_name(call.project, family=call.params["family"])
        if name is None:
            raise not_found(call.path)
        return self.catalog.image_resource(link(""), call.project, name)

    def image(self, call: Call) -> dict[str, Any]:
        name = self.catalog.image_name(call.project, name=call.params["image"])
        if name is None:
            raise not_found(call.path)
        return self.catalog.image_resource(link(""), call.project, name)

    def register_catalog(self) -> None:
        self.custom.update(
            {
                "compute.regions.get": self.region,
                "compute.zones.get": self.zone,
                "compute.machineTypes.get": self.machine_type,
                "compute.acceleratorTypes.get": self.accelerator_type,
                "compute.images.getFromFamily": self.image_from_family,
                "compute.images.get": self.image,
            }
        )
        for scope in ("zone", "region", "global"):
            self.custom[f"compute.{scope}Operations.get"] = self.poll_operation
            self.custom[f"compute.{scope}Operations.wait"] = self.poll_operation
