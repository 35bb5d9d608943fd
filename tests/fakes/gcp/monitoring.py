"""Cloud Monitoring v3's projects.timeSeries.list in the fake, over series a test records
the way Cloud Run and the HTTPS load balancer write them: DELTA INT64 request counts and
DELTA DISTRIBUTION latencies (ms, exponential buckets), each point with its labels.

What the real API checks and the fake does too: the filter (a conjunction of `field =
"value"`, metric.type required), interval.endTime required and the start before it, an
alignmentPeriod of at least 60s, a cross-series reducer only with an aligner and
groupByFields only with a reducer, ALIGN_DELTA only on DELTA metrics. The answer is
aligned as the API aligns: one point per alignment period counted back from endTime,
summed per group of the groupByFields.
"""

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.gcp.errors import ApiError, invalid
from tests.fakes.gcp.rest_discovery import load_document

# Cloud Run's and the load balancer's latency histograms (ms): 1, 1.4, 1.96, ... ms.
BUCKETS = {"numFiniteBuckets": 40, "growthFactor": 1.4, "scale": 1.0}
TERM = re.compile(r'^\s*([a-z_]+(?:\.[a-zA-Z_]+)*)\s*=\s*"([^"]*)"\s*$')
FILTER_FIELDS = re.compile(r"^(metric\.type|resource\.type|(metric|resource)\.labels\.\w+)$")


@dataclass
class Point:
    metric: str
    resource_type: str
    resource_labels: dict[str, str]
    metric_labels: dict[str, str]
    at: datetime
    count: int = 0  # INT64 series
    latencies_ms: list[float] = field(default_factory=list)  # DISTRIBUTION series

    @property
    def distribution(self) -> bool:
        return bool(self.latencies_ms)

    def value_of(self, name: str) -> str:
        kind, _, label = name.partition(".labels.")
        if name == "metric.type":
            return self.metric
        if name == "resource.type":
            return self.resource_type
        labels = self.metric_labels if kind == "metric" else self.resource_labels
        return labels.get(label, "")


def parse_time(text: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Field {name} had an invalid value of {text!r}") from None


def parse_filter(text: str) -> dict[str, str]:
    terms: dict[str, str] = {}
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = TERM.match(part)
        if match is None or not FILTER_FIELDS.match(match.group(1)):
            raise invalid(f"The provided filter doesn't refer to any known metric: {part!r}")
        terms[match.group(1)] = match.group(2)
    if "metric.type" not in terms:
        raise invalid("A filter must specify metric.type")
    return terms


def bucket_counts(latencies_ms: list[float]) -> list[str]:
    """Counts per bucket: underflow (< scale), the finite ones, overflow."""
    bounds = [BUCKETS["scale"] * BUCKETS["growthFactor"] ** i for i in range(41)]
    counts = [0] * (len(bounds) + 1)
    for value in latencies_ms:
        counts[next((i for i, b in enumerate(bounds) if value < b), len(bounds))] += 1
    while counts and counts[-1] == 0:
        counts.pop()  # trailing zero buckets may be left out, as the API does
    return [str(c) for c in counts]


def distribution(latencies_ms: list[float]) -> dict[str, Any]:
    count = len(latencies_ms)
    return {
        "count": str(count),
        "mean": sum(latencies_ms) / count if count else 0.0,
        "bucketOptions": {"exponentialBuckets": dict(BUCKETS)},
        "bucketCounts": bucket_counts(latencies_ms),
    }


class Monitoring:
    """The recorded points and the API over them (served under /monitoring/ of a fake's
    root, as mlops_vm.provision.gcp.client.api_endpoint aims the client)."""

    PAGE_SIZE = 2  # small pages: clients must follow nextPageToken

    def __init__(self) -> None:
        self.points: list[Point] = []

    def record(
        self,
        requests_metric: str,
        latency_metric: str,
        resource_type: str,
        resource_labels: dict[str, str],
        by_class: dict[str, int],
        latencies_ms: list[float],
        at: datetime | None = None,
    ) -> None:
        """Requests as a platform writes them: a count per response_code_class (BY_CLASS)
        and the latency distribution, at AT (20 s ago by default)."""
        when = at or datetime.now(UTC) - timedelta(seconds=20)
        for code_class, count in by_class.items():
            if count:
                self.points.append(
                    Point(
                        requests_metric,
                        resource_type,
                        dict(resource_labels),
                        {"response_code_class": code_class},
                        when,
                        count=count,
                    )
                )
        self.points.append(
            Point(
                latency_metric,
                resource_type,
                dict(resource_labels),
                {},
                when,
                latencies_ms=list(latencies_ms),
            )
        )

    def serve(self, http_method: str, path: str, query: dict[str, str]) -> dict[str, Any]:
        """A request to monitoring v3 (PATH after /monitoring/), checked against the API's
        discovery document first; repeated query parameters joined by commas."""
        discovery = load_document("monitoring", "v3")
        method, params = discovery.route(http_method, path)
        query = {k: v for k, v in query.items() if k not in ("alt", "prettyPrint")}
        discovery.check_parameters(method, params, query)
        if method.id != "monitoring.projects.timeSeries.list":
            raise ApiError(501, "notImplemented", f"{method.id} is not implemented by the fake")
        found = self.list_time_series(params["name"].removeprefix("projects/"), query)
        start = int(query.get("pageToken") or 0)
        answer: dict[str, Any] = {"timeSeries": found[start : start + self.PAGE_SIZE]}
        if start + self.PAGE_SIZE < len(found):
            answer["nextPageToken"] = str(start + self.PAGE_SIZE)
        return answer

    def list_time_series(self, project: str, query: dict[str, str]) -> list[dict[str, Any]]:
        terms = parse_filter(query.get("filter") or "")
        if "interval.endTime" not in query:
            raise invalid("Field interval.endTime had an invalid value: required")
        end = parse_time(query["interval.endTime"], "interval.endTime")
        start = parse_time(query.get("interval.startTime") or query["interval.endTime"], "start")
        if start > end:
            raise invalid("The start time must be before the end time")
        aligner = query.get("aggregation.perSeriesAligner", "ALIGN_NONE")
        reducer = query.get("aggregation.crossSeriesReducer", "REDUCE_NONE")
        groups = [g for g in (query.get("aggregation.groupByFields") or "").split(",") if g]
        period_text = query.get("aggregation.alignmentPeriod", "")
        aggregated = aligner != "ALIGN_NONE" or reducer != "REDUCE_NONE"
        if aggregated and (
            not re.fullmatch(r"\d+(\.\d+)?s", period_text) or float(period_text[:-1]) < 60
        ):
            raise invalid("The alignment period must be at least 60s")
        if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
            raise invalid("A cross-series reducer requires a per-series aligner")
        if groups and reducer == "REDUCE_NONE":
            raise invalid("groupByFields requires a cross-series reducer")
        if (aligner, reducer) not in {("ALIGN_DELTA", "REDUCE_SUM")}:
            raise invalid(f"the fake answers ALIGN_DELTA with REDUCE_SUM only, not {aligner}")
        period = float(period_text[:-1])
        chosen = [
            p
            for p in self.points
            if p.value_of("resource.labels.project_id") in ("", project)
            and all(p.value_of(k) == v for k, v in terms.items())
            and start < p.at <= end
        ]
        grouped: dict[tuple, dict[int, list[Point]]] = {}
        for point in chosen:
            key = tuple(point.value_of(g) for g in groups)
            slot = math.floor((end - point.at).total_seconds() / period)
            grouped.setdefault(key, {}).setdefault(slot, []).append(point)
        series = []
        for key, slots in sorted(grouped.items()):
            labels = dict(zip(groups, key, strict=True))
            any_point = next(iter(slots.values()))[0]
            points = []
            for slot, found in sorted(slots.items()):
                value = (
                    {"distributionValue": distribution([v for p in found for v in p.latencies_ms])}
                    if any_point.distribution
                    else {"int64Value": str(sum(p.count for p in found))}
                )
                slot_end = end.timestamp() - slot * period
                points.append(
                    {
                        "interval": {
                            "startTime": stamp(slot_end - period),
                            "endTime": stamp(slot_end),
                        },
                        "value": value,
                    }
                )
            series.append(
                {
                    "metric": {
                        "type": terms["metric.type"],
                        "labels": picked(labels, "metric"),
                    },
                    "resource": {
                        "type": terms.get("resource.type", any_point.resource_type),
                        "labels": picked(labels, "resource"),
                    },
                    "metricKind": "DELTA",
                    "valueType": "DISTRIBUTION" if any_point.distribution else "INT64",
                    "points": points,
                }
            )
        return series


def query_of(text: str) -> dict[str, str]:
    """A query string's parameters; a repeated one (aggregation.groupByFields) joined by
    commas."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        found[name] = f"{found[name]},{value}" if name in found else value
    return found


def picked(labels: dict[str, str], kind: str) -> dict[str, str]:
    return {k.split(".labels.")[1]: v for k, v in labels.items() if k.startswith(f"{kind}.")}


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
