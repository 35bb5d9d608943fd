"""Behaviour of the docker_engine role on a converged VM."""

from __future__ import annotations

import json

from mlops_molecule import apply_role, assert_refused

REGISTRY = "registry.mlops-vm.test:5443"


def docker_info(host) -> dict:
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


def test_engine_is_running_and_enabled(host):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled
    assert host.run("docker version --format '{{.Server.Version}}'").rc == 0


def test_daemon_runs_with_the_rendered_settings(host):
    info = docker_info(host)
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    assert info["Driver"] == "overlay2"
    assert "https://mirror.mlops-vm.test/" in info["RegistryConfig"]["Mirrors"]


def test_new_containers_get_log_rotation(host):
    # An empty image is enough: the daemon fills in the log settings when a
    # container is created, without starting it.
    host.check_output("tar -cf - --files-from /dev/null | docker import - mlops-test/empty:1")
    host.run("docker rm -f mlops-test-logs")
    host.check_output("docker create --name mlops-test-logs mlops-test/empty:1 /none")
    try:
        log_config = json.loads(
            host.check_output("docker inspect -f '{{json .HostConfig.LogConfig}}' mlops-test-logs")
        )
    finally:
        host.run("docker rm -f mlops-test-logs")
    assert log_config == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}


def test_daemon_socket_is_not_exposed_on_tcp(host):
    listeners = host.check_output("ss -Htlnp").splitlines()
    assert not [line for line in listeners if '"dockerd"' in line], listeners
    # containerd's CRI streaming server is loopback-only; nothing else of the
    # engine listens on TCP.
    for line in listeners:
        if '"containerd"' in line:
            assert line.split()[3].startswith("127.0.0.1:"), line
    command_line = host.check_output("tr '\\0' ' ' < /proc/$(pidof dockerd)/cmdline")
    assert "tcp://" not in command_line
    socket = host.file("/run/docker.sock")
    assert socket.is_socket
    assert socket.group == "docker"
    assert socket.mode == 0o660


def test_listed_user_can_use_docker_and_others_cannot(host):
    allowed = host.run("sudo -u mlops docker version --format '{{.Server.Version}}'")
    assert allowed.rc == 0, allowed.stderr
    denied = host.run("sudo -u outsider docker version --format '{{.Server.Version}}'")
    assert denied.rc != 0
    assert "permission denied" in denied.stderr


def test_private_registry_ca_is_trusted(host):
    # Without credentials the pull must get as far as the registry's
    # authentication, which it only reaches once TLS verified.
    pull = host.run(f"docker pull {REGISTRY}/mlops-vm/model-service:1.0")
    assert pull.rc != 0
    assert "no basic auth credentials" in pull.stderr or "unauthorized" in pull.stderr, pull.stderr
    assert "x509" not in pull.stderr and "certificate" not in pull.stderr, pull.stderr
    ca = host.file(f"/etc/docker/certs.d/{REGISTRY}/ca.crt")
    assert ca.mode == 0o644


def test_docker_repository_source_is_signed_by_its_own_key(host):
    source = host.file("/etc/apt/sources.list.d/docker.sources")
    assert source.contains("^Signed-By: /etc/apt/keyrings/docker.asc$")
    key = host.file("/etc/apt/keyrings/docker.asc")
    assert key.contains("BEGIN PGP PUBLIC KEY BLOCK")
    assert key.mode == 0o644
    # Trusted for that repository only, not system-wide.
    assert host.run("grep -rl 'mlops-vm test repository' /etc/apt/trusted.gpg.d").rc != 0
    # apt parses the file and would fetch exactly these indexes (--print-uris
    # fetches nothing).
    uris = host.check_output("apt-get update --print-uris")
    assert "http://127.0.0.1:9/docker-ce/debian/dists/bookworm/InRelease" in uris


def test_nvidia_repository_source_is_flat_and_per_architecture(host):
    source = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources")
    assert source.contains("^Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc$")
    uris = host.check_output("apt-get update --print-uris")
    assert "http://127.0.0.1:9/libnvidia-container/stable/deb/amd64/InRelease" in uris


def test_daemon_took_the_nvidia_runtime(host):
    info = docker_info(host)
    assert info["Runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert info["DefaultRuntime"] == "runc"
    daemon_json = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon_json["runtimes"] == {"nvidia": {"path": "nvidia-container-runtime", "args": []}}
    # The settings from the converge survived the merge.
    assert daemon_json["log-opts"] == {"max-size": "10m", "max-file": "3"}


def test_tcp_socket_is_refused_before_any_change(host):
    before = host.file("/etc/docker/daemon.json").sha256sum
    result = apply_role(
        "docker_engine", {"docker_engine_daemon_options": {"hosts": ["tcp://0.0.0.0:2375"]}}
    )
    assert_refused(result, "docker_engine_daemon_options.hosts")
    assert host.file("/etc/docker/daemon.json").sha256sum == before
    assert host.service("docker").is_running
    assert "dockerd" not in host.check_output("ss -Htlnp")


def test_wrong_type_is_refused_before_any_change(host):
    result = apply_role("docker_engine", {"docker_engine_live_restore": "sometimes"})
    assert_refused(result, "docker_engine_live_restore")
    assert host.service("docker").is_running


def test_unknown_source_is_refused_before_any_change(host):
    result = apply_role("docker_engine", {"docker_engine_source": "snap"})
    assert_refused(result, "docker_engine_source", "distribution, docker")
    assert host.service("docker").is_running


def test_missing_registry_ca_key_is_refused(host):
    result = apply_role(
        "docker_engine", {"docker_engine_registry_ca_certs": [{"registry": REGISTRY}]}
    )
    assert_refused(result, "content")
    assert host.file(f"/etc/docker/certs.d/{REGISTRY}/ca.crt").exists
