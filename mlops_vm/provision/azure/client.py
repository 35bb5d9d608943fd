"""The Azure SDK clients, built once per provider, and the one wrapper all SDK calls go through.

Production and tests run the same code: only the endpoint (ProviderSettings.endpoint_url) and
the authentication (a credential and an `authentication_policy` passed to the provider) differ.
Without them, credentials come from azure-identity's DefaultAzureCredential.

Retries live in one place, `with_backoff` around each call: the SDK's own retry policy is
turned off (retry_total=0) so that attempts are not multiplied. azure-core's RetryPolicy does
honour Retry-After, but it sleeps first and checks its timeout after, so a wait longer than
the budget would be slept through before failing; ours waits at least what ARM asks
(Retry-After, retry-after-ms: ARM answers an earlier retry with a new wait and does not
process it) and fails at once with THROTTLED when that wait would overrun retry_budget_s.
PUTs and DELETEs are idempotent in ARM (a resource is addressed by its name, and a PUT of the
same body twice leaves one resource), so a whole begin-and-wait is safe to run again after a
lost response; this provider makes no POST that creates anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.polling import LROPoller
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.azure.drift import converge
from mlops_vm.provision.azure.errors import (
    PROVIDER,
    is_transient,
    retry_after_s,
    status_of,
    translate,
)
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.provision.retry import DEFAULT_BUDGET_S, with_backoff

Json = dict[str, Any]


@dataclass(frozen=True)
class AzureOptions:
    """ProviderSettings.options for Azure, checked once."""

    subscription_id: str
    location: str
    # Seconds between polls of a long-running operation (the SDK's default is 30).
    poll_interval_s: float = 10.0
    # Longest wait for one long-running operation (an Application Gateway takes minutes).
    operation_timeout_s: float = 1800.0
    retry_attempts: int = 6
    retry_base_delay_s: float = 1.0
    # Seconds of retry waits one call may spend (a longer Retry-After fails at once).
    retry_budget_s: float = DEFAULT_BUDGET_S
    # User-assigned managed identity that lets the gateway read a Key Vault certificate.
    gateway_identity_id: str | None = None
    # PEM CA that signed the instances' certificates, so the v2 gateway trusts HTTPS backends.
    backend_ca_file: str | None = None
    # Host name the backends' certificates are issued for (default: the backend address).
    backend_host_name: str | None = None
    gateway_min_capacity: int = 1
    gateway_max_capacity: int = 3
    os_disk_type: str = "StandardSSD_LRS"
    # Scale sets that boot by identity: the storage account of their payloads (default:
    # one per environment, named after it), and for emulators and tests only, the base URL
    # the instances reach the data planes at (blob, keyvault, acr under it) and their
    # metadata service's.
    boot_storage_account: str | None = None
    boot_endpoint_url: str | None = None
    boot_metadata_url: str | None = None

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> AzureOptions:
        options = dict(settings.options)
        subscription_id = options.pop("subscription_id", None)
        if not subscription_id:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                "options.subscription_id is required",
                hint="set provider.options.subscription_id (see `az account show --query id`)",
                provider=PROVIDER,
                operation="read settings",
            )
        if not settings.region:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                "region (the Azure location) is required",
                hint="set provider.region, e.g. westeurope (`az account list-locations -o table`)",
                provider=PROVIDER,
                operation="read settings",
            )
        known = set(cls.__dataclass_fields__) - {"subscription_id", "location"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                f"unknown Azure option(s): {', '.join(unknown)}",
                hint=f"known options: subscription_id, {', '.join(sorted(known))}",
                provider=PROVIDER,
                operation="read settings",
            )
        try:
            typed = {name: _coerce(cls, name, value) for name, value in options.items()}
        except (TypeError, ValueError) as error:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                f"bad Azure option: {error}",
                hint="check the types of provider.options",
                provider=PROVIDER,
                operation="read settings",
            ) from None
        return cls(
            subscription_id=str(subscription_id),
            location=normalize_location(settings.region),
            **typed,
        )


def normalize_location(location: str) -> str:
    """ARM's spelling of a location: "West Europe" -> "westeurope". ARM accepts the display
    name but answers with this, so a body that kept the display name would differ from
    ARM's answer on every run."""
    return "".join(location.split()).lower()


def _coerce(options: type[AzureOptions], name: str, value: Any) -> Any:
    """Options come from YAML: turn "0.5" into 0.5 where the field is a number."""
    default = options.__dataclass_fields__[name].default
    if value is None or isinstance(default, str) or default is None:
        return None if value is None else str(value)
    if isinstance(default, bool):
        return bool(value)
    return type(default)(value)


def to_json(value: Any) -> Any:
    """An SDK model as ARM's JSON (camelCase REST keys), whichever generator made the SDK."""
    if value is None or isinstance(value, (str, int, float, bool, dict, list)):
        return value
    if hasattr(value, "_attr_to_rest_field"):  # TypeSpec models (compute, network, resource)
        return value.as_dict()
    if hasattr(value, "_attribute_map"):  # msrest models (monitor)
        return value.serialize(keep_readonly=True)
    raise TypeError(f"cannot turn {type(value).__name__} into JSON")


class Arm:
    """The four management clients and the wrapped ways of calling them.

    Every call names its operation ("create virtual machine"), which is what a ProvisionError
    says failed. Results come back as plain ARM JSON dicts.
    """

    def __init__(
        self,
        options: AzureOptions,
        *,
        endpoint_url: str | None = None,
        credential: Any = None,
        authentication_policy: Any = None,
    ) -> None:
        self.options = options
        self.credential = credential or DefaultAzureCredential()
        kwargs: dict[str, Any] = {"polling_interval": options.poll_interval_s, "retry_total": 0}
        if endpoint_url:
            kwargs["base_url"] = endpoint_url.rstrip("/")
        if authentication_policy is not None:
            kwargs["authentication_policy"] = authentication_policy
        self.client_kwargs = kwargs  # for clients other packages add (services/app_service)
        subscription = options.subscription_id
        self.resources = ResourceManagementClient(self.credential, subscription, **kwargs)
        self.network = NetworkManagementClient(self.credential, subscription, **kwargs)
        self.compute = ComputeManagementClient(self.credential, subscription, **kwargs)
        self.monitor = MonitorManagementClient(self.credential, subscription, **kwargs)

    @classmethod
    def from_settings(cls, settings: ProviderSettings, **access: Any) -> Arm:
        """The clients of a provider's or managed target's SETTINGS (options, endpoint);
        ACCESS: Arm's credential and authentication_policy, passed on."""
        options = AzureOptions.from_settings(settings)
        return cls(options, endpoint_url=settings.endpoint_url, **access)

    @property
    def subscription_id(self) -> str:
        return self.options.subscription_id

    @property
    def location(self) -> str:
        return self.options.location

    def _retrying(self, operation: str, attempt: Callable[[], Any]) -> Any:
        try:
            return with_backoff(
                attempt,
                is_transient=is_transient,
                attempts=self.options.retry_attempts,
                base_delay_s=self.options.retry_base_delay_s,
                server_delay=retry_after_s,
                budget_s=self.options.retry_budget_s,
            )
        except AzureError as error:
            raise translate(error, operation) from error

    def read(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A GET; None when the resource (or its resource group) does not exist."""

        def attempt() -> Any:
            try:
                return to_json(call(*args, **kwargs))
            except HttpResponseError as error:
                if status_of(error) == 404:
                    return None
                raise

        return self._retrying(operation, attempt)

    def read_all(
        self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> list[Json]:
        """A paged list; [] when the parent (resource group, scale set) does not exist."""

        def attempt() -> list[Json]:
            try:
                return [to_json(item) for item in call(*args, **kwargs)]
            except HttpResponseError as error:
                if status_of(error) == 404:
                    return []
                raise

        return self._retrying(operation, attempt)

    def write(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A synchronous write (resource groups and autoscale settings answer at once)."""
        return self._retrying(operation, lambda: to_json(call(*args, **kwargs)))

    def run(self, operation: str, begin: Callable[..., LROPoller], *args: Any) -> Any:
        """A long-running PUT/PATCH/POST: start it and wait until it ends (or times out)."""
        return self._retrying(operation, lambda: self._wait(operation, begin(*args)))

    def delete(self, operation: str, begin: Callable[..., LROPoller], *args: Any) -> None:
        """A long-running DELETE; a resource that is already gone counts as deleted."""

        def attempt() -> None:
            try:
                self._wait(operation, begin(*args))
            except HttpResponseError as error:
                if status_of(error) != 404:
                    raise

        self._retrying(operation, attempt)

    def run_all(
        self,
        operation: str,
        begin: Callable[..., LROPoller],
        calls: list[tuple],
        *,
        missing_ok: bool = False,
    ) -> list[Any]:
        """Start several long-running operations, then wait for them all (the SDK polls each
        in its own thread), so that N VMs take the time of one. A transient failure of one
        operation reruns it alone. MISSING_OK: a 404 (deleting what is gone) is success."""

        def start(args: tuple) -> LROPoller | None:
            try:
                return begin(*args)
            except HttpResponseError as error:
                if missing_ok and status_of(error) == 404:
                    return None
                raise

        pollers = [self._retrying(operation, lambda args=args: start(args)) for args in calls]
        results: list[Any] = []
        for args, poller in zip(calls, pollers, strict=True):
            if poller is None:
                results.append(None)
                continue
            try:
                results.append(self._wait(operation, poller))
            except AzureError as error:
                if missing_ok and status_of(error) == 404:
                    results.append(None)
                elif is_transient(error):
                    results.append(self.run(operation, begin, *args))
                else:
                    raise translate(error, operation) from error
        return results

    def _wait(self, operation: str, poller: LROPoller) -> Any:
        result = poller.result(timeout=self.options.operation_timeout_s)
        if not poller.done():
            raise ProvisionError(
                ErrorCode.TIMEOUT,
                f"still {poller.status()} after {self.options.operation_timeout_s:.0f}s",
                hint="Azure is slow or stuck; run again later (it resumes where it stopped), "
                "or raise options.operation_timeout_s",
                provider=PROVIDER,
                operation=operation,
            )
        return to_json(result)


@dataclass(frozen=True)
class ResourceType:
    """GET, PUT and converge by name of one resource type in a resource group.

    KIND is its Change.kind; WHAT names its calls in errors ("read WHAT", "create WHAT");
    OPERATIONS picks its operations group among the Arm's clients. LONG_RUNNING: the PUT is
    begin_create_or_update (else create_or_update, which answers at once)."""

    kind: str
    what: str
    operations: Callable[[Arm], Any]
    long_running: bool = True
    put_doing: str = ""  # when "create WHAT" does not say what the PUT does

    def get(self, arm: Arm, group: str, name: str) -> Json | None:
        return arm.read(f"read {self.what}", self.operations(arm).get, group, name)

    def put(self, arm: Arm, group: str, name: str, body: Json) -> Json:
        doing = self.put_doing or f"create {self.what}"
        operations = self.operations(arm)
        if self.long_running:
            return arm.run(doing, operations.begin_create_or_update, group, name, body)
        return arm.write(doing, operations.create_or_update, group, name, body)

    def converge(
        self,
        arm: Arm,
        log: ChangeLog,
        group: str,
        name: str,
        desired: Json,
        *,
        create_detail: str = "",
        sent: Callable[[], Json] | None = None,
    ) -> None:
        """Create NAME, or update it where it differs from DESIRED (drift.converge). SENT
        builds the body to PUT when it is more than DESIRED (a secret ARM never shows back)."""
        converge(
            log,
            self.kind,
            name,
            desired,
            self.get(arm, group, name),
            lambda: self.put(arm, group, name, sent() if sent else desired),
            create_detail=create_detail,
        )


def lro_deleter(
    operation: str, begin: Callable[[Arm], Callable[..., LROPoller]]
) -> Callable[[Arm, str, list[str]], None]:
    """Deletes resources of one type in a group by name, all at once (BEGIN picks the SDK's
    begin_delete); what is gone already counts as deleted."""

    def delete(arm: Arm, group: str, names: list[str]) -> None:
        arm.run_all(operation, begin(arm), [(group, n) for n in names], missing_ok=True)

    return delete
