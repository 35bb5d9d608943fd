"""The local autoscaler's decision (provision/local/scaling.py): readings -> desired count."""

import math

import pytest

from mlops_vm.provision.local.scaling import Decision, Policy, Readings, RequestWindow, decide

POLICY = Policy(
    min_size=1,
    max_size=3,
    target_requests_per_instance=10.0,
    scale_out_cooldown_s=5.0,
    scale_in_cooldown_s=20.0,
)
LONG_AGO = math.inf


def decision(readings: Readings, desired: int, out_s: float = LONG_AGO, in_s: float = LONG_AGO):
    return decide(POLICY, readings, desired, since_scale_out_s=out_s, since_scale_in_s=in_s)


@pytest.mark.parametrize(
    ("rate", "desired", "expected"),
    [
        (5.0, 1, 1),  # under the target: stays
        (10.0, 1, 1),  # exactly at the target: no extra instance
        (10.5, 1, 2),
        (25.0, 1, 3),
        (60.0, 1, 3),  # capped at max
        (0.0, 3, 1),  # idle: back to min
        (15.0, 3, 2),
    ],
)
def test_target_tracking_on_requests_per_instance(rate, desired, expected):
    result = decision(Readings(in_service=desired, requests_per_s=rate), desired)
    assert result.desired == expected
    if expected != desired:
        assert "target tracking" in result.reason and f"{rate:.1f} requests/s" in result.reason


def test_cooldowns_hold_the_size():
    busy = Readings(in_service=1, requests_per_s=30.0)
    assert decision(busy, 1, out_s=2.0).desired == 1
    assert "scale-out cooldown" in decision(busy, 1, out_s=2.0).reason
    assert decision(busy, 1, out_s=6.0).desired == 3
    idle = Readings(in_service=3, requests_per_s=0.0)
    # Scale-in waits for its own, longer cooldown after any scaling.
    assert decision(idle, 3, out_s=10.0).desired == 3
    assert decision(idle, 3, out_s=21.0, in_s=21.0).desired == 1


def test_size_limits_win_over_the_metric_and_cooldowns():
    result = decision(Readings(in_service=5, requests_per_s=100.0), 5, out_s=0.0, in_s=0.0)
    assert result == Decision(3, "size limits min 1 / max 3")
    assert decision(Readings(in_service=0, requests_per_s=0.0), 0, out_s=0.0).desired == 1


def test_the_larger_of_the_cpu_and_request_policies_wins():
    both = Policy(min_size=1, max_size=4, target_requests_per_instance=10.0, target_cpu_percent=50)
    hot = Readings(in_service=2, requests_per_s=5.0, cpu_percent=90.0)
    result = decide(both, hot, 2, since_scale_out_s=LONG_AGO, since_scale_in_s=LONG_AGO)
    assert result.desired == 4 and "CPU 90%" in result.reason
    # No CPU reading: the request policy alone.
    cold = Readings(in_service=2, requests_per_s=5.0)
    assert decide(both, cold, 2, since_scale_out_s=LONG_AGO, since_scale_in_s=LONG_AGO).desired == 1


def test_request_window_rate_and_counter_reset():
    window = RequestWindow(window_s=10.0)
    assert window.rate() == 0.0
    for second in range(0, 31):
        window.add(float(second), second * 20)
    assert window.rate() == pytest.approx(20.0)
    assert window.samples[-1][0] - window.samples[0][0] <= 11.0  # only the window is kept
    window.add(31.0, 5)  # HAProxy restarted: counters from zero
    assert window.rate() == 0.0
    window.add(33.0, 25)
    assert window.rate() == pytest.approx(10.0)
