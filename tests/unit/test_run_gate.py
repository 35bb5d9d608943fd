"""The gate between the lock and the run (mlops_vm/run_gate.py, the callback plugin
mlops_vm_run_gate): a real ansible-playbook, started through the CLI's PlaybookRun with
the repository's ansible.cfg, waits at its first task until the gate says go, and ends
there, having run nothing, when it says stop or when the CLI is gone."""

import contextlib
import math
import os
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from ptyprocess import PtyProcess

from mlops_vm.commands.playbook import started_before_the_lock
from mlops_vm.run_gate import GATE_VARIABLE, RunGate, wait_at
from mlops_vm.runner import PlaybookRun

PLAYBOOK = """
- name: Gated
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Leave a mark and the environment a task sees
      ansible.builtin.copy:
        dest: "{{ mark }}"
        content: "{{ lookup('ansible.builtin.env', 'MLOPS_VM_RUN_GATE') }}"
        mode: "0600"
"""


SLOW_FIRST = """
- name: Gated, a slow task first
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Take a while
      ansible.builtin.command: sleep 30
      changed_when: false
    - name: Leave a mark
      ansible.builtin.copy:
        dest: "{{ mark }}"
        content: ""
        mode: "0600"
"""


def make_run(tmp_path: Path, playbook: str) -> PlaybookRun:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (tmp_path / "gated.yml").write_text(playbook)
    run = PlaybookRun(
        env="gate",
        inventory_dir=tmp_path / "inventory",
        playbook=str(tmp_path / "gated.yml"),
        extravars={"mark": str(tmp_path / "mark")},
    )
    run.run_dir = tmp_path / "run"
    return run


@pytest.fixture
def gated_run(tmp_path: Path) -> PlaybookRun:
    return make_run(tmp_path, PLAYBOOK)


@pytest.fixture
def slow_run(tmp_path: Path) -> PlaybookRun:
    return make_run(tmp_path, SLOW_FIRST)


def at_the_gate(run: PlaybookRun, timeout_s: float = 60) -> None:
    """Wait until RUN announced its first task: the gate is right after that event."""
    deadline = time.monotonic() + timeout_s
    while not run.state.task:
        assert time.monotonic() < deadline, "ansible-playbook never reached its first task"
        time.sleep(0.02)


def test_the_run_waits_at_its_first_task_until_the_gate_says_go(gated_run, tmp_path):
    mark = tmp_path / "mark"
    gate = RunGate()
    try:
        gated_run.start(gate)
        at_the_gate(gated_run)
        time.sleep(0.5)  # a run that did not wait would have left its mark by now
        assert not mark.exists()
        assert not gated_run.state.hosts, "a task ran before the gate said go"
        gate.go()
        result = gated_run.wait()
    finally:
        gate.close()
    assert result.ok, result.status
    # No process the run starts waits at the gate again (a nested ansible-playbook).
    assert mark.read_text() == ""


def test_the_run_ends_at_the_gate_when_told_to_stop(gated_run, tmp_path):
    gate = RunGate()
    try:
        gated_run.start(gate)
        at_the_gate(gated_run)
        gate.stop()
        result = gated_run.wait()
    finally:
        gate.close()
    assert not result.ok
    assert not (tmp_path / "mark").exists()
    assert not gated_run.state.hosts, "a task ran although the gate said stop"
    stdout = (gated_run.run_dir / "artifacts" / "run" / "stdout").read_text()
    assert "stopped before its first task" in stdout


def test_a_refused_lock_stops_the_early_run_and_leaves_no_run_folder(gated_run, tmp_path):
    class Refused(Exception):
        pass

    with pytest.raises(Refused), started_before_the_lock(gated_run, early=True):
        at_the_gate(gated_run)
        raise Refused  # as held() does when another run holds the lock
    assert not (tmp_path / "mark").exists()
    assert not gated_run.run_dir.exists()
    assert gated_run._thread is not None and not gated_run._thread.is_alive()


def test_a_held_lock_lets_the_early_run_go_on(gated_run, tmp_path):
    with started_before_the_lock(gated_run, early=True) as go:
        at_the_gate(gated_run)
        thread = gated_run._thread
        go(-math.inf)  # the lock had been left alone all along
        result = gated_run.wait()
    assert result.ok, result.status
    assert gated_run._thread is thread, "the early run was started again"
    assert (tmp_path / "mark").exists()


def test_a_lock_released_by_another_run_since_the_start_starts_the_run_again(gated_run, tmp_path):
    """The early run read the inventory before another run (that may have changed the
    hosts) released the lock: it is stopped at the gate and a new run reads it again."""
    with started_before_the_lock(gated_run, early=True) as go:
        at_the_gate(gated_run)
        thread = gated_run._thread
        go(time.monotonic())  # another run released the lock just now
        result = gated_run.wait()
    assert result.ok, result.status
    assert gated_run._thread is not thread
    assert (tmp_path / "mark").exists()
    stdout = (gated_run.run_dir / "artifacts" / "run" / "stdout").read_text()
    assert "stopped before its first task" not in stdout  # the first run's folder went


def test_a_run_with_a_question_first_starts_only_once_let_go(gated_run, tmp_path):
    with started_before_the_lock(gated_run, early=False) as go:
        assert gated_run._thread is None  # nothing started before the question
        go(-math.inf)
        assert gated_run.wait().ok
    assert (tmp_path / "mark").exists()


def test_a_user_s_own_list_of_callbacks_still_gets_the_gate(gated_run, tmp_path, monkeypatch):
    # ANSIBLE_CALLBACKS_ENABLED replaces ansible.cfg's list: the gate's plugin is added.
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "mlops_vm_overhead")
    gate = RunGate()
    try:
        gated_run.start(gate)
        at_the_gate(gated_run)
        time.sleep(0.5)
        assert not gated_run.state.hosts, "a task ran before the gate said go"
        gate.stop()
        assert not gated_run.wait().ok
    finally:
        gate.close()
    assert not (tmp_path / "mark").exists()


def test_a_run_that_does_not_wait_at_the_gate_is_cancelled(slow_run, tmp_path, monkeypatch):
    """Should the plugin not hold the run (not loaded, whatever the reason), the first
    task reported on a host before the gate said go cancels the whole run."""
    monkeypatch.setattr(RunGate, "environment", lambda self, ansible_environment: {})
    gate = RunGate()
    try:
        slow_run.start(gate)
        result = slow_run.wait()  # no word said: the run must end by itself
    finally:
        gate.close()
    assert result.status == "canceled"
    assert not (tmp_path / "mark").exists()


def test_an_interrupted_run_ends_before_the_lock_is_released(slow_run, monkeypatch):
    """Ctrl-C (or SIGTERM) between the lock's go and the wait: the run is stopped while the
    lock is still held, not left running after its release."""
    from mlops_vm.commands import playbook

    alive_at_release: list[bool] = []

    @contextlib.contextmanager
    def held(loaded, as_json, destroys=False):
        try:
            yield types.SimpleNamespace(free_since=-math.inf, holder=None, entry="")
        finally:
            alive_at_release.append(slow_run._thread.is_alive())

    def follow(run, title, *, as_json, verbose):
        at_the_gate(run)
        raise KeyboardInterrupt

    monkeypatch.setattr(playbook, "held", held)
    monkeypatch.setattr(playbook, "follow", follow)
    loaded = types.SimpleNamespace(
        config=types.SimpleNamespace(ledger=types.SimpleNamespace(s3_bucket=""))
    )
    verb = playbook.Verb(playbook="gated.yml", done="gated", name="gate")
    with pytest.raises(KeyboardInterrupt):
        playbook.run_locked(
            verb, loaded, slow_run, "gated", before_run=None, verbose=False, as_json=True
        )
    assert alive_at_release == [False]


def test_a_gate_closed_without_a_word_means_stop(tmp_path):
    gate = RunGate()
    path = str(gate.path)
    answer: list[bool] = []
    reader = threading.Thread(target=lambda: answer.append(wait_at(path)))
    reader.start()
    time.sleep(0.1)
    gate.close()
    reader.join(timeout=10)
    assert answer == [False]
    assert not wait_at(path)  # and a gate that is gone, too


def test_the_gate_keeps_a_word_said_before_the_run_got_there():
    gate = RunGate()
    try:
        gate.go()
        assert wait_at(str(gate.path))
        assert gate.environment({}) == {GATE_VARIABLE: str(gate.path)}
    finally:
        gate.close()
    assert not gate.folder.exists()


def test_no_pause_after_a_child_that_has_exited():
    """ptyprocess sleeps 0.1 s at close; for a child already gone that sleep is skipped."""
    from mlops_vm.runner import no_pause_after_exit

    no_pause_after_exit()
    gone = PtyProcess.spawn(["true"])
    gone.wait()
    gone.close()
    assert gone.delayafterclose == 0
    alive = PtyProcess.spawn(["sleep", "30"])
    alive.close(force=True)
    assert alive.delayafterclose == 0.1  # a live child still gets its time to go
    assert not os.path.exists(f"/proc/{alive.pid}/status") or not alive.isalive()
