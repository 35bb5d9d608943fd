"""Request figures from CloudWatch (GetMetricData): the ALB target group (RequestCount,
HTTPCode_Target_5XX_Count, TargetResponseTime), Lambda per version behind its alias
(Invocations, Errors, Duration), each series summed over the window, its latency as the
p50 / p99 extended statistics and the average.

CloudWatch keeps these per minute: a window is read as whole minutes, the last ending now.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_vm.metrics import Figures
from mlops_vm.metrics.window import whole_minutes
from mlops_vm.provision.aws import load_balancer
from mlops_vm.provision.aws.client import AwsContext

QUERIES_PER_CALL = 500  # GetMetricData's limit


@dataclass(frozen=True)
class MetricNames:
    """What a namespace calls the requests, the 5xx answers and the latency."""

    namespace: str
    requests: str
    errors: str
    latency: str
    latency_to_ms: float  # TargetResponseTime is in seconds, Lambda's Duration in ms


ALB_TARGET_GROUP = MetricNames(
    "AWS/ApplicationELB", "RequestCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime", 1000.0
)
# A function's errors are its failed invocations (a crash, a timeout, out of memory); a 5xx
# the model answers through the adapter is a successful invocation, and Lambda counts the
# function URL's 5xx per alias only, not per version.
LAMBDA = MetricNames("AWS/Lambda", "Invocations", "Errors", "Duration", 1.0)

# (suffix of the query id, metric attribute of MetricNames, statistic)
STATISTICS = (
    ("requests", "requests", "Sum"),
    ("errors", "errors", "Sum"),
    ("p50", "latency", "p50"),
    ("p99", "latency", "p99"),
    ("mean", "latency", "Average"),
)


def figures(
    ctx: AwsContext,
    names: MetricNames,
    series: Mapping[str, Mapping[str, str]],
    window_s: float,
    *,
    now: datetime | None = None,
) -> dict[str, Figures]:
    """Figures over the last WINDOW_S for each of SERIES (a label -> the metric's
    dimensions), from one GetMetricData per 500 queries."""
    period = whole_minutes(window_s)
    end = now or datetime.now(UTC)
    queries: list[dict[str, Any]] = []
    ids: dict[str, tuple[str, str]] = {}  # query id -> (label, suffix)
    for index, (label, dimensions) in enumerate(series.items()):
        for suffix, attribute, stat in STATISTICS:
            query_id = f"s{index}{suffix}"
            ids[query_id] = (label, suffix)
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": names.namespace,
                            "MetricName": getattr(names, attribute),
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": period,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    values: dict[str, dict[str, list[float]]] = {label: {} for label in series}
    for start in range(0, len(queries), QUERIES_PER_CALL):
        for result in read_all(ctx, queries[start : start + QUERIES_PER_CALL], end, period):
            label, suffix = ids[result["Id"]]
            values[label].setdefault(suffix, []).extend(result.get("Values", []))
    return {label: as_figures(found, names, period) for label, found in values.items()}


def read_all(
    ctx: AwsContext, queries: list[dict[str, Any]], end: datetime, period: int
) -> list[dict[str, Any]]:
    """Every MetricDataResult of QUERIES over the PERIOD ending at END (pages followed)."""
    results: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        extra = {"NextToken": token} if token else {}
        page = ctx.call(
            "cloudwatch",
            "get_metric_data",
            "read request metrics",
            MetricDataQueries=queries,
            StartTime=end - timedelta(seconds=period),
            EndTime=end,
            **extra,
        )
        results += page.get("MetricDataResults", [])
        token = page.get("NextToken")
        if not token:
            return results


def as_figures(found: dict[str, list[float]], names: MetricNames, period: int) -> Figures:
    def latency(suffix: str) -> float | None:
        # One period covers the window: its one value (the first, should there be more).
        points = found.get(suffix) or []
        return points[0] * names.latency_to_ms if points else None

    return Figures(
        requests=sum(found.get("requests", [])),
        errors=sum(found.get("errors", [])),
        seconds=float(period),
        p50_ms=latency("p50"),
        p99_ms=latency("p99"),
        mean_ms=latency("mean"),
    )


def target_group_dimensions(target_group_arn: str, load_balancer_arn: str) -> dict[str, str]:
    """The ALB's dimensions of a target group: the ARNs' suffixes
    (targetgroup/<name>/<id>, app/<name>/<id>)."""
    return {
        "TargetGroup": target_group_arn.split(":")[-1],
        "LoadBalancer": load_balancer_arn.split(":loadbalancer/")[-1],
    }


def load_balancer_figures(ctx: AwsContext, env: str, window_s: float) -> dict[str, Figures]:
    """ENV's ALB target groups' figures ('target group NAME'). CloudWatch counts an ALB's
    requests per target group and zone, not per target: there are no per-instance figures
    (EC2's own metrics have no requests)."""
    series = {
        f"target group {group['TargetGroupName']}": target_group_dimensions(
            group["TargetGroupArn"], group["LoadBalancerArns"][0]
        )
        for group in load_balancer.tagged_target_groups(ctx, env)
        if group.get("LoadBalancerArns")
    }
    return figures(ctx, ALB_TARGET_GROUP, series, window_s) if series else {}
