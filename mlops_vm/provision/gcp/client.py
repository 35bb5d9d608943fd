"""The one place that talks to Compute Engine: discovery client, retries, operation waits.

Every call goes through `ComputeClient.execute` (one-line request builders wrapped by the
error translator and the jittered-backoff retry), so throttling and 5xx are retried and
every failure surfaces as a classified ProvisionError. The retry is ours, not
googleapiclient's `num_retries`: that one ignores Retry-After and has no time budget.
Mutations carry a `requestId` (one per logical mutation, the same on each of its retries), so
Compute Engine answers a retry after a lost response with the first try's operation instead of
a second resource or alreadyExists. They return an Operation that is waited on
(zone/region/global `operations.wait`, looped until DONE) and checked for `operation.error`.

Production and tests take the same path: `googleapiclient.discovery.build("compute", "v1")`
from the static discovery document; tests only swap the endpoint (ProviderSettings.
endpoint_url) and the credentials (AnonymousCredentials).
"""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import google.auth
import google.auth.exceptions
import google_auth_httplib2
import httplib2
from google.auth.credentials import Credentials
from googleapiclient import discovery, discovery_cache
from googleapiclient.errors import HttpError

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.errors import (
    is_transient,
    operation_error,
    timed_out,
    translate,
)
from mlops_vm.provision.retry import DEFAULT_BUDGET_S, parse_retry_after, with_backoff

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
API_PATH = "compute/v1/"

Request = Callable[[Any], Any]  # service -> googleapiclient HttpRequest


def api_endpoint(endpoint_url: str, api: str = "compute") -> str:
    """The client's api_endpoint for ENDPOINT_URL: a root ("http://127.0.0.1:8080/") gets
    the service path appended; a URL that already ends in /compute/v1/ is kept. Other APIs
    (run, artifactregistry, ...) are served under /<api>/ of the same root."""
    url = endpoint_url if endpoint_url.endswith("/") else endpoint_url + "/"
    path = API_PATH if api == "compute" else f"{api}/"
    return url if url.endswith(path) else url + path


def build_service(
    *,
    endpoint_url: str | None,
    credentials: Credentials | None,
    http_timeout_s: float,
    api: str = "compute",
    version: str = "v1",
) -> Any:
    """The API's discovery client (compute v1 by default), authenticated by ADC unless
    CREDENTIALS is given."""
    if credentials is None:
        try:
            credentials, _ = google.auth.default(scopes=list(SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as error:
            raise translate(error, "find credentials") from error
    http = google_auth_httplib2.AuthorizedHttp(
        credentials, http=httplib2.Http(timeout=int(http_timeout_s))
    )
    client_options = {"api_endpoint": api_endpoint(endpoint_url, api)} if endpoint_url else None
    return discovery.build(
        api,
        version,
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options=client_options,
    )


@dataclass
class ClientOptions:
    poll_interval_s: float = 2.0
    operation_timeout_s: float = 900.0
    retry_attempts: int = 6
    retry_base_delay_s: float = 0.5
    retry_budget_s: float = DEFAULT_BUDGET_S  # seconds of retry waits one call may spend


def retry_after_s(error: Exception) -> float | None:
    """The wait Compute Engine asked for with a 429/503 (Retry-After), if it asked."""
    return parse_retry_after(error.resp) if isinstance(error, HttpError) else None


@cache
def methods_taking_request_id() -> frozenset[str]:
    """Ids of the compute v1 methods that take a requestId (the mutations), read from the
    discovery document the client itself is built from."""
    document = json.loads(discovery_cache.get_static_doc("compute", "v1") or "{}")
    found: set[str] = set()

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                if "requestId" in method.get("parameters", {}):
                    found.add(method["id"])
            walk(resource.get("resources", {}))

    walk(document.get("resources", {}))
    return frozenset(found)


def with_request_id(request: Request, request_id: str) -> Request:
    """REQUEST with requestId=REQUEST_ID when its method takes one (built fresh each try)."""

    def build(service: Any) -> Any:
        built = request(service)
        if getattr(built, "methodId", None) in methods_taking_request_id():
            separator = "&" if "?" in built.uri else "?"
            built.uri = f"{built.uri}{separator}requestId={request_id}"
        return built

    return build


class ComputeClient:
    """Compute Engine calls for one project, retried, translated and waited on."""

    def __init__(
        self,
        service: Any,
        project: str,
        options: ClientOptions,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.project = project
        self.options = options
        self._sleep = sleep

    # -- single calls --------------------------------------------------------------------

    def execute(self, what: str, request: Request) -> Any:
        """Run REQUEST (built fresh for each attempt), retrying transient failures."""
        try:
            return with_backoff(
                lambda: request(self.service).execute(num_retries=0),
                is_transient=is_transient,
                attempts=self.options.retry_attempts,
                base_delay_s=self.options.retry_base_delay_s,
                server_delay=retry_after_s,
                budget_s=self.options.retry_budget_s,
                sleep=self._sleep,
            )
        except Exception as error:
            raise translate(error, what) from error

    def get(self, what: str, request: Request) -> dict[str, Any] | None:
        """The resource, or None when it does not exist."""
        try:
            return self.execute(what, request)
        except ProvisionError as error:
            if error.code is ErrorCode.NOT_FOUND:
                return None
            raise

    def start(self, what: str, request: Request) -> dict[str, Any]:
        """Start a mutation: its operation. One requestId for all its tries: a retry after
        a lost response is the same request to Compute Engine, not a second one. (A new id
        per logical mutation, not one derived from its content: Compute Engine remembers ids
        for an hour, and the same create after a destroy must happen again.)"""
        return self.execute(what, with_request_id(request, str(uuid.uuid4())))

    def mutate(self, what: str, request: Request) -> dict[str, Any]:
        """Start a mutation and wait until its operation is DONE (raising its error)."""
        return self.wait(what, self.start(what, request))

    def delete(self, what: str, request: Request) -> bool:
        """Delete and wait; False when it was already gone (not-found is success)."""
        try:
            self.mutate(what, request)
        except ProvisionError as error:
            if error.code is ErrorCode.NOT_FOUND:
                return False
            raise
        return True

    # -- operations ----------------------------------------------------------------------

    def wait(self, what: str, operation: dict[str, Any]) -> dict[str, Any]:
        """Poll OPERATION until DONE; raise its error, or TIMEOUT past operation_timeout_s."""
        deadline = time.monotonic() + self.options.operation_timeout_s
        while operation.get("status") != "DONE":
            if time.monotonic() > deadline:
                raise timed_out(
                    what,
                    f"operation {operation.get('name')} still {operation.get('status')} after "
                    f"{self.options.operation_timeout_s:.0f}s",
                    "re-run to resume; check the operation in the console",
                )
            self._sleep(self.options.poll_interval_s)
            operation = self.execute(f"wait for {what}", self._wait_request(operation))
        if operation.get("error"):
            raise operation_error(operation, what)
        return operation

    def _wait_request(self, operation: dict[str, Any]) -> Request:
        name = operation["name"]
        if operation.get("zone"):
            zone = basename(operation["zone"])
            return lambda s: s.zoneOperations().wait(
                project=self.project, zone=zone, operation=name
            )
        if operation.get("region"):
            region = basename(operation["region"])
            return lambda s: s.regionOperations().wait(
                project=self.project, region=region, operation=name
            )
        return lambda s: s.globalOperations().wait(project=self.project, operation=name)

    def wait_all(self, started: list[tuple[str, dict[str, Any]]]) -> list[ProvisionError | None]:
        """Wait for operations started together, (what, operation) each: the error of
        each one, or None, in the same order."""
        results: list[ProvisionError | None] = []
        for what, operation in started:
            try:
                self.wait(what, operation)
                results.append(None)
            except ProvisionError as error:
                results.append(error)
        return results

    def pause(self, seconds: float | None = None) -> None:
        """Sleep one poll interval (between reads of something that is settling), or SECONDS."""
        self._sleep(self.options.poll_interval_s if seconds is None else seconds)

    # -- listing -------------------------------------------------------------------------

    def list_all(self, what: str, collection: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list call, following nextPageToken."""
        return list(
            self._pages(what, collection, "list", params, lambda page: page.get("items", []))
        )

    def list_aggregated(self, what: str, collection: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of an aggregatedList call across zones and regions."""

        def items(page: dict[str, Any]) -> Iterator[dict[str, Any]]:
            for scoped in page.get("items", {}).values():
                for key, value in scoped.items():
                    if key != "warning":
                        yield from value

        return list(self._pages(what, collection, "aggregatedList", params, items))

    def list_post(
        self, what: str, collection: str, method: str, items_key: str, **params: Any
    ) -> list[dict[str, Any]]:
        """Every item of a POST listing (listInstances, listManagedInstances)."""
        return list(
            self._pages(what, collection, method, params, lambda page: page.get(items_key, []))
        )

    def _pages(
        self,
        what: str,
        collection: str,
        method: str,
        params: dict[str, Any],
        items: Callable[[dict[str, Any]], Any],
    ) -> Iterator[dict[str, Any]]:
        def request(service: Any, token: str | None) -> Any:
            page_params = {**params, "project": self.project}
            if token:
                page_params["pageToken"] = token
            return getattr(getattr(service, collection)(), method)(**page_params)

        return self.paged(what, request, items)

    def paged(
        self,
        what: str,
        request: Callable[[Any, str | None], Any],
        items: Callable[[dict[str, Any]], Any],
    ) -> Iterator[dict[str, Any]]:
        """The ITEMS of every page of a list: REQUEST(service, page token) makes the call of
        one page (the token None for the first), ITEMS picks a page's items."""
        token: str | None = None
        while True:
            page = self.execute(what, lambda s, t=token: request(s, t))
            yield from items(page)
            token = page.get("nextPageToken")
            if not token:
                return


def basename(link: str) -> str:
    """The last path segment of a URL: the resource's name."""
    return link.rstrip("/").rsplit("/", 1)[-1]
