"""Behaviour of the haproxy_lb role, seen from inside the VM with curl, openssl and socat.

Two stand-in model hosts (prepare.yml) serve HTTPS on 127.0.0.1:8441 (backend-1) and
127.0.0.1:8442 (backend-2) and log every request that is not a health check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import CA_ON_VM
from mlops_molecule import apply_role, assert_refused, wait_until
from tls_policy import *  # noqa: F403  (the shared TLS-policy tests)

CURL = f"curl -s --cacert {CA_ON_VM} -m 10"
ADMIN = "socat stdio /run/haproxy/admin.sock"
BACKENDS = {"backend-1": 8441, "backend-2": 8442}


def admin(host, command: str) -> str:
    return host.check_output(f"echo '{command}' | {ADMIN}")


def backend_stats(host, column: str) -> dict[str, str]:
    """Server name -> COLUMN of the runtime API's `show stat`."""
    lines = admin(host, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {row["svname"]: row[column] for row in rows if row["svname"] in BACKENDS}


def server_status(host) -> dict[str, str]:
    """Server name -> status (UP, DOWN, DRAIN, MAINT)."""
    return backend_stats(host, "status")


def wait_status(host, server: str, wanted: str, timeout_s: float) -> float:
    """Seconds until SERVER has status WANTED; fails past TIMEOUT_S."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if server_status(host)[server] == wanted:
            return time.monotonic() - start
        time.sleep(0.2)
    pytest.fail(f"{server} not {wanted} after {timeout_s}s: {server_status(host)}")


def worker_pid(host) -> str | None:
    """The process id of the HAProxy worker that answers the admin socket (None while none
    does, as during a reload)."""
    info = host.run(f"echo 'show info' | {ADMIN}")
    pids = [
        line.split(":")[1].strip() for line in info.stdout.splitlines() if line.startswith("Pid:")
    ]
    return pids[0] if info.rc == 0 and pids else None


def requests_seen(host) -> dict[str, int]:
    """Requests (not health checks) each stand-in backend has answered so far."""
    return {
        name: int(host.check_output(f"cat /var/log/fake-backend/{port}.log 2>/dev/null | wc -l"))
        for name, port in BACKENDS.items()
    }


def log_records(host, since: str) -> list[dict]:
    """The JSON request logs HAProxy sent to the journal since SINCE (a `date +%s`)."""
    lines = host.check_output(f"journalctl -t haproxy -o cat --no-pager --since @{since}")
    return [json.loads(line) for line in lines.splitlines() if line.startswith("{")]


def logged(host, since: str, at_least: int) -> list[dict]:
    """The records log_records finds, once there are AT_LEAST of them (else none)."""
    records = log_records(host, since)
    return records if len(records) >= at_least else []


def predict(host, count: int) -> list[dict]:
    """COUNT predictions through the load balancer; every one must answer 200."""
    answers = []
    for _ in range(count):
        out = host.check_output(
            f"{CURL} -w '\\n%{{http_code}}' -H 'Content-Type: application/json' "
            "-d '{\"instances\": [[1, 2, 3, 4]]}' https://localhost/predict"
        )
        body, _, code = out.rpartition("\n")
        assert code == "200", out
        answers.append(json.loads(body))
    return answers


@pytest.fixture
def backend_mode(host):
    """Set stand-in backends' modes (ok, unhealthy, fail-post); restored after the test."""
    changed = []

    def set_mode(server: str, mode: str) -> None:
        host.check_output(f"echo {mode} > /etc/fake-backend/{BACKENDS[server]}.mode")
        changed.append(server)

    yield set_mode
    for server in changed:
        host.run(f"rm -f /etc/fake-backend/{BACKENDS[server]}.mode")
    for server in changed:
        wait_status(host, server, "UP", 10)


def test_a_package_that_would_hold_the_ports_was_removed(host):
    # prepare.yml installed it; haproxy_lb_conflicting_packages names it.
    assert not host.package("mlops-vm-old-web-server").is_installed


def test_prediction_over_tls_verified_by_the_generated_ca_reaches_both_backends(host):
    answers = predict(host, 6)
    assert {a["upstream"] for a in answers} == {8441, 8442}
    assert all(a["predictions"] == [0] for a in answers)
    extra_san = host.run(
        f"{CURL} -o /dev/null -w '%{{http_code}}' --resolve lb.mlops-vm.test:443:127.0.0.1 "
        "https://lb.mlops-vm.test/healthz"
    )
    assert extra_san.stdout == "200", extra_san.stderr
    assert host.run("curl -s -m 10 https://localhost/").rc == 60  # untrusted without the CA


def test_forwarding_headers_reach_the_backend_and_no_security_headers_are_added(host):
    out = host.check_output(f"{CURL} -i https://localhost/whoami")
    head, _, body = out.partition("\r\n\r\n")
    answer = json.loads(body)
    assert answer["forwarded_proto"] == "https"
    assert answer["forwarded_for"] == "127.0.0.1"
    # Headers are the model hosts' Nginx's job, added once (not at this tier).
    assert "strict-transport-security" not in head.lower()


def test_backend_failing_its_health_check_is_down_within_3s_and_gets_no_request(host, backend_mode):
    backend_mode("backend-1", "unhealthy")
    took = wait_status(host, "backend-1", "DOWN", 5)
    assert took <= 3.5, f"marked DOWN after {took:.1f}s"
    before = requests_seen(host)
    answers = predict(host, 8)
    assert {a["upstream"] for a in answers} == {8442}
    assert requests_seen(host)["backend-1"] == before["backend-1"]
    assert "L7STS" in admin(host, "show stat")  # the check's reason: a bad status


def test_post_failing_on_one_backend_is_retried_on_the_other(host, backend_mode):
    since = host.check_output("date +%s")
    backend_mode("backend-1", "fail-post")  # health checks still pass
    before = requests_seen(host)
    logged_before = len(log_records(host, since))
    answers = predict(host, 6)
    assert {a["upstream"] for a in answers} == {8442}  # every answer 200, from backend-2
    assert requests_seen(host)["backend-1"] > before["backend-1"]  # some were tried there first
    records = wait_until(
        lambda: logged(host, since, at_least=logged_before + 6),
        10,
        "the 6 predictions in HAProxy's journal",
    )
    retried = [r for r in records if r["retries"] == "+1"]
    assert retried and all(r["server"] == "backend-2" for r in retried), retried


def test_drained_server_gets_no_new_request_keeps_its_state_over_a_reload_and_comes_back(host):
    admin(host, "set server model_service/backend-1 state drain")
    try:
        assert server_status(host)["backend-1"] == "DRAIN"
        old_worker = worker_pid(host)
        host.check_output("systemctl reload haproxy")
        wait_until(lambda: worker_pid(host) not in {old_worker, None}, 10, "a new HAProxy worker")
        assert server_status(host)["backend-1"] == "DRAIN"  # kept over the reload
        before = requests_seen(host)
        answers = predict(host, 8)
        assert {a["upstream"] for a in answers} == {8442}
        assert requests_seen(host)["backend-1"] == before["backend-1"]
    finally:
        admin(host, "set server model_service/backend-1 state ready")
    assert server_status(host)["backend-1"] == "UP"
    answers = predict(host, 6)
    assert {a["upstream"] for a in answers} == {8441, 8442}


# One keep-alive client on the VM, a prediction every 300 ms (under the scenario's rate
# limit of 60 in 10 s with the other requests of the test) until the stop file exists.
KEEP_ALIVE_LOOP = r"""
import json, os, sys, time, requests
session, sent, failed = requests.Session(), 0, []
while not os.path.exists(sys.argv[2]):
    try:
        answer = session.post(
            "https://localhost/predict", json={"instances": [[1, 2, 3, 4]]},
            verify=sys.argv[1], timeout=10,
        )
        if answer.status_code != 200:
            failed.append(answer.status_code)
    except requests.RequestException as error:
        failed.append(repr(error))
    sent += 1
    time.sleep(0.3)
print(json.dumps({"sent": sent, "failed": failed}))
"""


@contextmanager
def keep_alive_loop(host) -> Iterator[dict]:
    """Requests on one keep-alive connection while the block runs; the dict gets `sent` and
    `failed` when it ends."""
    outcome: dict = {}
    host.check_output("rm -f /tmp/loop.stop /tmp/loop.out")
    host.check_output(f"cat > /tmp/loop.py <<'EOF'\n{KEEP_ALIVE_LOOP}\nEOF")
    host.check_output(
        f"nohup python3 /tmp/loop.py {CA_ON_VM} /tmp/loop.stop > /tmp/loop.out 2>&1 &"
    )
    try:
        yield outcome
    finally:
        host.check_output("touch /tmp/loop.stop")
        out = wait_until(
            lambda: host.run("cat /tmp/loop.out").stdout.strip(), 20, "the loop's count"
        )
        outcome.update(json.loads(out.splitlines()[-1]))


def test_a_server_leaves_and_comes_back_with_no_reload_and_no_failed_request(host):
    """Scaling in and out changes servers through the runtime API: a reload would close the
    idle keep-alive connections, and a request sent at that moment gets no answer."""
    worker = worker_pid(host)
    only_backend_1 = [{"name": "backend-1", "address": "127.0.0.1", "port": 8441}]
    with keep_alive_loop(host) as outcome:
        result = apply_role("haproxy_lb", {"haproxy_lb_servers": only_backend_1})
        assert result.returncode == 0, result.stdout
        assert "backend-2" not in server_status(host)
        assert {a["upstream"] for a in predict(host, 4)} == {8441}
        result = apply_role("haproxy_lb", {})
        assert result.returncode == 0, result.stdout
        wait_status(host, "backend-2", "UP", 10)
    assert worker_pid(host) == worker, "HAProxy was reloaded"
    assert outcome["sent"] > 10 and outcome["failed"] == [], outcome
    assert {a["upstream"] for a in predict(host, 6)} == {8441, 8442}
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "server backend-2 127.0.0.1:8442" in config
    assert host.file("/etc/haproxy/haproxy.cfg.applied").content_string == config


def test_admin_socket_is_root_only(host):
    socket = host.file("/run/haproxy/admin.sock")
    assert socket.is_socket
    assert socket.mode == 0o600
    assert socket.user == "root"


def test_requests_are_logged_as_json_to_the_journal(host):
    since = host.check_output("date +%s")
    host.check_output(f"{CURL} -o /dev/null https://localhost/log-probe?x=1")
    # HTTP/2 requests are logged with their absolute URI.
    probe = wait_until(
        lambda: [r for r in log_records(host, since) if r["uri"].endswith("/log-probe?x=1")],
        10,
        "the probe request in HAProxy's journal",
    )
    assert probe[-1]["status"] == 200
    assert probe[-1]["server"] in BACKENDS
    assert probe[-1]["tls"] in {"TLSv1.2", "TLSv1.3"}
    assert probe[-1]["client"].startswith("127.0.0.1:")


@pytest.fixture
def scenario_settings_back(host):
    yield
    assert apply_role("haproxy_lb", {}).returncode == 0
    for server in BACKENDS:
        wait_status(host, server, "UP", 10)


def test_servers_are_verified_against_the_given_ca_only(host, scenario_settings_back):
    signer = host.file("/etc/fake-backend/tls.crt").content_string  # self-signed
    another_ca = host.file(CA_ON_VM).content_string  # did not sign the backends
    verified_by = {"haproxy_lb_server_ssl_verify": True}

    result = apply_role(
        "haproxy_lb", {**verified_by, "haproxy_lb_server_ca_certificate": another_ca}
    )
    assert result.returncode == 0, result.stdout
    for server in BACKENDS:
        wait_status(host, server, "DOWN", 10)
    checks = backend_stats(host, "check_status")
    assert {status.removeprefix("* ") for status in checks.values()} == {"L6RSP"}, checks
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "verify required ca-file /etc/haproxy/tls/servers-ca.crt" in config

    result = apply_role("haproxy_lb", {**verified_by, "haproxy_lb_server_ca_certificate": signer})
    assert result.returncode == 0, result.stdout
    for server in BACKENDS:
        wait_status(host, server, "UP", 10)
    assert host.file("/etc/haproxy/tls/servers-ca.crt").content_string == signer
    predict(host, 2)


def test_a_servers_ca_that_is_not_a_certificate_is_refused_before_any_change(host):
    result = apply_role(
        "haproxy_lb",
        {"haproxy_lb_server_ssl_verify": True, "haproxy_lb_server_ca_certificate": "not a PEM"},
    )
    assert_refused(result, "haproxy_lb_server_ca_certificate")
    assert host.service("haproxy").is_running


def test_bad_configuration_never_replaces_the_working_one(host):
    before = host.file("/etc/haproxy/haproxy.cfg").sha256sum
    result = apply_role("haproxy_lb", {"haproxy_lb_backend_extra_config": "not_a_keyword on"})
    assert result.returncode != 0
    assert "not_a_keyword" in result.stdout
    assert host.file("/etc/haproxy/haproxy.cfg").sha256sum == before
    predict(host, 2)


def test_unknown_tls_mode_is_refused_before_any_change(host):
    result = apply_role("haproxy_lb", {"haproxy_lb_tls_mode": "letsencrypt"})
    assert_refused(result, "haproxy_lb_tls_mode", "selfsigned, provided")
    assert host.service("haproxy").is_running


def test_wrong_type_is_refused_before_any_change(host):
    result = apply_role("haproxy_lb", {"haproxy_lb_retries": "lots"})
    assert_refused(result, "haproxy_lb_retries")
    assert host.service("haproxy").is_running


def test_server_without_address_is_refused_before_any_change(host):
    result = apply_role("haproxy_lb", {"haproxy_lb_servers": [{"name": "backend-1"}]})
    assert_refused(result, "haproxy_lb_servers", "address")
    assert host.service("haproxy").is_running


def test_no_servers_is_refused_before_any_change(host):
    result = apply_role("haproxy_lb", {"haproxy_lb_servers": []})
    assert_refused(result, "haproxy_lb_servers")
    assert host.service("haproxy").is_running


def test_the_prometheus_endpoint_has_a_series_per_backend_server(host):
    from prometheus_client.parser import text_string_to_metric_families

    predict(host, 4)
    families = text_string_to_metric_families(
        host.check_output("curl -sf http://127.0.0.1:8405/metrics")
    )
    responses = {
        s.labels["server"]: s.value
        for f in families
        for s in f.samples
        if s.name == "haproxy_server_http_responses_total" and s.labels.get("code") == "2xx"
    }
    assert set(BACKENDS) <= set(responses)
    assert all(responses[name] > 0 for name in BACKENDS), responses
