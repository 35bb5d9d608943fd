"""Run a playbook through ansible-runner, with events for a live display and a run folder.

One class owns the runner arguments (like ansible-navigator): quiet unless verbose, a cancel
callback tied to Ctrl-C, an event handler that feeds the display and drops secrets, only
ANSIBLE_* variables passed through on top of a clean environment, and one artifact folder
per run under ~/.mlops-vm/runs/<env>/<timestamp>. A run starts in a thread of its own
(start), so that the CLI can take the lock meanwhile (run_gate.py), and is waited for
(wait).
"""

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_vm import paths, ssh_connections
from mlops_vm.ansible_strategy import strategy_environment
from mlops_vm.run_gate import GO, RunGate

CENSORED = "********"
FAILED_EVENTS = ("runner_on_failed", "runner_on_unreachable")


@dataclass
class HostProgress:
    task: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False


@dataclass
class Failure:
    host: str
    task: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: task '{self.task}' failed: {self.message}"


@dataclass
class RunState:
    """What the run has said so far; the display reads it, the summary is built from it."""

    play: str = ""
    task: str = ""
    hosts: dict[str, HostProgress] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # set_stats of the playbook
    # Each set_stats as its task ran: what an interrupted run (no final stats) got to say.
    told: dict[str, Any] = field(default_factory=dict)
    # The modules' `changes` as their results arrive: a failed play never reaches the
    # playbook's set_stats, and a failed module still says what it made before failing.
    changes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def changed_by_host(self) -> dict[str, int]:
        """Changed tasks per host: playbook_on_stats never comes when the run is interrupted
        and does not count a failed task's changes, so the events' counts are the floor."""
        from_stats = self.stats.get("changed", {})
        hosts = set(from_stats) | {h for h, p in self.hosts.items() if p.changed}
        return {
            host: max(from_stats.get(host, 0), self.hosts.get(host, HostProgress()).changed)
            for host in sorted(hosts)
        }

    @property
    def changed(self) -> int:
        return sum(self.changed_by_host.values())


@dataclass
class RunResult:
    status: str  # successful, failed, canceled, timeout
    rc: int
    state: RunState
    run_dir: Path

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


def failure_message(result: dict[str, Any]) -> str:
    message = result.get("msg") or result.get("stderr") or result.get("reason") or ""
    if not message and result.get("results"):
        failed = [r for r in result["results"] if r.get("failed")]
        message = failed[0].get("msg", "") if failed else ""
    return str(message).strip()[:2000]


def module_changes(result: dict[str, Any]) -> list[str]:
    """The `changes` a module reported (mlops_vm_fleet, mlops_vm_load_balancer, ...), also
    from each item of a loop."""
    changes = result.get("changes")
    found = [str(c) for c in changes] if isinstance(changes, list) else []
    for item in result.get("results") or []:
        if isinstance(item, dict):
            found += module_changes(item)
    return found


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """VALUE with every occurrence of a secret replaced (walks dicts and lists)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, CENSORED)
        return value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, secrets) for item in value]
    return value


class PlaybookRun:
    def __init__(
        self,
        *,
        env: str,
        inventory_dir: Path,
        playbook: str,
        provider: str = "",
        check: bool = False,
        verbose: bool = False,
        secrets: Iterable[str] = (),
        extravars: dict[str, Any] | None = None,
        on_event: Callable[[RunState], None] | None = None,
    ) -> None:
        self.env = env
        self.inventory_dir = inventory_dir.absolute()  # the runner works from its own folder
        self.playbook = playbook
        self.provider = provider  # chooses the strategy (mlops_vm/ansible_strategy.py)
        self.check = check
        self.verbose = verbose
        # Short strings would censor half the output; real secrets are long.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        self.extravars = dict(extravars or {})
        self.on_event = on_event
        self.state = RunState()
        self.cancel_requested = False
        self._runner: Any = None
        self._gate: RunGate | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = paths.STATE_DIR / "runs" / env / f"{stamp}-{os.getpid()}"

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key.startswith("ANSIBLE_")}
        env["ANSIBLE_CONFIG"] = str(paths.PROJECT_DIR / "ansible.cfg")
        # ansible-runner sets False, and the ssh plugin then puts StrictHostKeyChecking=no
        # before the inventory's accept-new: a changed host key would be accepted.
        env.setdefault("ANSIBLE_HOST_KEY_CHECKING", "True")
        env.update(strategy_environment(os.environ, self.provider))
        env.update(ssh_connections.ansible_environment(os.environ))
        # ansible-playbook and the modules must use this Python (mlops_vm is installed here).
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env.setdefault("ANSIBLE_NOCOLOR", "1")  # the run folder keeps plain text
        # ansible-runner adds its own callback folder to this variable, which then hides
        # ansible.cfg's callback_plugins: name ours here too (after the user's own).
        ours = str(paths.PROJECT_DIR / "plugins" / "callback")
        folders = [p for p in os.environ.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep) if p]
        env["ANSIBLE_CALLBACK_PLUGINS"] = os.pathsep.join(dict.fromkeys([*folders, ours]))
        return env

    def handle_event(self, event: dict[str, Any]) -> bool:
        """Update the state from one runner event (True: runner keeps it in the run folder)."""
        # ansible-runner writes the event after this handler: scrub it in place.
        if self.secrets and any(s in json.dumps(event) for s in self.secrets):
            scrubbed = scrub(event, self.secrets)
            event.clear()
            event.update(scrubbed)
        data = event.get("event_data", {})
        kind = event.get("event", "")
        if kind.startswith("runner_on_") and self._gate is not None and self._gate.word != GO:
            self.cancel_requested = True  # a task ran before the gate let it: stop it all
        host = data.get("host") or data.get("remote_addr")
        if kind == "playbook_on_play_start":
            self.state.play = data.get("play", "")
        elif kind == "playbook_on_task_start":
            self.state.task = data.get("task", "")
        elif kind.startswith("runner_on_") and host and not data.get("delegate_to"):
            progress = self.state.hosts.setdefault(host, HostProgress())
            progress.task = data.get("task", progress.task)
            result = data.get("res", {}) or {}
            if kind in ("runner_on_ok", "runner_on_failed"):
                self.state.changes += module_changes(result)
                # A failed task that made changes (fail_json with changed) did change things.
                progress.changed += bool(result.get("changed"))
            if kind == "runner_on_ok":
                progress.ok += 1
                self.state.told.update((result.get("ansible_stats") or {}).get("data") or {})
            elif kind == "runner_on_skipped":
                progress.skipped += 1
            elif kind in FAILED_EVENTS and not data.get("ignore_errors"):
                progress.failed += 1
                progress.unreachable = kind == "runner_on_unreachable"
                self.state.failures.append(
                    Failure(
                        host, data.get("task", ""), scrub(failure_message(result), self.secrets)
                    )
                )
        elif kind == "playbook_on_stats":
            self.state.stats = {
                k: data.get(k, {}) for k in ("ok", "changed", "failures", "dark", "skipped")
            }
            self.state.data = data.get("artifact_data", {}) or {}
        if self.on_event:
            self.on_event(self.state)
        return True

    def start(self, gate: RunGate | None = None) -> "PlaybookRun":
        """Start ansible-playbook in a thread of its own; with GATE, it waits at its first
        task until the gate lets it go on (run_gate.py)."""
        from ansible_runner.interface import init_runner

        no_pause_after_exit()
        self.state, self.cancel_requested, self._error = RunState(), False, None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        envvars = self.environment()
        self._gate = gate
        if gate is not None:
            envvars.update(gate.environment(envvars))
        self._runner = init_runner(
            private_data_dir=str(self.run_dir),
            project_dir=str(paths.PROJECT_DIR),
            playbook=self.playbook,
            inventory=str(self.inventory_dir),
            envvars=envvars,
            cmdline="--check" if self.check else None,
            extravars=self.extravars or None,
            quiet=not self.verbose,
            event_handler=self.handle_event,
            cancel_callback=lambda: self.cancel_requested,
            settings={"suppress_env_files": True},
            ident="run",
        )
        self._thread = threading.Thread(target=self._run_runner, name="ansible-runner")
        self._thread.start()
        return self

    def _run_runner(self) -> None:
        try:
            self._runner.run()
        except BaseException as error:  # raised again by wait(), in the caller's thread
            self._error = error

    def wait(self) -> RunResult:
        """Wait for the started run to end (Ctrl-C: stop ansible cleanly, keep the log)."""
        if self._thread is None:
            raise RuntimeError("wait() before start()")
        previous = signal.getsignal(signal.SIGINT)

        def request_cancel(signum, frame):
            self.cancel_requested = True

        signal.signal(signal.SIGINT, request_cancel)
        try:
            self._thread.join()
        finally:
            signal.signal(signal.SIGINT, previous)
        if self._error is not None:
            raise self._error
        status = "canceled" if self.cancel_requested else self._runner.status
        return RunResult(status, self._runner.rc, self.state, self.run_dir)

    def stop(self) -> None:
        """Cancel a started run that may still be going, and wait for it to end."""
        if self._thread is not None and self._thread.is_alive():
            self.cancel_requested = True
            self.wait()

    def run(self) -> RunResult:
        return self.start().wait()


def no_pause_after_exit() -> None:
    """ansible-runner closes pexpect's terminal once ansible-playbook has exited, and
    ptyprocess then sleeps 0.1 s "to give the kernel time" to report an exit it has already
    reported: no sleep when the child is known to be gone."""
    from ptyprocess import PtyProcess

    close = PtyProcess.close
    if getattr(close, "no_pause_after_exit", False):
        return

    def close_without_pause(self: PtyProcess, force: bool = True) -> None:
        if self.terminated:
            self.delayafterclose = 0
        close(self, force)

    close_without_pause.no_pause_after_exit = True  # type: ignore[attr-defined]
    PtyProcess.close = close_without_pause
