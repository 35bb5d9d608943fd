"""Jittered exponential backoff for transient cloud errors (throttling, 5xx)."""

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def with_backoff(
    call: Callable[[], T],
    *,
    is_transient: Callable[[Exception], bool],
    attempts: int = 6,
    base_delay_s: float = 0.5,
    max_delay_s: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run CALL, retrying transient failures with full-jitter exponential backoff."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:
            if attempt == attempts - 1 or not is_transient(error):
                raise
            sleep(random.uniform(0, min(max_delay_s, base_delay_s * 2**attempt)))
    raise AssertionError("unreachable")
