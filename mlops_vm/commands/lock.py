"""The deploy lock: one change at a time per environment (kamal's `lock`).

`provision`, `deploy`, `rollback` and `destroy` hold it for their whole run (commands/
playbook.py `run_verb`); a second run refuses at once (exit 1) naming the holder: who
(user@host), since when, and the command line. `--check` runs take none.

Where it lives (release/ledger.py): on the environment's load balancer host, else its first
model host (sorted by name), over the SSH settings Ansible uses, so every operator sees the
same lock; and on this machine too, which is what protects a first `provision` (no host
exists yet) and managed targets from a second run started here. A lock whose holder died is
recognised as stale (its process is gone on the machine reading it, or it is older than
STALE_AFTER) and shown as such; `mlops-vm lock ENV --release` clears it. A stale lock is not
broken by itself: a person decides, as with kamal.

Playbooks run directly with ansible-playbook take no lock (there is no CLI around them).
"""

import getpass
import json
import os
import shlex
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from mlops_vm import display, paths
from mlops_vm.commands.checks import load, provider_for
from mlops_vm.commands.exits import EXIT_FAILED, EXIT_OK, Stop
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.environment.inventory import host_vars_of
from mlops_vm.environment.specs import provider_settings
from mlops_vm.provision import ProvisionError
from mlops_vm.provision.model import ROLE_LB, ROLE_MODEL, Instance, InstanceStatus
from mlops_vm.release.ledger import HostLedger, Ledger, LedgerError, LocalLedger
from mlops_vm.release.ledger_s3 import S3Ledger

# A run older than this is taken for dead (a cloud provision takes well under an hour).
STALE_AFTER = timedelta(hours=3)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the record written into it."""

    token: str  # unique per run: only the run that took the lock releases it by itself
    user: str
    host: str  # the machine the run started on
    pid: int
    started_at: str  # ISO 8601, UTC
    command: str  # the command line
    env: str = ""

    @classmethod
    def of_this_run(cls, env: str, now: datetime | None = None) -> "Holder":
        return cls(
            token=uuid.uuid4().hex,
            user=getpass.getuser(),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
            command=command_line(),
            env=env,
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Holder":
        fields = cls.__dataclass_fields__
        known = {key: value for key, value in record.items() if key in fields}
        unknown = {
            "token": "",
            "user": "?",
            "host": "?",
            "pid": 0,
            "started_at": "",
            "command": "?",
        }
        return cls(**{**unknown, **known})

    def started(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.started_at)
        except ValueError:
            return None

    def describe(self, now: datetime) -> str:
        started = self.started()
        since = self.started_at or "an unknown time"
        if started is not None:
            since += f" ({age_text(now - started)} ago)"
        return f"{self.user}@{self.host} (pid {self.pid}) since {since}: {self.command}"


def command_line() -> str:
    """This process's command line as a person would type it (mlops-vm deploy ENV ...)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def age_text(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def stale_reason(
    holder: Holder,
    *,
    now: datetime,
    this_host: str,
    alive: Callable[[int], bool] = process_alive,
) -> str:
    """Why HOLDER's lock is stale ("" when it is not): its process is gone (checked only on
    the machine it started on), or it is older than STALE_AFTER."""
    if holder.host == this_host and holder.pid > 0 and not alive(holder.pid):
        return f"its process {holder.pid} on {holder.host} is gone"
    started = holder.started()
    if started is None:
        return "it says nothing of when it was taken"
    if now - started > STALE_AFTER:
        return f"it is older than {age_text(STALE_AFTER)}"
    return ""


@dataclass(frozen=True)
class LockState:
    """One ledger's lock as read: free (holder None), held, or stale (reason given)."""

    where: str
    holder: Holder | None
    stale: str = ""

    @property
    def state(self) -> str:
        if self.holder is None:
            return "free"
        return "stale" if self.stale else "held"

    def as_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "state": self.state,
            "holder": asdict(self.holder) if self.holder else None,
            "stale_reason": self.stale,
        }

    def text(self, now: datetime) -> str:
        if self.holder is None:
            return "free"
        line = f"{self.state}: {self.holder.describe(now)}"
        return line + (f"\nstale because {self.stale}" if self.stale else "")


def state_of(where: str, record: dict[str, Any] | None, now: datetime) -> LockState:
    if record is None:
        return LockState(where, None)
    holder = Holder.from_record(record)
    return LockState(where, holder, stale_reason(holder, now=now, this_host=socket.gethostname()))


class Locked(Exception):
    """Another run holds the lock (STATE says who)."""

    def __init__(self, state: LockState) -> None:
        super().__init__(state.where)
        self.state = state


# Where the lock lives


def ledger_host(instances: list[Instance]) -> Instance | None:
    """The host that keeps the lock and the history: the load balancer host when the
    environment has one (the local cloud), else the first model host by name."""
    reachable = [
        i
        for i in instances
        if i.status == InstanceStatus.RUNNING and i.connection == "ssh" and i.address
    ]
    for role in (ROLE_LB, ROLE_MODEL):
        hosts = sorted((i for i in reachable if i.role == role), key=lambda i: i.name)
        if hosts:
            return hosts[0]
    return None


def local_ledger(env: str) -> LocalLedger:
    return LocalLedger(paths.STATE_DIR / "envs" / env / "ledger")


def shared_ledger(loaded: LoadedEnvironment, as_json: bool) -> Ledger | None:
    """The environment's ledger every operator sees: in S3 (`ledger.s3_bucket`), else on a
    host (VM fleets with a running host), else None."""
    config = loaded.config
    if config.ledger.s3_bucket:
        prefix = config.ledger.s3_prefix or f"mlops-vm/{config.env}/"
        return S3Ledger(config.ledger.s3_bucket, prefix, provider_settings(config))
    if loaded.config.managed:
        return None
    instances = provider_for(loaded, as_json).list_instances(loaded.config.env)
    host = ledger_host(instances)
    if host is None:
        return None
    return HostLedger(host.name, host_vars_of(loaded.config, loaded.inventory_dir)(host))


def ledgers(loaded: LoadedEnvironment, as_json: bool) -> list[Ledger]:
    """Every place the lock is taken, this machine's first."""
    shared = shared_ledger(loaded, as_json)
    return [local_ledger(loaded.config.env), *([shared] if shared else [])]


# Taking and releasing


def acquire(places: list[Ledger], holder: Holder, now: datetime) -> list[Ledger]:
    """Take the lock in every place (all or none); raises Locked naming the holder found."""
    taken: list[Ledger] = []
    for place in places:
        answer = place.call("acquire", json_of(holder))
        if not answer["acquired"]:
            release(taken, holder.token)
            raise Locked(state_of(place.where, answer["holder"] or {}, now))
        taken.append(place)
    return taken


def release(places: list[Ledger], token: str, *, hosts_gone: bool = False) -> None:
    """Release the lock of TOKEN in PLACES; HOSTS_GONE (after destroy): a host's lock went
    with the host, so not reaching it is no news."""
    for place in reversed(places):
        try:
            place.call("release", token)
        except LedgerError as error:  # said, not fatal: `lock --release` clears it
            if not (hosts_gone and isinstance(place, HostLedger)):
                display.console.print(f"[yellow]could not release the lock: {error}[/]")


def json_of(holder: Holder) -> str:
    return json.dumps(asdict(holder))


@contextmanager
def held(loaded: LoadedEnvironment, as_json: bool, *, destroys: bool = False) -> Iterator[Holder]:
    """Hold the environment's lock around the block; stops the command (exit 1) naming the
    holder when another run has it. DESTROYS: the block deletes the hosts (and their lock)."""
    now = datetime.now(UTC)
    holder = Holder.of_this_run(loaded.config.env, now)
    try:
        taken = acquire(ledgers(loaded, as_json), holder, now)
    except Locked as locked:
        raise refused(loaded.config.env, locked.state, now, as_json) from None
    except (LedgerError, ProvisionError) as error:
        raise lock_failure(str(error), as_json) from None
    try:
        with terminate_as_interrupt():
            yield holder
    finally:
        release(taken, holder.token, hosts_gone=destroys)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, `kill`) stops the run the way Ctrl-C does (cleanly,
    ansible included), so the lock is released instead of left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def refused(env: str, state: LockState, now: datetime, as_json: bool) -> Stop:
    title = f"environment {env} is locked by another run (on {state.where})"
    problems = [f"held by {state.holder.describe(now) if state.holder else '?'}"]
    if state.stale:
        problems.append(
            f"the lock is stale ({state.stale}): `mlops-vm lock {env} --release` clears it"
        )
    else:
        problems.append("wait for it to finish; `mlops-vm lock ENV` shows it")
    if as_json:
        display.print_json(
            {"ok": False, "error": title, "problems": problems, "lock": state.as_dict()}
        )
    else:
        display.print_problems(title, problems)
    return Stop(EXIT_FAILED)


def lock_failure(message: str, as_json: bool) -> Stop:
    if as_json:
        display.print_json(
            {"ok": False, "error": "the lock could not be read", "problems": [message]}
        )
    else:
        display.print_problems("the lock could not be read", [message])
    return Stop(EXIT_FAILED)


# The command


def lock(env: str, *, release_it: bool, as_json: bool) -> int:
    """Show the environment's lock in every place it is kept; with RELEASE_IT, clear it."""
    loaded = load(env, as_json)
    now = datetime.now(UTC)
    try:
        places = ledgers(loaded, as_json)
        states = [state_of(p.where, p.call("read").get("holder"), now) for p in places]
        released = []
        if release_it:
            for place, state in zip(places, states, strict=True):
                if state.holder is not None:
                    answer = place.call("release", state.holder.token)
                    if answer.get("released"):
                        released.append(state)
    except (LedgerError, ProvisionError) as error:
        raise lock_failure(str(error), as_json) from None
    if as_json:
        display.print_json(
            {
                "env": loaded.config.env,
                "locks": [s.as_dict() for s in states],
                "released": [s.as_dict() for s in released] if release_it else None,
            }
        )
        return EXIT_OK
    rows = [(s.where, s.text(now)) for s in states]
    display.print_summary(rows, f"lock of environment {loaded.config.env}")
    if release_it:
        if not released:
            display.out.print("nothing to release")
        for state in released:
            note = "" if state.stale else " (it was NOT stale: that run may still be going)"
            display.out.print(f"released the lock on {state.where}{note}")
    return EXIT_OK
