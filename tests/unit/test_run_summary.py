"""A run's summary from ansible-runner events: what a failed or interrupted run made.

The events are built in the shape ansible-runner hands to the event handler; no playbook runs.
"""

from pathlib import Path
from typing import Any

from mlops_vm.commands.report import run_summary, show_run
from mlops_vm.runner import PlaybookRun, RunResult

FLEET_TASK = "Converge the environment's instances"
LB_TASK = "Converge the load balancer"


def event(kind: str, **event_data: Any) -> dict[str, Any]:
    return {"event": kind, "uuid": "0", "counter": 1, "stdout": "", "event_data": event_data}


def task_start(task: str) -> dict[str, Any]:
    return event("playbook_on_task_start", task=task, name=task)


def module_ok(host: str, task: str, changes: list[str], **res: Any) -> dict[str, Any]:
    return event(
        "runner_on_ok",
        host=host,
        task=task,
        res={"changed": bool(changes), "changes": changes, **res},
    )


def new_run(tmp_path: Path) -> PlaybookRun:
    return PlaybookRun(env="dev", inventory_dir=tmp_path, playbook="playbooks/provision.yml")


def feed(run: PlaybookRun, events: list[dict[str, Any]]) -> None:
    for item in events:
        run.handle_event(item)


def test_a_failed_provision_lists_what_the_fleet_made_and_what_the_lb_made_before_failing(
    tmp_path,
):
    run = new_run(tmp_path)
    fleet_changes = [
        "create vpc mlops-vm-dev",
        "create instance dev-model-0",
        "create instance dev-model-1",
    ]
    feed(
        run,
        [
            event("playbook_on_play_start", play="Launch the fleet and the load balancer"),
            task_start(FLEET_TASK),
            module_ok("localhost", FLEET_TASK, fleet_changes, hosts=[], instances=[]),
            task_start(LB_TASK),
            event(
                "runner_on_failed",
                host="localhost",
                task=LB_TASK,
                res={
                    "failed": True,
                    "changed": True,
                    "msg": "aws: create the listener: LimitExceeded [quota]",
                    "changes": ["create load_balancer dev-alb"],
                },
            ),
            # The play stops: playbook_on_stats comes, set_stats never ran.
            event(
                "playbook_on_stats",
                ok={"localhost": 1},
                changed={"localhost": 1},
                failures={"localhost": 1},
                dark={},
                skipped={},
                artifact_data={},
            ),
        ],
    )
    summary = run_summary(RunResult("failed", 2, run.state, tmp_path), check=False)
    assert summary["changes"] == [*fleet_changes, "create load_balancer dev-alb"]
    # The failed task made the ALB: it counts as a changed task even though stats say 1.
    assert summary["changed_by_host"] == {"localhost": 2}
    assert summary["changed"] == 2
    assert summary["failures"][0]["task"] == LB_TASK


def test_an_interrupted_run_counts_changed_tasks_per_host_without_stats(tmp_path):
    run = new_run(tmp_path)
    feed(
        run,
        [
            task_start(FLEET_TASK),
            module_ok("localhost", FLEET_TASK, ["create instance dev-model-0"]),
            task_start("Start the model replicas"),
            event(
                "runner_on_ok",
                host="i-0abc",
                task="Start the model replicas",
                res={"changed": True},
            ),
            event("runner_on_ok", host="i-0abc", task="Check the replicas", res={"changed": False}),
            event(
                "runner_on_ok",
                host="i-0def",
                task="Start the model replicas",
                res={"changed": True},
            ),
            # Ctrl-C here: no playbook_on_stats event is ever sent.
        ],
    )
    summary = run_summary(RunResult("canceled", 254, run.state, tmp_path), check=False)
    assert summary["changed_by_host"] == {"i-0abc": 1, "i-0def": 1, "localhost": 1}
    assert summary["changed"] == 3
    assert summary["changes"] == ["create instance dev-model-0"]


def test_a_completed_run_reports_the_playbooks_own_list(tmp_path):
    run = new_run(tmp_path)
    feed(
        run,
        [
            module_ok("localhost", FLEET_TASK, ["create vpc mlops-vm-dev"]),
            event(
                "playbook_on_stats",
                ok={"localhost": 3},
                changed={"localhost": 1},
                failures={},
                dark={},
                skipped={},
                artifact_data={"planned": ["create vpc mlops-vm-dev"], "endpoint": "https://x"},
            ),
        ],
    )
    summary = run_summary(RunResult("successful", 0, run.state, tmp_path), check=True)
    assert summary["planned"] == ["create vpc mlops-vm-dev"]
    assert summary["changed_by_host"] == {"localhost": 1}


def test_the_printed_summary_names_the_changes_of_a_failed_run(tmp_path, capsys):
    run = new_run(tmp_path)
    feed(
        run,
        [
            event(
                "runner_on_failed",
                host="localhost",
                task=FLEET_TASK,
                res={
                    "failed": True,
                    "changed": True,
                    "msg": "gcp: create instance: QUOTA_EXCEEDED [quota]",
                    "changes": ["create network mlops-vm-dev"],
                },
            )
        ],
    )
    show_run(run_summary(RunResult("failed", 2, run.state, tmp_path), check=False), "provisioned")
    out = capsys.readouterr().out
    assert "create network mlops-vm-dev" in out
    changes_row = next(line for line in out.splitlines() if line.strip().startswith("changes "))
    assert "none" not in changes_row


def test_loop_items_changes_are_collected(tmp_path):
    run = new_run(tmp_path)
    feed(
        run,
        [
            event(
                "runner_on_ok",
                host="localhost",
                task="Take the hosts out",
                res={
                    "changed": True,
                    "results": [
                        {"changed": True, "changes": ["update target i-1 (deregister)"]},
                        {"changed": False, "changes": []},
                    ],
                },
            )
        ],
    )
    assert run.state.changes == ["update target i-1 (deregister)"]


def test_an_interrupted_run_keeps_what_its_set_stats_told_before_it_stopped(tmp_path):
    """The history's release before a run (release-plan.yml's set_stats) is known even when
    the run is stopped before its end (no playbook_on_stats)."""
    run = new_run(tmp_path)
    before = {"m-1": {"image": "r/m:1.0"}, "m-2": None}
    told = {"data": {"release_before": before}, "per_host": False, "aggregate": True}
    feed(
        run,
        [
            task_start("Record what every model host runs before the release"),
            event("runner_on_ok", host="localhost", task="Record", res={"ansible_stats": told}),
            # Ctrl-C here.
        ],
    )
    assert run.state.told == {"release_before": before}
    assert run.state.data == {}
