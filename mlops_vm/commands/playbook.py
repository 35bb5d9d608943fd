"""The one path of every command that runs a playbook (provision, destroy, deploy,
rollback): load the environment, check it, run the playbook, report the run, and exit with
its code."""

import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from rich.live import Live

from mlops_vm import display, ssh_connections
from mlops_vm.commands.checks import check_environment, load
from mlops_vm.commands.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from mlops_vm.commands.history import (
    RECORDED_VERBS,
    history_entry,
    run_tells_releases,
    running_release,
)
from mlops_vm.commands.lock import held
from mlops_vm.commands.report import run_summary, show_run
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.run_gate import RunGate
from mlops_vm.runner import PlaybookRun, RunResult

# A command's own check of the loaded environment, or its question before the run: raises
# Stop (exits.fail) to end the command there.
Step = Callable[[LoadedEnvironment], None]


@dataclass(frozen=True)
class Verb:
    """A command that runs PLAYBOOK: its titles, and whether the provider or target checks
    the environment up front (WITH_CLOUD: before anything is created)."""

    playbook: str
    done: str  # "provisioned ENV"
    planned: str = ""  # "plan for ENV" (--check)
    with_cloud: bool = False
    name: str = ""  # the command (provision, deploy, ...), for the history


def known_secrets(loaded: LoadedEnvironment) -> list[str]:
    """Secret values the run must never write down (censored from the run folder)."""
    registry = loaded.config.model.registry
    secrets = [value for value in (registry.password,) if value and "{{" not in value]
    try:
        from mlops_vm.localcloud.registry import credentials_file, ensure_credentials

        if credentials_file().exists():
            secrets.append(ensure_credentials().password)
    except (OSError, ValueError, KeyError):
        pass
    return secrets


def new_run(
    loaded: LoadedEnvironment,
    playbook: str,
    *,
    check: bool,
    verbose: bool,
    extravars: dict[str, Any] | None = None,
) -> PlaybookRun:
    return PlaybookRun(
        env=loaded.config.env,
        inventory_dir=loaded.inventory_dir,
        playbook=playbook,
        provider=loaded.config.provider.name,
        check=check,
        verbose=verbose,
        secrets=known_secrets(loaded),
        extravars={"mlops_vm_release_batch": loaded.config.release.batch, **(extravars or {})},
    )


def follow(run: PlaybookRun, title: str, *, as_json: bool, verbose: bool) -> RunResult:
    """Wait for the started RUN, with a live view of its progress on a terminal."""
    if as_json or verbose or not display.console.is_terminal:
        return run.wait()
    with Live(
        display.progress_view(run.state, title),
        console=display.console,
        refresh_per_second=4,
        transient=True,
    ) as live:
        run.on_event = lambda state: live.update(display.progress_view(state, title))
        return run.wait()


@contextmanager
def started_before_the_lock(run: PlaybookRun, early: bool) -> Iterator[Callable[[float], None]]:
    """Start RUN now when EARLY, behind a gate (run_gate.py): ansible-playbook's start
    (about a second under load) overlaps the lock's. Yields what lets the run go on once the
    lock is held (or starts it, when not EARLY), given since when the lock had been left
    alone (HeldLock.free_since). A block that ends before that (the lock refused, Ctrl-C)
    stops the run at the gate, before anything ran, and removes its run folder.

    ansible-playbook read the inventory as it started: when another run took or released
    the lock since (it may have added or removed hosts), the early run is stopped and
    started again."""
    if not early:

        def start(free_since: float) -> None:
            run.start()

        yield start
        return
    gate = RunGate()
    started = time.monotonic()
    going = False

    def discard() -> None:
        gate.stop()
        # Should the run not wait at the gate (its plugin not loaded), it is killed.
        run.cancel_requested = True
        run.wait()
        shutil.rmtree(run.run_dir, ignore_errors=True)

    def go(free_since: float) -> None:
        nonlocal going
        going = True
        if free_since < started:
            gate.go()
        else:  # another run ended after this one read the inventory
            discard()
            run.start()

    try:
        run.start(gate)
        try:
            yield go
        except BaseException:
            if not going:
                discard()
            raise
    finally:
        gate.close()


def exit_code(result: RunResult) -> int:
    if result.status == "canceled":
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def run_verb(
    verb: Verb,
    env: str,
    *,
    check: bool,
    verbose: bool,
    as_json: bool,
    extravars: dict[str, Any] | None = None,
    checks: Iterable[Step] = (),
    before_run: Step | None = None,
) -> int:
    """Load ENV, run the command's CHECKS and the provider's or target's (bad input exits 2
    before anything else), take the environment's lock (not for --check), BEFORE_RUN (a
    confirmation), then VERB's playbook; print its summary (or JSON), leave the history
    entry to append as the lock is released; its exit code."""
    loaded = load(env, as_json)
    for step in checks:
        step(loaded)
    check_environment(loaded, as_json, with_cloud=verb.with_cloud)
    run = new_run(loaded, verb.playbook, check=check, verbose=verbose, extravars=extravars)
    title = f"{verb.planned if check else verb.done} {loaded.config.env}"
    # One SSH master per host for the lock's calls and the playbook's (ssh_connections.py).
    with ssh_connections.shared():
        if check:
            result = follow(run.start(), title, as_json=as_json, verbose=verbose)
            summary = run_summary(result, check)
        else:
            result, summary = run_locked(
                verb, loaded, run, title, before_run=before_run, verbose=verbose, as_json=as_json
            )
    if as_json:
        display.print_json(summary)
    else:
        show_run(summary, title)
    return exit_code(result)


def run_locked(
    verb: Verb,
    loaded: LoadedEnvironment,
    run: PlaybookRun,
    title: str,
    *,
    before_run: Step | None,
    verbose: bool,
    as_json: bool,
) -> tuple[RunResult, dict[str, Any]]:
    """RUN under the environment's lock, BEFORE_RUN (a question) first; leaves the history
    entry to append as the lock is released. A run with no question starts before the lock
    is taken, and waits for it at its first task (started_before_the_lock)."""
    # Not with a question first, nor when ansible's output is shown (a refused run would
    # show its first task), nor with the S3 ledger, which cannot tell when its lock was
    # last released (started_before_the_lock).
    early = before_run is None and not verbose and not loaded.config.ledger.s3_bucket
    with (
        started_before_the_lock(run, early=early) as go,
        held(loaded, as_json, destroys=verb.name == "destroy") as hold,
    ):
        if before_run is not None:
            before_run(loaded)
        recorded = verb.name in RECORDED_VERBS
        # A VM fleet's run tells what its hosts ran (no host read here, ~0.75 s each).
        read_before = recorded and not run_tells_releases(loaded)
        before = running_release(loaded, as_json) if read_before else None
        started = time.monotonic()
        try:
            go(hold.free_since)
            result = follow(run, title, as_json=as_json, verbose=verbose)
        except BaseException:
            run.stop()  # before the lock is released: nothing may run without it
            raise
        summary = run_summary(result, False)
        if recorded:
            entry = history_entry(
                loaded,
                verb.name,
                hold.holder,
                before,
                summary,
                {**result.state.told, **result.state.data},
                started,
                as_json,
            )
            # Appended as the lock is released, in the same ledger call.
            hold.entry = json.dumps(asdict(entry)) if entry else ""
    return result, summary
