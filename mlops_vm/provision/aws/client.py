"""boto3 clients for one region, and the one wrapper every SDK call goes through.

Credentials come from boto3's standard chain only (environment, shared config and
credentials files, SSO, the instance role); nothing here stores or prints them.
`ProviderSettings.endpoint_url` aims every client at an emulator (moto in the tests).

Each SDK call is made through `AwsContext.call`: throttling, 5xx and dropped connections
are retried with jittered backoff (retry.with_backoff, within retry_budget_s, never sooner
than a Retry-After), anything else is raised as a classified ProvisionError whose operation
says what was being done. botocore's own retries (standard mode does the same backoff) are
switched off so that there is exactly one retry policy: ours also knows, between two tries
of a create that takes no client token, to look for what a lost answer created
(`AwsContext.create`), and stops at once when a wait would overrun the budget.
"""

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from mlops_vm.provision.aws import errors
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.provision.retry import DEFAULT_BUDGET_S, with_backoff

T = TypeVar("T")

SERVICES = ("ec2", "elbv2", "autoscaling", "acm")


@dataclass(frozen=True)
class AwsOptions:
    """ProviderSettings.options understood by the AWS provider."""

    # A named profile of the shared config files (the rest of the chain still applies).
    profile: str | None = None
    # An existing EC2 key pair for the instances (fleet SSH and the launch template).
    key_name: str | None = None
    # Owner account of the AMI name pattern (InstanceSpec.image); Debian's by default.
    image_owner: str = "136693071363"
    # Seconds between polls of a waiter, and how long a waiter waits at most.
    poll_interval_s: float = 5.0
    wait_timeout_s: float = 900.0
    # Retries of throttled/5xx calls: attempts in all, and the first backoff ceiling.
    retry_attempts: int = 6
    retry_base_delay_s: float = 0.5
    # Seconds of retry waits one call may spend in all (throttling can last minutes).
    retry_budget_s: float = DEFAULT_BUDGET_S
    # Scaling groups: seconds before ELB health checks count for a new instance (it
    # installs Ansible and runs the roles first), and whether a changed launch template
    # starts an instance refresh (the rolling replacement that rolls the change out).
    health_check_grace_s: int = 900
    instance_refresh: bool = True
    # Minimum healthy percentage during an instance refresh: 100 with a maximum of 200
    # launches each replacement before its predecessor goes (capacity never drops).
    refresh_min_healthy_percent: int = 100
    # TLS policy of the HTTPS listener.
    ssl_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    # Wait until scaling-group instances are InService before ensure_fleet returns.
    wait_for_scaling_group: bool = True
    # Seconds a deregistered target may take past its deregistration delay to be unused.
    drain_margin_s: float = 30.0
    # Scaling groups' boot payloads: the bucket (default mlops-vm-<env>-boot-<account>).
    boot_bucket: str | None = None
    # Emulators and tests only: where the instances' fetcher finds the metadata service
    # and the AWS APIs (S3, Secrets Manager, SSM, ECR), instead of AWS's own addresses.
    boot_metadata_url: str | None = None
    boot_endpoint_url: str | None = None

    @classmethod
    def from_settings(cls, options: dict[str, Any]) -> "AwsOptions":
        known = {field.name: field for field in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise errors.invalid(
                f"unknown AWS option(s): {', '.join(unknown)}",
                f"known options: {', '.join(known)}",
                "read the provider options",
            )
        values: dict[str, Any] = {}
        for name, value in options.items():
            default = getattr(cls, name)
            expected = type(default) if default is not None else str
            try:
                values[name] = as_bool(value) if expected is bool else expected(value)
            except (TypeError, ValueError):
                raise ProvisionError(
                    ErrorCode.INVALID_INPUT,
                    f"option {name}={value!r} is not a {expected.__name__}",
                    provider=errors.PROVIDER,
                    operation="read the provider options",
                ) from None
        return cls(**values)


def as_bool(value: Any) -> bool:
    """A boolean option: a bool, or "true"/"false" (and yes/no, 1/0) from a config file."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(value)


@dataclass(frozen=True)
class Lookup:
    """A describe by name or id, as data: SERVICE.OPERATION lists what it finds under KEY
    (read by `AwsContext.first`). MISSING_OK where the API answers an unknown name with a
    not-found error (EC2's, ECR's and ELB's describes by name) instead of an empty list:
    that answer is None too."""

    service: str
    operation: str
    key: str
    missing_ok: bool = False


class AwsContext:
    """The region, the options and lazily created clients of one provider instance."""

    def __init__(
        self, settings: ProviderSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        import boto3  # lazily: the dispatcher turns a missing SDK into an install hint

        self.settings = settings
        self.options = AwsOptions.from_settings(dict(settings.options))
        self.sleep = sleep
        self.session = boto3.session.Session(
            profile_name=self.options.profile, region_name=settings.region
        )
        self._clients: dict[str, Any] = {}

    @property
    def region(self) -> str:
        region = self.settings.region or self.session.region_name
        if not region:
            raise errors.invalid(
                "no AWS region given",
                "set ProviderSettings.region, AWS_REGION, or the profile's region",
                "choose the region",
            )
        return region

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            config = Config(
                # One retry policy (ours, with backoff and classification), not two.
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                user_agent_extra="mlops-vm",
            )
            self._clients[service] = self.session.client(
                service,
                region_name=self.region,
                endpoint_url=self.settings.endpoint_url,
                config=config,
            )
        return self._clients[service]

    def call(
        self,
        service: str,
        operation: str,
        doing: str,
        /,  # positional only: ECS's UpdateService takes a parameter named `service`
        *,
        missing_ok: bool = False,
        adopt: Callable[[], dict[str, Any] | None] | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """SERVICE.OPERATION(**PARAMS), retried when transient, translated when not.

        DOING names the step in the error ("create the VPC"); with MISSING_OK a not-found
        answer returns {} (deleting what is already gone is success); ADOPT: see create.
        """
        method = getattr(self.client(service), operation)
        params = self._with_client_token(service, operation, params)
        tried = False

        def attempt() -> dict[str, Any]:
            nonlocal tried
            if tried and adopt is not None:
                found = adopt()
                if found is not None:
                    return found
            tried = True
            return method(**params)

        try:
            return self._retrying(attempt)
        except Exception as error:
            if missing_ok and errors.is_not_found(error):
                return {}
            raise errors.translate(error, doing) from error

    def first(self, lookup: Lookup, doing: str, /, **params: Any) -> dict[str, Any] | None:
        """The first item LOOKUP's describe by name or id lists; None when it lists none."""
        found = self.call(
            lookup.service, lookup.operation, doing, missing_ok=lookup.missing_ok, **params
        ).get(lookup.key)
        return found[0] if found else None

    def delete(self, service: str, operation: str, doing: str, /, **params: Any) -> None:
        """SERVICE.OPERATION(**PARAMS) that deletes something: already gone counts as done."""
        self.call(service, operation, doing, missing_ok=True, **params)

    def find(
        self, service: str, operation: str, doing: str, /, **params: Any
    ) -> dict[str, Any] | None:
        """The answer of a get by name (GetFunction, GetAlias, ...); None when not found."""
        return self.call(service, operation, doing, missing_ok=True, **params) or None

    def create(
        self,
        service: str,
        operation: str,
        doing: str,
        *,
        adopt: Callable[[], dict[str, Any] | None],
        **params: Any,
    ) -> dict[str, Any]:
        """A create that takes no client token (CreateVpc, CreateSubnet, ...): before trying
        again after a failure, ADOPT looks for what the failed try may have made all the same
        (an answer lost on the way back) and returns it, shaped like OPERATION's answer."""
        return self.call(service, operation, doing, adopt=adopt, **params)

    def _with_client_token(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """PARAMS with the operation's idempotency token (ClientToken of RunInstances,
        CreateRouteTable, CreateLaunchTemplate, ...) filled in once, so that every retry of
        this call carries the same token and AWS answers a retry after a lost response with
        what the first try made. botocore would fill in a new token on every try. The token
        is one per logical call, not derived from the spec: AWS keeps honouring a token for
        hours, and the same spec created again after a destroy must make a new resource."""
        meta = getattr(self.client(service), "meta", None)
        api_name = meta.method_to_api_mapping.get(operation) if meta is not None else None
        if api_name is None:
            return params
        shape = meta.service_model.operation_model(api_name).input_shape
        members = shape.members if shape is not None else {}
        missing = [
            name
            for name, member in members.items()
            if member.metadata.get("idempotencyToken") and name not in params
        ]
        return {**params, **{name: uuid.uuid4().hex for name in missing}}

    def _retrying(self, attempt: Callable[[], T]) -> T:
        return with_backoff(
            attempt,
            is_transient=errors.is_transient,
            attempts=self.options.retry_attempts,
            base_delay_s=self.options.retry_base_delay_s,
            server_delay=errors.retry_after_s,
            budget_s=self.options.retry_budget_s,
            sleep=self.sleep,
        )

    def pages(
        self, service: str, operation: str, key: str, doing: str, **params: Any
    ) -> list[dict[str, Any]]:
        """All items under KEY of a paginated OPERATION, each page retried on its own."""
        items: list[dict[str, Any]] = []
        token_name, token_key = _pagination_tokens(service, operation)
        token: str | None = None
        while True:
            page_params = dict(params)
            if token:
                page_params[token_name] = token
            page = self.call(service, operation, doing, **page_params)
            items.extend(page.get(key, []))
            token = page.get(token_key)
            if not token:
                return items

    def wait_until(
        self,
        check: Callable[[], T | None],
        what: str,
        *,
        timeout_s: float | None = None,
    ) -> T:
        """Poll CHECK until it returns something other than None; TIMEOUT past the limit."""
        limit_s = self.options.wait_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit_s
        while True:
            result = check()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise errors.failure(
                    ErrorCode.TIMEOUT,
                    f"gave up after {limit_s:.0f}s waiting until {what}",
                    "look at the resource in the AWS console; raise wait_timeout_s if "
                    "it is merely slow",
                    f"wait until {what}",
                )
            self.sleep(self.options.poll_interval_s)

    def wait_for(
        self, condition: Callable[[], bool], what: str, *, timeout_s: float | None = None
    ) -> None:
        """Poll CONDITION until it holds (wait_until for a yes/no check)."""
        self.wait_until(lambda: True if condition() else None, what, timeout_s=timeout_s)

    def wait_for_state(
        self, read: Callable[[], tuple[str, str, T]], ready: str, what: str, *, fix: str
    ) -> T:
        """Poll READ, which answers (state, reason, resource), until WHAT's state is READY;
        returns the resource. The state "failed" ends the wait at once with its reason and
        FIX (what a person does about it): waiting longer would only time out."""

        def reached() -> tuple[T] | None:  # a tuple: the resource itself may be None
            state, reason, resource = read()
            if state == "failed":
                raise errors.failure(
                    ErrorCode.INTERNAL, f"{what} failed: {reason}", fix, f"wait for {what}"
                )
            return (resource,) if state == ready else None

        return self.wait_until(reached, f"{what} is {ready}")[0]


@dataclass(frozen=True)
class Resource:
    """The calls about one resource that SERVICE's API names by the same parameters (KEY)
    in each of them: an ECS service's scalable target, a Lambda function's alias."""

    ctx: AwsContext
    service: str
    key: Mapping[str, str]

    def call(
        self, operation: str, doing: str, /, *, missing_ok: bool = False, **params: Any
    ) -> dict[str, Any]:
        return self.ctx.call(
            self.service, operation, doing, missing_ok=missing_ok, **self.key, **params
        )

    def delete(self, operation: str, doing: str, /, **params: Any) -> None:
        self.ctx.delete(self.service, operation, doing, **self.key, **params)

    def find(self, operation: str, doing: str, /, **params: Any) -> dict[str, Any] | None:
        return self.ctx.find(self.service, operation, doing, **self.key, **params)


def _pagination_tokens(service: str, operation: str) -> tuple[str, str]:
    """(request parameter, response key) of the continuation token of OPERATION."""
    if service == "elbv2":
        return "Marker", "NextMarker"
    if service == "s3":
        return "ContinuationToken", "NextContinuationToken"
    return "NextToken", "NextToken"
