"""The deploy lock: one change at a time per environment (kamal's `lock`).

`provision`, `deploy`, `rollback` and `destroy` hold it for their whole run (commands/
playbook.py `run_verb`); a second run refuses at once (exit 1) naming the holder: who
(user@host), since when, and the command line. `--check` runs take none.

Where it lives (release/ledger.py): on the environment's load balancer host, else its first
model host (sorted by name), over the SSH settings Ansible uses, so every operator sees the
same lock; and on this machine too, which is what protects a first `provision` (no host
exists yet) and managed targets from a second run started here; or in S3 (`ledger.s3_bucket`,
release/ledger_s3.py). A lock whose holder died is recognised as stale (release/deploy_lock.py:
its process is gone on the machine reading it, or it is older than STALE_AFTER) and shown as
such; `mlops-vm lock ENV --release` clears it. A stale lock is not broken by itself: a person
decides, as with kamal.

Playbooks run directly with ansible-playbook take no lock (there is no CLI around them).
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from mlops_vm import display, paths, ssh_connections
from mlops_vm.commands.checks import load, provider_for
from mlops_vm.commands.exits import EXIT_FAILED, EXIT_OK, Stop
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.environment.inventory import host_vars_of
from mlops_vm.environment.specs import provider_settings
from mlops_vm.provision import ProvisionError
from mlops_vm.release.deploy_lock import (
    Holder,
    Locked,
    LockState,
    acquire,
    ledger_host,
    reachable_hosts,
    release,
    state_of,
    still_there,
)
from mlops_vm.release.hosts import ssh_login
from mlops_vm.release.ledger import HostLedger, Ledger, LedgerError, LocalLedger

# Where the lock lives


def local_ledger(env: str) -> LocalLedger:
    return LocalLedger(paths.STATE_DIR / "envs" / env / "ledger")


def shared_ledger(
    loaded: LoadedEnvironment, as_json: bool, *, reach_all: bool = False
) -> Ledger | None:
    """The environment's ledger every operator sees: in S3 (`ledger.s3_bucket`), else on a
    host (VM fleets with a running host; a scaling group has none), else None. REACH_ALL (a
    run that goes on to reach every host): the SSH masters of the other hosts are opened in
    the background meanwhile (ssh_connections.open_early; the host list is at hand here)."""
    config = loaded.config
    if config.ledger.s3_bucket:
        # Here only: boto3 is no import of every command (~0.3 s).
        from mlops_vm.release.ledger_s3 import S3Ledger

        prefix = config.ledger.s3_prefix or f"mlops-vm/{config.env}/"
        return S3Ledger(config.ledger.s3_bucket, prefix, provider_settings(config))
    if loaded.config.managed or loaded.config.fleet.mode == "scaling_group":
        return None  # no host of its own (a scaling group's instances take no SSH)
    instances = provider_for(loaded, as_json).list_instances(loaded.config.env)
    host = ledger_host(instances)
    if host is None:
        return None
    host_vars = host_vars_of(loaded.config, loaded.inventory_dir)
    if reach_all:
        others = [i for i in reachable_hosts(instances) if i is not host]
        ssh_connections.open_early(ssh_login(host_vars(i)) for i in others)
    return HostLedger(host.name, host_vars(host))


def ledgers(loaded: LoadedEnvironment, as_json: bool, *, reach_all: bool = False) -> list[Ledger]:
    """Every place the lock is taken, this machine's first (REACH_ALL: shared_ledger's)."""
    shared = shared_ledger(loaded, as_json, reach_all=reach_all)
    return [local_ledger(loaded.config.env), *([shared] if shared else [])]


@dataclass
class HeldLock:
    """A run's hold of the lock: who holds it, and the run's history entry (JSON), appended
    as the lock is released (commands/history.py makes it)."""

    holder: Holder
    entry: str = ""
    # Since when the lock had been left alone before this run took it (deploy_lock.Taken).
    free_since: float = 0.0


@contextmanager
def held(loaded: LoadedEnvironment, as_json: bool, *, destroys: bool = False) -> Iterator[HeldLock]:
    """Hold the environment's lock around the block; stops the command (exit 1) naming the
    holder when another run has it. DESTROYS: the block deletes the hosts (and their lock);
    any other block reaches every host (their SSH masters are opened as the lock is taken).
    The entry the block leaves is appended where the history is kept, in the same ledger
    call as the lock's release there."""
    now = datetime.now(UTC)
    holder = Holder.of_this_run(loaded.config.env, now)
    try:
        taken = acquire(ledgers(loaded, as_json, reach_all=not destroys), holder, now)
    except Locked as locked:
        raise refused(loaded.config.env, locked.state, now, as_json) from None
    except (LedgerError, ProvisionError) as error:
        raise lock_failure(str(error), as_json) from None
    hold = HeldLock(holder, free_since=taken.free_since)
    try:
        with terminate_as_interrupt():
            yield hold
    finally:
        if hold.entry and len(taken) == 1:
            hold.entry = append_to_new_host(loaded, as_json, hold.entry)
        if destroys:
            taken = standing(loaded, as_json, taken)
        for error in release(taken, holder.token, hosts_gone=destroys, entry=hold.entry):
            display.console.print(f"[yellow]could not release the lock: {error}[/]")


def standing(loaded: LoadedEnvironment, as_json: bool, places: list[Ledger]) -> list[Ledger]:
    """PLACES without the hosts that are gone (a destroy deleted them, their lock with them):
    an SSH call to a host that is gone waits for its timeout (10 s) to learn it. A host still
    there (a destroy that failed) keeps its place, so its lock is released."""
    if not any(isinstance(place, HostLedger) for place in places):
        return places
    try:
        instances = provider_for(loaded, as_json).list_instances(loaded.config.env)
    except ProvisionError:
        return places
    return still_there(places, instances)


def append_to_new_host(loaded: LoadedEnvironment, as_json: bool, entry: str) -> str:
    """A run that took the lock on this machine only (no shared ledger then: a first
    provision) appends its ENTRY to the shared ledger when it made one (its host), in a
    call of its own; "" once done (or said to have failed), else ENTRY, for this machine's
    ledger."""
    try:
        shared = shared_ledger(loaded, as_json)
        if shared is None:
            return entry
        shared.call("append", entry)
    except (LedgerError, ProvisionError) as error:
        display.console.print(f"[yellow]the history could not be written: {error}[/]")
    return ""


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
