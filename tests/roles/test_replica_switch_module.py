"""The model_service role's swap module (roles/model_service/library/mlops_vm_replica_switch),
run on this machine as Ansible runs it on a host: a successor that does not answer ready
switches nothing, the proxy is switched only when its upstream file changes, the record is
written root 0644 and only when it differs, the retired replica hands its name to its
successor (real containers) and goes in the background, the switch waits until the proxy's
workers from before it have gone (a stand-in master that reloads as Nginx does: later than
the reload command returns), and the host's proxy must answer its health check (HTTPS, a
certificate no client trusts) after the switch."""

import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.localcloud.role_modules import run_role_module

UPSTREAM = "server 127.0.0.1:9081 max_fails=2 fail_timeout=10s;\n"


class Ready:
    """A successor's readiness endpoint answering `status`."""

    def __init__(self) -> None:
        self.status = 200
        ready = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(ready.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ready"


@pytest.fixture
def ready() -> Iterator[Ready]:
    endpoint = Ready()
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.server.shutdown()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Ready]:
    """The host's proxy health check: HTTPS with a self-signed certificate, as the switch
    finds a host's Nginx at 127.0.0.1 (its certificate names the endpoint, not 127.0.0.1)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=endpoint.example.test", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    endpoint = Ready()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    endpoint.server.socket = tls.wrap_socket(endpoint.server.socket, server_side=True)
    endpoint.url = endpoint.url.replace("http://", "https://").replace("/ready", "/healthz")
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.server.shutdown()


def switch(tmp_path: Path, check_mode: bool = False, **args: Any) -> dict[str, Any]:
    """The module's result for ARGS, run through Ansible as on a host (with the role's
    module_utils); the switch command leaves a mark in tmp_path."""
    defaults = {
        "upstream_file": str(tmp_path / "upstream.conf"),
        "upstream_content": UPSTREAM,
        "switch_command": f"echo switched >> {tmp_path / 'switches'}",
        "drain_timeout": 2,
        "proxy_pid_file": str(tmp_path / "no-proxy.pid"),  # no proxy runs: nothing to wait for
    }
    return run_role_module(
        tmp_path / f"run-{uuid.uuid4().hex[:8]}",
        "mlops_vm_replica_switch",
        json.dumps({**defaults, **args}),
        extravars={},
        check=check_mode,
    )


def switches(tmp_path: Path) -> int:
    marks = tmp_path / "switches"
    return len(marks.read_text().splitlines()) if marks.exists() else 0


def test_a_successor_not_ready_fails_and_switches_nothing(tmp_path, ready):
    (tmp_path / "upstream.conf").write_text("server 127.0.0.1:8081;\n")
    ready.status = 503
    result = switch(
        tmp_path,
        ready_url=ready.url,
        record_file=str(tmp_path / "release.json"),
        record_content="{}",
    )
    assert result["failed"] and "does not answer ready" in result["msg"]
    assert "status 503" in result["msg"]
    assert (tmp_path / "upstream.conf").read_text() == "server 127.0.0.1:8081;\n"
    assert switches(tmp_path) == 0
    assert not (tmp_path / "release.json").exists()


def test_a_ready_successor_is_switched_to_and_recorded_once(tmp_path, ready):
    record = {"record_file": str(tmp_path / "release.json"), "record_content": '{"a": 1}'}
    (tmp_path / "upstream.conf").write_text("server 127.0.0.1:8081;\n")

    first = switch(tmp_path, ready_url=ready.url, **record)
    assert first["changed"] and not first.get("failed")
    assert (tmp_path / "upstream.conf").read_text() == UPSTREAM
    assert (tmp_path / "release.json").read_text() == '{"a": 1}'
    assert (tmp_path / "release.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "release.json").stat().st_uid == 0
    assert switches(tmp_path) == 1

    again = switch(tmp_path, ready_url=ready.url, **record)
    assert not again["changed"] and again["changes"] == []
    assert switches(tmp_path) == 1  # the same upstream: the proxy is not switched again


def test_the_switch_is_done_once_the_proxy_answers_its_health_check(tmp_path, ready, proxy):
    (tmp_path / "upstream.conf").write_text("server 127.0.0.1:8081;\n")
    result = switch(tmp_path, ready_url=ready.url, proxy_url=proxy.url, proxy_timeout=2)
    assert result["changed"] and not result.get("failed"), result
    assert "proxy" in result["seconds"]


def test_a_proxy_that_does_not_answer_healthy_after_the_switch_fails_it(tmp_path, ready, proxy):
    (tmp_path / "upstream.conf").write_text("server 127.0.0.1:8081;\n")
    proxy.status = 502  # Nginx with no ready replica behind it
    started = time.monotonic()
    result = switch(tmp_path, ready_url=ready.url, proxy_url=proxy.url, proxy_timeout=1)
    assert result["failed"] and "does not answer its health check" in result["msg"], result
    assert "status 502" in result["msg"] and proxy.url in result["msg"]
    # Polled for proxy_timeout, not given up at the first answer nor waited on forever.
    assert 1 <= time.monotonic() - started < 30
    # What it changed before is reported: the release puts the host back.
    assert result["changed"] and result["changes"] == [f"upstream {tmp_path / 'upstream.conf'}"]
    assert switches(tmp_path) == 1


def test_check_mode_says_what_it_would_change_and_changes_nothing(tmp_path):
    planned = switch(
        tmp_path, check_mode=True, record_file=str(tmp_path / "r.json"), record_content="{}"
    )
    assert planned["changed"]
    assert planned["changes"] == [
        f"upstream {tmp_path / 'upstream.conf'}",
        f"record {tmp_path / 'r.json'}",
    ]
    assert not (tmp_path / "upstream.conf").exists() and not (tmp_path / "r.json").exists()
    assert switches(tmp_path) == 0


# A stand-in for Nginx's master and its workers, as a reload behaves: the signal returns at
# once, the master reads its configuration for RELOAD_S (its old worker still takes new
# requests), starts a new worker, tells the old one to shut down (it retitles itself, same
# process), and the old one exits once its requests in flight are done (FINISH_S; -1:
# never). IGNORE: a master that never takes the new configuration.
WORKER_SCRIPT = (
    "trap 'exec -a \"nginx: worker process is shutting down\" sleep 600' USR1; "
    "while :; do sleep 0.05; done"
)
MASTER_SCRIPT = """
import os, shutil, signal, subprocess, sys, time
pid_file, mode, script = sys.argv[1], sys.argv[2], sys.argv[5]
reload_s, finish_s = float(sys.argv[3]), float(sys.argv[4])
def worker():
    bash = shutil.which("bash")
    return subprocess.Popen(["nginx: worker process", "-c", script], executable=bash)
workers = [worker()]
def reload(*_):
    if mode == "ignore":
        return
    time.sleep(reload_s)
    old = workers.pop()
    workers.append(worker())
    old.send_signal(signal.SIGUSR1)
    if finish_s >= 0:
        time.sleep(finish_s)
        old.kill()
        old.wait()
    else:
        workers.append(old)
def stop(*_):
    for each in workers:
        each.kill()
    sys.exit(0)
signal.signal(signal.SIGHUP, reload)
signal.signal(signal.SIGTERM, stop)
with open(pid_file + ".new", "w") as handle:
    handle.write(f"{os.getpid()}\\n")
os.rename(pid_file + ".new", pid_file)
while True:
    signal.pause()
"""
RELOAD_S = 0.5


class Master:
    """The stand-in master's pid file and process."""

    def __init__(self, tmp_path: Path, mode: str, finish_s: float) -> None:
        self.pid_file = tmp_path / "nginx.pid"
        self.process = subprocess.Popen(
            [sys.executable, "-c", MASTER_SCRIPT, str(self.pid_file), mode, str(RELOAD_S),
             str(finish_s), WORKER_SCRIPT]
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not (self.pid_file.exists() and self.workers()) and time.monotonic() < deadline:
            time.sleep(0.05)

    def workers(self, *pattern: str) -> set[str]:
        """Its workers' process ids (those whose command line matches PATTERN, if given)."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid), *(("-f", *pattern) if pattern else ())],
            capture_output=True,
            text=True,
        )
        return set(found.stdout.split())

    def shutting_down(self) -> set[str]:
        return self.workers("^nginx: worker process is shutting")

    def switch(self, tmp_path: Path, **args: Any) -> dict[str, Any]:
        return switch(
            tmp_path,
            switch_command=f"kill -HUP {self.process.pid}",  # returns at once, as a reload
            proxy_pid_file=str(self.pid_file),
            **args,
        )


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Any]:
    started: list[Master] = []

    def start(mode: str = "reload", finish_s: float = 0.3) -> Master:
        started.append(Master(tmp_path, mode, finish_s))
        return started[-1]

    yield start
    for each in started:
        each.process.terminate()
        each.process.wait(timeout=10)


def alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # not a zombie


def test_the_switch_waits_until_every_worker_of_the_proxy_took_the_new_upstream(tmp_path, master):
    proxy = master()
    before = proxy.workers()
    assert len(before) == 1
    result = proxy.switch(tmp_path, drain_timeout=10)
    assert result["changed"] and not result.get("failed"), result
    # Not done when the reload command returned: the old worker still took requests then.
    assert result["seconds"]["switch"] >= RELOAD_S
    assert all(pid in proxy.shutting_down() or not alive(pid) for pid in before)
    assert len(proxy.workers() - before) == 1


def test_a_proxy_that_never_takes_the_new_upstream_fails_the_switch(tmp_path, master):
    proxy = master("ignore")
    before = proxy.workers()
    result = proxy.switch(tmp_path, drain_timeout=1)
    assert result["failed"] and "did not take the new upstream" in result["msg"], result
    # What it changed is reported (the release puts the host back), and its worker serves on.
    assert result["changed"] and result["changes"] == [f"upstream {tmp_path / 'upstream.conf'}"]
    assert proxy.workers() == before and all(alive(pid) for pid in before)


def test_an_old_worker_that_lingers_does_not_hold_up_the_switch(tmp_path, master):
    proxy = master(finish_s=-1)  # on a client's connection (Nginx's lingering close), say
    before = proxy.workers()
    result = proxy.switch(tmp_path, drain_timeout=20)
    assert result["changed"] and not result.get("failed"), result
    assert result["seconds"]["switch"] < 10  # not the drain timeout
    assert proxy.shutting_down() == before


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def names(prefix: str) -> set[str]:
    return set(
        docker("ps", "--all", "--format", "{{.Names}}", "--filter", f"name={prefix}").split()
    )


def test_the_retired_replica_hands_its_name_to_its_successor_and_goes(tmp_path):
    replica = f"mlops-switch-test-{uuid.uuid4().hex[:8]}"
    image = "mlops-vm/debian:12"
    try:
        docker("create", "--name", replica, "--label", "generation=old", image, "sleep", "60")
        docker("create", "--name", f"{replica}-next", "--label", "generation=new", image, "true")
        result = switch(tmp_path, retire=replica, successor=f"{replica}-next", stop_timeout=1)
        assert result["changed"] and not result.get("failed")
        label = docker("inspect", "--format", "{{.Config.Labels.generation}}", replica).strip()
        assert label == "new"
        deadline = time.monotonic() + 30
        while names(replica) != {replica} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert names(replica) == {replica}  # the old one, set aside as -old, is removed
    finally:
        subprocess.run(
            ["docker", "rm", "--force", replica, f"{replica}-next", f"{replica}-old"],
            capture_output=True,
        )


def test_the_retired_replica_stops_once_the_old_workers_finished_their_requests(tmp_path, master):
    proxy = master(finish_s=5)  # the old worker's requests in flight take 5 s more
    replica = f"mlops-switch-test-{uuid.uuid4().hex[:8]}"
    image = "mlops-vm/debian:12"
    try:
        docker("run", "-d", "--name", replica, image, "sleep", "600")
        docker("create", "--name", f"{replica}-next", image, "true")
        result = proxy.switch(
            tmp_path, retire=replica, successor=f"{replica}-next", stop_timeout=1, drain_timeout=20
        )
        assert result["changed"] and not result.get("failed"), result
        # The release goes on at once; the old replica serves the old worker until it exits.
        assert names(replica) == {replica, f"{replica}-old"}
        time.sleep(2.5)  # a stop that did not wait would be over (1 s to stop, then removed)
        assert f"{replica}-old" in names(replica) and proxy.shutting_down()
        deadline = time.monotonic() + 30
        while names(replica) != {replica} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert names(replica) == {replica}
        assert not proxy.shutting_down()  # it went after the old worker, not before
    finally:
        subprocess.run(
            ["docker", "rm", "--force", replica, f"{replica}-next", f"{replica}-old"],
            capture_output=True,
        )
