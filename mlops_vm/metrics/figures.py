"""Figures of a window of requests (rate, 5xx share, p50 / p99) from cumulative counters.

Prometheus-style sources only ever count up: requests, 5xx responses and a latency
histogram with cumulative buckets. Two readings of those counters, a window apart, give
the window's figures; a counter that went down (a restarted exporter) counts from zero.
Quantiles interpolate linearly inside the bucket that holds them, as PromQL's
histogram_quantile does, so a figure here reads the same as one on a Grafana panel.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The Q-quantile (0..1) of a histogram given as (upper bound, cumulative count) pairs,
    sorted by bound, the last one +Inf. None when the histogram is empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the largest finite bucket: its bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class Counters:
    """One reading of cumulative counters: requests, 5xx responses and a latency histogram
    (upper bound in seconds -> cumulative count, +Inf included)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)

    def __add__(self, other: "Counters") -> "Counters":
        bounds = set(self.buckets) | set(other.buckets)
        return Counters(
            self.requests + other.requests,
            self.errors + other.errors,
            {b: self.buckets.get(b, 0.0) + other.buckets.get(b, 0.0) for b in bounds},
        )

    @staticmethod
    def total(readings: Iterable["Counters"]) -> "Counters":
        result = Counters()
        for reading in readings:
            result = result + reading
        return result

    def since(self, earlier: "Counters") -> "Counters":
        """What was counted between EARLIER and this reading (a reset counts from zero)."""

        def delta(now: float, then: float) -> float:
            return now - then if now >= then else now

        return Counters(
            delta(self.requests, earlier.requests),
            delta(self.errors, earlier.errors),
            {b: delta(c, earlier.buckets.get(b, 0.0)) for b, c in self.buckets.items()},
        )


@dataclass(frozen=True)
class Figures:
    """A window of requests as a user sees it, from one place (host, release, revision)."""

    requests: float
    errors: float  # responses with a 5xx status
    seconds: float  # the window's length
    p50_ms: float | None = None
    p99_ms: float | None = None
    # The mean latency, where the source gives no percentiles (Azure Monitor's App Service
    # HttpResponseTime is an average only; moto's CloudWatch answers no extended statistics).
    mean_ms: float | None = None

    @property
    def rate(self) -> float:
        """Requests per second over the window."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_share(self) -> float:
        """The share (0..1) of requests answered with a 5xx."""
        return self.errors / self.requests if self.requests > 0 else 0.0

    @classmethod
    def between(cls, earlier: Counters, later: Counters, *, seconds: float) -> "Figures":
        """The figures of the window between two readings of the same counters."""
        return cls.of(later.since(earlier), seconds=seconds)

    @classmethod
    def of(cls, window: Counters, *, seconds: float) -> "Figures":
        """The figures of counters that already hold only the window's requests."""
        buckets = sorted(window.buckets.items())

        def ms(q: float) -> float | None:
            value = quantile(q, buckets)
            return None if value is None else value * 1000.0

        return cls(window.requests, window.errors, seconds, ms(0.5), ms(0.99))

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors_5xx": self.errors,
            "window_s": self.seconds,
            "requests_per_s": round(self.rate, 3),
            "error_share": round(self.error_share, 4),
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 1),
            "p99_ms": None if self.p99_ms is None else round(self.p99_ms, 1),
            "mean_ms": None if self.mean_ms is None else round(self.mean_ms, 1),
        }
