"""Where the time of one CLI run goes: task durations from its runner events, summed per
task name and per release phase.

    .venv/bin/python bench/run_profile.py ~/.mlops-vm/runs/<env>/<time> [--top 30]

The run folder is the one the CLI keeps for every run (mlops_vm/runner.py). Wall time per
task is the time from its start to the next task's start (what a host-by-host roll waits
for); host seconds add each host's own duration (parallel hosts count twice).
"""

import argparse
import collections
import json
from datetime import datetime
from pathlib import Path

# The swap's tasks whose time is the model container's, not Ansible's.
CONTAINER_WORK = (
    "Start the successor",
    # Before the start and the wait were one task (successor.yml).
    "Wait until the successor is ready",
    "Stop the old replica gracefully",
    "Retire the old",
)


def phase(play: str, task: str) -> str:
    """The release phase a task belongs to (playbooks/release-plan.yml, release-roll.yml)."""
    if play.startswith(("Read the release", "Choose the release", "Release on a scaling")):
        return "0 choose (read the hosts' records)"
    if play.startswith("Prepare the release"):
        return "1 pre-flight (login, pull, compare)"
    if task.startswith("Drain the host"):
        return "2 leave and drain"
    if task.startswith("Register the host"):
        return "4 rejoin and wait until the LB says healthy"
    if play.startswith("Roll the release") and task.startswith(CONTAINER_WORK):
        return "3a swap: the containers' own time (start, get ready, stop)"
    if play.startswith("Roll the release"):
        return "3b swap: every other task (round trips)"
    return "5 report and other"


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--top", type=int, default=30, help="tasks to list")
    args = parser.parse_args()
    events = sorted(
        (json.loads(path.read_text()) for path in args.run_dir.rglob("job_events/*.json")),
        key=lambda event: event.get("counter", 0),
    )
    stamps = [seconds(event["created"]) for event in events if "created" in event]
    host_s: dict[tuple[str, str], float] = collections.defaultdict(float)
    starts: list[tuple[float, str, str]] = []
    for event in events:
        data = event.get("event_data", {})
        key = (data.get("play") or "", data.get("task") or "")
        if event["event"] == "playbook_on_task_start":
            starts.append((seconds(event["created"]), *key))
        elif event["event"].startswith("runner_on_") and data.get("duration") is not None:
            # None on the events of a host that an unreachable or skipped task never ran on.
            host_s[key] += data["duration"]
    wall: dict[tuple[str, str], float] = collections.defaultdict(float)
    for (start, play, task), following in zip(
        starts, [*starts[1:], (max(stamps), "", "")], strict=True
    ):
        wall[(play, task)] += following[0] - start
    print(f"wall {max(stamps) - min(stamps):.1f} s, {len(starts)} task starts")
    print("  wall s  host s  play | task")
    for (play, task), value in sorted(wall.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {value:6.1f}  {host_s[(play, task)]:6.1f}  {play[:32]} | {task[:80]}")
    phases: dict[str, float] = collections.defaultdict(float)
    for (play, task), value in wall.items():
        phases[phase(play, task)] += value
    # Task starts too: each is a dispatch the run waits for, skipped or not.
    dispatches = collections.Counter(phase(play, task) for _, play, task in starts)
    print("per phase (wall s, task starts):")
    for name in sorted(phases):
        print(f"  {phases[name]:6.1f}  {dispatches[name]:4d}  {name}")


if __name__ == "__main__":
    main()
