"""Azure Monitor's platform metrics in the fake ARM: GET <resource id>/providers/
Microsoft.Insights/metrics over series a test records per resource (a site, a slot, an
application gateway), the way the platform writes them: one value per minute.

What Azure Monitor checks and the fake does too: the resource exists, every name in
metricnames is one of the resource type's metric definitions (the error names the valid
ones), the aggregations are known, the timespan is start/end in ISO 8601 with start before
end and the interval an ISO 8601 duration. The answer is the Response shape of api-version
2024-02-01: per metric one time series, one point per interval from the start rounded down
to it, Total and Average as asked.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.fakes.azure.state import ArmError, Json

# A resource type's metric definitions: name -> (unit, the dimensions it is split by).
DEFINITIONS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "microsoft.web/sites": {
        "Requests": ("Count", ("Instance",)),
        "Http5xx": ("Count", ("Instance",)),
        "Http4xx": ("Count", ("Instance",)),
        "Http2xx": ("Count", ("Instance",)),
        "HttpResponseTime": ("Seconds", ("Instance",)),
        "CpuTime": ("Seconds", ("Instance",)),
    },
    "microsoft.network/applicationgateways": {
        "TotalRequests": ("Count", ("BackendSettingsPool",)),
        "FailedRequests": ("Count", ("BackendSettingsPool",)),
        "BackendResponseStatus": (
            "Count",
            ("BackendServer", "BackendPool", "BackendHttpSetting", "HttpStatusGroup"),
        ),
        "BackendLastByteResponseTime": (
            "MilliSeconds",
            ("BackendServer", "BackendPool", "BackendHttpSetting"),
        ),
    },
}
DEFINITIONS["microsoft.web/sites/slots"] = DEFINITIONS["microsoft.web/sites"]
FILTER_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
AGGREGATIONS = {"total", "average", "count", "minimum", "maximum", "none"}
DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


@dataclass
class Sample:
    resource_id: str  # lower-cased
    name: str
    at: datetime
    value: float
    dimensions: dict[str, str]


def parse_filter(text: str) -> dict[str, str]:
    """`A eq 'x' and B eq '*'` -> {A: x, B: *} (the conjunctions this fake reads)."""
    terms: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if text else []:
        match = FILTER_TERM.match(part)
        if match is None:
            raise ArmError(400, "BadRequest", f"Invalid $filter: {text}")
        terms[match.group(1)] = match.group(2)
    return terms


def parse_time(text: str) -> datetime:
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ArmError(400, "BadRequest", f"Invalid timespan: {text}") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def parse_interval(text: str) -> timedelta:
    match = DURATION.match(text or "PT1M")
    if match is None or not any(match.groups()):
        raise ArmError(400, "BadRequest", f"Invalid interval {text}: an ISO 8601 duration")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


class Insights:
    """The metrics of one fake ARM (SAMPLES: the state's, kept behind its lock)."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def record(
        self,
        resource_id: str,
        name: str,
        value: float,
        at: datetime,
        dimensions: dict[str, str] | None = None,
    ) -> None:
        self.samples.append(Sample(resource_id.lower(), name, at, value, dict(dimensions or {})))

    def metrics(self, resource_id: str, type_name: str, region: str, query: dict[str, str]) -> Json:
        definitions = DEFINITIONS.get(type_name.lower())
        if definitions is None:
            raise ArmError(
                400, "ResourceNotSupported", f"{type_name} has no metric definitions here"
            )
        names = [n for n in (query.get("metricnames") or "").split(",") if n]
        unknown = [n for n in names if n not in definitions]
        if unknown:
            raise ArmError(
                400,
                "BadRequest",
                f"Failed to find metric configuration for provider: {type_name}, metric: "
                f"{unknown[0]}, Valid metrics: {', '.join(definitions)}",
            )
        aggregations = [
            a.strip().lower() for a in (query.get("aggregation") or "average").split(",")
        ]
        if not set(aggregations) <= AGGREGATIONS:
            raise ArmError(400, "BadRequest", f"Invalid aggregation {query.get('aggregation')}")
        start_text, _, end_text = (query.get("timespan") or "").partition("/")
        if not end_text:
            raise ArmError(400, "BadRequest", "timespan must be start/end")
        start, end = parse_time(start_text), parse_time(end_text)
        if start >= end:
            raise ArmError(400, "BadRequest", "The timespan's start must be before its end")
        grain = parse_interval(query.get("interval") or "PT1M")
        terms = parse_filter(query.get("$filter") or "")
        for name in names:
            undefined = set(terms) - set(definitions[name][1])
            if undefined:
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Metric: {name} does not support requested dimension combination: "
                    f"{', '.join(sorted(undefined))}",
                )
        split = [d for d, v in terms.items() if v == "*"]
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first = epoch + ((start - epoch) // grain) * grain  # rounded down to the grain
        value = []
        for name in names or list(definitions)[:1]:
            chosen = [
                sample
                for sample in self.samples
                if sample.resource_id == resource_id.lower()
                and sample.name == name
                and first <= sample.at < end
                and all(v == "*" or sample.dimensions.get(d) == v for d, v in terms.items())
            ]
            groups: dict[tuple[str, ...], list[Sample]] = {}
            for sample in chosen:
                groups.setdefault(tuple(sample.dimensions.get(d, "") for d in split), []).append(
                    sample
                )
            if not split:
                groups.setdefault((), [])  # unsplit: one series, empty minutes included
            timeseries = [
                {
                    "metadatavalues": [
                        {"name": {"value": d, "localizedValue": d}, "value": v}
                        for d, v in zip(split, key, strict=True)
                    ],
                    "data": minutes(found, first, end, grain, aggregations),
                }
                for key, found in sorted(groups.items())
            ]
            value.append(
                {
                    "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{name}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": name, "localizedValue": name},
                    "displayDescription": "",
                    "unit": definitions[name][0],
                    "timeseries": timeseries,
                    "errorCode": "Success",
                }
            )
        return {
            "cost": 0,
            "timespan": query["timespan"],
            "interval": query.get("interval") or "PT1M",
            "value": value,
            "namespace": type_name,
            "resourceregion": region,
        }


def minutes(
    samples: list[Sample],
    first: datetime,
    end: datetime,
    grain: timedelta,
    aggregations: list[str],
) -> list[Json]:
    """One point per GRAIN from FIRST to END: the samples' Total / Average / Count."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    buckets: dict[datetime, list[float]] = {}
    for sample in samples:
        buckets.setdefault(epoch + ((sample.at - epoch) // grain) * grain, []).append(sample.value)
    data = []
    slot = first
    while slot < end:
        point: Json = {"timeStamp": slot.strftime("%Y-%m-%dT%H:%M:%SZ")}
        found = buckets.get(slot, [])
        if "total" in aggregations:
            point["total"] = float(sum(found))
        if "average" in aggregations and found:
            point["average"] = sum(found) / len(found)
        if "count" in aggregations:
            point["count"] = float(len(found))
        data.append(point)
        slot += grain
    return data
