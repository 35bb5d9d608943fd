"""The deploy lock's decisions, free of any command: who holds a lock (Holder), whether its
run died (stale_reason: its process is gone on the machine reading it, or it is older than
STALE_AFTER), which host keeps it (ledger_host), and taking it in every place it is kept,
all or none (acquire; release). The places are release/ledger.py's (and ledger_s3.py's);
the commands around a run are commands/lock.py.
"""

import getpass
import json
import math
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_vm.provision.model import ROLE_LB, ROLE_MODEL, Instance, InstanceStatus
from mlops_vm.release.ledger import HostLedger, Ledger, LedgerError

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


def reachable_hosts(instances: list[Instance]) -> list[Instance]:
    """The instances reached over SSH that are running."""
    return [
        i
        for i in instances
        if i.status == InstanceStatus.RUNNING and i.connection == "ssh" and i.address
    ]


def ledger_host(instances: list[Instance]) -> Instance | None:
    """The host that keeps the lock and the history: the load balancer host when the
    environment has one (the local cloud), else the first model host by name."""
    reachable = reachable_hosts(instances)
    for role in (ROLE_LB, ROLE_MODEL):
        hosts = sorted((i for i in reachable if i.role == role), key=lambda i: i.name)
        if hosts:
            return hosts[0]
    return None


def still_there(places: list[Ledger], instances: list[Instance]) -> list[Ledger]:
    """PLACES without the hosts that are not among the running INSTANCES."""
    there = {instance.name for instance in reachable_hosts(instances)}
    return [p for p in places if not isinstance(p, HostLedger) or p.name in there]


class Taken(list):
    """The places where a run took the lock, and FREE_SINCE: since when (time.monotonic(),
    this process's clock) the lock had been left alone in all of them, as late as it may
    have been (now, where a place cannot tell; -inf, where it was never used)."""

    free_since: float = -math.inf


def acquire(places: list[Ledger], holder: Holder, now: datetime) -> Taken:
    """Take the lock in every place (all or none); raises Locked naming the holder found."""
    taken = Taken()
    for place in places:
        answer = place.call("acquire", json_of(holder))
        if not answer["acquired"]:
            release(taken, holder.token)
            raise Locked(state_of(place.where, answer["holder"] or {}, now))
        taken.append(place)
        # Read after the answer came: the place's quiet time, counted back from here, ends
        # no earlier than it did.
        quiet = answer.get("quiet_s", 0.0)
        if quiet is not None:
            taken.free_since = max(taken.free_since, time.monotonic() - quiet)
    return taken


def release(
    places: list[Ledger], token: str, *, hosts_gone: bool = False, entry: str = ""
) -> list[str]:
    """Release the lock of TOKEN in PLACES; what could not be released (not fatal: `lock
    --release` clears it). HOSTS_GONE (after destroy): a host's lock went with the host, so
    not reaching it is no news. ENTRY (JSON): the run's history entry, appended to the last
    place (the one every operator reads) in the same call as its release."""
    errors = []
    for place in reversed(places):
        given = json.dumps({"token": token, "append": json.loads(entry)}) if entry else token
        try:
            place.call("release", given)
        except LedgerError as error:
            if not (hosts_gone and isinstance(place, HostLedger)):
                errors.append(str(error) + (" (the history entry is not written)" if entry else ""))
        entry = ""
    return errors


def json_of(holder: Holder) -> str:
    return json.dumps(asdict(holder))
