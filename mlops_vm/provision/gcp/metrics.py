"""Request figures from Cloud Monitoring (monitoring v3 projects.timeSeries.list): a request
count by response code class and a latency distribution, each summed over the window
(ALIGN_DELTA, REDUCE_SUM) and grouped by the label that names the place (a Cloud Run
revision, an HTTPS load balancer's backend). The latency's histogram goes through
metrics.Counters, so p50 / p99 interpolate as everywhere else.

Cloud Monitoring keeps these per minute: a window is read as whole minutes, ending now.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_vm.metrics import Counters, Figures
from mlops_vm.metrics.window import utc_stamp, whole_minutes
from mlops_vm.provision.gcp.client import ComputeClient


@dataclass(frozen=True)
class Source:
    """Where a platform's request metrics are and what their labels are called."""

    requests: str  # the DELTA INT64 metric type of the requests
    latency: str  # the DELTA DISTRIBUTION metric type of their latency, in ms
    resource_type: str
    group_by: str  # the resource (or metric) label naming the place
    error_class: str  # metric label of the response code class
    error_value: str  # its value for 5xx


CLOUD_RUN = Source(
    "run.googleapis.com/request_count",
    "run.googleapis.com/request_latencies",
    "cloud_run_revision",
    "resource.labels.revision_name",
    "metric.labels.response_code_class",
    "5xx",
)
HTTPS_LOAD_BALANCER = Source(
    "loadbalancing.googleapis.com/https/backend_request_count",
    "loadbalancing.googleapis.com/https/backend_latencies",
    "https_lb_rule",
    "resource.labels.backend_name",  # the instance group (or NEG) behind the backend service
    "metric.labels.response_code_class",
    "500",
)


def figures(
    client: ComputeClient,
    source: Source,
    resource_labels: dict[str, str],
    window_s: float,
    *,
    now: datetime | None = None,
) -> dict[str, Figures]:
    """Figures over the last WINDOW_S per value of SOURCE.group_by, of the resources whose
    labels are RESOURCE_LABELS (e.g. the service's name)."""
    period = whole_minutes(window_s)
    end = now or datetime.now(UTC)
    where = [f'resource.type="{source.resource_type}"'] + [
        f'resource.labels.{k}="{v}"' for k, v in sorted(resource_labels.items())
    ]

    def series(metric: str, group_by: list[str]) -> Iterator[dict[str, Any]]:
        params = {
            "name": f"projects/{client.project}",
            "filter": " AND ".join([f'metric.type="{metric}"', *where]),
            "interval_startTime": utc_stamp(end - timedelta(seconds=period)),
            "interval_endTime": utc_stamp(end),
            "aggregation_alignmentPeriod": f"{period}s",
            "aggregation_perSeriesAligner": "ALIGN_DELTA",
            "aggregation_crossSeriesReducer": "REDUCE_SUM",
            "aggregation_groupByFields": group_by,
        }

        def request(service: Any, token: str | None) -> Any:
            page = {**params, "pageToken": token} if token else params
            return service.projects().timeSeries().list(**page)

        return client.paged(f"read {metric}", request, lambda page: page.get("timeSeries", []))

    counts: dict[str, Counters] = {}
    for found in series(source.requests, [source.group_by, source.error_class]):
        place = label(found, source.group_by)
        requests = sum(float(p["value"].get("int64Value", 0)) for p in found.get("points", []))
        errors = requests if label(found, source.error_class) == source.error_value else 0.0
        counts[place] = counts.get(place, Counters()) + Counters(requests, errors)
    total_ms: dict[str, tuple[float, float]] = {}  # place -> (sum of latencies, count)
    for found in series(source.latency, [source.group_by]):
        place = label(found, source.group_by)
        for point in found.get("points", []):
            distribution = point["value"].get("distributionValue") or {}
            buckets = cumulative_buckets(distribution)
            counts[place] = counts.get(place, Counters()) + Counters(buckets=buckets)
            count, mean = float(distribution.get("count", 0)), float(distribution.get("mean", 0))
            summed, seen = total_ms.get(place, (0.0, 0.0))
            total_ms[place] = (summed + mean * count, seen + count)
    result = {}
    for place, window in counts.items():
        summed, seen = total_ms.get(place, (0.0, 0.0))
        figures = Figures.of(window, seconds=float(period))
        result[place] = replace(figures, mean_ms=summed / seen if seen else None)
    return result


def label(series: dict[str, Any], field: str) -> str:
    """The value of FIELD ("resource.labels.x", "metric.labels.y") in a time series."""
    kind, _, name = field.partition(".labels.")
    return str(((series.get(kind) or {}).get("labels") or {}).get(name, ""))


def upper_bounds(options: dict[str, Any], count: int) -> list[float]:
    """The upper bound (the distribution's unit) of each of COUNT buckets: underflow, the
    finite ones, then overflow (+Inf)."""
    if "exponentialBuckets" in options:
        spec = options["exponentialBuckets"]
        scale, growth = float(spec["scale"]), float(spec["growthFactor"])
        finite = [scale * growth**i for i in range(int(spec["numFiniteBuckets"]) + 1)]
    elif "linearBuckets" in options:
        spec = options["linearBuckets"]
        offset, width = float(spec.get("offset", 0)), float(spec["width"])
        finite = [offset + width * i for i in range(int(spec["numFiniteBuckets"]) + 1)]
    else:
        finite = [float(b) for b in (options.get("explicitBuckets") or {}).get("bounds", [])]
    bounds = [*finite, math.inf]
    return bounds[: max(count, 0)] if count < len(bounds) else bounds


def cumulative_buckets(distribution: dict[str, Any]) -> dict[float, float]:
    """A distribution in ms as Counters' histogram: upper bound in seconds -> cumulative
    count, +Inf the total (missing trailing bucket counts are zero, as the API says)."""
    counts = [float(c) for c in distribution.get("bucketCounts", [])]
    if not counts:
        return {}
    bounds = upper_bounds(distribution.get("bucketOptions") or {}, len(counts))
    cumulative, total = {}, 0.0
    for bound, count in zip(bounds, counts, strict=False):
        total += count
        cumulative[bound / 1000.0] = total
    cumulative[math.inf] = float(distribution.get("count", total))
    return cumulative
