"""The window a cloud's metrics service is asked about: whole minutes (what CloudWatch,
Cloud Monitoring and Azure Monitor keep), ending now, its bounds as UTC timestamps."""

import math
from datetime import UTC, datetime

MINUTE_S = 60


def whole_minutes(window_s: float) -> int:
    """WINDOW_S rounded up to whole minutes (one at least), in seconds."""
    return max(1, math.ceil(window_s / MINUTE_S)) * MINUTE_S


def utc_stamp(when: datetime) -> str:
    """WHEN as the metrics services take a time: RFC 3339 in UTC, to the second."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
