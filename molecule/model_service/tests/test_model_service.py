"""Behaviour of the model_service role: replicas, rolling update, scale-down."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from mlops_molecule import apply_role, assert_refused, wait_until

IMAGE = "registry.mlops-vm.test:5443/mlops-vm/model-service"
IRIS_ROW = "[[5.1, 3.5, 1.4, 0.2]]"


def inspect(host, container: str) -> dict:
    return json.loads(host.check_output(f"docker inspect {container}"))[0]


def wait_ready(host, port: int, timeout_s: int = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if host.run(f"curl -sf -m 2 http://127.0.0.1:{port}/readyz").rc == 0:
            return
        time.sleep(1)
    pytest.fail(f"replica on port {port} not ready within {timeout_s}s")


def active_ports(host) -> list[int]:
    """The replicas' ports the proxy is pointed at (the role's upstream file)."""
    text = host.file("/etc/mlops-vm/model/upstream.conf").content_string
    return [
        int(line.split(":")[1].split()[0].rstrip(";"))
        for line in text.splitlines()
        if line.startswith("server ")
    ]


def rollout_samples(host) -> list[dict[int, tuple[str, str]]]:
    """The side effect's probe record: per sample, listed port -> (HTTP code, model version)."""
    samples = []
    for line in host.file("/tmp/rollout.log").content_string.splitlines():
        fields = line.split()[1:]
        sample = {}
        for field in fields:
            port, code, version = field.split(":")
            sample[int(port)] = (code, version)
        samples.append(sample)
    return samples


def test_rolling_update_never_pointed_the_proxy_at_a_replica_that_was_not_ready(host):
    samples = rollout_samples(host)
    assert len(samples) > 20
    not_ready = [sample for sample in samples if any(code != "200" for code, _ in sample.values())]
    # A probe reads the file, then asks each port: one sample may straddle a switch.
    assert len(not_ready) <= 1, not_ready
    assert all(len(sample) == 2 for sample in samples), samples
    # Each replica moved to its spare port with the new version, one at a time.
    first, last = samples[0], samples[-1]
    assert sorted(first) == [8081, 8082] and {v for _, v in first.values()} == {"1.0"}
    assert sorted(last) == [8181, 8182] and {v for _, v in last.values()} == {"1.1"}
    assert any({v for _, v in sample.values()} == {"1.0", "1.1"} for sample in samples)


def test_scale_down_removed_the_surplus_replica(host):
    def only_model_0() -> bool:
        names = host.check_output(
            "docker ps -a --filter label=mlops-vm.model-service=model --format '{{.Names}}'"
        )
        return names.split() == ["model-0"]

    # The replicas the update retired stop in the background (gracefully, within the stop
    # timeout of 30 s): then only the active one is left.
    wait_until(only_model_0, 40, "only model-0 left of the service's containers")
    assert active_ports(host) == [8181]
    for gone in (8082, 8182):
        assert host.run(f"curl -s -m 2 http://127.0.0.1:{gone}/readyz").rc != 0


def test_remaining_replica_serves_the_new_version(host):
    container = inspect(host, "model-0")
    assert container["Config"]["Image"] == f"{IMAGE}:1.1"
    response = host.run(
        "curl -s -i -m 5 -H 'Content-Type: application/json' "
        f"-d '{{\"instances\": {IRIS_ROW}}}' http://127.0.0.1:{active_ports(host)[0]}/predict"
    )
    assert response.rc == 0
    head, body = response.stdout.split("\r\n\r\n", 1)
    assert "x-model-version: 1.1" in head.lower()
    answer = json.loads(body)
    assert answer["model_version"] == "1.1"
    assert len(answer["predictions"]) == 1 and isinstance(answer["predictions"][0], int)


def test_replica_listens_on_loopback_only(host):
    listeners = host.check_output("ss -Htln").splitlines()
    local_addresses = [line.split()[3] for line in listeners]
    port = active_ports(host)[0]
    assert f"127.0.0.1:{port}" in local_addresses
    assert not [
        addr
        for addr in local_addresses
        if addr.endswith(f":{port}") and not addr.startswith("127.0.0.1")
    ]


def test_replica_runs_with_its_settings(host):
    container = inspect(host, "model-0")
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    assert env["MODEL_SERVICE_ENVIRONMENT"] == "molecule"
    assert env["PORT"] == "8080"
    assert env["WEB_CONCURRENCY"] == "1"
    host_config = container["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == 512 * 1024 * 1024
    assert host_config["RestartPolicy"]["Name"] == "always"
    assert host_config["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "10m"},
    }
    assert host_config["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(active_ports(host)[0])}]
    }


def test_secret_is_a_file_in_the_container_not_an_env_var(host):
    assert (
        host.check_output("docker exec model-0 cat /run/secrets/feature-store-token")
        == "molecule-secret-f3a9c2"
    )
    assert "molecule-secret-f3a9c2" not in host.check_output("docker inspect model-0")
    assert host.file("/etc/mlops-vm/model/secrets").mode == 0o700


def test_health_check_reports_healthy(host):
    deadline = time.monotonic() + 90
    status = ""
    while time.monotonic() < deadline:
        status = inspect(host, "model-0")["State"]["Health"]["Status"]
        if status == "healthy":
            break
        time.sleep(2)
    assert status == "healthy"


def test_crashed_replica_comes_back_by_itself(host):
    before = inspect(host, "model-0")
    # A crash, not a `docker stop` (which the restart policy rightly obeys).
    host.check_output(f"kill -9 {before['State']['Pid']}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = inspect(host, "model-0")
        if after["RestartCount"] > before["RestartCount"] and after["State"]["Running"]:
            break
        time.sleep(1)
    else:
        pytest.fail("model-0 was not restarted")
    wait_ready(host, active_ports(host)[0])


def test_killed_replica_is_started_again_by_the_watchdog(host):
    # `docker kill` defeats every restart policy; the role's watchdog timer does not.
    host.check_output("docker kill model-0")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if inspect(host, "model-0")["State"]["Running"]:
            break
        time.sleep(1)
    else:
        pytest.fail("model-0 was not started again after docker kill")
    wait_ready(host, active_ports(host)[0])


def test_release_record_names_the_running_and_the_previous_release(host):
    record = json.loads(host.file("/etc/mlops-vm/model/release.json").content_string)
    assert record["current"]["image"] == f"{IMAGE}:1.1"
    assert record["current"]["replicas"] == 1
    assert record["previous"]["image"] == f"{IMAGE}:1.1"
    assert record["previous"]["replicas"] == 2


def test_registry_login_is_not_in_the_containers(host):
    credentials = Path("~/.mlops-vm/registry/credentials.json").expanduser()
    password = (
        os.environ.get("MLOPS_VM_REGISTRY_PASSWORD")
        or json.loads(credentials.read_text())["password"]
    )
    if password in host.check_output("docker inspect model-0"):
        pytest.fail("the registry password is in the container's configuration")


def test_registry_login_is_not_stored_on_the_host(host):
    """The credentials go with each pull (X-Registry-Auth): no login outlives the run."""
    config = host.file("/root/.docker/config.json")
    assert not config.exists or "5443" not in config.content_string


def test_replica_that_never_becomes_ready_fails_the_role_with_its_logs(host):
    result = apply_role(
        "model_service",
        {
            "model_service_image": IMAGE,
            "model_service_image_tag": "1.1",
            "model_service_name": "broken",
            "model_service_replicas": 1,
            "model_service_base_port": 8091,
            "model_service_ready_path": "/never-ready",
            "model_service_ready_timeout": 8,
        },
    )
    try:
        assert result.returncode != 0
        assert "broken-0" in result.stdout and "did not become ready" in result.stdout
        assert "no 200 from http://127.0.0.1:8091/never-ready within 8s" in result.stdout
        # A line of the container's own log, which only `docker logs` knows: the first
        # the server prints (on a busy machine its startup may not complete in the 8 s).
        assert "Started server process" in result.stdout, result.stdout
    finally:
        host.run("docker rm -f broken-0")
        host.run("rm -rf /etc/mlops-vm/broken")
    assert inspect(host, "model-0")["State"]["Running"]


def test_missing_image_is_refused_before_any_change(host):
    started = inspect(host, "model-0")["State"]["StartedAt"]
    result = apply_role("model_service", {"model_service_image_tag": "1.0"})
    assert_refused(result, "model_service_image")
    assert inspect(host, "model-0")["State"]["StartedAt"] == started


def test_wrong_type_is_refused_before_any_change(host):
    started = inspect(host, "model-0")["State"]["StartedAt"]
    result = apply_role(
        "model_service", {"model_service_image": IMAGE, "model_service_replicas": "two"}
    )
    assert_refused(result, "model_service_replicas")
    assert inspect(host, "model-0")["State"]["StartedAt"] == started


def test_unknown_restart_policy_is_refused_before_any_change(host):
    result = apply_role(
        "model_service", {"model_service_image": IMAGE, "model_service_restart_policy": "sometimes"}
    )
    assert_refused(result, "model_service_restart_policy")
    assert inspect(host, "model-0")["State"]["Running"]
