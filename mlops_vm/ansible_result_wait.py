"""ansible-playbook's process woken by a task's result instead of looking for one every
millisecond.

While a task runs on its hosts, ansible-core's strategy (StrategyBase._wait_on_pending_results)
loops: look for a dead worker, take the results its reader thread queued, sleep
internal_poll_interval (1 ms, a setting of ansible.cfg only). About a thousand rounds a
second for as long as the task runs: for a release, whose tasks mostly wait on a model's
start and on the hosts, 0.15 to 0.2 s of CPU per 5 s of waiting in the one process every
task goes through, taken from the cores the model's start and the traffic need
(docs/benchmark.md).

install() makes the reader thread's queue wake the wait when it takes a result (the queue's
lock is already a threading.Condition that nothing notified), and the wait sleeps on it.
Without a result it still looks for a dead worker or an interrupted run every CHECK_S, so
a worker killed mid-task still ends the run as before. The callback plugin
plugins/callback/mlops_vm_overhead.py installs it in ansible-playbook's process; with an
ansible-core whose strategy differs (it reads its internals), install() leaves it as it is.
"""

import collections
import contextlib
import functools
import threading
from typing import Any

# How long the wait sleeps without a result before it looks for a dead worker again.
CHECK_S = 0.05


class _NotifyingQueue(collections.deque):
    """The strategy's result queue: an append wakes whoever waits on CONDITION."""

    def __init__(self, condition: threading.Condition, items=()) -> None:
        super().__init__(items)
        self._condition = condition

    def append(self, item: Any) -> None:
        super().append(item)
        # ansible-core's reader thread appends holding the lock; an append without it
        # (another ansible-core) wakes nobody, and the wait looks again after CHECK_S.
        with contextlib.suppress(RuntimeError):
            self._condition.notify_all()


def install() -> None:
    from ansible.errors import AnsibleError
    from ansible.plugins.strategy import StrategyBase

    original_init = StrategyBase.__init__
    if getattr(original_init, "result_wait", False):
        return
    original_wait = getattr(StrategyBase, "_wait_on_pending_results", None)
    if original_wait is None:
        raise RuntimeError("ansible-core's strategy has no _wait_on_pending_results")

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        condition = self._results_lock
        if not isinstance(condition, threading.Condition):
            return  # another ansible-core: its own wait stays
        with condition:
            self._results = _NotifyingQueue(condition, self._results)

    def _wait_on_pending_results(self, iterator):
        if not isinstance(self._results, _NotifyingQueue):
            return original_wait(self, iterator)
        results = []
        while self._pending_results > 0 and not self._tqm._terminated:
            if self._tqm.has_dead_workers():
                raise AnsibleError("A worker was found in a dead state")
            results.extend(self._process_pending_results(iterator))
            if self._pending_results > 0:
                with self._results_lock:
                    if not self._results:
                        self._results_lock.wait(CHECK_S)
        return results

    __init__.result_wait = True  # type: ignore[attr-defined]
    StrategyBase.__init__ = __init__
    StrategyBase._wait_on_pending_results = _wait_on_pending_results
