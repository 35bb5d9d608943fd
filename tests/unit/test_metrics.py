"""Figures from counters, quantiles as PromQL computes them, and the canary rule."""

import math

import pytest

from mlops_vm.metrics import CanaryThresholds, Counters, Figures, judge, quantile

INF = math.inf


def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile() -> None:
    buckets = [(0.1, 50.0), (0.2, 90.0), (0.5, 100.0), (INF, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.7, buckets) == pytest.approx(0.15)
    assert quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * 9 / 10)
    assert quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None


def test_quantile_in_the_inf_bucket_is_the_largest_finite_bound() -> None:
    assert quantile(0.99, [(0.1, 10.0), (1.0, 20.0), (INF, 100.0)]) == 1.0


def test_figures_of_a_window_from_two_readings() -> None:
    before = Counters(100, 2, {0.1: 90, 1.0: 100, INF: 100})
    after = Counters(700, 32, {0.1: 590, 1.0: 700, INF: 700})
    figures = Figures.between(before, after, seconds=60)
    assert figures.requests == 600 and figures.errors == 30
    assert figures.rate == pytest.approx(10.0)
    assert figures.error_share == pytest.approx(0.05)
    assert figures.p50_ms == pytest.approx(60.0)
    assert figures.as_json()["requests_per_s"] == 10.0


def test_a_reset_counter_counts_from_zero() -> None:
    window = Counters(5, 1, {INF: 5}).since(Counters(500, 10, {INF: 500}))
    assert (window.requests, window.errors) == (5, 1)


def test_counters_add_up_across_hosts() -> None:
    total = Counters.total([Counters(1, 0, {0.1: 1, INF: 1}), Counters(2, 1, {INF: 2})])
    assert total == Counters(3, 1, {0.1: 1, INF: 3})


def window(requests: float, errors: float, p99_ms: float) -> Figures:
    return Figures(requests, errors, 60, p50_ms=p99_ms / 3, p99_ms=p99_ms)


def test_the_canary_holds_when_it_serves_like_the_baseline() -> None:
    verdict = judge(
        baseline=window(600, 0, 90), canary=window(300, 1, 110), thresholds=CanaryThresholds()
    )
    assert verdict.promote and verdict.enough_traffic and not verdict.reasons


def test_a_worse_error_rate_fails_the_canary_naming_the_figures() -> None:
    verdict = judge(
        baseline=window(600, 0, 90), canary=window(300, 38, 95), thresholds=CanaryThresholds()
    )
    assert not verdict.promote and verdict.enough_traffic
    assert "5xx share 12.7% against 0.0%" in str(verdict)


def test_a_slower_canary_fails_on_p99() -> None:
    verdict = judge(
        baseline=window(600, 0, 90), canary=window(300, 0, 280), thresholds=CanaryThresholds()
    )
    assert not verdict.promote
    assert "p99 latency 280 ms against 90 ms" in str(verdict)


def test_too_little_traffic_is_not_judged() -> None:
    verdict = judge(
        baseline=window(600, 0, 90), canary=window(10, 5, 900), thresholds=CanaryThresholds()
    )
    assert not verdict.promote and not verdict.enough_traffic
    assert "too few requests" in str(verdict)
