"""The Google APIs the Cloud Run target calls (run v2, artifactregistry v1, secretmanager
v1, logging v2), each through the GCP provider's client wrapper (mlops_vm/provision/gcp/
client.py: retries with backoff, classified ProvisionError), and the waits: long-running
operations (`done`, `error`) and a service's `reconciling` / `terminalCondition`.

Tests aim every API at one fake root (ProviderSettings.endpoint_url; each API under
/<api>/) and may pass credentials; production uses Application Default Credentials.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
from google.auth.credentials import Credentials

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.client import SCOPES, ClientOptions, ComputeClient, build_service
from mlops_vm.provision.gcp.errors import PROVIDER, timed_out, translate
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services.cloud_run.options import project_of, region_of

TUNING = ("poll_interval_s", "operation_timeout_s", "retry_attempts", "retry_base_delay_s")

# google.rpc.Code of a failed operation -> ours.
RPC_CODES = {
    3: ErrorCode.INVALID_INPUT,  # INVALID_ARGUMENT
    5: ErrorCode.NOT_FOUND,
    6: ErrorCode.CONFLICT,  # ALREADY_EXISTS
    7: ErrorCode.PERMISSION,
    8: ErrorCode.QUOTA,  # RESOURCE_EXHAUSTED
    9: ErrorCode.INTERNAL,  # FAILED_PRECONDITION: e.g. a revision that never got ready
    10: ErrorCode.CONFLICT,  # ABORTED
    16: ErrorCode.AUTH,
}


# The provider's hints speak of Compute Engine; these are what a Cloud Run caller needs.
HINTS = {
    ErrorCode.PERMISSION: (
        "grant the caller roles/run.admin, roles/artifactregistry.admin, "
        "roles/secretmanager.viewer and roles/iam.serviceAccountUser on the revisions' "
        "service account (with service.domain: roles/compute.loadBalancerAdmin), and enable "
        "run.googleapis.com, artifactregistry.googleapis.com, secretmanager.googleapis.com "
        "(with service.domain: compute.googleapis.com)"
    ),
    ErrorCode.INTERNAL: "a Google Cloud error; re-run, the target converges from what exists",
    ErrorCode.NOT_FOUND: "check provider.options.project and provider.region",
}


class ApiClient(ComputeClient):
    """The provider's client (retries, classification), with Cloud Run's hints."""

    def execute(self, what: str, request: Any) -> Any:
        try:
            return super().execute(what, request)
        except ProvisionError as error:
            error.hint = HINTS.get(error.code, error.hint)
            raise


@dataclass(frozen=True)
class Where:
    project: str
    region: str

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"


class CloudRunApis:
    """One client per API, built on first use (building reads the credentials)."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        credentials: Credentials | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        options = settings.options
        self.options = ClientOptions(**{k: options[k] for k in TUNING if k in options})
        self.http_timeout_s = float(options.get("http_timeout_s", 60))
        self._credentials = credentials or options.get("credentials")
        self._sleep = sleep

    @cached_property
    def where(self) -> Where:
        return Where(project_of(self.settings), region_of(self.settings))

    @cached_property
    def credentials(self) -> Credentials:
        if self._credentials is not None:
            return self._credentials
        try:
            found, _ = google.auth.default(scopes=list(SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as error:
            raise translate(error, "find credentials") from error
        return found

    def _client(self, api: str, version: str) -> ApiClient:
        service = build_service(
            endpoint_url=self.settings.endpoint_url,
            credentials=self.credentials,
            http_timeout_s=self.http_timeout_s,
            api=api,
            version=version,
        )
        return ApiClient(service, self.where.project, self.options, self._sleep)

    @cached_property
    def run(self) -> ApiClient:
        return self._client("run", "v2")

    @cached_property
    def registry(self) -> ApiClient:
        return self._client("artifactregistry", "v1")

    @cached_property
    def secrets(self) -> ApiClient:
        return self._client("secretmanager", "v1")

    @cached_property
    def logging(self) -> ApiClient:
        return self._client("logging", "v2")

    @cached_property
    def monitoring(self) -> ApiClient:
        """Cloud Monitoring v3: the revisions' request figures (status, the canary)."""
        return self._client("monitoring", "v3")

    @cached_property
    def compute(self) -> ApiClient:
        """Compute Engine v1: the load balancer in front of a service on its own domain."""
        return self._client("compute", "v1")

    def access_token(self) -> str:
        """A fresh OAuth access token (Artifact Registry's docker login: oauth2accesstoken)."""
        credentials = self.credentials
        try:
            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.GoogleAuthError as error:
            raise translate(error, "get an access token") from error
        return str(credentials.token)

    # -- long-running operations -----------------------------------------------------------

    def wait(self, client: ComputeClient, what: str, operation: dict[str, Any]) -> dict[str, Any]:
        """Poll OPERATION (a projects.locations.operations one: Cloud Run's and Artifact
        Registry's) until `done`; raise its `error`, or TIMEOUT."""
        deadline = time.monotonic() + self.options.operation_timeout_s
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise timed_out(
                    what,
                    f"operation {operation.get('name')} not done after "
                    f"{self.options.operation_timeout_s:.0f}s",
                    "re-run to resume; the operation goes on in the cloud",
                )
            client.pause()
            operation = client.execute(
                f"wait for {what}",
                lambda s, name=operation["name"]: (
                    s.projects().locations().operations().get(name=name)
                ),
            )
        if operation.get("error"):
            raise operation_failed(operation["error"], what)
        return operation

    def run_operation(self, what: str, operation: dict[str, Any]) -> dict[str, Any]:
        return self.wait(self.run, what, operation)

    def registry_operation(self, what: str, operation: dict[str, Any]) -> dict[str, Any]:
        return self.wait(self.registry, what, operation)


def operation_failed(status: dict[str, Any], what: str) -> ProvisionError:
    """A google.rpc.Status an operation ended with, classified."""
    code = RPC_CODES.get(int(status.get("code", 2)), ErrorCode.INTERNAL)
    return ProvisionError(
        code,
        status.get("message") or f"failed with code {status.get('code')}",
        hint="the revision's conditions say why: `mlops-vm status ENV`, and its logs: "
        "`mlops-vm logs ENV`",
        provider=PROVIDER,
        operation=what,
    )


def condition_problem(resource: dict[str, Any]) -> str:
    """Why a service or revision is not ready, in Cloud Run's words ('' when it is):
    its terminalCondition (service) or Ready condition (revision), and any failed one."""
    conditions = [resource.get("terminalCondition") or {}, *resource.get("conditions", [])]
    for condition in conditions:
        if condition.get("state") == "CONDITION_FAILED":
            reason = condition.get("reason") or condition.get("revisionReason") or ""
            detail = f"{condition.get('type', 'Ready')} failed"
            detail += f" ({reason})" if reason else ""
            return f"{detail}: {condition.get('message', '')}".rstrip(": ")
    return ""


def ready_state(resource: dict[str, Any]) -> str:
    """CONDITION_SUCCEEDED, CONDITION_FAILED, CONDITION_RECONCILING, ... of its Ready."""
    if resource.get("terminalCondition"):
        return str(resource["terminalCondition"].get("state", "STATE_UNSPECIFIED"))
    for condition in resource.get("conditions", []):
        if condition.get("type") == "Ready":
            return str(condition.get("state", "STATE_UNSPECIFIED"))
    return "STATE_UNSPECIFIED"
