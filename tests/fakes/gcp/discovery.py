"""The real contract: the compute v1 discovery document shipped inside google-api-python-client.

Every request the fake answers is first matched to a discovery method by path and HTTP
method, its query parameters checked against the method's parameters, and its body checked
against the schema the method names (unknown fields, wrong types, enum values, patterns,
`annotations.required` and the resource name on insert). What does not match is refused the
way the real API refuses it, before any fake behaviour runs.
"""

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient

from tests.fakes.gcp.errors import ApiError, invalid, required

DOCUMENT_PATH = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "compute.v1.json"
)
NAME_PATTERN = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
LABEL_KEY_PATTERN = r"[a-z][a-z0-9_-]{0,62}"
LABEL_VALUE_PATTERN = r"[a-z0-9_-]{0,63}"
_INTEGER_FORMATS = {"int32", "uint32", "int64", "uint64"}


@dataclass(frozen=True)
class Method:
    """One discovery method: `compute.instances.insert` and what it accepts."""

    id: str
    resource: str  # discovery resource name: "instances", "regionAutoscalers", ...
    name: str  # "insert", "get", "setLabels", ...
    http_method: str
    path: str  # "projects/{project}/zones/{zone}/instances"
    regex: re.Pattern[str]
    parameters: dict[str, dict[str, Any]]
    request_schema: str | None
    response_schema: str | None
    literal_length: int = field(default=0)

    @property
    def is_mutation(self) -> bool:
        return self.response_schema == "Operation"


def _path_regex(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{\+?(\w+)\}", r"(?P<\1>[^/]+)", path)
    return re.compile(f"^{pattern}$")


class Discovery:
    """Routes and validates requests against the discovery document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.schemas: dict[str, dict[str, Any]] = document["schemas"]
        self.global_parameters: dict[str, dict[str, Any]] = document["parameters"]
        self.methods: dict[str, Method] = {}
        for resource_name, resource in document["resources"].items():
            for method_name, raw in resource.get("methods", {}).items():
                path = raw.get("flatPath", raw["path"])
                method = Method(
                    id=raw["id"],
                    resource=resource_name,
                    name=method_name,
                    http_method=raw["httpMethod"],
                    path=path,
                    regex=_path_regex(path),
                    parameters=raw.get("parameters", {}),
                    request_schema=(raw.get("request") or {}).get("$ref"),
                    response_schema=(raw.get("response") or {}).get("$ref"),
                    literal_length=len(re.sub(r"\{[^}]+\}", "", path)),
                )
                self.methods[method.id] = method
        # Most specific templates first, so literal segments win over placeholders.
        self._routes = sorted(self.methods.values(), key=lambda m: -m.literal_length)

    # -- routing -------------------------------------------------------------------------

    def route(self, http_method: str, path: str) -> tuple[Method, dict[str, str]]:
        """The method for PATH + HTTP_METHOD and its path parameters; 404/400 otherwise."""
        matched_path = False
        for method in self._routes:
            match = method.regex.match(path)
            if not match:
                continue
            matched_path = True
            if method.http_method == http_method:
                return method, match.groupdict()
        if matched_path:
            raise ApiError(
                400, "badRequest", f"Invalid HTTP method {http_method} for /compute/v1/{path}"
            )
        raise ApiError(404, "notFound", f"The requested URL /compute/v1/{path} was not found")

    # -- parameters ----------------------------------------------------------------------

    def check_parameters(
        self, method: Method, path_params: dict[str, str], query: dict[str, str]
    ) -> None:
        for name, value in path_params.items():
            spec = method.parameters.get(name, {})
            pattern = spec.get("pattern")
            if pattern and not re.fullmatch(pattern, value):
                raise invalid(
                    f"Invalid value for field '{name}': '{value}'. "
                    f"Must be a match of regex '{pattern}'"
                )
        for name, value in query.items():
            spec = method.parameters.get(name) or self.global_parameters.get(name)
            if spec is None or spec.get("location") == "path":
                raise invalid(
                    f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
                    f"parameter. Field '{name}' could not be found in request message."
                )
            self._check_scalar(value, spec, name, from_query=True)
        for name, spec in method.parameters.items():
            if spec.get("location") == "query" and spec.get("required") and name not in query:
                raise required(name)

    # -- bodies --------------------------------------------------------------------------

    def check_body(self, method: Method, body: Any) -> None:
        if method.request_schema is None:
            return
        if body is None:
            raise required("resource")
        self._check_value(body, {"$ref": method.request_schema}, "resource", method.id)
        schema = self.schemas[method.request_schema]
        if method.name == "insert" and "name" in schema.get("properties", {}):
            if not body.get("name"):
                raise required("resource.name")
            if not re.fullmatch(NAME_PATTERN, body["name"]):
                raise invalid(
                    f"Invalid value for field 'resource.name': '{body['name']}'. "
                    f"Must be a match of regex '(?:{NAME_PATTERN})'"
                )

    def _check_value(self, value: Any, schema: dict[str, Any], where: str, method_id: str) -> None:
        if value is None:
            return  # JSON null is "unset" in the protobuf mapping
        if "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        kind = schema.get("type")
        if kind == "object":
            self._check_object(value, schema, where, method_id)
        elif kind == "array":
            if not isinstance(value, list):
                raise invalid(f"Invalid value at '{where}' (type.googleapis.com/list), {value!r}")
            for index, item in enumerate(value):
                self._check_value(item, schema.get("items", {}), f"{where}[{index}]", method_id)
        elif kind is not None and kind != "any":
            self._check_scalar(value, schema, where)

    def _check_object(self, value: Any, schema: dict[str, Any], where: str, method_id: str) -> None:
        if not isinstance(value, dict):
            raise invalid(f"Invalid value at '{where}' (type.googleapis.com/object), {value!r}")
        properties = schema.get("properties")
        if properties is None:
            extra = schema.get("additionalProperties", {})
            for key, item in value.items():
                self._check_value(item, extra, f"{where}.{key}", method_id)
            if where.endswith("labels"):
                _check_labels(value, where)
            return
        for key, item in value.items():
            if key not in properties:
                raise invalid(
                    f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                    "Cannot find field."
                )
            self._check_value(item, properties[key], f"{where}.{key}", method_id)
        for key, spec in properties.items():
            needed_by = spec.get("annotations", {}).get("required", [])
            if method_id in needed_by and value.get(key) in (None, ""):
                raise required(f"{where}.{key}")

    @staticmethod
    def _check_scalar(
        value: Any, schema: dict[str, Any], where: str, *, from_query: bool = False
    ) -> None:
        kind = schema.get("type")
        fmt = schema.get("format")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        ok = True
        if kind == "boolean":
            ok = isinstance(value, bool) or (from_query and text in ("true", "false"))
        elif kind == "integer" or (kind == "string" and fmt in _INTEGER_FORMATS):
            ok = not isinstance(value, bool) and re.fullmatch(r"-?\d+", text) is not None
            ok = ok and isinstance(value, int | str)
        elif kind == "number":
            ok = not isinstance(value, bool) and isinstance(value, int | float | str)
            if ok and isinstance(value, str):
                ok = re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", value) is not None
        elif kind == "string":
            ok = isinstance(value, str)
        if not ok:
            type_name = f"TYPE_{(fmt or kind or 'unknown').upper()}"
            raise invalid(f"Invalid value at '{where}' ({type_name}), {json.dumps(value)}")
        if "enum" in schema and text not in schema["enum"]:
            raise invalid(f"Invalid value at '{where}' (TYPE_ENUM), {json.dumps(value)}")
        pattern = schema.get("pattern")
        if pattern and kind == "string" and not from_query and not re.fullmatch(pattern, text):
            raise invalid(
                f"Invalid value for field '{where}': '{text}'. Must be a match of regex "
                f"'(?:{pattern})'"
            )


def _check_labels(labels: dict[str, Any], where: str) -> None:
    for key, value in labels.items():
        if not re.fullmatch(LABEL_KEY_PATTERN, key) or not re.fullmatch(
            LABEL_VALUE_PATTERN, str(value)
        ):
            raise invalid(
                f"Invalid value for field '{where}': label '{key}'='{value}'. Keys must match "
                f"'{LABEL_KEY_PATTERN}' and values '{LABEL_VALUE_PATTERN}'"
            )


@cache
def load_discovery() -> Discovery:
    """The parsed document (5 MB of JSON: parse it once per process)."""
    return Discovery(json.loads(DOCUMENT_PATH.read_text()))
