"""The fake served over HTTP on 127.0.0.1 (random port), in a background thread.

with FakeCompute() as fake:
    settings = ProviderSettings(name="gcp", endpoint_url=fake.endpoint_url, ...)
    fake.identity.add_secret("proj", "api-key", "value")   # IAM, Storage, Secret Manager,
                                                           # Artifact Registry: identity.py
    ...
    fake.faults.quota_exceeded()          # make the next instance insert fail
    fake.catalog.remove_machine_type("us-central1-b", "e2-small")
    fake.resources("proj", "instances")   # what exists, as the API shows it
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.gcp.api import Answer, ComputeApi
from tests.fakes.gcp.catalog import Catalog
from tests.fakes.gcp.discovery import load_discovery
from tests.fakes.gcp.errors import ApiError
from tests.fakes.gcp.faults import Faults
from tests.fakes.gcp.identity import IdentityApi, Reply
from tests.fakes.gcp.images import ProjectImages
from tests.fakes.gcp.instance_actions import InstanceActions
from tests.fakes.gcp.monitoring import query_of
from tests.fakes.gcp.resources import Behaviours
from tests.fakes.gcp.state import Operation, Store, parse_path

API_ROOT = "/compute/v1/"
MONITORING_ROOT = "/monitoring/"  # Cloud Monitoring v3 beside it (monitoring.py)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httplib2 expects
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms ACK stalls
    api: ComputeApi  # set on the subclass made per server
    identity: IdentityApi

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        if self.identity.api_of(url.path[1:]):
            authorization = self.headers.get("Authorization") or ""
            reply = self.identity.serve(
                self.command, url.path[1:], url.query, raw_body, authorization
            )
            return self._reply(reply)
        if url.path.startswith(MONITORING_ROOT):
            try:
                with self.api.store.lock:
                    body = self.api.monitoring.serve(
                        self.command, unquote(url.path[len(MONITORING_ROOT) :]), query_of(url.query)
                    )
                answer = Answer(200, body)
            except ApiError as error:
                answer = Answer(error.code, error.body())
        elif not url.path.startswith(API_ROOT):
            answer = Answer(
                404,
                {
                    "error": {
                        "code": 404,
                        "message": "Not Found",
                        "errors": [
                            {"message": "Not Found", "domain": "global", "reason": "notFound"}
                        ],
                    }
                },
            )
        else:
            path = unquote(url.path[len(API_ROOT) :])
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            answer = self.api.handle(self.command, path, query, raw_body)
        if answer.drop:  # the work is done, the answer never arrives
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _reply(self, reply: Reply) -> None:
        """JSON, media bytes, or no content (as Cloud Storage answers a delete)."""
        media = isinstance(reply.body, bytes)
        payload = (
            b"" if reply.body is None else reply.body if media else json.dumps(reply.body).encode()
        )
        self.send_response(reply.status)
        kind = "application/octet-stream" if media else "application/json; charset=UTF-8"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


def compute_api(*, polls_to_done: int = 2) -> ComputeApi:
    """The compute v1 fake's request handler and state, with every behaviour registered
    (served by FakeCompute, or under /compute/v1/ of the Cloud Run fake's root)."""
    api = ComputeApi(load_discovery(), Store(polls_to_done=polls_to_done), Catalog(), Faults())
    api.register_catalog()
    Behaviours(api)
    InstanceActions(api)
    ProjectImages(api)
    return api


class FakeCompute:
    """A stateful fake of the compute v1 REST API, checked against its discovery document."""

    def __init__(self, *, polls_to_done: int = 2) -> None:
        self.api = compute_api(polls_to_done=polls_to_done)
        self.store, self.catalog, self.faults = self.api.store, self.api.catalog, self.api.faults
        self.identity = IdentityApi()
        handler = type("Handler", (_Handler,), {"api": self.api, "identity": self.identity})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "FakeCompute":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeCompute":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test hooks ----------------------------------------------------------------------

    def reset_faults(self) -> None:
        self.faults.clear()
        self.catalog.reset()
        self.api.health.clear()
        self.store.page_size = 500

    def record_lb_requests(
        self,
        project: str,
        url_map: str,
        backend: str,
        *,
        ok: int,
        errors: int,
        latencies_ms: list[float],
    ) -> None:
        """What the HTTPS load balancer writes to Cloud Monitoring for one backend (an
        instance group): OK 200 and ERRORS 500 answers and their latencies, 20 s ago."""
        resource = {
            "project_id": project,
            "url_map_name": url_map,
            "backend_name": backend,
            "backend_type": "INSTANCE_GROUP",
            "region": "global",
        }
        with self.store.lock:
            self.api.monitoring.record(
                "loadbalancing.googleapis.com/https/backend_request_count",
                "loadbalancing.googleapis.com/https/backend_latencies",
                "https_lb_rule",
                resource,
                {"200": ok, "500": errors},
                latencies_ms,
            )

    def set_health(self, instance_name: str, state: str) -> None:
        self.api.health[instance_name] = state

    def set_instance_status(self, self_link: str, status: str) -> None:
        """Put an instance in STATUS (e.g. TERMINATED, as if it was stopped)."""
        with self.store.lock:
            self.store.get(self_link.split("/compute/v1/", 1)[-1])["status"] = status

    def hold_rollout(
        self, self_link: str, *, is_stable: bool = False, version_reached: bool = False
    ) -> None:
        """Keep a MIG mid-rollout, as a slow or stuck one is: its status shows IS_STABLE and
        versionTarget.isReached VERSION_REACHED until release_rollout."""
        with self.store.lock:
            manager = self.store.get(self_link.split("/compute/v1/", 1)[-1])
            manager["_hold"] = {
                "isStable": is_stable,
                "versionTarget": {"isReached": version_reached},
            }

    def release_rollout(self, self_link: str) -> None:
        with self.store.lock:
            self.store.get(self_link.split("/compute/v1/", 1)[-1]).pop("_hold", None)

    def operations(self, project: str) -> list[Operation]:
        """Every operation started in PROJECT, with its poll count."""
        with self.store.lock:
            return [
                op
                for path, op in self.store.operations.items()
                if path.startswith(f"projects/{project}/")
            ]

    @property
    def calls(self) -> list[tuple[str, str]]:
        """(discovery method id, request path) of every request, in order."""
        return self.api.calls

    def resources(self, project: str, collection: str | None = None) -> list[dict[str, Any]]:
        """Resources of PROJECT (optionally one collection), as the API would show them."""
        with self.store.lock:
            found = []
            for path, resource in self.store.resources.items():
                where = parse_path(path)
                if where.project == project and collection in (None, where.collection):
                    found.append(self.api.render(path, resource))
            return found

    def resource(self, path: str) -> dict[str, Any] | None:
        with self.store.lock:
            resource = self.store.find(path)
            return None if resource is None else self.api.render(path, resource)

    def settle(self) -> None:
        """Finish every pending operation (what the real cloud does given time)."""
        with self.store.lock:
            for path, operation in list(self.store.operations.items()):
                while operation.resource["status"] != "DONE":
                    self.store.poll_operation(path)
