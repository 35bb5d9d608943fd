"""The contract of the Google APIs with nested resources (run v2, artifactregistry v1,
secretmanager v1, logging v2), read from the discovery documents shipped inside
google-api-python-client, with the compute fake's checks (discovery.Discovery): a request is
routed by its flatPath and HTTP method, its `{+name}`-style path parameters rebuilt from the
method's path template and checked against their patterns, its query parameters and its
body checked against the method's parameters and request schema.
"""

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.fakes.gcp.discovery import DOCUMENT_PATH, Discovery, Method, _path_regex
from tests.fakes.gcp.errors import ApiError, invalid


def _full_path_regex(path: str) -> re.Pattern[str]:
    """`v2/{+name}:wait` -> a regex whose groups are the real parameters (name may hold /)."""
    pattern = re.escape(path)
    pattern = re.sub(r"\\\{\\\+(\w+)\\\}", r"(?P<\1>.+?)", pattern)
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+?)", pattern)
    return re.compile(f"^{pattern}$")


class NestedDiscovery(Discovery):
    """Discovery over a document whose resources nest (projects.locations.services...)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.schemas = document["schemas"]
        self.global_parameters = document["parameters"]
        self.methods = {}
        self.full_paths: dict[str, re.Pattern[str]] = {}
        self.api = document["name"]

        def walk(resources: dict[str, Any]) -> None:
            for resource_name, resource in resources.items():
                for method_name, raw in resource.get("methods", {}).items():
                    path = raw.get("flatPath", raw["path"])
                    method = Method(
                        id=raw["id"],
                        resource=resource_name,
                        name=method_name,
                        http_method=raw["httpMethod"],
                        path=path,
                        regex=_path_regex(path.replace(":", "\\:")),
                        parameters=raw.get("parameters", {}),
                        request_schema=(raw.get("request") or {}).get("$ref"),
                        response_schema=(raw.get("response") or {}).get("$ref"),
                        literal_length=len(re.sub(r"\{[^}]+\}", "", path)),
                    )
                    self.methods[method.id] = method
                    self.full_paths[method.id] = _full_path_regex(raw["path"])
                walk(resource.get("resources", {}))

        walk(document.get("resources", {}))
        self._routes = sorted(self.methods.values(), key=lambda m: -m.literal_length)

    def route(self, http_method: str, path: str) -> tuple[Method, dict[str, str]]:
        """The method for PATH and its real path parameters (name, parent, resource)."""
        matched_path = False
        for method in self._routes:
            if not method.regex.match(path):
                continue
            matched_path = True
            if method.http_method == http_method:
                match = self.full_paths[method.id].match(path)
                if match is None:
                    raise invalid(f"{path} does not fit {method.id}")
                return method, match.groupdict()
        if matched_path:
            raise ApiError(400, "badRequest", f"Invalid HTTP method {http_method} for /{path}")
        raise ApiError(404, "notFound", f"The requested URL /{path} was not found on {self.api}")

    def check_body(self, method: Method, body: Any) -> None:
        if method.request_schema is None:
            return
        if body is None:
            body = {}  # an empty message is a valid request body in these APIs
        self._check_value(body, {"$ref": method.request_schema}, "resource", method.id)


@cache
def load_document(api: str, version: str) -> NestedDiscovery:
    path = Path(str(DOCUMENT_PATH).replace("compute.v1.json", f"{api}.{version}.json"))
    return NestedDiscovery(json.loads(path.read_text()))
