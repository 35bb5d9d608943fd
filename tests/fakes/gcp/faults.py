"""Failure injection: make chosen calls fail the way Compute Engine fails.

Two kinds, because the real API fails in two places:
- a request fault answers the HTTP call itself with an error (403 permission denied,
  403 quotaExceeded/rateLimitExceeded, 429, 503);
- an operation fault lets the call succeed but ends its operation DONE with an `error`
  (QUOTA_EXCEEDED, ZONE_RESOURCE_POOL_EXHAUSTED): the resource is never created.
"""

from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gcp.errors import ApiError


@dataclass
class RequestFault:
    method_id: str
    error: ApiError
    times: int | None  # None: every matching call
    zone: str | None = None


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

    # -- lookup (the server calls these) -----------------------------------------------------

    def request_error(self, method_id: str, params: dict[str, str]) -> ApiError | None:
        for fault in self.requests:
            if fault.method_id != method_id or fault.times == 0:
                continue
            if fault.zone is not None and params.get("zone") != fault.zone:
                continue
            if fault.times is not None:
                fault.times -= 1
            return fault.error
        return None

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
