"""The Prometheus endpoints read into Counters and Figures, and what is built on them: the
canary decision of a VM release (its filter, its settings), the figures `status` reports and
the view `top` renders. The texts are the exporters' own: the model hosts' exporter renders
them (its `exposition`), HAProxy's are a recorded answer of the Debian 12 package's exporter."""

import json

import pytest
from rich.console import Console

from mlops_vm import paths
from mlops_vm.commands.status import figures_json, host_summary, metrics_windows
from mlops_vm.commands.top import render
from mlops_vm.environment.config import CanaryConfig, ConfigError
from mlops_vm.environment.load import load_environment
from mlops_vm.metrics.prometheus import read_host_metrics, read_lb_servers
from mlops_vm.release.canary import decide
from mlops_vm.release.hosts import HostReading
from plugins.filter.mlops_vm_release import mlops_vm_canary_decision, mlops_vm_canary_settings
from tests.environments import make_environment
from tests.source_files import load_source_file

EXPORTER = paths.PROJECT_DIR / "roles/nginx_proxy/files/mlops-vm-request-metrics"
HAPROXY_ANSWER = """\
# HELP haproxy_server_http_responses_total Total number of HTTP responses.
# TYPE haproxy_server_http_responses_total counter
haproxy_server_http_responses_total{proxy="model_service",server="model-1",code="1xx"} 0
haproxy_server_http_responses_total{proxy="model_service",server="model-1",code="2xx"} 590
haproxy_server_http_responses_total{proxy="model_service",server="model-1",code="5xx"} 10
haproxy_server_http_responses_total{proxy="model_service",server="model-2",code="2xx"} 600
haproxy_server_http_responses_total{proxy="other",server="x",code="2xx"} 7
# HELP haproxy_server_status Current status of the server.
# TYPE haproxy_server_status gauge
haproxy_server_status{proxy="model_service",server="model-1",state="UP"} 1
"""


def load_exporter():
    return load_source_file("request_metrics", EXPORTER)


exporter = load_exporter()


def text(host: str, at: float, *answers: tuple[str, int, float, int]) -> str:
    """The exporter's answer for HOST at time AT after ANSWERS (release, status, seconds, n)."""
    counts = exporter.Counts()
    for release, status, seconds, n in answers:
        for _ in range(n):
            counts.add(release, status, seconds)
    return exporter.exposition(host, counts, at)


def test_a_host_reading_per_release_with_its_histogram_and_time():
    readings = read_host_metrics(text("m1", 1000.0, ("1.0", 200, 0.004, 9), ("1.0", 503, 0.2, 1)))
    reading = readings["m1"]
    assert reading.taken_at == 1000.0
    counters = reading.releases["1.0"]
    assert (counters.requests, counters.errors) == (10, 1)
    assert counters.buckets[0.005] == 9 and counters.buckets[float("inf")] == 10


def test_release_labels_are_escaped_and_parse_back():
    readings = read_host_metrics(text("m1", 1.0, ('a"b\\c', 200, 0.01, 1)))
    assert set(readings["m1"].releases) == {'a"b\\c'}


def test_haproxy_servers_of_the_backend_only():
    servers = read_lb_servers(HAPROXY_ANSWER, "model_service")
    assert set(servers) == {"model-1", "model-2"}
    assert (servers["model-1"].requests, servers["model-1"].errors) == (600, 10)


def windows(canary: tuple, baseline: tuple) -> tuple[dict, dict]:
    """Texts at a window's start (nothing served yet) and 60 s later."""
    start = {"m1": text("m1", 0.0), "m2": text("m2", 0.0)}
    end = {"m1": text("m1", 60.0, *canary), "m2": text("m2", 60.0, *baseline)}
    return start, end


def test_an_erroring_canary_does_not_go_on_and_says_why_in_figures():
    start, end = windows(
        canary=(("1.1", 200, 0.004, 280), ("1.1", 500, 0.004, 40)),
        baseline=(("1.0", 200, 0.004, 300),),
    )
    decision = mlops_vm_canary_decision(start, end, ["m1"], ["m2"], {"min_requests": 20})
    assert decision["go_on"] is False and decision["enough_traffic"] is True
    assert "5xx share 12.5% against 0.0% on the old release" in decision["summary"]
    assert decision["canary"]["requests"] == 320 and decision["baseline"]["requests"] == 300
    assert decision["canary"]["requests_per_s"] == pytest.approx(320 / 60, abs=0.001)


def test_a_slow_canary_does_not_go_on_naming_p99():
    start, end = windows(canary=(("1.1", 200, 0.4, 100),), baseline=(("1.0", 200, 0.004, 100),))
    thresholds = CanaryConfig(min_requests=20).thresholds()
    decision = decide(start, end, canary_hosts=["m1"], baseline_hosts=["m2"], thresholds=thresholds)
    assert not decision.holds and "p99 latency" in str(decision.verdict)


def test_a_canary_as_good_as_the_old_release_goes_on():
    start, end = windows(canary=(("1.1", 200, 0.004, 100),), baseline=(("1.0", 200, 0.004, 99),))
    decision = mlops_vm_canary_decision(start, end, ["m1"], ["m2"], {"min_requests": 20})
    assert decision["go_on"] and decision["promote"]


def test_a_quiet_window_goes_on_without_a_judgement():
    start, end = windows(canary=(("1.1", 500, 0.004, 5),), baseline=(("1.0", 200, 0.004, 5),))
    decision = mlops_vm_canary_decision(start, end, ["m1"], ["m2"], {})
    assert decision["go_on"] and not decision["promote"] and not decision["enough_traffic"]
    assert "too few requests" in decision["summary"]


def test_canary_settings_have_defaults_and_refuse_bad_values():
    settings = mlops_vm_canary_settings({})
    assert settings == {
        "enabled": False,
        "window_s": 120,
        "max_error_share_increase": 0.01,
        "max_p99_ratio": 1.5,
        "min_requests": 50,
    }
    with pytest.raises(Exception, match="max_p99_ratio"):
        mlops_vm_canary_settings({"max_p99_ratio": 0.5})


def test_a_bad_canary_setting_names_the_field_and_the_file(tmp_path):
    directory = make_environment(
        tmp_path, "bad-canary", {"release": {"canary": {"max_p99_ratio": 0.5}}}
    )
    with pytest.raises(ConfigError, match=r"mlops_vm\.release\.canary\.max_p99_ratio") as raised:
        load_environment(directory)
    assert "mlops_vm.yml" in str(raised.value)


def status_readings() -> dict[str, HostReading]:
    """Two hosts read by status: one during a release (both releases), one without metrics."""
    a_minute_ago = text("m1", 0.0, ("1.0", 200, 0.004, 100))
    now = text("m1", 60.0, ("1.0", 200, 0.004, 400), ("1.1", 500, 0.02, 30), ("1.1", 200, 0.02, 90))
    return {
        "m1": HostReading("m1", metrics=(a_minute_ago, now)),
        "m2": HostReading("m2", metrics_error="connection refused"),
    }


def test_status_figures_per_host_and_release():
    windows_ = metrics_windows(status_readings())
    assert set(windows_) == {"m1"}
    figures = figures_json(windows_, 60)
    assert figures["total"]["requests"] == 420
    assert figures["releases"]["1.0"]["requests_per_s"] == 5.0
    assert figures["releases"]["1.1"]["error_share"] == 0.25
    json.dumps(figures)  # --json carries them as they are


def payload() -> dict:
    figures = figures_json(metrics_windows(status_readings()), 60)
    row = {
        "name": "m1",
        "role": "model",
        "status": "running",
        "address": "10.0.0.2",
        "healthy": True,
        "health": "",
        "running_image": "registry/model:1.1",
        "previous_image": "registry/model:1.0",
        "deployed_by": "deploy",
        "deployed_at": "now",
        "replicas_ready": 1,
        "replicas": 1,
        "figures": figures["total"],
    }
    return {
        "env": "e",
        "release": "registry/model:1.1",
        "inventory_image": "registry/model:1.1",
        "instances": [row],
        "figures": figures,
        "problems": [],
    }


def test_status_prints_the_figures_of_hosts_and_releases():
    rows = dict(host_summary(payload()))
    assert "60 s: 7.0 req/s, 5xx 7.1%" in rows["m1"]
    assert rows["release 1.1"].startswith("60 s: 2.0 req/s, 5xx 25.0%, p50 ")


def test_top_renders_a_row_per_host_and_release():
    console = Console(width=120, record=True)
    console.print(render(payload(), refreshed_at="12:00:00"))
    screen = console.export_text()
    assert "environment e, last 60 s" in screen
    assert "model:1.1" in screen and "healthy" in screen
    # Each table row: its first cell, then the rest.
    lines = {
        cells[0]: cells
        for line in screen.splitlines()
        if len(cells := line.replace("│", " ").split()) > 1
    }
    assert lines["1.1"][1:3] == ["2.0", "25.0%"] and lines["1.0"][1:3] == ["5.0", "0.0%"]
    assert lines["all"][-1] == "420" and lines["m1"][-1] == "420"
    assert "refreshed 12:00:00" in screen
