"""The release history (kamal's `audit`): every provision, deploy and rollback that changed
the model (or failed trying) appends one entry: when, who, from where, the command, the
release before and after, the result and how long it took. `mlops-vm history ENV [--json]`
prints it; `rollback --to N` rolls the release of entry N.

It is kept with the lock (commands/lock.py): on the environment's load balancer host or
first model host for VM fleets, so every operator reads the same one; on this machine for
managed targets (their own revision lists are in the cloud; keeping this history there too
is left to do); a run's entry is appended as the run releases the lock, in the same
ledger call. A release is recorded by its image and sizes (release/running.py), never its
`env` settings (they may hold secrets): `rollback --to N` takes `env` from the inventory.
A VM fleet's run tells what its hosts ran before and after it; the release of a managed
target or a scaling group is read before and after the run.
"""

import time
from dataclasses import asdict, dataclass
from typing import Any

from mlops_vm import display
from mlops_vm.commands.checks import load, provider_for, service_target_for
from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Stop, fail
from mlops_vm.commands.lock import local_ledger, shared_ledger
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.environment.inventory import host_vars_of
from mlops_vm.provision import ProvisionError
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.release.deploy_lock import Holder
from mlops_vm.release.hosts import read_hosts
from mlops_vm.release.ledger import Ledger, LedgerError
from mlops_vm.release.running import most_run, release_of

RECORDED_VERBS = ("provision", "deploy", "rollback")


def history_ledger(loaded: LoadedEnvironment, as_json: bool) -> Ledger:
    return shared_ledger(loaded, as_json) or local_ledger(loaded.config.env)


def running_release(loaded: LoadedEnvironment, as_json: bool) -> dict[str, Any] | None:
    """The release the environment runs now (the one most model hosts run; a managed
    service's active revision; the release a scaling group launches); None when nothing
    runs or it cannot be read."""
    try:
        if loaded.config.managed:
            record = service_target_for(loaded, as_json).status(loaded.config.env)
            active = record.active if record else None
            return release_of(asdict(active)) if active else None
        provider = provider_for(loaded, as_json)
        if loaded.config.fleet.mode == "scaling_group":
            group = provider.group_status(loaded.config.env)
            return {"image": group.release} if group and group.release else None
        instances = provider.list_instances(loaded.config.env, ROLE_MODEL)
        readings = read_hosts(instances, host_vars_of(loaded.config, loaded.inventory_dir))
    except (ProvisionError, OSError, ValueError, Stop):
        return None
    return most_run({name: release_of(r.current) for name, r in readings.items() if not r.error})


def run_tells_releases(loaded: LoadedEnvironment) -> bool:
    """Whether the run itself reports what the hosts ran before and after it (a fixed
    fleet of VMs: release-plan.yml and release-roll.yml), so no host is read for the
    history; a managed target's revisions and a scaling group's release are read."""
    return not loaded.config.managed and loaded.config.fleet.mode != "scaling_group"


def releases_of_run(
    loaded: LoadedEnvironment,
    summary: dict[str, Any],
    told: dict[str, Any],
    before: dict[str, Any] | None,
    as_json: bool,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(from, to) of the run: what the run told (TOLD, its set_stats), else BEFORE (read
    before the run) and what runs now. A run that failed other than by a release rolled
    back (its hosts may be anywhere), or that never reached its report, is read after."""
    if not run_tells_releases(loaded):
        return before, running_release(loaded, as_json)
    if "release_before" in told:
        before = most_run(told["release_before"])
    trusted = summary["ok"] or (summary.get("release") or {}).get("failure")
    if "release_after" in told and trusted:
        return before, most_run(told["release_after"])
    after = running_release(loaded, as_json)
    return (before if "release_before" in told else after), after


@dataclass
class Entry:
    """One line of the history."""

    time: str  # when the run started, ISO 8601 UTC
    user: str
    host: str  # the machine it ran from
    command: str
    verb: str
    from_release: dict[str, Any] | None
    to_release: dict[str, Any] | None
    result: str  # ok, rolled back, failed, canceled
    duration_s: float
    detail: str = ""  # why it failed


def result_of(summary: dict[str, Any]) -> tuple[str, str]:
    """(result, detail) of a run's summary (commands/report.py run_summary)."""
    failure = (summary.get("release") or {}).get("failure")
    if failure:
        return "rolled back", f"{failure.get('host')}: {failure.get('reason')}"
    if summary["ok"]:
        return "ok", ""
    failures = summary.get("failures") or []
    detail = f"{failures[0]['host']}: {failures[0]['message']}" if failures else ""
    return str(summary.get("status") or "failed"), detail[:500]


def changed_the_model(summary: dict[str, Any], before: Any, after: Any) -> bool:
    """A run worth a history entry: it changed the release or the hosts' size, or failed."""
    resized = any(str(c).startswith("update instance") for c in summary.get("changes") or [])
    hosts_changed = (summary.get("release") or {}).get("hosts_changed")
    return not summary["ok"] or before != after or bool(hosts_changed) or resized


def history_entry(
    loaded: LoadedEnvironment,
    verb: str,
    holder: Holder,
    before: dict[str, Any] | None,
    summary: dict[str, Any],
    told: dict[str, Any],
    started: float,
    as_json: bool,
) -> Entry | None:
    """The run's entry, when it changed the model (commands/lock.py appends it as it
    releases the lock, in the same ledger call). BEFORE: the release read before the run
    when the run cannot tell it (run_tells_releases); TOLD: the run's set_stats."""
    if verb not in RECORDED_VERBS or summary.get("check"):
        return None
    before, after = releases_of_run(loaded, summary, told, before, as_json)
    if not changed_the_model(summary, before, after):
        return None
    result, detail = result_of(summary)
    return Entry(
        time=holder.started_at,
        user=holder.user,
        host=holder.host,
        command=holder.command,
        verb=verb,
        from_release=before,
        to_release=after,
        result=result,
        duration_s=round(time.monotonic() - started, 1),
        detail=detail,
    )


def entries(loaded: LoadedEnvironment, as_json: bool) -> list[dict[str, Any]]:
    """The history, oldest first, each entry numbered from 1."""
    try:
        found = history_ledger(loaded, as_json).call("history")["entries"]
    except (LedgerError, ProvisionError) as error:
        raise fail(EXIT_FAILED, "the history could not be read", [str(error)], as_json) from None
    return [{"n": n, **entry} for n, entry in enumerate(found, start=1)]


def entry_release(loaded: LoadedEnvironment, n: int, as_json: bool) -> dict[str, Any]:
    """The release entry N of the history rolled to (exit 2 when there is none)."""
    found = entries(loaded, as_json)
    entry = found[n - 1] if 0 < n <= len(found) else None
    if entry is None:
        raise fail(
            EXIT_BAD_INPUT,
            f"--to {n}: the history of {loaded.config.env} has no entry {n}",
            [
                f"it has entries 1 to {len(found)} (`mlops-vm history ENV`)"
                if found
                else "it is empty"
            ],
            as_json,
        )
    if not entry.get("to_release"):
        raise fail(
            EXIT_BAD_INPUT,
            f"--to {n}: entry {n} left no release running to go back to",
            [f"entry {n}: {entry['command']} ({entry['result']})"],
            as_json,
        )
    return entry["to_release"]


def release_text(release: dict[str, Any] | None) -> str:
    return release["image"] if release else "-"


def history(env: str, *, as_json: bool) -> int:
    loaded = load(env, as_json)
    found = entries(loaded, as_json)
    if as_json:
        display.print_json({"env": loaded.config.env, "entries": found})
        return EXIT_OK
    if not found:
        display.out.print(f"environment {loaded.config.env}: no history yet")
        return EXIT_OK
    rows = [
        (
            str(e["n"]),
            f"{e['time']}  {e['user']}@{e['host']}  {e['verb']}  {e['result']}  "
            f"{e['duration_s']:.0f}s\n  {release_text(e['from_release'])} -> "
            f"{release_text(e['to_release'])}\n  {e['command']}"
            + (f"\n  {e['detail']}" if e.get("detail") else ""),
        )
        for e in found
    ]
    display.print_summary(rows, f"history of environment {loaded.config.env}")
    return EXIT_OK
