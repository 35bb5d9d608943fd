"""The managed targets' canary gate (services/canary.py) on its own: the window waited,
the verdict's rule, the wording of a failure, and the per-run override."""

from dataclasses import replace

import pytest

from mlops_vm.metrics import Figures
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.canary import observe, rolled_back, with_canary
from mlops_vm.services.ecs.canary import canary_count
from mlops_vm.services.settings import CanaryConfig, LambdaServiceConfig, parse_options

OLD = Figures(900, 9, 300, p50_ms=30, p99_ms=80)


def test_the_window_is_waited_then_both_sides_read():
    waited: list[float] = []
    asked: list[float] = []

    def read(window_s: float) -> tuple[Figures, Figures]:
        asked.append(window_s)
        return OLD, Figures(100, 1, 300, p50_ms=31, p99_ms=85)

    judged = observe(CanaryConfig(enabled=True, window_s=300), read, sleep=waited.append)
    assert waited == [300] and asked == [300]
    assert judged.holds and judged.verdict.promote
    assert "held: 100 requests, 1.0% 5xx, p99 85 ms against 900 requests" in judged.note("v2")


def test_a_worse_canary_fails_naming_the_figures():
    worse = Figures(100, 10, 300, p50_ms=30, p99_ms=400)
    judged = observe(CanaryConfig(window_s=0), lambda w: (OLD, worse), sleep=lambda s: None)
    assert not judged.holds
    error = rolled_back("version 7", judged, "aws", "version 6")
    assert error.code == ErrorCode.CANARY
    assert "5xx share 10.0% against 1.0%" in error.message
    assert "p99 latency 400 ms against 80 ms" in error.message
    assert error.message.endswith("traffic is back on version 6")


def test_a_quiet_window_is_not_judged_and_the_release_goes_on():
    quiet = Figures(3, 3, 300)
    judged = observe(CanaryConfig(window_s=0), lambda w: (OLD, quiet), sleep=lambda s: None)
    assert judged.holds and not judged.verdict.enough_traffic
    assert "not judged: too few requests" in judged.note("v2")


class Platform:
    """A target as with_canary sees it."""

    def __init__(self, name: str, has_canary: bool) -> None:
        self.name, self.cloud, self.has_canary = name, "aws", has_canary


def test_deploy_can_turn_the_canary_on_or_off_for_one_run():
    spec = ServiceSpec(env="e", name="f", image="i", options={"canary_percent": 10})
    function = Platform("lambda", True)
    assert with_canary(function, spec, None) is spec
    on = with_canary(function, spec, True)
    found = parse_options(LambdaServiceConfig, on.options, "service.lambda")
    assert found.canary.enabled and found.canary_percent == 10
    configured = replace(spec, options={**spec.options, "canary": {"window_s": 60}})
    off = with_canary(function, configured, False)
    assert off.options["canary"] == {"window_s": 60, "enabled": False}
    assert configured.options["canary"] == {"window_s": 60}  # the environment's unchanged


def test_a_target_without_a_canary_refuses_canary_and_ignores_no_canary():
    other = Platform("static", False)
    spec = ServiceSpec(env="e", name="f", image="i")
    assert with_canary(other, spec, False) is spec
    with pytest.raises(ProvisionError) as refused:
        with_canary(other, spec, True)
    assert refused.value.code == ErrorCode.INVALID_INPUT and "static" in refused.value.message


@pytest.mark.parametrize(("desired", "percent", "tasks"), [(4, 10, 1), (20, 10, 2), (1, 50, 1)])
def test_the_ecs_canary_runs_its_share_of_the_tasks_and_at_least_one(desired, percent, tasks):
    assert canary_count(desired, percent) == tasks
