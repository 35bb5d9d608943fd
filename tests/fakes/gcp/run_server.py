"""A fake of Cloud Run v2, Artifact Registry v1, Secret Manager v1, Logging v2 and Cloud
Monitoring v3 (timeSeries.list over recorded series: monitoring.py) on one
HTTP root (each API under /<api>/, as mlops_vm.provision.gcp.client.api_endpoint aims
them), every request checked against the API's discovery document first
(rest_discovery.py), then answered from RunState (run_state.py).

Also on the root: /token (an OAuth token endpoint, for authorized_user ADC files) and
/apps/<project>/<service>[/tags/<tag>]/... (the service's and its tags' URLs): an invoker
check (allUsers, or a bearer token), then the revision the route picks answers, proxied to
a real container when the test gave one for its image (backends), otherwise 200 on the
paths of the probes it was deployed with when it is ready, 503 when it is not.

    with FakeCloudRun() as fake:
        settings = ProviderSettings(name="gcp", region="europe-west1",
                                    endpoint_url=fake.endpoint_url, options={...})
"""

import copy
import json
import random
import threading
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.gcp.api import ComputeApi
from tests.fakes.gcp.errors import ApiError, invalid, not_found
from tests.fakes.gcp.monitoring import query_of
from tests.fakes.gcp.rest_discovery import NestedDiscovery, load_document
from tests.fakes.gcp.run_state import READY, RunState
from tests.fakes.gcp.server import API_ROOT, compute_api

APIS = {
    "run": ("run", "v2"),
    "artifactregistry": ("artifactregistry", "v1"),
    "secretmanager": ("secretmanager", "v1"),
    "logging": ("logging", "v2"),
}


class RunApi:
    """Routes a checked request to the state, by discovery method id."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.documents: dict[str, NestedDiscovery] = {
            api: load_document(*spec) for api, spec in APIS.items()
        }
        self.calls: list[tuple[str, str, dict[str, str]]] = []  # (method id, path, query)

    def handle(self, api: str, http_method: str, path: str, query: dict[str, str], raw: bytes):
        discovery = self.documents[api]
        method, params = discovery.route(http_method, path)
        query = {k: v for k, v in query.items() if k not in ("alt", "prettyPrint")}
        discovery.check_parameters(method, params, query)
        body = json.loads(raw) if raw.strip() else None
        discovery.check_body(method, body)
        with self.state.lock:
            self.calls.append((method.id, path, query))
            handler = getattr(self, method.id.replace(".", "_"), None)
            if handler is None:
                raise ApiError(501, "notImplemented", f"{method.id} is not implemented by the fake")
            return handler(params, query, body or {})

    # -- run v2 --------------------------------------------------------------------------

    def run_projects_locations_services_create(self, params, query, body):
        return self.state.create_service(params["parent"], query.get("serviceId", ""), body)

    def run_projects_locations_services_get(self, params, query, body):
        service = self.state.services.get(params["name"])
        if service is None:
            raise not_found(params["name"])
        return copy.deepcopy(service)

    def run_projects_locations_services_list(self, params, query, body):
        found = [
            s
            for n, s in sorted(self.state.services.items())
            if n.startswith(params["parent"] + "/services/")
        ]
        return page(found, "services", query)

    def run_projects_locations_services_patch(self, params, query, body):
        return self.state.patch_service(params["name"], body, query.get("updateMask"))

    def run_projects_locations_services_delete(self, params, query, body):
        return self.state.delete_service(params["name"])

    def run_projects_locations_services_revisions_list(self, params, query, body):
        found = [
            r
            for n, r in self.state.revisions.items()
            if n.startswith(params["parent"] + "/revisions/")
        ]
        return page(found, "revisions", query)

    def run_projects_locations_services_revisions_get(self, params, query, body):
        revision = self.state.revisions.get(params["name"])
        if revision is None:
            raise not_found(params["name"])
        return copy.deepcopy(revision)

    def run_projects_locations_operations_get(self, params, query, body):
        return self.state.poll(params["name"])

    def run_projects_locations_services_getIamPolicy(self, params, query, body):
        policy = self.state.policies.get(params["resource"])
        if policy is None:
            raise not_found(params["resource"])
        return copy.deepcopy(policy)

    def run_projects_locations_services_setIamPolicy(self, params, query, body):
        name = params["resource"]
        if name not in self.state.policies:
            raise not_found(name)
        policy = body.get("policy") or {}
        current = self.state.policies[name]
        if policy.get("etag") and policy["etag"] != current["etag"]:
            raise ApiError(
                409, "aborted", "There were concurrent policy changes.", status="ABORTED"
            )
        for binding in policy.get("bindings", []):
            if not binding.get("role", "").startswith("roles/") or not binding.get("members"):
                raise invalid(f"invalid binding {binding}")
        stored = {"version": 1, "bindings": policy.get("bindings", []), "etag": self.state.etag()}
        self.state.policies[name] = stored
        return copy.deepcopy(stored)

    # -- artifactregistry v1 -------------------------------------------------------------

    def artifactregistry_projects_locations_repositories_create(self, params, query, body):
        name = f"{params['parent']}/repositories/{query.get('repositoryId', '')}"
        if not query.get("repositoryId"):
            raise invalid("repositoryId is required")
        if name in self.state.repositories:
            raise ApiError(409, "alreadyExists", f"{name} already exists", status="ALREADY_EXISTS")
        if body.get("format") not in (
            "DOCKER",
            "MAVEN",
            "NPM",
            "PYTHON",
            "APT",
            "YUM",
            "GO",
            "KFP",
            "GENERIC",
        ):
            raise invalid("repository.format is required")
        repository = {**copy.deepcopy(body), "name": name, "createTime": now(), "updateTime": now()}

        def finish():
            self.state.repositories[name] = repository

        return self.state.start(params["parent"], name, "create", finish)

    def artifactregistry_projects_locations_repositories_get(self, params, query, body):
        repository = self.state.repositories.get(params["name"])
        if repository is None:
            raise not_found(params["name"])
        return copy.deepcopy(repository)

    def artifactregistry_projects_locations_repositories_list(self, params, query, body):
        found = [
            r
            for n, r in sorted(self.state.repositories.items())
            if n.startswith(params["parent"] + "/repositories/")
        ]
        return page(found, "repositories", query)

    def artifactregistry_projects_locations_repositories_patch(self, params, query, body):
        repository = self.state.repositories.get(params["name"])
        if repository is None:
            raise not_found(params["name"])
        for key in (query.get("updateMask") or "").split(","):
            if key:
                repository[key] = copy.deepcopy(body.get(key))
        return copy.deepcopy(repository)

    def artifactregistry_projects_locations_repositories_delete(self, params, query, body):
        name = params["name"]
        if name not in self.state.repositories:
            raise not_found(name)
        parent = name.rsplit("/repositories/", 1)[0]
        return self.state.start(
            parent, name, "delete", lambda: self.state.repositories.pop(name, None) and None
        )

    def artifactregistry_projects_locations_operations_get(self, params, query, body):
        return self.state.poll(params["name"])

    # -- secretmanager v1 / logging v2 ---------------------------------------------------

    def secretmanager_projects_secrets_versions_get(self, params, query, body):
        name = params["name"]
        secret, _, version = name.partition("/versions/")
        if not self.state.secret_exists(secret, version):
            raise not_found(name)
        return {"name": name, "state": "ENABLED", "createTime": now()}

    def logging_entries_list(self, params, query, body):
        wanted = body.get("filter", "")
        entries = [
            e
            for e in self.state.log_entries
            if f'service_name="{e["resource"]["labels"]["service_name"]}"' in wanted
        ]
        entries.sort(key=lambda e: e["timestamp"], reverse=body.get("orderBy", "").endswith("desc"))
        return {"entries": entries[: int(body.get("pageSize") or 50)]}


def now() -> str:
    from tests.fakes.gcp.run_state import now as stamp

    return stamp()


def page(items: list[dict[str, Any]], key: str, query: dict[str, str], size: int = 2):
    """A page of ITEMS (small pages: clients must follow nextPageToken)."""
    start = int(query.get("pageToken") or 0)
    answer: dict[str, Any] = {key: copy.deepcopy(items[start : start + size])}
    if start + size < len(items):
        answer["nextPageToken"] = str(start + size)
    return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    api: RunApi
    compute: ComputeApi

    def _answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        api, _, rest = url.path.lstrip("/").partition("/")
        try:
            if url.path.startswith(API_ROOT):  # compute v1: the load balancer's parts
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                path = unquote(url.path[len(API_ROOT) :])
                answer = self.compute.handle(self.command, path, query, raw)
                self._answer(answer.status, answer.body)
            elif api == "token":
                self.api.state.tokens += 1
                self._answer(
                    200,
                    {
                        "access_token": f"fake-token-{self.api.state.tokens}",
                        "expires_in": 3600,
                        "token_type": "Bearer",
                    },
                )
            elif api == "apps":
                self._app(rest, raw)
            elif api == "monitoring":
                with self.api.state.lock:
                    answer = self.compute.monitoring.serve(
                        self.command, unquote(rest), query_of(url.query)
                    )
                self._answer(200, answer)
            elif api in APIS:
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                self._answer(200, self.api.handle(api, self.command, unquote(rest), query, raw))
            else:
                raise ApiError(404, "notFound", f"no API at {url.path}")
        except ApiError as error:
            self._answer(error.code, error.body())
        except (ValueError, KeyError) as error:
            self._answer(400, invalid(f"bad request: {error}").body())

    def _app(self, rest: str, raw: bytes) -> None:
        """The data plane: the service's URL or a tag's."""
        state = self.api.state
        parts = rest.split("/")
        project, service_id, tail = parts[0], parts[1], parts[2:]
        tag = tail[1] if tail[:1] == ["tags"] and len(tail) > 1 else None
        path = "/" + "/".join(tail[2:] if tag else tail)
        with state.lock:
            self.api.calls.append(("app", rest, {}))
            name = next(
                (
                    n
                    for n in state.services
                    if n.startswith(f"projects/{project}/") and n.endswith("/" + service_id)
                ),
                None,
            )
            if name is None:
                raise ApiError(404, "notFound", "no such service")
            policy = state.policies.get(name, {})
            public = any(
                "allUsers" in b.get("members", []) and b["role"] == "roles/run.invoker"
                for b in policy.get("bindings", [])
            )
            if not public and not self.headers.get("Authorization", "").startswith("Bearer "):
                raise ApiError(403, "forbidden", "Your client does not have permission")
            statuses = state.services[name].get("trafficStatuses", [])
            if tag:
                chosen = [s for s in statuses if s.get("tag") == tag]
            else:
                served = [s for s in statuses if s.get("percent")]
                chosen = random.choices(served, [s["percent"] for s in served]) if served else []
            if not chosen:
                raise ApiError(404, "notFound", "no revision serves this URL")
            revision = state.revisions[f"{name}/revisions/{chosen[0]['revision']}"]
            ready = revision["conditions"][0]["state"] == READY
            container = revision["containers"][0]
            backend = state.backends.get(container["image"])
            probes = {
                (container.get(p) or {}).get("httpGet", {}).get("path")
                for p in ("startupProbe", "livenessProbe")
            }
        if not ready:
            self._answer(503, {"error": "revision not ready"})
        elif backend:
            self._proxy(backend + path, raw)
        elif path in probes:
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": f"{path}: no backend for {container['image']}"})

    def _proxy(self, url: str, raw: bytes) -> None:
        request = urllib.request.Request(url, data=raw or None, method=self.command)
        request.add_header("Content-Type", self.headers.get("Content-Type", "application/json"))
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                self._answer(answer.status, answer.read())
        except urllib.error.HTTPError as error:
            self._answer(error.code, error.read())
        except OSError as error:
            self._answer(502, {"error": str(error)})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeCloudRun:
    """The fake, served on 127.0.0.1 (a random port) in a background thread."""

    def __init__(self, *, polls_to_done: int = 2) -> None:
        self.state = RunState(polls_to_done=polls_to_done)
        self.state.tokens = 0  # type: ignore[attr-defined]
        self.api = RunApi(self.state)
        # Compute v1 on the same root: the global load balancer in front of a service.
        self.compute = compute_api(polls_to_done=polls_to_done)
        self.compute.cloud_run_services = self._service_regions
        handler = type("Handler", (_Handler,), {"api": self.api, "compute": self.compute})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.state.base_url = self.endpoint_url

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> "FakeCloudRun":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _service_regions(self) -> set[tuple[str, str, str]]:
        """(project, region, service) of every Cloud Run service (what a NEG may name)."""
        with self.state.lock:
            names = list(self.state.services)
        return {(n.split("/")[1], n.split("/")[3], n.split("/")[5]) for n in names}

    # -- test hooks ----------------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, str, dict[str, str]]]:
        return self.api.calls

    def add_secret(self, project: str, secret: str, version: str = "1") -> None:
        with self.state.lock:
            self.state.secret_versions.add(
                f"projects/{project}/secrets/{secret}/versions/{version}"
            )

    def fail_image(self, image: str, message: str) -> None:
        """Revisions of IMAGE never get ready (the container fails its startup probe)."""
        with self.state.lock:
            self.state.failing_images[image] = message

    def serve_image(self, image: str, url: str) -> None:
        """Requests to revisions of IMAGE go to URL (a real container on 127.0.0.1)."""
        with self.state.lock:
            self.state.backends[image] = url

    def add_log(self, service: str, text: str, timestamp: str) -> None:
        with self.state.lock:
            self.state.log_entries.append(
                {
                    "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
                    "resource": {"type": "cloud_run_revision", "labels": {"service_name": service}},
                    "textPayload": text,
                    "timestamp": timestamp,
                }
            )

    def record_requests(
        self,
        project: str,
        region: str,
        service: str,
        revision: str,
        *,
        ok: int,
        errors: int,
        latencies_ms: list[float],
        at: datetime | None = None,
    ) -> None:
        """What Cloud Run writes to Cloud Monitoring for REVISION: OK 2xx and ERRORS 5xx
        requests, and their latencies (AT: 20 s ago by default)."""
        resource = {
            "project_id": project,
            "location": region,
            "service_name": service,
            "revision_name": revision,
            "configuration_name": service,
        }
        with self.state.lock:
            self.compute.monitoring.record(
                "run.googleapis.com/request_count",
                "run.googleapis.com/request_latencies",
                "cloud_run_revision",
                resource,
                {"2xx": ok, "5xx": errors},
                latencies_ms,
                at,
            )

    def service(self, project: str, region: str, name: str) -> dict[str, Any] | None:
        with self.state.lock:
            found = self.state.services.get(
                f"projects/{project}/locations/{region}/services/{name}"
            )
            return copy.deepcopy(found)

    def everything(self) -> dict[str, list[str]]:
        with self.state.lock:
            return {
                "services": sorted(self.state.services),
                "revisions": sorted(self.state.revisions),
                "repositories": sorted(self.state.repositories),
            }
