"""Compute Engine failures classified into ErrorCode, each with a hint a person can act on.

The API fails in two places, and both are classified here:
- the HTTP call itself (googleapiclient HttpError): 400 invalid, 401, 403 forbidden /
  quotaExceeded / rateLimitExceeded, 404, 409 alreadyExists, 412, 429, 5xx;
- the long-running operation, which ends DONE with an `error` (QUOTA_EXCEEDED,
  ZONE_RESOURCE_POOL_EXHAUSTED, ...): the call was accepted but the resource never came.
"""

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import google.auth.exceptions
import httplib2
from googleapiclient.errors import HttpError

from mlops_vm.plan import Change
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.retry import notes_of

PROVIDER = "gcp"

_THROTTLE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError"}
_TRANSIENT_STATUSES = {429, 500, 502, 503, 504}

_HINTS: dict[ErrorCode, str] = {
    ErrorCode.AUTH: (
        "no usable Google credentials: run `gcloud auth application-default login`, or set "
        "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
    ),
    ErrorCode.PERMISSION: (
        "grant the caller roles/compute.admin on the project (or compute.instanceAdmin.v1, "
        "compute.networkAdmin, compute.loadBalancerAdmin and iam.serviceAccountUser), and "
        "check that the Compute Engine API is enabled"
    ),
    ErrorCode.QUOTA: (
        "raise the quota in the console (IAM & Admin > Quotas) for this project and region, "
        "or ask for fewer/smaller instances (count, machine_type)"
    ),
    ErrorCode.CAPACITY: (
        "the zone is out of this machine type right now: list other zones in FleetSpec.zones, "
        "pick another machine type, or retry later"
    ),
    ErrorCode.NOT_FOUND: "check the names in the inventory (project, region, zones, image)",
    ErrorCode.CONFLICT: (
        "a resource with this name exists or is still in use; re-run (provisioning is "
        "idempotent) or destroy the environment first"
    ),
    ErrorCode.INVALID_INPUT: "fix the field named in the message in the inventory",
    ErrorCode.THROTTLED: (
        "the API kept throttling after retries; wait a minute and re-run, or raise the "
        "retry_budget_s option"
    ),
    ErrorCode.INTERNAL: "a Compute Engine error; re-run, provisioning resumes where it stopped",
    ErrorCode.TIMEOUT: "the operation did not finish in time; re-run to resume",
}

# Codes of errors inside an Operation resource.
_OPERATION_CODES: dict[str, ErrorCode] = {
    "QUOTA_EXCEEDED": ErrorCode.QUOTA,
    "ZONE_RESOURCE_POOL_EXHAUSTED": ErrorCode.CAPACITY,
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": ErrorCode.CAPACITY,
    "RESOURCE_POOL_EXHAUSTED": ErrorCode.CAPACITY,
    "RESOURCE_NOT_FOUND": ErrorCode.NOT_FOUND,
    "RESOURCE_ALREADY_EXISTS": ErrorCode.CONFLICT,
    "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE": ErrorCode.CONFLICT,
    "PERMISSIONS_ERROR": ErrorCode.PERMISSION,
    "PERMISSION_DENIED": ErrorCode.PERMISSION,
    "INVALID_FIELD_VALUE": ErrorCode.INVALID_INPUT,
    "INVALID_USAGE": ErrorCode.INVALID_INPUT,
    "BAD_REQUEST": ErrorCode.INVALID_INPUT,
    "UNSUPPORTED_OPERATION": ErrorCode.INVALID_INPUT,
}


def error_details(error: HttpError) -> tuple[str, str, str]:
    """(message, first reason, status) from the JSON error body."""
    try:
        body: dict[str, Any] = json.loads(error.content.decode()).get("error", {})
    except (ValueError, AttributeError):
        return str(error), "", ""
    errors = body.get("errors") or [{}]
    return body.get("message", str(error)), errors[0].get("reason", ""), body.get("status", "")


def is_transient(error: Exception) -> bool:
    """Throttling, 5xx and dropped connections: worth retrying with backoff."""
    if isinstance(error, HttpError):
        status = error.resp.status
        if status in _TRANSIENT_STATUSES:
            return True
        _, reason, _ = error_details(error)
        return status == 403 and reason in _THROTTLE_REASONS
    return isinstance(error, ConnectionError | TimeoutError | socket.timeout)


def classify_http(error: HttpError) -> ErrorCode:
    status = error.resp.status
    message, reason, api_status = error_details(error)
    if status == 401:
        return ErrorCode.AUTH
    if status == 403:
        if reason in _THROTTLE_REASONS:
            return ErrorCode.THROTTLED
        if reason == "quotaExceeded" or "quota" in message.lower():
            return ErrorCode.QUOTA
        return ErrorCode.PERMISSION  # forbidden, PERMISSION_DENIED, accessNotConfigured
    if status == 404:
        return ErrorCode.NOT_FOUND
    if status == 409:
        return ErrorCode.CONFLICT
    if status == 412:
        return ErrorCode.CONFLICT
    if status == 400:
        if reason in ("resourceInUseByAnotherResource", "resourceNotReady"):
            return ErrorCode.CONFLICT
        if "ZONE_RESOURCE_POOL_EXHAUSTED" in message:
            return ErrorCode.CAPACITY
        return ErrorCode.INVALID_INPUT
    if status == 429:
        return ErrorCode.THROTTLED
    if api_status == "RESOURCE_EXHAUSTED":
        return ErrorCode.QUOTA
    return ErrorCode.INTERNAL


def translate(error: Exception, operation: str) -> ProvisionError:
    """Any failure of an SDK call as a classified ProvisionError."""
    if isinstance(error, ProvisionError):
        return error
    if isinstance(error, HttpError):
        code = classify_http(error)
        message, reason, _ = error_details(error)
        text = f"HTTP {error.resp.status} {reason}: {message}" if reason else message
        text += notes_of(error)
        hint = _HINTS[code]
        if reason == "accessNotConfigured":
            hint = "enable the Compute Engine API: gcloud services enable compute.googleapis.com"
        return ProvisionError(code, text, hint=hint, provider=PROVIDER, operation=operation)
    if isinstance(error, google.auth.exceptions.GoogleAuthError):
        return ProvisionError(
            ErrorCode.AUTH,
            str(error),
            hint=_HINTS[ErrorCode.AUTH],
            provider=PROVIDER,
            operation=operation,
        )
    if isinstance(error, OSError | httplib2.HttpLib2Error):
        return ProvisionError(
            ErrorCode.INTERNAL,
            f"cannot reach the Compute Engine API: {error}",
            hint="check network access to compute.googleapis.com (or ProviderSettings."
            "endpoint_url)",
            provider=PROVIDER,
            operation=operation,
        )
    return ProvisionError(
        ErrorCode.INTERNAL,
        f"{type(error).__name__}: {error}",
        hint=_HINTS[ErrorCode.INTERNAL],
        provider=PROVIDER,
        operation=operation,
    )


def operation_error(operation: dict[str, Any], what: str) -> ProvisionError:
    """The error an Operation ended with, classified by its first error code."""
    errors = operation.get("error", {}).get("errors") or [{}]
    first = errors[0]
    code = _OPERATION_CODES.get(first.get("code", ""), ErrorCode.INTERNAL)
    if code is ErrorCode.INTERNAL and "QUOTA" in first.get("code", ""):
        code = ErrorCode.QUOTA
    messages = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}" for e in errors)
    return ProvisionError(code, messages, hint=_HINTS[code], provider=PROVIDER, operation=what)


def timed_out(operation: str, message: str, hint: str) -> ProvisionError:
    """TIMEOUT for a wait on Google Cloud (an operation, an instance, a group) that ran
    past its deadline; HINT says where to look."""
    return ProvisionError(
        ErrorCode.TIMEOUT, message, hint=hint, provider=PROVIDER, operation=operation
    )


class PartialProvisionError(ProvisionError):
    """A ProvisionError raised after some changes were already made; `changes` lists them
    so nothing created before the failure goes unreported."""

    def __init__(self, cause: ProvisionError, changes: list[Change]) -> None:
        done = ", ".join(str(change) for change in changes)
        message = f"{cause.message} (done before the failure: {done})"
        hint = f"{cause.hint}; then re-run to converge, or run destroy to remove what was created"
        super().__init__(
            cause.code,
            message,
            hint=hint,
            provider=cause.provider,
            operation=cause.operation,
            changes_so_far=changes,
        )
        self.changes = list(changes)
        self.cause = cause


def with_changes(error: ProvisionError, changes: list[Change]) -> ProvisionError:
    """ERROR, carrying CHANGES when there were any."""
    if not changes or isinstance(error, PartialProvisionError):
        return error
    return PartialProvisionError(error, changes)


@contextmanager
def reporting_partial(changes: list[Change]) -> Iterator[None]:
    """A ProvisionError raised inside the block becomes a PartialProvisionError listing
    CHANGES (the list as it is then) when there were any."""
    try:
        yield
    except ProvisionError as error:
        raise with_changes(error, changes) from error
