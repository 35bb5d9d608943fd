"""Callback plugin: hold a run at its first task until the CLI holds the lock (see
DOCUMENTATION)."""

DOCUMENTATION = r"""
name: mlops_vm_run_gate
type: aggregate
short_description: Hold the run at its first task until the mlops-vm CLI holds the lock
description:
  - Enabled in the repository's C(ansible.cfg); does nothing unless the mlops-vm CLI started
    the run with C(MLOPS_VM_RUN_GATE) set (playbooks run by hand take no lock).
  - The CLI starts ansible-playbook while it takes the environment's deploy lock, so that
    ansible-playbook's own start overlaps the lock's SSH call. At the first task (or
    handler) the plugin waits for the CLI's word, read from a FIFO (mlops_vm/run_gate.py).
    The run goes on once the lock is held, or ends there, before anything ran, when the
    lock is refused.
requirements:
  - the mlops_vm Python package (without it, the plugin does nothing)
"""

import os
import sys

from ansible.plugins.callback import CallbackBase

try:
    from mlops_vm.run_gate import GATE_VARIABLE, wait_at
except ImportError:  # the collection without the mlops_vm package: no CLI, no gate
    GATE_VARIABLE, wait_at = "MLOPS_VM_RUN_GATE", None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mlops_vm_run_gate"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Taken out of the environment: no process this run starts (a worker, a nested
        # ansible-playbook) waits at the gate again.
        self._gate = os.environ.pop(GATE_VARIABLE, None)
        if self._gate is not None and wait_at is None:  # a gate it cannot read: run nothing
            sys.exit("mlops-vm: the run gate needs the mlops_vm package in Ansible's Python")

    def _pass(self) -> None:
        if self._gate is None:
            return
        gate, self._gate = self._gate, None
        if not wait_at(gate):
            sys.exit("mlops-vm: the run was stopped before its first task (no lock held)")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._pass()

    def v2_playbook_on_handler_task_start(self, task):
        self._pass()
