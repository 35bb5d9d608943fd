"""moto's CloudWatch taught the extended statistics (p50, p99, pNN.N): moto answers only
Sum, Average, Minimum, Maximum and SampleCount and fails to serialise a percentile.
CloudWatch's percentile of raw values is the nearest-rank one over the period's values
(each PutMetricData Values[i] counted Counts[i] times, which moto stores one by one)."""

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


def nearest_rank(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


@contextmanager
def extended_statistics() -> Iterator[None]:
    """Within: moto's GetMetricData answers pNN statistics (the server runs in-process)."""
    from moto.cloudwatch.models import Statistics

    answer = Statistics.get_statistics_for_type

    def with_percentiles(self: Statistics, stat: str):  # type: ignore[no-untyped-def]
        match = PERCENTILE.match(stat)
        if match is None:
            return answer(self, stat)
        return nearest_rank(self.metric_single_values_list, float(match.group(1)))

    patch = pytest.MonkeyPatch()
    patch.setattr(Statistics, "get_statistics_for_type", with_percentiles)
    try:
        yield
    finally:
        patch.undo()
