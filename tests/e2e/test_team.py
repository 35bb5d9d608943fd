"""Several people on one environment, felt the way they feel it: the deploy lock (a second
run refuses at once naming the first, under a steady request loop that must see no failed
request), a lock left by a killed run (stale, released by hand), and the release history
with `rollback --to N`.

Runs the real thing: 2 local VMs x 1 replica behind the local load balancer (the lock and
the history live on the LB host VM), images from the TLS registry. One environment is
shared by the tests of this module, in order: the history test comes first, as it counts
the entries since the environment was provisioned.
"""

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_vm.localcloud import images, registry
from tests.environments import CLI, cli, cli_json, provisioned_environment
from tests.load import RequestLoop

pytestmark = pytest.mark.slow

ENV = "team"
PORT = 18527
REPOSITORY = f"{registry.ADDRESS}/{images.MODEL_REPOSITORY}"
IMAGE_10 = f"{REPOSITORY}:1.0"
IMAGE_11 = f"{REPOSITORY}:1.1"
BROKEN = f"{REPOSITORY}:{images.BROKEN_MODEL_VERSION}"
LB_HOST = f"host mlops-vm-{ENV}-lb"


@pytest.fixture(scope="module")
def environment(platform, tmp_path_factory):
    overrides = {"load_balancer": {"publish_port": PORT}, "release": {"ready_timeout_s": 60}}
    root = tmp_path_factory.mktemp("inventories")
    with provisioned_environment(root, ENV, overrides, packaged_hosts=True) as (directory, _):
        yield directory


@pytest.fixture
def steady(environment) -> Iterator[RequestLoop]:
    """A steady request loop (10 requests/s) through the endpoint; none may fail."""
    ca_file = str(Path.home() / ".mlops-vm" / "envs" / ENV / "pki" / "ca.crt")
    with RequestLoop(f"https://127.0.0.1:{PORT}", ca_file, threads=1, interval_s=0.1) as loop:
        time.sleep(1)
        yield loop
    assert loop.outcomes, "the request loop sent nothing"
    assert not loop.failures(), loop.summary()


def start(*args: str) -> subprocess.Popen[str]:
    """A CLI run in the background, in its own session (so a test can kill all of it)."""
    return subprocess.Popen(
        [CLI, *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        start_new_session=True,
    )


def lock_state(environment: Path) -> dict[str, str]:
    code, answer = cli_json("lock", str(environment))
    assert code == 0, answer
    return {lock["where"]: lock for lock in answer["locks"]}


def wait_for_lock_on_the_host(environment: Path, run: subprocess.Popen[str]) -> dict:
    """The lock as the LB host shows it, once RUN holds it there."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        lock = lock_state(environment).get(LB_HOST)
        if lock and lock["state"] == "held":
            return lock
        time.sleep(0.5)
    pytest.fail("the first run never took the lock on the LB host")


def run_folders() -> set[Path]:
    return set((Path.home() / ".mlops-vm" / "runs" / ENV).glob("*"))


def refused_at_once(environment: Path, *args: str) -> tuple[dict, float]:
    """The refused run's answer and how long it took. Its ansible-playbook, started while
    the lock was asked for (run_gate.py), stopped at its first task: no run folder left."""
    before = run_folders()
    started = time.monotonic()
    code, answer = cli_json(*args, str(environment))
    elapsed = time.monotonic() - started
    assert code == 1, answer
    assert run_folders() <= before, "a refused run left a run folder"
    return answer, elapsed


def one_release(environment: Path, image: str) -> None:
    """`status` exits 0 and every model host runs IMAGE."""
    code, answer = cli_json("status", str(environment))
    assert code == 0, answer
    models = [row for row in answer["instances"] if row["role"] == "model"]
    assert {row["running_image"] for row in models} == {image}, models


def finished(run: subprocess.Popen[str]) -> None:
    stdout, stderr = run.communicate(timeout=1500)
    assert run.returncode == 0, stdout[-3000:] + stderr[-2000:]


def test_history_lists_every_change_in_order_and_rollback_to_goes_back_to_any(environment):
    for args in (("deploy", "--image", IMAGE_11), ("deploy", "--image", IMAGE_10), ("rollback",)):
        code, summary = cli_json(args[0], str(environment), *args[1:])
        assert code == 0, summary
    code, answer = cli_json("history", str(environment))
    assert code == 0, answer
    entries = answer["entries"]
    assert [e["verb"] for e in entries] == ["provision", "deploy", "deploy", "rollback"]
    assert [e["n"] for e in entries] == [1, 2, 3, 4]
    moves = [
        (e["from_release"] and e["from_release"]["image"], e["to_release"]["image"])
        for e in entries
    ]
    assert moves == [
        (None, IMAGE_10),
        (IMAGE_10, IMAGE_11),
        (IMAGE_11, IMAGE_10),
        (IMAGE_10, IMAGE_11),
    ]
    for entry in entries:
        assert entry["result"] == "ok" and entry["duration_s"] > 0
        assert entry["user"] and entry["host"] and entry["command"].startswith("mlops-vm ")
    assert entries[1]["command"].endswith(f"deploy {environment} --image {IMAGE_11} --json")
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)

    code, summary = cli_json("rollback", str(environment), "--to", "1")
    assert code == 0, summary
    one_release(environment, IMAGE_10)
    last = cli_json("history", str(environment))[1]["entries"][-1]
    assert (last["n"], last["verb"], last["to_release"]["image"]) == (5, "rollback", IMAGE_10)
    assert last["command"].endswith("--to 1 --json")

    code, answer = cli_json("rollback", str(environment), "--to", "9")
    assert code == 2 and "no entry 9" in answer["error"], answer

    # The run tells its releases (no host read for them): each entry names the image and
    # sizes (never env), and one entry's to is the next one's from.
    entries = cli_json("history", str(environment))[1]["entries"]
    provisioned = entries[0]["to_release"]
    assert set(provisioned) == {"image", "replicas", "workers", "cpus", "memory", "gpus"}
    assert entries[1]["to_release"] == {**provisioned, "image": IMAGE_11}
    for earlier, later in itertools.pairwise(entries):
        assert later["from_release"] == earlier["to_release"], (earlier, later)
    assert entries[4]["to_release"] == provisioned

    # A deploy of the running release changes nothing: no entry.
    code, summary = cli_json("deploy", str(environment), "--image", IMAGE_10)
    assert code == 0 and summary["release"]["hosts_changed"] == [], summary
    # A release that never gets ready stops before any host switched: from and to the same.
    code, summary = cli_json("deploy", str(environment), "--image", BROKEN)
    assert code == 1 and summary["release"]["failure"], summary
    entries = cli_json("history", str(environment))[1]["entries"]
    assert [e["n"] for e in entries] == [1, 2, 3, 4, 5, 6]
    failed = entries[-1]
    assert (failed["verb"], failed["result"]) == ("deploy", "rolled back"), failed
    assert failed["from_release"] == failed["to_release"] == provisioned, failed
    one_release(environment, IMAGE_10)


def test_a_second_deploy_is_refused_at_once_naming_the_first(environment, steady):
    first = start("deploy", str(environment), "--image", IMAGE_11)
    holder = wait_for_lock_on_the_host(environment, first)["holder"]
    answer, elapsed = refused_at_once(environment, "deploy", "--image", IMAGE_10)
    assert elapsed < 20, f"refused only after {elapsed:.0f}s"
    said = " ".join(answer["problems"])
    assert f"{holder['user']}@{holder['host']}" in said
    assert f"deploy {environment} --image {IMAGE_11}" in said
    assert answer["lock"]["state"] == "held"
    finished(first)
    one_release(environment, IMAGE_11)


def test_a_deploy_is_refused_while_a_provision_runs(environment, steady):
    first = start("provision", str(environment))
    wait_for_lock_on_the_host(environment, first)
    answer, _ = refused_at_once(environment, "deploy", "--image", IMAGE_10)
    assert f"provision {environment}" in " ".join(answer["problems"])
    finished(first)
    one_release(environment, IMAGE_11)  # provision keeps the deployed release


def descendants(pid: int) -> list[int]:
    """PID's child processes, and theirs (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_a_lock_left_by_a_killed_run_is_stale_until_released(environment):
    run = start("deploy", str(environment), "--image", IMAGE_10)
    wait_for_lock_on_the_host(environment, run)
    for pid in [run.pid, *descendants(run.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    run.communicate()

    locks = lock_state(environment)
    assert locks[LB_HOST]["state"] == "stale", locks
    assert "is gone" in locks[LB_HOST]["stale_reason"]
    answer, _ = refused_at_once(environment, "deploy", "--image", IMAGE_10)
    assert "--release" in " ".join(answer["problems"])

    proc = cli("lock", str(environment), "--release")
    assert proc.returncode == 0, proc.stderr
    assert f"released the lock on {LB_HOST}" in proc.stdout
    assert {lock["state"] for lock in lock_state(environment).values()} == {"free"}

    code, summary = cli_json("deploy", str(environment), "--image", IMAGE_10)
    assert code == 0, summary
    one_release(environment, IMAGE_10)
