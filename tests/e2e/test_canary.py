"""Canary releases and request metrics on the local cloud, under a request loop.

2 local VMs x 1 replica behind the local load balancer, its own environment (`canary`, port
18503). The first batch (one host) is the canary, the other host the old release. The
images: 1.1-errors (500 for one prediction in 8) and 1.1-slow (4 times slower), both
healthy and ready (images/model-faulty), and the healthy 1.1. The tests run in order.
"""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_vm.localcloud import images, registry
from mlops_vm.metrics.prometheus import (
    HAPROXY_METRICS_PORT,
    METRICS_PORT,
    read_host_metrics,
    read_lb_servers,
)
from tests.environments import cli_json, provisioned_environment
from tests.load import RequestLoop

pytestmark = pytest.mark.slow

ENV = "canary"
PORT = 18503
REPOSITORY = f"{registry.ADDRESS}/{images.MODEL_REPOSITORY}"
IMAGE_10, IMAGE_11 = f"{REPOSITORY}:1.0", f"{REPOSITORY}:1.1"
ERRORS, SLOW = f"{REPOSITORY}:1.1-errors", f"{REPOSITORY}:1.1-slow"
HOSTS = [f"mlops-vm-{ENV}-model-1", f"mlops-vm-{ENV}-model-2"]
LB = f"mlops-vm-{ENV}-lb"
WINDOW_S = 20
CANARY = {
    "window_s": WINDOW_S,
    # The slow canary answers few requests in the window (each one takes 2.4 s or more).
    "min_requests": 10,
    # The machine is shared: a healthy release's p99 over a few dozen requests can jump
    # (seen: 650 ms at a load average of 16); the slow image adds 1.8 s or more.
    "max_p99_ratio": 3.0,
}


@pytest.fixture(scope="module")
def environment(platform, tmp_path_factory) -> Iterator[Path]:
    overrides = {
        "load_balancer": {"publish_port": PORT},
        "release": {"ready_timeout_s": 60, "canary": CANARY},
    }
    root = tmp_path_factory.mktemp("inventories")
    with provisioned_environment(root, ENV, overrides, packaged_hosts=True) as (directory, _):
        yield directory


@pytest.fixture
def loop(environment) -> Iterator[RequestLoop]:
    """Up to 16 requests/s through the endpoint (the proxies allow 20 per client), from 4
    clients, so that a slow canary holding some of them does not stop the traffic."""
    ca_file = str(Path.home() / ".mlops-vm" / "envs" / ENV / "pki" / "ca.crt")
    endpoint = f"https://127.0.0.1:{PORT}"
    with RequestLoop(endpoint, ca_file, threads=4, interval_s=0.25) as running:
        running.wait_requests(5)
        yield running


def inside(container: str, url: str) -> str:
    return subprocess.run(
        ["docker", "exec", container, "curl", "-sf", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def running_images(environment: Path) -> set[str]:
    _, answer = cli_json("status", str(environment))
    return {row["running_image"] for row in answer["instances"] if row["role"] == "model"}


def test_the_prometheus_endpoints_parse_and_carry_per_host_and_per_release_series(loop):
    loop.wait_requests(40)
    for host in HOSTS:
        readings = read_host_metrics(inside(host, f"http://127.0.0.1:{METRICS_PORT}/metrics"))
        assert set(readings) == {host}
        assert readings[host].releases["1.0"].requests > 0
        assert sorted(readings[host].releases["1.0"].buckets)[-1] == float("inf")
    servers = read_lb_servers(
        inside(LB, f"http://127.0.0.1:{HAPROXY_METRICS_PORT}/metrics"), "model_service"
    )
    assert set(HOSTS) <= set(servers)
    assert all(servers[h].requests > 0 for h in HOSTS)


def test_status_figures_agree_with_the_loop_within_10_percent(environment, loop):
    # The hosts count every request, the loop only its own: the loop runs longer than
    # the window first (the previous test's loop stopped a moment ago).
    while time.monotonic() - loop.outcomes[0].started < 25:
        loop.wait_requests(10)
    code, answer = cli_json("status", str(environment), "--window", "20")
    assert code == 0, answer
    figures = answer["figures"]
    seconds = figures["total"]["window_s"]
    assert 20 <= seconds <= 21.5, figures
    # The loop's requests that ended inside the window the hosts read (wall clock).
    until = figures["until"] - time.time() + time.monotonic()
    counted = sum(1 for o in loop.outcomes if until - seconds <= o.ended <= until)
    print(f"status: {figures['total']}, the loop: {counted} requests in {seconds} s")
    assert figures["total"]["requests"] == pytest.approx(counted, rel=0.10)
    assert set(figures["releases"]) == {"1.0"}
    hosts = {row["name"]: row["figures"] for row in answer["instances"] if row["role"] == "model"}
    assert sum(h["requests"] for h in hosts.values()) == figures["total"]["requests"]


@pytest.mark.parametrize(
    ("image", "version", "named"),
    [(ERRORS, "1.1-errors", "5xx share"), (SLOW, "1.1-slow", "p99 latency")],
)
def test_a_canary_that_serves_worse_is_rolled_back_naming_the_figure(
    environment, loop, image, version, named
):
    started = time.monotonic()
    code, summary = cli_json("deploy", str(environment), "--image", image, "--canary")
    assert code == 1, summary
    text = str(summary)
    assert named in text and "against" in text and "old release" in text, text
    assert running_images(environment) == {IMAGE_10}
    # The old release's host had its successor staged in the pre-flight: never served, removed.
    names = subprocess.run(
        ["docker", "exec", HOSTS[1], "docker", "ps", "--all", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert names == ["model-0"], names
    failed = loop.failures(since=started)
    # Only the bad canary's own answers failed: none from the old release, none refused.
    assert {o.version for o in failed} <= {version}, loop.summary()
    answered = [o for o in loop.outcomes if o.started >= started and o.version == version]
    print(f"{version}: {len(failed)} failed requests of {len(answered)} it answered")
    if version == "1.1-errors":
        assert failed and all(o.status == 500 for o in failed)
    else:
        assert not failed


def test_the_healthy_release_is_promoted(environment, loop):
    started = time.monotonic()
    code, summary = cli_json("deploy", str(environment), "--image", IMAGE_11, "--canary")
    assert code == 0, summary
    canary = summary["release"]["canary"]
    assert canary["promote"] is True, canary
    assert canary["canary"]["requests"] >= CANARY["min_requests"]
    assert running_images(environment) == {IMAGE_11}
    assert not loop.failures(since=started), loop.summary()


def test_a_canary_with_no_host_left_on_the_old_release_goes_on_and_says_why(environment, loop):
    # Both hosts in the first batch: nothing to judge the canary against.
    path = environment / "group_vars" / "all" / "mlops_vm.yml"
    original = path.read_text()
    data = yaml.safe_load(original)
    data["mlops_vm"]["release"]["batch"] = 2
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))
    started = time.monotonic()
    try:
        code, summary = cli_json("deploy", str(environment), "--image", IMAGE_10, "--canary")
    finally:
        path.write_text(original)
    assert code == 0, summary
    assert summary["release"]["canary"] == "every host to release is in the first batch", summary
    assert sorted(summary["release"]["hosts_changed"]) == HOSTS
    assert running_images(environment) == {IMAGE_10}
    assert not loop.failures(since=started), loop.summary()
