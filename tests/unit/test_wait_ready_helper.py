"""The model replicas' readiness helper (roles/model_service/files/mlops-vm-wait-ready):
a release's swap calls it once for the wait, the GPU check and the removal of a successor
that fails either. Run against a local HTTP server, a fake engine on a UNIX socket (the
container's state) and a fake `docker` CLI (logs, exec, rm, and the state where the socket
cannot be read), both logging what they were asked.
"""

import http.server
import json
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_vm import paths

HELPER = paths.PROJECT_DIR / "roles" / "model_service" / "files" / "mlops-vm-wait-ready"

# `docker inspect` answers a running container; `docker exec ... nvidia-smi` answers as
# NVIDIA_SMI_RC says; every call is appended to the log file.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  inspect) echo '[{{"State": {{"Status": "running"}}, "RestartCount": 0}}]' ;;
  exec) echo "no devices were found"; exit {nvidia_smi_rc} ;;
esac
"""


class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Engine(http.server.BaseHTTPRequestHandler):
    """GET /containers/NAME/json answers the server's STATE; every path asked is logged."""

    def do_GET(self) -> None:
        self.server.asked.append(self.path)  # type: ignore[attr-defined]
        body = json.dumps(self.server.state).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


RUNNING = {"State": {"Status": "running"}, "RestartCount": 0}


@pytest.fixture
def engine() -> Iterator[socketserver.UnixStreamServer]:
    """A fake Docker engine; its .path, .state (what it says of any container), .asked."""
    # A short path: a UNIX socket's name is limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="engine-", dir="/tmp") as folder:
        server = socketserver.ThreadingUnixStreamServer(f"{folder}/docker.sock", Engine)
        server.state, server.asked = RUNNING, []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server
        server.shutdown()
        server.server_close()


@pytest.fixture
def ready_url() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/readyz"
    server.shutdown()


def run_helper(
    tmp_path: Path,
    url: str,
    *flags: str,
    nvidia_smi_rc: int,
    timeout_s: str = "10",
    engine_socket: str = "/nonexistent/docker.sock",
) -> tuple[int, str, str]:
    """(exit code, stdout, the fake docker's calls)"""
    log = tmp_path / "docker.log"
    log.touch()
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(FAKE_DOCKER.format(log=log, nvidia_smi_rc=nvidia_smi_rc))
    fake.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, str(HELPER), "model-0-next", url, timeout_s, "5", *flags],
        capture_output=True,
        text=True,
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", "DOCKER_HOST": f"unix://{engine_socket}"},
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout, log.read_text()


def test_a_ready_replica_exits_0_and_nothing_is_removed(tmp_path, ready_url):
    code, out, calls = run_helper(tmp_path, ready_url, "--remove", nvidia_smi_rc=1)
    assert code == 0, out
    assert "rm" not in calls.split()


def test_a_ready_replica_without_its_gpus_fails_and_is_removed(tmp_path, ready_url):
    code, out, calls = run_helper(tmp_path, ready_url, "--gpus", "--remove", nvidia_smi_rc=1)
    assert code == 1
    assert "No GPU visible in it (nvidia-smi -L): no devices were found" in out
    assert "exec model-0-next nvidia-smi -L" in calls
    assert "rm --force model-0-next" in calls


def test_a_ready_replica_that_sees_its_gpus_exits_0(tmp_path, ready_url):
    code, out, calls = run_helper(tmp_path, ready_url, "--gpus", "--remove", nvidia_smi_rc=0)
    assert code == 0, out
    assert "rm --force" not in calls


def test_a_replica_that_never_answers_is_kept_without_remove(tmp_path):
    # Nothing listens on port 9 (discard): the wait gives up at its timeout.
    url = "http://127.0.0.1:9/readyz"
    code, out, calls = run_helper(tmp_path, url, nvidia_smi_rc=0, timeout_s="1")
    assert code == 1
    assert f"no 200 from {url} within 1s" in out
    assert "rm --force" not in calls


def test_the_containers_state_is_asked_of_the_engines_socket(tmp_path, engine):
    # Not a docker process each second: the engine's own answer, here a container that
    # exited, ends the wait with why.
    engine.state = {"State": {"Status": "exited", "ExitCode": 3}, "RestartCount": 0}
    url = "http://127.0.0.1:9/readyz"
    code, out, calls = run_helper(
        tmp_path, url, nvidia_smi_rc=0, timeout_s="30", engine_socket=engine.server_address
    )
    assert code == 1
    assert "model-0-next: the container exited with code 3" in out
    assert "/containers/model-0-next/json" in engine.asked
    assert "inspect" not in calls.split()


def test_a_socket_that_cannot_be_read_leaves_the_state_to_the_docker_cli(tmp_path):
    url = "http://127.0.0.1:9/readyz"
    code, out, calls = run_helper(tmp_path, url, nvidia_smi_rc=0, timeout_s="1")
    assert code == 1, out
    assert "inspect model-0-next" in calls
