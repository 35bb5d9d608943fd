"""The CLI's own share of a 2-host `mlops-vm deploy` (issue 26): the process's wall time
minus the playbook's, and a timer around each step of run_verb (the lock taken, the
release read over ssh before and after, the history entry, the lock released), each
ledger call counted.

    .venv/bin/python bench/cli_overhead.py --name NAME --port PORT [--runs 3] \\
        [--tree A --tree B] [--keep DIR]

Provisions a 2-VM environment (bench/local_cloud.py; --keep DIR: reuse and keep it), then
deploys 1.1, 1.0, 1.1, ... RUNS times with each --tree's code in turn (default: this
tree), each deploy a process of its own, and prints each run's steps and their means.
"""

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.monotonic()
PROJECT = Path(__file__).resolve().parents[1]

# (module, name): the steps timed, where the tree has them.
STEPS = [
    ("mlops_vm.commands.lock", "ledgers"),
    ("mlops_vm.commands.lock", "acquire"),
    ("mlops_vm.commands.playbook", "running_release"),
    ("mlops_vm.commands.history", "running_release"),
    ("mlops_vm.commands.playbook", "run_playbook"),
    # Since the run gate (mlops_vm/run_gate.py): the wait for a run started before the lock.
    ("mlops_vm.commands.playbook", "follow"),
    ("mlops_vm.commands.playbook", "record"),
    ("mlops_vm.commands.playbook", "history_entry"),
    ("mlops_vm.commands.lock", "append_to_new_host"),
    ("mlops_vm.commands.lock", "release"),
]


def timed(table: dict, key: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            seconds, calls = table.get(key, (0.0, 0))
            table[key] = (seconds + time.monotonic() - started, calls + 1)

    return wrapper


def deploy_once(tree: str, directory: str, image: str) -> None:
    """One `mlops-vm deploy` in this process with TREE's code; prints its timings (JSON)."""
    sys.path.insert(0, tree)
    import importlib

    before_import = time.monotonic()
    from mlops_vm import cli

    table: dict[str, tuple[float, int]] = {
        "import mlops_vm.cli": (time.monotonic() - before_import, 1)
    }
    for module_name, name in STEPS:
        module = importlib.import_module(module_name)
        if hasattr(module, name):
            key = f"{module_name.rsplit('.', 1)[1]}.{name}"
            setattr(module, name, timed(table, key, getattr(module, name)))
    from mlops_vm.release import ledger

    for kind in (ledger.HostLedger, ledger.LocalLedger):
        call = kind.call

        def counted(self, action, given="", call=call, kind=kind):
            return timed(table, f"{kind.__name__}.call {action}", call)(self, action, given)

        kind.call = counted
    sys.argv = ["mlops-vm", "deploy", directory, "--image", image, "--json"]
    with (
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),
        contextlib.suppress(SystemExit),
    ):
        cli.app(sys.argv[1:], standalone_mode=False)
    wall = time.monotonic() - STARTED
    playbook = table.get("playbook.run_playbook", table.get("playbook.follow", (0.0, 0)))[0]
    steps = {key: round(seconds, 3) for key, (seconds, _) in table.items()}
    calls = {key: count for key, (_, count) in table.items()}
    print(
        json.dumps(
            {
                "tree": tree,
                "image": image,
                "wall_s": round(wall, 3),
                "playbook_s": round(playbook, 3),
                "cli_own_s": round(wall - playbook, 3),
                "steps_s": steps,
                "calls": calls,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="clibench")
    parser.add_argument("--port", type=int, default=18561)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tree", action="append")
    parser.add_argument("--keep", help="an environment directory to reuse and keep")
    args = parser.parse_args()
    trees = args.tree or [str(PROJECT)]
    sys.path.insert(0, str(PROJECT))
    from bench.local_cloud import make_environment, mlops_vm
    from mlops_vm.localcloud import images, registry

    tags = [f"{registry.ADDRESS}/{images.model_tag(v)}" for v in ("1.1", "1.0")]
    root = Path(args.keep or tempfile.mkdtemp(prefix="clibench-"))
    directory = root / args.name
    if not directory.exists():
        make_environment(root, args.name, 2, args.port)
        mlops_vm("provision", str(directory))
    results = []
    try:
        for n in range(args.runs * len(trees)):
            tree = trees[n % len(trees)]
            done = subprocess.run(
                [sys.executable, __file__, "--deploy-once", tree, str(directory), tags[n % 2]],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": tree},
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        if not args.keep:
            mlops_vm("destroy", str(directory), "--yes")
    for tree in trees:
        mine = [r for r in results if r["tree"] == tree]
        keys = sorted({k for r in mine for k in r["steps_s"]})
        print(f"\n{tree}: mean of {len(mine)} deploys")
        for field in ("wall_s", "playbook_s", "cli_own_s"):
            print(f"  {field:34} {statistics.mean(r[field] for r in mine):7.3f}")
        for key in keys:
            seconds = statistics.mean(r["steps_s"].get(key, 0.0) for r in mine)
            calls = statistics.mean(r["calls"].get(key, 0) for r in mine)
            print(f"  {key:34} {seconds:7.3f} s  x{calls:g}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--deploy-once"]:
        deploy_once(*sys.argv[2:5])
    else:
        main()
