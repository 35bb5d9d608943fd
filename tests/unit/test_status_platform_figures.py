"""What `status` makes of a platform's figures: one line per place in the summary, the
JSON as Figures.as_json(), and a metrics service that cannot be read named without
failing the status."""

from mlops_vm.commands.status import figures_rows, platform_figures
from mlops_vm.metrics import Figures
from mlops_vm.provision import ErrorCode, ProvisionError


def test_each_place_is_a_line_and_json_carries_the_figures():
    def read(env: str, window_s: float) -> dict[str, Figures]:
        assert (env, window_s) == ("prod", 120)
        return {
            "revision r-2": Figures(240, 12, 120, p50_ms=20, p99_ms=180),
            "slot staging": Figures(60, 0, 120, mean_ms=35),
        }

    payload = platform_figures(read, "prod", 120)
    assert payload["platform_figures"]["revision r-2"]["error_share"] == 0.05
    assert payload["platform_figures"]["slot staging"]["mean_ms"] == 35
    assert dict(figures_rows(payload)) == {
        "revision r-2": "120 s: 2.0 req/s, 5xx 5.0%, p50 20 ms, p99 180 ms",
        "slot staging": "120 s: 0.5 req/s, 5xx 0.0%, mean 35 ms",
    }


def test_no_figures_add_nothing():
    assert platform_figures(lambda env, window_s: {}, "prod", 60) == {}
    assert figures_rows({}) == []


def test_an_unreadable_metrics_service_is_named_not_fatal():
    def read(env: str, window_s: float) -> dict[str, Figures]:
        raise ProvisionError(
            ErrorCode.PERMISSION, "not allowed: cloudwatch:GetMetricData", provider="aws"
        )

    payload = platform_figures(read, "prod", 60)
    assert "cloudwatch:GetMetricData" in payload["platform_figures_error"]
    assert dict(figures_rows(payload))["figures"].startswith("not read: ")
