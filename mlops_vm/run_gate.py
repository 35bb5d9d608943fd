"""The gate between a command's lock and its playbook: ansible-playbook starts while the
CLI takes the environment's lock, and waits at its first task until the CLI says it holds
it (or stops there when the lock is refused).

ansible-playbook's start (its imports, the inventory, the playbook's parse, the strategy's
connection multiplexer) is about a second on a loaded 2-core controller, and the lock's
SSH call half of one: overlapped, a release no longer waits for both in turn. Nothing runs
on a host, nor in a module on the controller, before the first task: the plays before it
only load their variables.

The gate is a FIFO. The CLI holds it open for reading and writing (RunGate), so its own
open waits for nobody and a byte written before ansible-playbook gets there waits in it.
The callback plugin `mlops_vm_run_gate` reads that byte at the first task (wait_at).
A CLI that dies takes the run with it (the run's terminal closes); a FIFO closed with no
byte in it stops the run too.
"""

import os
import shutil
import tempfile
from pathlib import Path

GATE_VARIABLE = "MLOPS_VM_RUN_GATE"
PLUGIN = "mlops_vm_run_gate"
GO = b"1"
STOP = b"0"


class RunGate:
    """The CLI's side: made before ansible-playbook starts, closed after it ended."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mlops-vm-gate-"))
        self.path = self.folder / "gate"
        os.mkfifo(self.path, 0o600)
        self._fd = os.open(self.path, os.O_RDWR)
        self.word: bytes | None = None  # what the run was told

    def environment(self, ansible_environment: dict[str, str]) -> dict[str, str]:
        """The variables that put ansible-playbook behind the gate, on top of
        ANSIBLE_ENVIRONMENT: a list of callbacks the user enables there replaces
        ansible.cfg's, so the gate's plugin is added to it (a run that would not wait at
        the gate is cancelled by the CLI as soon as it reports a task on a host)."""
        variables = {GATE_VARIABLE: str(self.path)}
        enabled = ansible_environment.get("ANSIBLE_CALLBACKS_ENABLED")
        if enabled is not None and PLUGIN not in enabled:
            variables["ANSIBLE_CALLBACKS_ENABLED"] = f"{enabled},{PLUGIN}".lstrip(",")
        return variables

    # The word is noted before it is written: the run's first event may come back at once.
    def go(self) -> None:
        self.word = GO
        os.write(self._fd, GO)

    def stop(self) -> None:
        self.word = STOP
        os.write(self._fd, STOP)

    def close(self) -> None:
        # The name first: an ansible-playbook that comes to the gate only now finds none
        # (and stops), instead of waiting forever for a writer.
        shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._fd)


def wait_at(path: str) -> bool:
    """ansible-playbook's side: True when the CLI lets the run go on (waits until it says)."""
    try:
        with open(path, "rb", buffering=0) as fifo:
            return fifo.read(1) == GO
    except OSError:  # the gate is gone: the CLI is gone
        return False
