"""The one path of every command that runs a playbook (provision, destroy, deploy,
rollback): load the environment, check it, run the playbook, report the run, and exit with
its code."""

import json
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
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


def run_playbook(
    loaded: LoadedEnvironment,
    playbook: str,
    title: str,
    *,
    check: bool,
    verbose: bool,
    as_json: bool,
    extravars: dict[str, Any] | None = None,
) -> RunResult:
    run = PlaybookRun(
        env=loaded.config.env,
        inventory_dir=loaded.inventory_dir,
        playbook=playbook,
        provider=loaded.config.provider.name,
        check=check,
        verbose=verbose,
        secrets=known_secrets(loaded),
        extravars={"mlops_vm_release_batch": loaded.config.release.batch, **(extravars or {})},
    )
    if as_json or verbose or not display.console.is_terminal:
        return run.run()
    with Live(
        display.progress_view(run.state, title),
        console=display.console,
        refresh_per_second=4,
        transient=True,
    ) as live:
        run.on_event = lambda state: live.update(display.progress_view(state, title))
        return run.run()


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
    lock = held(loaded, as_json, destroys=verb.name == "destroy")
    # One SSH master per host for the lock's calls and the playbook's (ssh_connections.py).
    with ssh_connections.shared(), nullcontext() if check else lock as hold:
        if before_run is not None:
            before_run(loaded)
        recorded = hold is not None and verb.name in RECORDED_VERBS
        # A VM fleet's run tells what its hosts ran (no host read here, ~0.75 s each).
        read_before = recorded and not run_tells_releases(loaded)
        before = running_release(loaded, as_json) if read_before else None
        started = time.monotonic()
        title = f"{verb.planned if check else verb.done} {loaded.config.env}"
        result = run_playbook(
            loaded,
            verb.playbook,
            title,
            check=check,
            verbose=verbose,
            as_json=as_json,
            extravars=extravars,
        )
        summary = run_summary(result, check)
        if recorded and hold is not None:
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
    if as_json:
        display.print_json(summary)
    else:
        show_run(summary, title)
    return exit_code(result)
