"""Failure injection: make chosen calls fail the way Compute Engine fails.

Three kinds, because the real API fails in three places:
- a request fault answers the HTTP call itself with an error (403 permission denied,
  403 quotaExceeded/rateLimitExceeded, 429 with a Retry-After, 503);
- an operation fault lets the call succeed but ends its operation DONE with an `error`
  (QUOTA_EXCEEDED, ZONE_RESOURCE_POOL_EXHAUSTED): the resource is never created;
- a dropped response: the call is carried out, but the connection closes before the answer
  reaches the client (which then retries what already happened).
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gcp.errors import ApiError


@dataclass
class RequestFault:
    method_id: str
    error: ApiError
    times: int | None  # None: every matching call
    zone: str | None = None
    # Throttling: the wait the answer asks for; a retry sent sooner gets a new wait and does
    # not count towards TIMES (the server did not process it).
    retry_after_s: float | None = None
    not_before: float = 0.0


@dataclass
class OperationFault:
    method_id: str
    code: str
    message: str
    http_status: int
    http_message: str
    times: int | None
    after: int  # let this many matching calls succeed first
    zone: str | None = None


@dataclass
class Faults:
    requests: list[RequestFault] = field(default_factory=list)
    operations: list[OperationFault] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # method id -> responses to drop
    # Managed instance groups cannot create instances: {"code", "message"} of the error
    # their listErrors shows (and they never become stable).
    launch_error: dict[str, str] | None = None

    # -- injection (tests call these) ------------------------------------------------------

    def fail_request(
        self,
        method_id: str,
        *,
        status: int,
        reason: str,
        message: str,
        times: int | None = None,
        status_name: str | None = None,
        zone: str | None = None,
    ) -> None:
        error = ApiError(status, reason, message, status=status_name)
        self.requests.append(RequestFault(method_id, error, times, zone))

    def throttle(self, method_id: str, *, retry_after_s: float, times: int = 1) -> None:
        """429 rateLimitExceeded with Retry-After: RETRY_AFTER_S, TIMES times; retries that
        come before the wait is over are throttled again, as the real API does."""
        error = ApiError(
            429,
            "rateLimitExceeded",
            "Rate Limit Exceeded",
            status="RESOURCE_EXHAUSTED",
            headers={"Retry-After": str(math.ceil(retry_after_s))},
        )
        self.requests.append(RequestFault(method_id, error, times, retry_after_s=retry_after_s))

    def drop_response(self, method_id: str, times: int = 1) -> None:
        """Carry out the next TIMES calls of METHOD_ID but close the connection instead of
        answering: a response lost on its way back."""
        self.dropped[method_id] = self.dropped.get(method_id, 0) + times

    def fail_group_launches(self, code: str, message: str) -> None:
        """Every managed instance group fails to create its instances with CODE: MESSAGE,
        as with an exhausted zone, a used-up quota or a missing image."""
        self.launch_error = {"code": code, "message": message}

    def deny(self, method_id: str, permission: str) -> None:
        """403 forbidden, as when the caller's role lacks PERMISSION."""
        self.fail_request(
            method_id,
            status=403,
            reason="forbidden",
            message=f"Required '{permission}' permission for the request resource",
            status_name="PERMISSION_DENIED",
        )

    def fail_operation(
        self,
        method_id: str,
        *,
        code: str,
        message: str,
        http_status: int = 403,
        http_message: str = "FORBIDDEN",
        times: int | None = None,
        after: int = 0,
        zone: str | None = None,
    ) -> None:
        self.operations.append(
            OperationFault(method_id, code, message, http_status, http_message, times, after, zone)
        )

    def quota_exceeded(
        self,
        method_id: str = "compute.instances.insert",
        *,
        metric: str = "CPUS",
        limit: float = 8.0,
        region: str = "us-central1",
        after: int = 0,
    ) -> None:
        self.fail_operation(
            method_id,
            code="QUOTA_EXCEEDED",
            message=f"Quota '{metric}' exceeded.  Limit: {limit} in region {region}.",
            after=after,
        )

    def zone_exhausted(self, zone: str, method_id: str = "compute.instances.insert") -> None:
        self.fail_operation(
            method_id,
            code="ZONE_RESOURCE_POOL_EXHAUSTED",
            message=(
                f"The zone 'projects/p/zones/{zone}' does not have enough resources available "
                "to fulfill the request.  Try a different zone, or try again later."
            ),
            http_status=503,
            http_message="SERVICE UNAVAILABLE",
            zone=zone,
        )

    def clear(self) -> None:
        self.requests.clear()
        self.operations.clear()
        self.dropped.clear()
        self.launch_error = None

    # -- lookup (the server calls these) -----------------------------------------------------

    def request_error(self, method_id: str, params: dict[str, str]) -> ApiError | None:
        now = time.monotonic()
        for fault in self.requests:
            if fault.method_id != method_id:
                continue
            if fault.zone is not None and params.get("zone") != fault.zone:
                continue
            if now < fault.not_before:  # too early: a new wait, nothing processed
                return self._wait_error(fault, fault.not_before - now)
            if fault.times == 0:
                continue
            if fault.times is not None:
                fault.times -= 1
            if fault.retry_after_s is not None:
                fault.not_before = now + fault.retry_after_s
            return fault.error
        return None

    @staticmethod
    def _wait_error(fault: RequestFault, remaining_s: float) -> ApiError:
        error = fault.error
        return ApiError(
            error.code,
            error.reason,
            error.message,
            status=error.status,
            headers={"Retry-After": str(math.ceil(remaining_s))},
        )

    def take_drop(self, method_id: str) -> bool:
        """Whether this call's response is to be lost (counts it)."""
        left = self.dropped.get(method_id, 0)
        if left > 0:
            self.dropped[method_id] = left - 1
        return left > 0

    def operation_failure(self, method_id: str, params: dict[str, str]) -> dict[str, Any] | None:
        for fault in self.operations:
            if fault.method_id != method_id or fault.times == 0:
                continue
            if fault.zone is not None and params.get("zone") != fault.zone:
                continue
            if fault.after > 0:
                fault.after -= 1
                return None
            if fault.times is not None:
                fault.times -= 1
            return {
                "code": fault.code,
                "message": fault.message,
                "http_status": fault.http_status,
                "http_message": fault.http_message,
            }
        return None
