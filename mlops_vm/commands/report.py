"""What a playbook run reports: its summary as JSON (`--json`) or as rows for a person."""

import json
from dataclasses import asdict
from typing import Any

from mlops_vm import display
from mlops_vm.runner import RunResult, RunState


def run_changes(state: RunState) -> list[str]:
    """The playbook's own list when it got that far; else what the modules reported as they
    ran (a failed or interrupted run never reaches the playbook's set_stats)."""
    if "planned" in state.data:
        return list(state.data["planned"])
    return list(state.changes)


def run_summary(result: RunResult, check: bool) -> dict[str, Any]:
    state = result.state
    return {
        "ok": result.ok,
        "status": result.status,
        "check": check,
        "endpoint": state.data.get("endpoint"),
        "ca_file": state.data.get("ca_file") or None,
        "hosts": sorted(h for h in state.hosts if h != "localhost"),
        "changed": state.changed,
        "changed_by_host": state.changed_by_host,
        "planned" if check else "changes": run_changes(state),
        "targets": state.data.get("targets", []),
        "release": state.data.get("release"),
        "service": state.data.get("service") or None,
        "failures": [asdict(f) for f in state.failures],
        "elapsed_s": round(state.elapsed_s, 1),
        "run_dir": str(result.run_dir),
    }


def show_run(summary: dict[str, Any], title: str) -> None:
    changes_key = "planned" if summary["check"] else "changes"
    rows = [
        ("status", summary["status"]),
        ("endpoint", summary["endpoint"] or "-"),
        ("ca file", summary["ca_file"] or "-"),
        ("hosts", ", ".join(summary["hosts"]) or "-"),
        (
            "health",
            ", ".join(
                f"{t['instance_id']}={'healthy' if t['healthy'] else t['reason']}"
                for t in summary["targets"]
            )
            or "-",
        ),
        (
            "changed tasks",
            f"{summary['changed']} " + json.dumps(summary["changed_by_host"], sort_keys=True),
        ),
        (changes_key, "\n".join(summary[changes_key]) or "none"),
        *release_rows(summary.get("release")),
        *service_rows(summary.get("service")),
        ("time", f"{summary['elapsed_s']:.0f}s"),
        ("run log", summary["run_dir"]),
    ]
    display.print_summary(rows, title)
    if summary["failures"]:
        display.print_problems(
            "failed:",
            [f"{f['host']}: task '{f['task']}': {f['message']}" for f in summary["failures"]],
        )


def service_rows(service: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A managed service's revision and health (playbooks/service.yml records them)."""
    if not service:
        return []
    active = (service.get("active") or {}).get("id", "-")
    health = "healthy" if service.get("healthy") else service.get("reason") or "-"
    return [("service", f"{service['name']}: {active}, {health}")]


def release_rows(release: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not release or not release.get("image"):
        return []
    changed = ", ".join(release.get("hosts_changed") or []) or "none (already running)"
    rows = [("release", f"{release['image']} ({release.get('source')}), hosts changed: {changed}")]
    rows += [("note", note) for note in release.get("notes") or []]
    if release.get("failure"):
        failure = release["failure"]
        rows.append(("rolled back", f"{failure['host']}: {failure['reason']}"))
    return rows
