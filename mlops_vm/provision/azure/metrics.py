"""Request figures from Azure Monitor (Microsoft.Insights/metrics, through the monitor
client): a resource's request count and 5xx count (Total) and its response time (Average:
Azure Monitor keeps no percentiles of these, so the figures carry the mean latency and no
p50 / p99), per minute over the window, ending now.

App Service: Requests, Http5xx, HttpResponseTime (seconds), on the site (production) or on
one of its slots (.../sites/<site>/slots/<slot>).
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlops_vm.metrics import Figures
from mlops_vm.provision.azure.client import Arm

MINUTE_S = 60


@dataclass(frozen=True)
class MetricNames:
    requests: str
    errors: str
    latency: str  # an average
    latency_to_ms: float


APP_SERVICE = MetricNames("Requests", "Http5xx", "HttpResponseTime", 1000.0)


def whole_minutes(window_s: float) -> int:
    return max(1, math.ceil(window_s / MINUTE_S)) * MINUTE_S


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def figures(
    arm: Arm,
    resource_id: str,
    names: MetricNames,
    window_s: float,
    *,
    now: datetime | None = None,
) -> Figures:
    """RESOURCE_ID's figures over the last WINDOW_S (no figures: zero requests)."""
    period = whole_minutes(window_s)
    end = now or datetime.now(UTC)
    response = arm.read(
        "read request metrics",
        arm.monitor.metrics.list,
        resource_id.lstrip("/"),
        timespan=f"{stamp(end - timedelta(seconds=period))}/{stamp(end)}",
        interval="PT1M",
        metricnames=",".join((names.requests, names.errors, names.latency)),
        aggregation="Total,Average",
    )
    points = {
        metric["name"]["value"]: [
            point for series in metric.get("timeseries") or [] for point in series.get("data", [])
        ]
        for metric in (response or {}).get("value", [])
    }
    per_minute = {p["timeStamp"]: p.get("total") or 0.0 for p in points.get(names.requests, [])}
    # The mean over the window: each minute's average weighted by its requests.
    weighted = [
        (p["average"], per_minute.get(p["timeStamp"], 0.0))
        for p in points.get(names.latency, [])
        if p.get("average") is not None
    ]
    served = sum(count for _, count in weighted)
    mean = sum(value * count for value, count in weighted) / served if served else None
    return Figures(
        requests=sum(per_minute.values()),
        errors=sum(p.get("total") or 0.0 for p in points.get(names.errors, [])),
        seconds=float(period),
        mean_ms=None if mean is None else mean * names.latency_to_ms,
    )


def slot_id(site_id: str, slot: str | None) -> str:
    """The resource id of a web app's slot (None: production, the site itself)."""
    return f"{site_id}/slots/{slot}" if slot else site_id
