"""The GCP provider's figures from Cloud Monitoring: per backend (instance group) of ENV's
HTTPS load balancer, backend_request_count by response_code_class and backend_latencies.
Against the compute fake with monitoring v3 beside it (timeSeries.list held to its
discovery document, over series recorded as the load balancer writes them)."""

from mlops_vm.commands.status import figures_rows, platform_figures
from mlops_vm.provision.gcp.names import Names
from tests.fakes.gcp.testing import make_provider


def test_figures_per_backend_of_the_load_balancer(fake, project):
    provider = make_provider(fake, project)
    names = Names("m1")
    group = "mlops-vm-m1-model-ig"
    fake.record_lb_requests(
        project, names.url_map, group, ok=1176, errors=24, latencies_ms=[20] * 1188 + [400] * 12
    )
    # Another environment's load balancer and another project's are not counted.
    fake.record_lb_requests(project, Names("m2").url_map, group, ok=5, errors=5, latencies_ms=[1])
    fake.record_lb_requests("other-project", names.url_map, group, ok=7, errors=0, latencies_ms=[1])
    found = provider.figures("m1", 120)
    assert set(found) == {f"backend {group}"}
    figures = found[f"backend {group}"]
    assert (figures.requests, figures.errors, figures.seconds) == (1200, 24, 120)
    assert figures.rate == 10 and figures.error_share == 0.02
    assert 14 < figures.p50_ms <= 20.7 and 14 < figures.p99_ms <= 20.7  # 20 ms's bucket
    assert figures.mean_ms == (1188 * 20 + 12 * 400) / 1200
    printed = dict(figures_rows(platform_figures(provider.figures, "m1", 120)))
    assert printed[f"backend {group}"].startswith("120 s: 10.0 req/s, 5xx 2.0%, p50 ")
    assert provider.figures("nothing-here", 60) == {}
