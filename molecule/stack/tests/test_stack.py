"""The whole stack on two VMs: HTTPS predictions through Nginx to the model replicas."""

from __future__ import annotations

import json
import os
import time

import pytest

CA_ON_VM = "/root/nginx-ca.crt"
CURL = f"curl -s --cacert {CA_ON_VM} -m 10"
PREDICT = (
    f"{CURL} -i -H 'Content-Type: application/json' "
    "-d '{\"instances\": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'"
)


@pytest.fixture(scope="module", autouse=True)
def generated_ca_on_vm(host):
    ca = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "nginx-ca", "ca.crt")
    host.ansible("copy", f"src={ca} dest={CA_ON_VM} mode=0644", check=False)


def inventory_name(host) -> str:
    return host.backend.get_hostname()


def predict(host, target: str) -> tuple[str, dict]:
    raw = host.check_output(f"{PREDICT} https://{target}/predict")
    head, _, body = raw.partition("\r\n\r\n")
    return head.lower(), json.loads(body) if body.startswith("{") else {}


def test_prediction_over_https_through_nginx(host):
    head, answer = predict(host, inventory_name(host))
    assert head.startswith("http/1.1 200"), head
    assert "x-model-version: 1.0" in head
    assert answer["model_version"] == "1.0"
    assert len(answer["predictions"]) == 2
    assert all(isinstance(label, int) for label in answer["predictions"])
    assert "strict-transport-security" in head


def test_each_vm_serves_the_other_with_a_verified_certificate(host):
    other = {"mlops-stack-vm1": "mlops-stack-vm2", "mlops-stack-vm2": "mlops-stack-vm1"}[
        inventory_name(host)
    ]
    head, answer = predict(host, other)
    assert head.startswith("http/1.1 200"), head
    assert answer["model_version"] == "1.0"


def test_replicas_are_only_reachable_through_nginx(host):
    ports = {"mlops-stack-vm1": [8081, 8082], "mlops-stack-vm2": [8081]}[inventory_name(host)]
    addresses = [line.split()[3] for line in host.check_output("ss -Htln").splitlines()]
    for port in ports:
        assert f"127.0.0.1:{port}" in addresses
    assert not [
        a for a in addresses if a.rsplit(":", 1)[1] in {"8081", "8082"} and not a.startswith("127.")
    ]
    assert {a.rsplit(":", 1)[1] for a in addresses} >= {"80", "443"}


def test_old_tls_is_refused_and_http_redirects(host):
    for version in ("-tls1", "-tls1_1"):
        result = host.run(
            f"openssl s_client -connect 127.0.0.1:443 {version} "
            "-cipher 'DEFAULT@SECLEVEL=0' </dev/null"
        )
        assert result.rc != 0
        assert "alert protocol version" in result.stdout + result.stderr
    redirect = host.check_output(
        "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost/predict"
    )
    assert redirect == "301 https://localhost/predict"


def test_healthz_for_the_load_balancer(host):
    assert (
        host.check_output(f"{CURL} -o /dev/null -w '%{{http_code}}' https://localhost/healthz")
        == "200"
    )


def test_crashed_replica_costs_no_request_and_comes_back(host):
    if inventory_name(host) != "mlops-stack-vm1":
        pytest.skip("the two-replica VM is vm1")
    before = json.loads(host.check_output("docker inspect model-1"))[0]
    codes = host.check_output(
        "for i in $(seq 60); do "
        f"  {PREDICT} -o /dev/null -w '%{{http_code}}\\n' https://localhost/predict; "
        "  [ $i = 10 ] && kill -9 " + str(before["State"]["Pid"]) + "; "
        "  sleep 0.1; "
        "done"
    ).split()
    assert codes == ["200"] * 60, codes
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        after = json.loads(host.check_output("docker inspect model-1"))[0]
        ready = host.run("curl -sf -m 2 http://127.0.0.1:8082/readyz").rc == 0
        if after["RestartCount"] > before["RestartCount"] and ready:
            break
        time.sleep(2)
    else:
        pytest.fail("model-1 did not come back ready")
