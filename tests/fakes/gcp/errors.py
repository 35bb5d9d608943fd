"""Errors the fake answers with, in the real Compute Engine error shape.

{"error": {"code": 404, "message": "...",
           "errors": [{"message": "...", "domain": "global", "reason": "notFound"}]}}
"""

from typing import Any

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An HTTP error answer: status code, machine reason and human message."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        status: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.status = status
        self.headers = dict(headers or {})  # e.g. Retry-After on a 429

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
        }
        if self.status:
            error["status"] = self.status
        return {"error": error}


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message, status=_STATUS_NAMES[400])


def bad_request(message: str) -> ApiError:
    return ApiError(400, "badRequest", message)


def required(field: str) -> ApiError:
    return ApiError(400, "required", f"Required field '{field}' not specified")


def not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def already_exists(path: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{path}' already exists")


def in_use(path: str, user: str) -> ApiError:
    kind = path.split("/")[-2].rstrip("s")
    return ApiError(
        400,
        "resourceInUseByAnotherResource",
        f"The {kind} resource '{path}' is already being used by '{user}'",
    )
