"""The monitoring examples (examples/monitoring): the Grafana dashboard loads and every metric
it queries is one the exporters really emit (the model hosts' exporter's own output, and the
names the Debian 12 HAProxy exporter answered on the local cloud, recorded in
haproxy-2.6-metric-names.txt), and the Prometheus example scrapes the ports the roles use."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlops_vm import paths
from mlops_vm.metrics.prometheus import HAPROXY_METRICS_PORT, HOST_METRICS, LB_METRICS, METRICS_PORT
from tests.unit.test_metrics_prometheus import text

EXAMPLES = paths.PROJECT_DIR / "examples" / "monitoring"
ROLES = paths.PROJECT_DIR / "roles"
HAPROXY_NAMES = Path(__file__).with_name("haproxy-2.6-metric-names.txt")
METRIC = re.compile(r"\b((?:mlops_vm|haproxy)_[a-z0-9_]+)\b")


def emitted() -> set[str]:
    """Sample names of a model host's exporter (all kinds of series) and of HAProxy's."""
    host = text("m1", 1.0, ("1.0", 200, 0.01, 1), ("1.0", 500, 0.01, 1))
    names = {s.name for f in text_string_to_metric_families(host) for s in f.samples}
    recorded = HAPROXY_NAMES.read_text().splitlines()
    return names | {line for line in recorded if line and not line.startswith("#")}


def test_the_dashboard_queries_only_metrics_the_exporters_emit():
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no metric"
    assert used <= emitted(), used - emitted()
    # The readers of status and the canary read the same names.
    assert {*HOST_METRICS, *LB_METRICS} <= emitted()


def test_the_scrape_example_aims_at_the_roles_metrics_ports():
    config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    ports = {
        job["job_name"]: {t.rpartition(":")[2] for c in job["static_configs"] for t in c["targets"]}
        for job in config["scrape_configs"]
    }
    nginx = yaml.safe_load((ROLES / "nginx_proxy/defaults/main.yml").read_text())
    haproxy = yaml.safe_load((ROLES / "haproxy_lb/defaults/main.yml").read_text())
    assert nginx["nginx_proxy_metrics_port"] == METRICS_PORT
    assert haproxy["haproxy_lb_metrics_port"] == HAPROXY_METRICS_PORT
    assert ports == {
        "mlops-vm-model-hosts": {str(METRICS_PORT)},
        "mlops-vm-load-balancer": {str(HAPROXY_METRICS_PORT)},
    }
