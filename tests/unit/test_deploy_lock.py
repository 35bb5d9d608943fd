"""The deploy lock's decisions (free, held, stale, released) and the history's, without
Docker: the ledger program runs for real on folders of this machine (the same program runs
on a host over SSH)."""

import json
import math
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlops_vm.commands.history import changed_the_model, result_of
from mlops_vm.commands.lock import terminate_as_interrupt
from mlops_vm.provision.model import ROLE_LB, ROLE_MODEL, Instance, InstanceStatus
from mlops_vm.release.choose import choose_release
from mlops_vm.release.deploy_lock import (
    STALE_AFTER,
    Holder,
    Locked,
    acquire,
    ledger_host,
    release,
    stale_reason,
    state_of,
    still_there,
)
from mlops_vm.release.ledger import HostLedger, LocalLedger

NOW = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


def holder(**changes) -> Holder:
    base = Holder(
        token="t1",
        user="alice",
        host="laptop",
        pid=4242,
        started_at=NOW.isoformat(timespec="seconds"),
        command="mlops-vm deploy dev --image r/m:1.1",
        env="dev",
    )
    return replace(base, **changes)


def test_a_live_holder_on_this_machine_holds_the_lock():
    assert stale_reason(holder(), now=NOW, this_host="laptop", alive=lambda pid: True) == ""


def test_a_holder_whose_process_is_gone_on_this_machine_is_stale():
    reason = stale_reason(holder(), now=NOW, this_host="laptop", alive=lambda pid: False)
    assert reason == "its process 4242 on laptop is gone"


def test_another_machine_s_process_is_not_judged_here_only_its_age():
    def never_asked(pid: int) -> bool:
        raise AssertionError("a process of another machine was looked up here")

    later = NOW + timedelta(minutes=30)
    assert stale_reason(holder(), now=later, this_host="ci-runner", alive=never_asked) == ""
    older = NOW + STALE_AFTER + timedelta(seconds=1)
    assert "older than" in stale_reason(holder(), now=older, this_host="ci", alive=never_asked)


def test_a_lock_that_says_nothing_of_its_start_is_stale():
    assert stale_reason(holder(started_at=""), now=NOW, this_host="x", alive=lambda p: True)


def test_state_names_who_since_when_and_what():
    assert state_of("host lb", None, NOW).state == "free"
    later = NOW + timedelta(seconds=35)
    state = state_of("host lb", json.loads(json.dumps(holder(host="elsewhere").__dict__)), later)
    assert state.state == "held"
    text = state.text(later)
    assert "alice@elsewhere" in text and "35s ago" in text
    assert "mlops-vm deploy dev --image r/m:1.1" in text


def test_the_second_run_is_refused_naming_the_first(tmp_path: Path):
    place = LocalLedger(tmp_path / "ledger")
    first = Holder.of_this_run("dev", NOW)
    assert acquire([place], first, NOW) == [place]
    with pytest.raises(Locked) as refused:
        acquire([place], Holder.of_this_run("dev", NOW), NOW)
    assert refused.value.state.holder == first
    assert refused.value.state.state == "held"  # this very process holds it: alive


def test_only_the_holder_s_token_releases_and_then_the_next_run_gets_it(tmp_path: Path):
    place = LocalLedger(tmp_path / "ledger")
    first = Holder.of_this_run("dev", NOW)
    acquire([place], first, NOW)
    release([place], "not-the-token")
    assert place.call("read")["holder"]["token"] == first.token
    release([place], first.token)
    assert place.call("read")["holder"] is None
    assert acquire([place], Holder.of_this_run("dev", NOW), NOW) == [place]


def test_an_acquire_tells_since_when_the_lock_had_been_left_alone(tmp_path: Path):
    """What tells a run started before it took the lock (commands/playbook.py) whether
    another run took or released it meanwhile: the latest change of any place's folder,
    which every version of the ledger program makes as it takes or releases the lock."""
    here, shared = LocalLedger(tmp_path / "here"), LocalLedger(tmp_path / "shared")
    first = Holder.of_this_run("dev", NOW)
    assert acquire([here, shared], first, NOW).free_since == -math.inf  # never used
    release([here, shared], first.token)
    a_minute_ago = time.time() - 60
    for place in ("here", "shared"):
        os.utime(tmp_path / place, (a_minute_ago, a_minute_ago))
    second = Holder.of_this_run("dev", NOW)
    assert acquire([here, shared], second, NOW).free_since <= time.monotonic() - 59
    # Another run's release, by any version of the program: the lock file goes.
    (tmp_path / "shared" / "lock.json").unlink()
    (tmp_path / "here" / "lock.json").unlink()
    assert acquire([here, shared], first, NOW).free_since >= time.monotonic() - 30


def test_a_lock_of_a_dead_process_reads_as_stale_until_released(tmp_path: Path):
    place = LocalLedger(tmp_path / "ledger")
    dead = holder(host=socket.gethostname(), pid=2**22 + 12345)
    acquire([place], dead, NOW)
    with pytest.raises(Locked) as refused:
        acquire([place], Holder.of_this_run("dev", NOW), NOW)
    assert refused.value.state.state == "stale"
    release([place], dead.token)
    acquire([place], Holder.of_this_run("dev", NOW), NOW)


def test_all_places_or_none(tmp_path: Path):
    here, shared = LocalLedger(tmp_path / "here"), LocalLedger(tmp_path / "shared")
    other = holder(token="other")
    acquire([shared], other, NOW)
    with pytest.raises(Locked):
        acquire([here, shared], Holder.of_this_run("dev", NOW), NOW)
    assert here.call("read")["holder"] is None  # taken here first, given back
    assert shared.call("read")["holder"]["token"] == "other"


def test_history_appends_in_order(tmp_path: Path):
    place = LocalLedger(tmp_path / "ledger")
    assert place.call("history") == {"entries": []}
    for n in range(3):
        place.call("append", json.dumps({"n": n, "command": f"mlops-vm deploy {n}"}))
    assert [e["n"] for e in place.call("history")["entries"]] == [0, 1, 2]


class Counted:
    """A ledger that counts the calls made to it."""

    def __init__(self, ledger: LocalLedger) -> None:
        self.ledger, self.where, self.calls = ledger, ledger.where, []

    def call(self, action: str, given: str = "") -> dict:
        self.calls.append(action)
        return self.ledger.call(action, given)


def test_a_run_s_entry_goes_with_its_release_in_one_call_to_the_last_place(tmp_path: Path):
    here, shared = Counted(LocalLedger(tmp_path / "here")), Counted(LocalLedger(tmp_path / "s"))
    run = Holder.of_this_run("dev", NOW)
    acquire([here, shared], run, NOW)
    entry = {"time": "2026-12-05T14:00:00+00:00", "verb": "deploy", "result": "ok"}
    assert release([here, shared], run.token, entry=json.dumps(entry)) == []
    assert (here.calls, shared.calls) == (["acquire", "release"], ["acquire", "release"])
    assert shared.call("history")["entries"] == [entry]
    assert here.call("history")["entries"] == []  # every operator reads the shared one
    assert here.call("read")["holder"] is None and shared.call("read")["holder"] is None


def test_an_entry_is_kept_even_when_its_lock_was_cleared_meanwhile(tmp_path: Path):
    place = LocalLedger(tmp_path / "ledger")
    cleared, next_run = Holder.of_this_run("dev", NOW), Holder.of_this_run("dev", NOW)
    acquire([place], next_run, NOW)  # `lock --release` cleared the first, another run took it
    release([place], cleared.token, entry=json.dumps({"verb": "deploy"}))
    assert place.call("history")["entries"] == [{"verb": "deploy"}]
    assert place.call("read")["holder"]["token"] == next_run.token  # not the first's to free


def test_a_second_operator_waiting_gets_the_lock_only_once_the_first_s_entry_is_in(
    tmp_path: Path,
):
    shared = LocalLedger(tmp_path / "shared")
    first, second = Holder.of_this_run("dev", NOW), Holder.of_this_run("dev", NOW)
    acquire([shared], first, NOW)

    def keep_trying() -> list[dict]:
        while True:
            try:
                acquire([shared], second, NOW)
            except Locked:
                continue
            return shared.call("history")["entries"]  # what the second sees on taking it

    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(keep_trying)
        time.sleep(0.3)  # refused meanwhile
        release([shared], first.token, entry=json.dumps({"by": "first"}))
        assert seen.result(timeout=30) == [{"by": "first"}]
    release([shared], second.token, entry=json.dumps({"by": "second"}))
    assert shared.call("history")["entries"] == [{"by": "first"}, {"by": "second"}]
    assert shared.call("read")["holder"] is None


def instance(name: str, role: str, status=InstanceStatus.RUNNING) -> Instance:
    return Instance(id=name, name=name, status=status, public_ip="10.0.0.1", role=role)


def test_the_lock_lives_on_the_lb_host_else_the_first_running_model_host():
    models = [instance("m-2", ROLE_MODEL), instance("m-1", ROLE_MODEL)]
    assert ledger_host([*models, instance("lb", ROLE_LB)]).name == "lb"
    assert ledger_host(models).name == "m-1"
    stopped = [instance("m-1", ROLE_MODEL, InstanceStatus.STOPPED), models[0]]
    assert ledger_host(stopped).name == "m-2"
    assert ledger_host([]) is None


def test_after_a_destroy_the_lock_is_released_only_where_the_host_is_still_there(tmp_path):
    """A host that went with the destroy is not called (an SSH timeout, 10 s, to learn it);
    one a failed destroy left keeps its lock's release; this machine's is always released."""
    here = LocalLedger(tmp_path)
    gone, kept = HostLedger("lb", {}), HostLedger("m-1", {})
    running = [instance("m-1", ROLE_MODEL), instance("lb", ROLE_LB, InstanceStatus.TERMINATED)]
    assert still_there([here, gone], running) == [here]
    assert still_there([here, kept], running) == [here, kept]
    assert still_there([here, kept], []) == [here]


def summary(ok=True, **fields) -> dict:
    return {"ok": ok, "status": "successful" if ok else "failed", "changes": [], **fields}


def test_a_run_is_recorded_when_it_changed_the_model_or_failed():
    one, two = {"image": "r/m:1.0"}, {"image": "r/m:1.1"}
    assert changed_the_model(summary(), None, one)
    assert changed_the_model(summary(), one, two)
    assert not changed_the_model(summary(release={"hosts_changed": []}), one, one)
    assert changed_the_model(summary(changes=["update instance m-1 (resize to x)"]), one, one)
    assert changed_the_model(summary(ok=False), one, one)


def test_results_say_rolled_back_with_the_reason():
    failure = {"host": "m-1", "reason": "keeps restarting"}
    assert result_of(summary(ok=False, release={"failure": failure})) == (
        "rolled back",
        "m-1: keeps restarting",
    )
    assert result_of(summary()) == ("ok", "")
    failed = summary(ok=False, failures=[{"host": "m-2", "message": "pull failed"}])
    assert result_of(failed) == ("failed", "m-2: pull failed")


def test_rollback_to_a_history_release_keeps_the_inventory_env():
    model = {"image": "r/m:1.2", "replicas": 2, "env": {"LOG_LEVEL": "info"}}
    to = {"image": "r/m:1.0", "replicas": 1, "memory": "512m", "fingerprint": "abc"}
    choice = choose_release("rollback", model, {"m-1": None}, "r/m:1.0", to)
    assert choice.source == "rollback"
    assert choice.release["image"] == "r/m:1.0"
    assert choice.release["replicas"] == 1 and choice.release["memory"] == "512m"
    assert choice.release["env"] == {"LOG_LEVEL": "info"}
    assert "fingerprint" not in choice.release


@pytest.fixture
def sigint_handler():
    """Python's own Ctrl-C handler for the test: ansible-runner, run in-process by an earlier
    test of the same worker, leaves its own (it sets a cancel flag instead of raising)."""

    def use(handler) -> None:
        signal.signal(signal.SIGINT, handler)

    before = signal.getsignal(signal.SIGINT)
    use(signal.default_int_handler)
    yield use
    signal.signal(signal.SIGINT, before)


def test_sigterm_stops_a_locked_run_like_ctrl_c_so_the_lock_is_released(sigint_handler):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted long before
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_goes_to_the_ctrl_c_handler_a_running_playbook_installed(sigint_handler):
    """During a playbook, ansible-runner's Ctrl-C handler cancels the run cleanly: SIGTERM
    takes the same way."""
    seen = []
    sigint_handler(lambda signum, frame: seen.append(signum))
    with terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == [signal.SIGINT]
