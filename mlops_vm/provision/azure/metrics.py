"""Request figures from Azure Monitor (Microsoft.Insights/metrics, through the monitor
client), per minute over the window, ending now. Azure Monitor keeps averages of these
latencies, not percentiles: the figures carry the mean latency and no p50 / p99.

- App Service: Requests, Http5xx (Total), HttpResponseTime (Average, seconds), on the site
  (production) or one of its slots (.../sites/<site>/slots/<slot>).
- Application Gateway, per backend server (the BackendServer dimension: per host):
  BackendResponseStatus (Total, split by HttpStatusGroup) and BackendLastByteResponseTime
  (Average, ms).
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_vm.metrics import Figures
from mlops_vm.metrics.window import utc_stamp, whole_minutes
from mlops_vm.provision.azure.client import Arm

Json = dict[str, Any]


def read(
    arm: Arm,
    resource_id: str,
    metric_names: Iterable[str],
    period: int,
    *,
    split: str = "",
    now: datetime | None = None,
) -> list[Json]:
    """The metrics' values (Response.value) over the PERIOD ending now; SPLIT: an Azure
    Monitor $filter that splits the series by dimension ("BackendServer eq '*'")."""
    end = now or datetime.now(UTC)
    response = arm.read(
        "read request metrics",
        arm.monitor.metrics.list,
        resource_id.lstrip("/"),
        timespan=f"{utc_stamp(end - timedelta(seconds=period))}/{utc_stamp(end)}",
        interval="PT1M",
        metricnames=",".join(metric_names),
        aggregation="Total,Average",
        **({"filter": split} if split else {}),
    )
    return list((response or {}).get("value", []))


def series_of(metrics: list[Json], name: str) -> list[tuple[dict[str, str], list[Json]]]:
    """NAME's time series: (dimension name -> value, points)."""
    found = []
    for metric in metrics:
        if metric["name"]["value"] != name:
            continue
        for series in metric.get("timeseries") or []:
            dimensions = {
                m["name"]["value"]: m.get("value", "") for m in series.get("metadatavalues") or []
            }
            found.append((dimensions, series.get("data") or []))
    return found


def window_figures(
    requests: dict[str, float], errors: float, latency: list[Json], period: int, to_ms: float
) -> Figures:
    """REQUESTS (minute -> count), ERRORS and the LATENCY points (minute averages) as the
    window's figures: the mean is each minute's average weighted by its requests."""
    weighted = [
        (p["average"], requests.get(p["timeStamp"], 0.0))
        for p in latency
        if p.get("average") is not None
    ]
    served = sum(count for _, count in weighted)
    mean = sum(value * count for value, count in weighted) / served if served else None
    return Figures(
        requests=sum(requests.values()),
        errors=errors,
        seconds=float(period),
        mean_ms=None if mean is None else mean * to_ms,
    )


def per_minute(points: Iterable[Json], into: dict[str, float] | None = None) -> dict[str, float]:
    found = dict(into or {})
    for p in points:
        found[p["timeStamp"]] = found.get(p["timeStamp"], 0.0) + (p.get("total") or 0.0)
    return found


def app_service_figures(arm: Arm, resource_id: str, window_s: float) -> Figures:
    """A web app's (or slot's) figures over the last WINDOW_S."""
    period = whole_minutes(window_s)
    metrics = read(arm, resource_id, ("Requests", "Http5xx", "HttpResponseTime"), period)
    requests = per_minute(p for _, points in series_of(metrics, "Requests") for p in points)
    errors = sum(per_minute(p for _, ps in series_of(metrics, "Http5xx") for p in ps).values())
    latency = [p for _, points in series_of(metrics, "HttpResponseTime") for p in points]
    return window_figures(requests, errors, latency, period, 1000.0)


def slot_id(site_id: str, slot: str | None) -> str:
    """The resource id of a web app's slot (None: production, the site itself)."""
    return f"{site_id}/slots/{slot}" if slot else site_id


def gateway_figures(arm: Arm, gateway_id: str, window_s: float) -> dict[str, Figures]:
    """An Application Gateway's figures per backend server (its address)."""
    period = whole_minutes(window_s)
    # Two reads: a $filter may name only dimensions every metric asked for has.
    metrics = read(
        arm,
        gateway_id,
        ("BackendResponseStatus",),
        period,
        split="BackendServer eq '*' and HttpStatusGroup eq '*'",
    ) + read(
        arm, gateway_id, ("BackendLastByteResponseTime",), period, split="BackendServer eq '*'"
    )
    requests: dict[str, dict[str, float]] = {}
    errors: dict[str, float] = {}
    for dimensions, points in series_of(metrics, "BackendResponseStatus"):
        server = dimensions.get("BackendServer", "")
        requests[server] = per_minute(points, requests.get(server))
        if dimensions.get("HttpStatusGroup", "").lower() == "5xx":
            errors[server] = errors.get(server, 0.0) + sum(p.get("total") or 0.0 for p in points)
    latency: dict[str, list[Json]] = {}
    for dimensions, points in series_of(metrics, "BackendLastByteResponseTime"):
        latency.setdefault(dimensions.get("BackendServer", ""), []).extend(points)
    return {
        server: window_figures(
            counts, errors.get(server, 0.0), latency.get(server, []), period, 1.0
        )
        for server, counts in requests.items()
        if server
    }
