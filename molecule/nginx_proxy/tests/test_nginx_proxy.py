"""Behaviour of the nginx_proxy role, seen from inside the VM with curl and openssl."""

from __future__ import annotations

import json

import pytest
from conftest import CA_ON_VM
from mlops_molecule import apply_role, assert_refused, wait_until
from tls_policy import *  # noqa: F403  (the shared TLS-policy tests)

CURL = f"curl -s --cacert {CA_ON_VM} -m 10"
PREDICT_BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'


@pytest.fixture
def upstream_modes(host, limits):
    """Set stand-in replicas' modes (ok, fail, unready); restored after the test."""
    changed = []

    def set_mode(port: int, mode: str) -> None:
        host.run(f"echo {mode} > /etc/fake-model/{port}.mode")
        changed.append(port)

    yield set_mode
    for port in changed:
        host.run(f"rm -f /etc/fake-model/{port}.mode")
    # Let passive health checks forget the failures.
    limits.forget_failures()


@pytest.fixture
def quiet_period(limits):
    """Let the per-client rate limit bucket drain before a series of requests."""
    return limits.drain


def post_predict(host, name: str = "vm1"):
    return host.run(
        f"{CURL} -i -H 'Content-Type: application/json' -d '{PREDICT_BODY}' https://{name}/predict"
    )


def split_response(raw: str) -> tuple[str, str]:
    head, _, body = raw.partition("\r\n\r\n")
    return head.lower(), body


def test_https_prediction_with_certificate_verified_by_the_generated_ca(host, quiet_period):
    quiet_period()
    for name in ("vm1", "localhost"):
        response = post_predict(host, name)
        assert response.rc == 0, response.stderr
        head, body = split_response(response.stdout)
        assert head.startswith("http/1.1 200")
        assert json.loads(body)["predictions"] == [0, 0]
    extra_san = host.run(
        f"{CURL} -o /dev/null -w '%{{http_code}}' --resolve model.mlops-vm.test:443:127.0.0.1 "
        "https://model.mlops-vm.test/healthz"
    )
    assert extra_san.stdout == "200", extra_san.stderr


def test_certificate_is_not_trusted_without_the_generated_ca(host):
    result = host.run("curl -s -m 10 https://vm1/healthz")
    assert result.rc == 60  # peer certificate cannot be authenticated


def test_hsts_and_security_headers(host, quiet_period):
    quiet_period()
    head, _ = split_response(host.check_output(f"{CURL} -i https://vm1/"))
    assert "strict-transport-security: max-age=31536000; includesubdomains" in head
    assert "x-content-type-options: nosniff" in head
    assert "x-frame-options: deny" in head
    assert "server: nginx\r\n" in head  # no version number


def test_burst_beyond_the_rate_limit_gets_429(host, quiet_period):
    quiet_period()
    urls = " ".join(["-o /dev/null https://vm1/"] * 40)
    codes = host.check_output(f"{CURL} -w '%{{http_code}}\\n' {urls}").split()
    assert len(codes) == 40
    # Rate 10r/s, burst 10: the first 11 pass at once, then most are refused.
    assert codes[:11] == ["200"] * 11, codes
    assert codes.count("429") >= 20, codes
    assert set(codes) == {"200", "429"}, codes
    quiet_period()
    assert host.check_output(f"{CURL} -o /dev/null -w '%{{http_code}}' https://vm1/") == "200"


def test_pool_includes_the_extra_server(host, quiet_period, limits):
    quiet_period()
    seen = set()
    for _ in range(9):
        head, _ = split_response(host.check_output(f"{CURL} -i https://vm1/"))
        seen.add(
            next(line for line in head.splitlines() if line.startswith("x-upstream:")).split()[1]
        )
        limits.pace()
    assert seen == {"8081", "8082", "8083"}


def test_failing_replica_is_skipped_even_for_post(host, upstream_modes, quiet_period, limits):
    upstream_modes(8081, "fail")
    quiet_period()
    answered_by = []
    for _ in range(12):
        response = post_predict(host)
        head, body = split_response(response.stdout)
        assert head.startswith("http/1.1 200"), response.stdout
        answered_by.append(json.loads(body)["upstream"])
        limits.pace()
    assert 8081 not in answered_by
    log = host.check_output("tail -n 12 /var/log/nginx/access.log")
    # Some POSTs did reach the failing replica first and were retried.
    assert any("127.0.0.1:8081" in json.loads(line)["upstream_addr"] for line in log.splitlines())


def test_stopped_replica_is_skipped(host, quiet_period, limits):
    host.check_output("systemctl stop fake-model@127.0.0.1:8082.service")
    try:
        quiet_period()
        for _ in range(10):
            response = post_predict(host)
            assert split_response(response.stdout)[0].startswith("http/1.1 200"), response.stdout
            limits.pace()
    finally:
        host.check_output("systemctl start fake-model@127.0.0.1:8082.service")


def test_healthz_follows_upstream_readiness(host, upstream_modes, quiet_period):
    quiet_period()
    assert (
        host.check_output(f"{CURL} -o /dev/null -w '%{{http_code}}' https://vm1/healthz") == "200"
    )
    for port in (8081, 8082, 8083):
        upstream_modes(port, "unready")
    code = host.check_output(f"{CURL} -o /dev/null -w '%{{http_code}}' https://vm1/healthz")
    assert code in {"502", "503"}


def test_access_log_is_json(host, quiet_period):
    quiet_period()
    host.check_output(f"{CURL} -o /dev/null -A 'mlops-log-probe/1' https://vm1/predict?probe=1")
    last = json.loads(host.check_output("tail -n 1 /var/log/nginx/access.log"))
    assert last["user_agent"] == "mlops-log-probe/1"
    assert last["uri"] == "/predict?probe=1"
    assert last["status"] == 200
    assert last["tls_protocol"] in {"TLSv1.2", "TLSv1.3"}
    assert isinstance(last["request_time"], float)


def test_large_payload_within_client_max_body_size(host, quiet_period):
    quiet_period()
    host.check_output(  # ~1.8 MB of rows
        "python3 -c 'import json; "
        'print(json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]] * 100000}))\''
        " > /root/large.json"
    )
    code = host.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}}' -H 'Content-Type: application/json' "
        "--data-binary @/root/large.json https://vm1/predict"
    )
    assert code == "200"
    host.check_output("head -c 25000000 /dev/zero > /root/too-large.bin")
    code = host.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}}' --data-binary @/root/too-large.bin https://vm1/predict"
    )
    assert code == "413"


def test_a_body_under_the_buffer_size_never_goes_to_a_temporary_file(host, quiet_period):
    quiet_period()
    # ~0.5 MB: beyond nginx's default 16k buffer, within nginx_proxy_client_body_buffer_size.
    host.check_output(
        "python3 -c 'import json; "
        'print(json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]] * 25000}))\''
        " > /root/medium.json"
    )
    log_lines = int(host.check_output("wc -l < /var/log/nginx/error.log"))
    code = host.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}}' -H 'Content-Type: application/json' "
        "--data-binary @/root/medium.json https://vm1/predict"
    )
    assert code == "200"
    new_lines = host.check_output(f"tail -n +{log_lines + 1} /var/log/nginx/error.log")
    assert "buffered to a temporary file" not in new_lines


def test_one_client_connection_carries_more_than_nginx_default_1000_requests(host):
    # A load balancer's connection is not closed (and its TLS handshake redone) every
    # 1000 requests: 1200 requests over one connection open it once.
    connects = host.check_output(
        f"{CURL} -o /dev/null -w '%{{num_connects}}\\n' 'https://vm1/healthz?n=[1-1200]'"
    ).split()
    assert len(connects) == 1200
    assert sum(int(n) for n in connects) == 1


def test_bad_configuration_never_replaces_the_working_one(host, quiet_period):
    before = host.file("/etc/nginx/nginx.conf").sha256sum
    result = apply_role(
        "nginx_proxy", {"nginx_proxy_server_extra_config": "this_is_not_a_directive on;"}
    )
    assert result.returncode != 0
    assert "this_is_not_a_directive" in result.stdout
    assert host.file("/etc/nginx/nginx.conf").sha256sum == before
    quiet_period()
    assert (
        host.check_output(f"{CURL} -o /dev/null -w '%{{http_code}}' https://vm1/healthz") == "200"
    )


def test_unknown_tls_mode_is_refused_before_any_change(host):
    before = host.file("/etc/nginx/nginx.conf").sha256sum
    result = apply_role("nginx_proxy", {"nginx_proxy_tls_mode": "letsencrypt"})
    assert_refused(result, "nginx_proxy_tls_mode", "selfsigned, provided")
    assert host.file("/etc/nginx/nginx.conf").sha256sum == before
    assert host.service("nginx").is_running


def test_wrong_type_is_refused_before_any_change(host):
    result = apply_role("nginx_proxy", {"nginx_proxy_rate_limit_burst": "lots"})
    assert_refused(result, "nginx_proxy_rate_limit_burst")
    assert host.service("nginx").is_running


def test_provided_mode_without_certificate_is_refused_before_any_change(host):
    result = apply_role("nginx_proxy", {"nginx_proxy_tls_mode": "provided"})
    assert_refused(result, "nginx_proxy_tls_certificate", "nginx_proxy_tls_private_key")
    assert host.service("nginx").is_running


@pytest.fixture(scope="module")
def provided_pair(host):
    """A certificate from another CA, made on the VM, for the provided mode."""
    host.check_output(
        "cd /root && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj '/CN=provided test CA' -keyout other-ca.key -out other-ca.crt 2>/dev/null && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-subj '/CN=provided.mlops-vm.test' "
        "-keyout provided.key -out provided.csr 2>/dev/null && "
        "printf 'subjectAltName=DNS:provided.mlops-vm.test\\n' > provided.ext && "
        "openssl x509 -req -in provided.csr -CA other-ca.crt -CAkey other-ca.key -CAcreateserial "
        "-days 2 -extfile provided.ext -out provided.crt 2>/dev/null && "
        "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 "
        "-out unrelated.key 2>/dev/null"
    )
    return {
        "certificate": host.file("/root/provided.crt").content_string,
        "key": host.file("/root/provided.key").content_string,
        "unrelated_key": host.file("/root/unrelated.key").content_string,
    }


def test_provided_certificate_with_the_wrong_key_is_refused(host, provided_pair):
    before = host.file("/etc/nginx/tls/server.crt").sha256sum
    result = apply_role(
        "nginx_proxy",
        {
            "nginx_proxy_tls_mode": "provided",
            "nginx_proxy_tls_certificate": provided_pair["certificate"],
            "nginx_proxy_tls_private_key": provided_pair["unrelated_key"],
        },
    )
    assert result.returncode != 0
    assert (
        "nginx_proxy_tls_private_key is not the key of nginx_proxy_tls_certificate" in result.stdout
    )
    assert provided_pair["unrelated_key"].splitlines()[1] not in result.stdout
    assert host.file("/etc/nginx/tls/server.crt").sha256sum == before


def test_provided_certificate_is_served_then_replaced_by_a_generated_one(
    host, provided_pair, quiet_period
):
    provided = apply_role(
        "nginx_proxy",
        {
            "nginx_proxy_tls_mode": "provided",
            "nginx_proxy_tls_certificate": provided_pair["certificate"],
            "nginx_proxy_tls_private_key": provided_pair["key"],
        },
    )
    assert provided.returncode == 0, provided.stdout
    assert provided_pair["key"].splitlines()[1] not in provided.stdout
    quiet_period()
    served = host.run(
        "curl -s -m 10 -o /dev/null -w '%{http_code}' --cacert /root/other-ca.crt "
        "--resolve provided.mlops-vm.test:443:127.0.0.1 https://provided.mlops-vm.test/healthz"
    )
    assert served.stdout == "200", served.stderr
    # Back to the generated CA: the provided certificate is not signed by it,
    # so the role signs a new one.
    generated = apply_role("nginx_proxy", {})
    assert generated.returncode == 0, generated.stdout
    # Nginx's reload returns before its new workers answer: until then an old one may still
    # present the provided certificate (seen on a loaded machine), so wait for the switch.
    wait_until(
        lambda: (
            host.run(f"{CURL} -o /dev/null -w '%{{http_code}}' https://vm1/healthz").stdout == "200"
        ),
        30,
        "the generated certificate served",
    )


def test_request_metrics_count_every_answer_by_status_class(host, quiet_period):
    from prometheus_client.parser import text_string_to_metric_families

    def answered() -> dict[str, float]:
        text = host.check_output("curl -sf http://127.0.0.1:9145/metrics")
        return {
            s.labels["code"]: s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "mlops_vm_requests_total"
        }

    quiet_period()
    before = answered().get("2xx", 0.0)
    for _ in range(3):
        assert post_predict(host).rc == 0
    # Nginx sends each line over syslog on 127.0.0.1: counted within a moment.
    wait_until(lambda: answered().get("2xx", 0.0) >= before + 3, 10, "3 more 2xx counted")
    assert host.socket("tcp://0.0.0.0:9145").is_listening
