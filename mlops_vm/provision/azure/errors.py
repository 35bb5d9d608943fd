"""Azure errors classified into ErrorCode, each with a hint a person can act on.

ARM puts a machine-readable code in every error body ({"error": {"code", "message"}}); the
SDK exposes it as `HttpResponseError.error.code`, also for long-running operations that end
in Failed. The code decides the class; the HTTP status is the fallback.
"""

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.retry import notes_of, parse_retry_after

PROVIDER = "azure"

PERMISSION_CODES = {"AuthorizationFailed", "LinkedAuthorizationFailed", "RequestDisallowedByPolicy"}
QUOTA_CODES = {"QuotaExceeded", "OperationNotAllowedQuota", "PublicIPCountLimitReached"}
CAPACITY_CODES = {
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
}
NOT_FOUND_CODES = {
    "ResourceNotFound",
    "ResourceGroupNotFound",
    "NotFound",
    "ParentResourceNotFound",
}
CONFLICT_CODES = {"Conflict", "AnotherOperationInProgress", "PropertyChangeNotAllowed"}
# Input Azure refuses, also where no HTTP status says so (a scale set's instance view).
INVALID_INPUT_CODES = {"InvalidParameter", "ImageNotFound", "PlatformImageNotFound"}
# Retried with backoff: throttling, ARM's "try again" codes, and 5xx.
TRANSIENT_CODES = {"TooManyRequests", "RetryableError", "AnotherOperationInProgress"}

HINTS = {
    ErrorCode.AUTH: (
        "no usable Azure credential: run `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID "
        "and AZURE_CLIENT_SECRET (service principal), or run where a managed identity is "
        "assigned; DefaultAzureCredential tries these in turn"
    ),
    ErrorCode.PERMISSION: (
        "the identity lacks the action named above: grant it a role on the subscription or "
        "resource group that includes it (e.g. Contributor), then retry (role assignments "
        "can take a few minutes to apply)"
    ),
    ErrorCode.QUOTA: (
        "request a quota increase for that VM family in this location (Portal > Subscriptions "
        "> Usage + quotas), or lower `count`/autoscaling max, or pick a smaller machine_type"
    ),
    ErrorCode.CAPACITY: (
        "this size is not available here now: pick another machine_type or location "
        "(`az vm list-skus --location <location> --size <size> --all` shows restrictions)"
    ),
    ErrorCode.NOT_FOUND: (
        "a resource or resource group named above does not exist: check the names in the "
        "inventory (network.existing), or run provision again to create it"
    ),
    ErrorCode.CONFLICT: (
        "the resource is busy or was changed in a way Azure does not allow in place; wait for "
        "running operations to finish, or delete the resource and provision again"
    ),
    ErrorCode.THROTTLED: (
        "Azure throttled the requests even after retries; wait and run again, or raise the "
        "retry_budget_s option"
    ),
    ErrorCode.INVALID_INPUT: "Azure refused the request as invalid; the message names the field",
    ErrorCode.INTERNAL: "Azure failed on its side; run again (everything is idempotent)",
}


def error_code(error: BaseException) -> str:
    """ARM's error code, or "" when the error carries none."""
    if isinstance(error, HttpResponseError) and error.error is not None:
        return error.error.code or ""
    return ""


def error_message(error: BaseException) -> str:
    if isinstance(error, HttpResponseError) and error.error is not None and error.error.message:
        return error.error.message
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def status_of(error: BaseException) -> int:
    return getattr(error, "status_code", None) or 0


def retry_after_s(error: BaseException) -> float | None:
    """The wait ARM asked for (Retry-After / retry-after-ms on a 429 or 503), if it asked."""
    response = getattr(error, "response", None)
    return parse_retry_after(getattr(response, "headers", None))


def is_transient(error: BaseException) -> bool:
    """Worth retrying: throttling, ARM's retryable codes, 5xx, dropped connections."""
    if isinstance(error, ClientAuthenticationError):
        return False
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return True
    status = status_of(error)
    return status == 429 or status >= 500 or error_code(error) in TRANSIENT_CODES


def classify(error: BaseException) -> ErrorCode:
    code = error_code(error)
    if isinstance(error, ClientAuthenticationError) and code not in PERMISSION_CODES:
        return ErrorCode.AUTH
    return classify_code(code, status_of(error), error_message(error))


def classify_code(code: str, status: int = 0, message: str = "") -> ErrorCode:
    """The class of an ARM error CODE (with the HTTP STATUS and MESSAGE as fallbacks)."""
    message = message.lower()
    if code in PERMISSION_CODES or status == 403:
        return ErrorCode.PERMISSION
    if code in QUOTA_CODES or (code == "OperationNotAllowed" and "quota" in message):
        return ErrorCode.QUOTA
    if code in CAPACITY_CODES:
        return ErrorCode.CAPACITY
    if code in NOT_FOUND_CODES or status == 404:
        return ErrorCode.NOT_FOUND
    if status == 429 or code == "TooManyRequests":
        return ErrorCode.THROTTLED
    if status == 401:
        return ErrorCode.AUTH
    if code in CONFLICT_CODES or status == 409:
        return ErrorCode.CONFLICT
    if code in INVALID_INPUT_CODES or 400 <= status < 500:
        return ErrorCode.INVALID_INPUT
    return ErrorCode.INTERNAL


def translate(error: AzureError, operation: str) -> ProvisionError:
    """The ProvisionError for an SDK error raised while doing OPERATION."""
    code = classify(error)
    arm_code = error_code(error)
    message = error_message(error)
    if arm_code and not message.startswith(arm_code):
        message = f"{arm_code}: {message}"
    message += notes_of(error)
    return ProvisionError(
        code, message, hint=HINTS.get(code, ""), provider=PROVIDER, operation=operation
    )
