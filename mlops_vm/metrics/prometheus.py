"""Read the Prometheus endpoints of a VM environment into `Counters`.

Two sources (see roles/nginx_proxy and roles/haproxy_lb):
- each model host's request metrics (mlops-vm-request-metrics, fed by its Nginx):
  `mlops_vm_requests_total{host,release,code}` and the histogram
  `mlops_vm_request_duration_seconds{host,release}`, with the reading's own time in
  `mlops_vm_metrics_reading_timestamp_seconds`; `?ago=N` gives the counters of N s ago;
- the load balancer's HAProxy exporter: `haproxy_server_http_responses_total{proxy,server,code}`
  per backend server (no histogram: HAProxy keeps only averages).
Parsed with prometheus-client's own text parser, so what is read here is what Prometheus reads.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from mlops_vm.metrics.figures import Counters, Figures

REQUESTS = "mlops_vm_requests"
DURATION = "mlops_vm_request_duration_seconds"
READ_AT = "mlops_vm_metrics_reading_timestamp_seconds"
HAPROXY_RESPONSES = "haproxy_server_http_responses"
# The metric names the exporters emit (the dashboard example references these).
HOST_METRICS = (f"{REQUESTS}_total", f"{DURATION}_bucket", READ_AT)
LB_METRICS = (f"{HAPROXY_RESPONSES}_total",)
METRICS_PORT = 9145  # nginx_proxy_metrics_port
HAPROXY_METRICS_PORT = 8405  # haproxy_lb_metrics_port


@dataclass
class HostReading:
    """One reading of one model host's counters, per release (X-Model-Version)."""

    host: str
    taken_at: float  # epoch seconds
    releases: dict[str, Counters] = field(default_factory=dict)

    @property
    def total(self) -> Counters:
        return Counters.total(self.releases.values())


def read_host_metrics(text: str) -> dict[str, HostReading]:
    """The model host readings in TEXT (one exporter's answer, or several concatenated)."""
    requests: dict[tuple[str, str], float] = defaultdict(float)
    errors: dict[tuple[str, str], float] = defaultdict(float)
    buckets: dict[tuple[str, str], dict[float, float]] = defaultdict(dict)
    taken_at: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            host = sample.labels.get("host", "")
            key = (host, sample.labels.get("release", ""))
            if sample.name == f"{REQUESTS}_total":
                requests[key] += sample.value
                if sample.labels.get("code") == "5xx":
                    errors[key] += sample.value
            elif sample.name == f"{DURATION}_bucket":
                buckets[key][float(sample.labels["le"])] = sample.value
            elif sample.name == READ_AT:
                taken_at[host] = sample.value
    readings = {host: HostReading(host, at) for host, at in taken_at.items()}
    for key in set(requests) | set(buckets):
        host, release = key
        reading = readings.setdefault(host, HostReading(host, 0.0))
        reading.releases[release] = Counters(requests[key], errors[key], buckets[key])
    return readings


def read_lb_servers(text: str, backend: str) -> dict[str, Counters]:
    """Per backend server of HAProxy's exporter: responses and 5xx (no latency histogram)."""
    servers: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != f"{HAPROXY_RESPONSES}_total":
                continue
            if sample.labels.get("proxy") != backend or "server" not in sample.labels:
                continue
            counts = servers[sample.labels["server"]]
            counts[0] += sample.value
            if sample.labels.get("code") == "5xx":
                counts[1] += sample.value
    return {name: Counters(total, errors) for name, (total, errors) in servers.items()}


@dataclass(frozen=True)
class HostFigures:
    """A host's window: all its requests, and per release."""

    host: str
    total: Figures
    releases: dict[str, Figures]

    def as_json(self) -> dict[str, object]:
        return {
            **self.total.as_json(),
            "releases": {name: f.as_json() for name, f in sorted(self.releases.items())},
        }


Window = tuple[HostReading, HostReading]  # one host's readings at a window's start and end


def window_figures(windows: Iterable[Window], release: str | None = None) -> Figures:
    """One figure over the windows of one or more hosts (all releases, or RELEASE): the
    counters of each host's window summed, so quantiles come from the summed histogram,
    never from an average of quantiles. A host's window is its two readings' times apart."""
    counted, seconds = [], 0.0

    def pick(reading: HostReading) -> Counters:
        return reading.total if release is None else reading.releases.get(release, Counters())

    for earlier, later in windows:
        counted.append(pick(later).since(pick(earlier)))
        seconds = max(seconds, later.taken_at - earlier.taken_at)
    return Figures.of(Counters.total(counted), seconds=seconds)


def host_figures(earlier: HostReading, later: HostReading) -> HostFigures:
    """A host's figures between two readings, in all and per release it answered with."""
    window = [(earlier, later)]
    releases = {name: window_figures(window, name) for name in later.releases}
    return HostFigures(
        later.host,
        window_figures(window),
        {name: figures for name, figures in releases.items() if figures.requests},
    )
