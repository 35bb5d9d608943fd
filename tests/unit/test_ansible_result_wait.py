"""ansible-playbook's process woken by a task's result (mlops_vm/ansible_result_wait.py):
the strategy's wait sleeps until the result thread queues one instead of looking every
millisecond, still ends on a dead worker, and a real ansible-playbook with the
repository's ansible.cfg gets every result of tasks that end at different times."""

import sys
import threading
import time
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleError
from ansible.plugins.strategy import StrategyBase

from mlops_vm import ansible_result_wait
from tests.ansible_cli import ansible_playbook


class Strategy:
    """The parts of a StrategyBase the wait reads: results queued by another thread,
    taken by _process_pending_results, which counts its rounds."""

    def __init__(self, pending: int) -> None:
        self._pending_results = pending
        self._results_lock = threading.Condition(threading.Lock())
        self._results = ansible_result_wait._NotifyingQueue(self._results_lock)
        self._tqm = SimpleNamespace(_terminated=False, has_dead_workers=lambda: False)
        self.rounds = 0

    def _process_pending_results(self, iterator) -> list:
        self.rounds += 1
        taken = []
        with self._results_lock:
            while self._results:
                taken.append(self._results.popleft())
        self._pending_results -= len(taken)
        return taken

    def queue_later(self, delay_s: float, result: str) -> None:
        def queue() -> None:
            time.sleep(delay_s)
            # As ansible-core's result thread does: the append holds the lock.
            with self._results_lock:
                self._results.append(result)

        threading.Thread(target=queue, daemon=True).start()


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    ansible_result_wait.install()


def test_the_wait_sleeps_until_a_result_comes():
    strategy = Strategy(pending=2)
    strategy.queue_later(0.3, "first")
    strategy.queue_later(0.6, "second")
    started = time.monotonic()
    results = StrategyBase._wait_on_pending_results(strategy, iterator=None)
    elapsed = time.monotonic() - started
    assert results == ["first", "second"]
    # Polled every millisecond, this took hundreds of rounds; woken by each result (and
    # every CHECK_S without one), a handful, however slow the machine.
    assert strategy.rounds <= elapsed / ansible_result_wait.CHECK_S + 3, strategy.rounds


def test_a_dead_worker_still_ends_the_wait():
    strategy = Strategy(pending=1)
    dead_from = time.monotonic() + 0.2
    strategy._tqm.has_dead_workers = lambda: time.monotonic() > dead_from
    with pytest.raises(AnsibleError, match="dead state"):
        StrategyBase._wait_on_pending_results(strategy, iterator=None)


def test_a_queue_appended_without_its_lock_still_takes_the_result():
    queue = ansible_result_wait._NotifyingQueue(threading.Condition(threading.Lock()))
    queue.append("result")
    assert list(queue) == ["result"]


def test_install_twice_wraps_once():
    wrapped = StrategyBase.__init__
    ansible_result_wait.install()
    assert StrategyBase.__init__ is wrapped


PLAYBOOK = """
- name: Tasks whose hosts end at different times
  hosts: all
  gather_facts: false
  tasks:
    - name: Sleep as long as the host says
      ansible.builtin.command: sleep {{ delay }}
      changed_when: false
    - name: A loop
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} item {{ item }}"
      loop: [1, 2, 3]
    - name: A failure, rescued
      block:
        - name: Fail on the slow host
          ansible.builtin.fail:
            msg: slow
          when: delay | float > 0.4
      rescue:
        - name: Rescue it
          ansible.builtin.debug:
            msg: "{{ inventory_hostname }} rescued"
"""

INVENTORY = """
fast delay=0.1
middle delay=0.3
slow delay=0.6
[all:vars]
ansible_connection=local
ansible_python_interpreter={python}
"""


def test_ansible_playbook_gets_every_result(tmp_path):
    (tmp_path / "hosts").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    run = ansible_playbook(
        "-i",
        str(tmp_path / "hosts"),
        str(tmp_path / "play.yml"),
        env={"MLOPS_VM_HOME": str(tmp_path)},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for host, item in [("fast", 3), ("middle", 1), ("slow", 2)]:
        assert f"{host} item {item}" in run.stdout
    assert "slow rescued" in run.stdout
    assert "middle rescued" not in run.stdout
    recap = " ".join(run.stdout[run.stdout.index("PLAY RECAP") :].split())
    assert "slow : ok=3 changed=0 unreachable=0 failed=0 skipped=0 rescued=1" in recap
    assert "fast : ok=2 changed=0 unreachable=0 failed=0 skipped=1 rescued=0" in recap
