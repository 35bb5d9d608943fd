"""A revision checked through its own URL (the traffic tag's) before it gets traffic."""

import time
import urllib.error
import urllib.request


def url_problem(url: str, *, token: str | None = None, timeout_s: float = 10.0) -> str:
    """'' when URL answers 200, otherwise what it answered (or why it did not)."""
    request = urllib.request.Request(url, method="GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return "" if answer.status == 200 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError) as error:
        return f"no answer: {getattr(error, 'reason', error)}"


def wait_until_ready(
    url: str, *, token: str | None, timeout_s: float, interval_s: float = 2.0
) -> str:
    """Poll URL until it answers 200 ('') or TIMEOUT_S passes (the last problem)."""
    deadline = time.monotonic() + timeout_s
    while True:
        problem = url_problem(url, token=token)
        if not problem or time.monotonic() >= deadline:
            return problem
        time.sleep(interval_s)
