"""The model replicas' readiness helper (roles/model_service/files/mlops-vm-wait-ready):
a release's swap calls it once for the wait, the GPU check and the removal of a successor
that fails either. Run against a local HTTP server and a fake `docker` that logs its calls.
"""

import http.server
import subprocess
import sys
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


@pytest.fixture
def ready_url() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/readyz"
    server.shutdown()


def run_helper(
    tmp_path: Path, url: str, *flags: str, nvidia_smi_rc: int, timeout_s: str = "10"
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
        env={"PATH": f"{fake.parent}:/usr/bin:/bin"},
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
