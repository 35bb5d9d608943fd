"""Retries of transient cloud errors (throttling, 5xx, dropped connections).

Each retry waits a full-jitter exponential backoff, and never less than the cloud asked
for (Retry-After on Azure and GCP): a retry sent earlier is answered with a new wait and
not processed, so it only burns an attempt. All the waiting of one call fits in a budget
(the `retry_budget_s` provider option): when the next wait would not fit, the last error
is raised at once instead of sleeping towards a failure that is already certain.
"""

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

# Seconds of waiting one call may spend on retries, unless the provider options say otherwise.
DEFAULT_BUDGET_S = 300.0


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asks to wait: Azure's retry-after-ms / x-ms-retry-after-ms, or the
    standard Retry-After (seconds or an HTTP date); None when it asks nothing."""
    if not headers:
        return None
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        try:
            return max(0.0, float(lowered[name]) / 1000)
        except (KeyError, ValueError):
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def with_backoff(
    call: Callable[[], T],
    *,
    is_transient: Callable[[Exception], bool],
    attempts: int = 6,
    base_delay_s: float = 0.5,
    max_delay_s: float = 20.0,
    server_delay: Callable[[Exception], float | None] = lambda error: None,
    budget_s: float | None = DEFAULT_BUDGET_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run CALL, retrying transient failures: at most ATTEMPTS calls, each retry after
    max(jittered backoff, SERVER_DELAY(error)), all within BUDGET_S seconds."""
    started = clock()
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:
            if attempt == attempts - 1 or not is_transient(error):
                raise
            backoff = random.uniform(0, min(max_delay_s, base_delay_s * 2**attempt))
            asked = server_delay(error)
            wait = max(backoff, asked or 0.0)
            if budget_s is not None and clock() - started + wait > budget_s:
                error.add_note(
                    f"not retried: the next try was due in {wait:.0f}s, beyond the "
                    f"{budget_s:.0f}s retry budget (retry_budget_s)"
                )
                raise
            sleep(wait)
    raise AssertionError("unreachable")


def notes_of(error: BaseException) -> str:
    """The notes with_backoff added to ERROR, for the end of a translated message."""
    notes = getattr(error, "__notes__", None) or []
    return "".join(f" ({note})" for note in notes)
