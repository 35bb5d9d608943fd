"""Where an environment keeps its deploy lock and its release history: a folder on one of
its hosts, reached over the same SSH settings Ansible uses (every operator sees the same
one), or a folder on this machine (before a host exists, and for managed targets).

The lock is one file created atomically: the holder's record is written to a temporary
file and hard-linked to `lock.json` (link(2) fails when the name exists), so a reader never
sees a half-written lock and two writers can never both win. The history is one JSON line
per entry, appended with a single write. The same small program (LEDGER) does both, on the
host or here, so the two places behave alike.
"""

import json
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from mlops_vm.release.hosts import ssh_command

HOST_DIR = "/var/lib/mlops-vm"

# ledger(ACTION, DIR, GIVEN) -> one JSON-able answer. GIVEN: the lock holder (acquire),
# the token (release) or the entry (append); for a run's end, the token and the entry to
# append (release: {"token": ..., "append": {...}}), so the entry costs no call of its own.
# On a host it runs as `python3 -c HOST_PROGRAM ACTION DIR` (GIVEN on stdin, the answer
# printed); on this machine in the CLI's own process (a Python start less at each end of a
# run). An acquire also tells how long the folder's entries had been left alone before it
# (quiet_s, on the ledger's own clock; None for a folder this call made): every taking and
# release of the lock (by any version of this program) changes them, so it tells a run
# started before it took the lock whether another run ended meanwhile (run_gate.py).
LEDGER = """
import json, os, tempfile, time
def ledger(action, folder, given):
    existed = os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    lock, history = os.path.join(folder, "lock.json"), os.path.join(folder, "history.jsonl")
    def append(entry):
        fd = os.open(history, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (json.dumps(entry) + "\\n").encode())
        os.close(fd)
    def holder():
        try:
            with open(lock) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except ValueError:
            return {"unreadable": True}
    out = {}
    if action == "acquire":
        quiet = time.time() - os.stat(folder).st_mtime if existed else None
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".lock-")
        os.write(fd, given.encode())
        os.close(fd)
        try:
            os.link(tmp, lock)
            out = {"acquired": True, "holder": None, "quiet_s": quiet}
        except FileExistsError:
            out = {"acquired": False, "holder": holder()}
        finally:
            os.unlink(tmp)
    elif action == "read":
        out = {"holder": holder()}
    elif action == "release":
        token = given.strip()
        if token.startswith("{"):
            asked = json.loads(token)
            token = asked["token"]
            append(asked["append"])
        current = holder()
        if current is not None and current.get("token", "") == token:
            os.unlink(lock)
            out = {"released": current}
        else:
            out = {"released": None, "holder": current}
    elif action == "append":
        append(json.loads(given))
    elif action == "history":
        try:
            with open(history) as f:
                out = {"entries": [json.loads(line) for line in f if line.strip()]}
        except FileNotFoundError:
            out = {"entries": []}
    return out
"""
HOST_PROGRAM = (
    LEDGER
    + """
import sys
print(json.dumps(ledger(sys.argv[1], sys.argv[2], sys.stdin.read())))
"""
)


class LedgerError(RuntimeError):
    """The ledger could not be reached or read; the message says where and why."""


class Ledger(Protocol):
    """A place holding one environment's lock and history."""

    where: str  # for people: "host mlops-vm-dev-lb" or "this machine (~/.mlops-vm/...)"

    def call(self, action: str, given: str = "") -> dict[str, Any]: ...


def parse(done: subprocess.CompletedProcess[str], where: str) -> dict[str, Any]:
    if done.returncode != 0:
        raise LedgerError(f"{where}: {(done.stderr.strip() or 'failed')[-300:]}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise LedgerError(f"{where}: unreadable answer {done.stdout[-300:]!r}") from None


@dataclass(frozen=True)
class HostLedger:
    """The ledger in HOST_DIR on the host NAME, reached with the Ansible variables HOST_VARS."""

    name: str
    host_vars: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"host {self.name}"

    def call(self, action: str, given: str = "") -> dict[str, Any]:
        remote = f"python3 -c {shlex.quote(HOST_PROGRAM)} {action} {HOST_DIR}"
        try:
            done = subprocess.run(
                ssh_command(self.host_vars, remote),
                input=given,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LedgerError(f"{self.where}: no answer over SSH within 60s") from None
        return parse(done, self.where)


@dataclass(frozen=True)
class LocalLedger:
    """The ledger in FOLDER on this machine."""

    folder: Path

    @property
    def where(self) -> str:
        return f"this machine ({self.folder})"

    def call(self, action: str, given: str = "") -> dict[str, Any]:
        try:
            return local_ledger_program()(action, str(self.folder), given)
        except (OSError, ValueError, KeyError) as error:
            raise LedgerError(f"{self.where}: {error}") from None


@cache
def local_ledger_program() -> Callable[[str, str, str], dict[str, Any]]:
    """LEDGER's ledger(), compiled once in this process."""
    namespace: dict[str, Any] = {}
    exec(compile(LEDGER, "<mlops-vm ledger>", "exec"), namespace)  # the text sent to hosts
    return namespace["ledger"]
