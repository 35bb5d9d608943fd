"""The model hosts' request metrics exporter (roles/nginx_proxy/files/mlops-vm-request-metrics),
run as a process on 127.0.0.1 and fed the syslog lines Nginx sends: its endpoint parses with
prometheus-client's parser, carries per-host and per-release series, and `?ago=N` answers
the counters of N seconds ago. Nginx itself sending the lines is covered by the e2e canary
test (tests/e2e/test_canary.py) on real hosts."""

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from mlops_vm import paths
from mlops_vm.metrics.prometheus import host_figures, read_host_metrics

EXPORTER = paths.PROJECT_DIR / "roles/nginx_proxy/files/mlops-vm-request-metrics"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    def __init__(self, allow: str) -> None:
        self.http_port = free_port(socket.SOCK_STREAM)
        self.syslog_port = free_port(socket.SOCK_DGRAM)
        argv = [sys.executable, str(EXPORTER), "--host", "model-1", "--allow", allow]
        argv += ["--syslog-port", str(self.syslog_port), "--history-s", "30"]
        argv += ["--listen", f"127.0.0.1:{self.http_port}"]
        self.process = subprocess.Popen(argv)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def get(self, query: str = "") -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics{query}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read().decode()

    def wait_up(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                self.get()
                return
            except urllib.error.HTTPError:
                return  # it answers (403 for a refused client)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def send(self, release: str, status: int, seconds: float) -> None:
        # What Nginx sends: access_log syslog:...,tag=mlops_vm_metrics,nohostname
        line = f"<190>Dec  5 16:50:00 mlops_vm_metrics: {release}|{status}|{seconds:.3f}"
        self.udp.sendto(line.encode(), ("127.0.0.1", self.syslog_port))

    def wait_count(self, total: float) -> dict:
        deadline = time.monotonic() + 10
        while True:
            readings = read_host_metrics(self.get())
            if "model-1" in readings and readings["model-1"].total.requests >= total:
                return readings
            assert time.monotonic() < deadline, f"the exporter never counted {total} requests"
            time.sleep(0.05)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    running = Exporter("127.0.0.0/8")
    running.wait_up()
    yield running
    running.process.terminate()
    running.process.wait(10)


def test_counts_per_release_and_status_class_with_a_histogram(exporter: Exporter) -> None:
    for _ in range(90):
        exporter.send("1.0", 200, 0.004)
    for _ in range(10):
        exporter.send("1.0", 500, 0.004)
    for _ in range(50):
        exporter.send("1.1", 200, 0.120)
    exporter.send("-", 429, 0.0)  # answered by Nginx itself: no release
    readings = exporter.wait_count(151)
    host = readings["model-1"]
    assert set(host.releases) == {"1.0", "1.1", ""}
    assert (host.releases["1.0"].requests, host.releases["1.0"].errors) == (100, 10)
    assert host.releases["1.1"].buckets[0.1] == 0 and host.releases["1.1"].buckets[0.15] == 50
    assert host.taken_at == pytest.approx(time.time(), abs=5)


def test_ago_answers_the_counters_of_seconds_ago(exporter: Exporter) -> None:
    exporter.send("1.0", 200, 0.01)
    exporter.wait_count(1)
    # One snapshot a second: one taken after the first request is at least 2 s old by then.
    time.sleep(3.2)
    for _ in range(20):
        exporter.send("1.1", 500, 0.3)
    later = exporter.wait_count(21)["model-1"]
    earlier = read_host_metrics(exporter.get("?ago=2"))["model-1"]
    assert earlier.total.requests == 1
    figures = host_figures(earlier, later)
    assert 2 <= figures.total.seconds < 3.5
    assert figures.total.requests == 20 and figures.total.error_share == 1.0
    assert set(figures.releases) == {"1.1"}
    assert 200 < (figures.releases["1.1"].p99_ms or 0) <= 300


def test_lines_that_are_not_its_own_are_ignored(exporter: Exporter) -> None:
    exporter.udp.sendto(b"<190>Dec  5 other: 1.0|200|0.1", ("127.0.0.1", exporter.syslog_port))
    exporter.send("1.0", 200, 0.01)
    readings = exporter.wait_count(1)
    assert readings["model-1"].total.requests == 1


def test_a_client_outside_the_allowed_networks_is_refused() -> None:
    running = Exporter("10.0.0.0/8")
    try:
        running.wait_up()
        with pytest.raises(urllib.error.HTTPError) as refused:
            running.get()
        assert refused.value.code == 403
    finally:
        running.process.terminate()
        running.process.wait(10)
