"""The Azure provider's figures per model host from Azure Monitor: the Application
Gateway's BackendResponseStatus (split by BackendServer and HttpStatusGroup) and
BackendLastByteResponseTime (an average, split by BackendServer), each backend address
named by the instance that has it. Against the fake ARM (the gateway and VMs the provider
makes; Microsoft.Insights metrics over series recorded per backend server, held to Azure
Monitor's dimension rules)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from mlops_vm.commands.status import figures_rows, platform_figures
from tests.providers.test_azure import (  # fixtures shared with the provider's tests
    certificate,
    env,
    fleet_spec,
    lb_spec,
    provider,
)

__all__ = ["certificate", "env", "fleet_spec", "lb_spec", "provider"]

pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")


def gateway_of(arm, env: str) -> dict:
    return next(
        r
        for r in arm.resources("Microsoft.Network/applicationGateways")
        if r["tags"].get("mlops-vm-env") == env
    )


def test_figures_per_host_behind_the_gateway(provider, arm, fleet_spec, lb_spec, env):
    fleet = provider.ensure_fleet(fleet_spec(2))
    provider.ensure_load_balancer(lb_spec, fleet)
    gateway = gateway_of(arm, env)
    first, second = fleet.instances
    for server, ok, failed, ms in (
        (first.private_ip, 594, 6, 40.0),
        (second.private_ip, 300, 0, 90.0),
    ):
        status = "BackendResponseStatus"
        arm.record_metric(gateway["id"], status, ok, BackendServer=server, HttpStatusGroup="2xx")
        arm.record_metric(
            gateway["id"], status, failed, BackendServer=server, HttpStatusGroup="5xx"
        )
        arm.record_metric(gateway["id"], "BackendLastByteResponseTime", ms, BackendServer=server)
    figures = provider.figures(env, 60)
    one, two = figures[f"host {first.name}"], figures[f"host {second.name}"]
    assert (one.requests, one.errors, one.rate, one.error_share) == (600, 6, 10, 0.01)
    assert (two.requests, two.errors, two.mean_ms) == (300, 0, 90)
    assert one.mean_ms == 40 and one.p99_ms is None  # Azure Monitor keeps averages only
    printed = dict(figures_rows(platform_figures(provider.figures, env, 60)))
    assert printed[f"host {second.name}"] == "60 s: 5.0 req/s, 5xx 0.0%, mean 90 ms"


def test_an_environment_without_a_gateway_has_no_figures(provider, env):
    assert provider.figures(env, 60) == {}


def test_a_filter_on_a_dimension_the_metric_lacks_is_refused(
    provider, arm, fleet_spec, lb_spec, env
):
    """Contract (Azure Monitor): every dimension a $filter names must be one of each
    metric's; BackendLastByteResponseTime has no HttpStatusGroup."""
    fleet = provider.ensure_fleet(fleet_spec(1))
    provider.ensure_load_balancer(lb_spec, fleet)
    gateway = gateway_of(arm, env)
    with pytest.raises(HttpResponseError, match="dimension combination"):
        provider.arm.monitor.metrics.list(
            gateway["id"].lstrip("/"),
            timespan="2026-12-05T10:00:00Z/2026-12-05T10:01:00Z",
            metricnames="BackendLastByteResponseTime",
            filter="BackendServer eq '*' and HttpStatusGroup eq '*'",
        )
