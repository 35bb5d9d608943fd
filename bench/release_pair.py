"""Before and after, paired: releases of two trees of mlops-vm on ONE environment, in turn,
under the same load, so that a change of a second or two is not lost in the noise between
two benchmark runs (machine load, the floor, the hosts' first contact).

    git archive <rev> | tar -x -C /tmp/before
    .venv/bin/python bench/release_pair.py --before /tmp/before [--rounds 3] [--clients 4] [--json]

1. provisions a 2-VM environment with this tree (rate limiting off, as bench/release.py);
2. puts it on the 1.0 release, then for each round runs `deploy --image ...:1.1` and
   `rollback` with one tree, then the other (the order swaps every round), each command
   timed, every one changing both hosts;
3. CLIENTS keep-alive clients send POST /predict back to back through the load balancer
   for the whole series, and every failed request is counted;
4. destroys the environment; prints the median and every time per tree and command.

The before tree runs through PYTHONPATH (its mlops_vm, hence its playbooks, roles and
plugins); its bytecode is compiled first, as this tree's is, so that neither pays for it.
"""

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.local_cloud import BIN, make_environment, mlops_vm  # noqa: E402
from mlops_vm.localcloud import images, registry  # noqa: E402
from tests.load import RequestLoop  # noqa: E402

REPOSITORY = f"{registry.ADDRESS}/{images.MODEL_REPOSITORY}"
PORT = 18542
COMMANDS = ("deploy", "rollback")


def timed(tree: Path | None, verb: str, directory: Path) -> float:
    """Seconds of one release command run by TREE (None: this one); it must change both hosts."""
    environ = dict(os.environ)
    if tree is not None:
        environ["PYTHONPATH"] = str(tree)
    argv = [str(BIN / "mlops-vm"), verb, str(directory), "--json"]
    if verb == "deploy":
        argv += ["--image", f"{REPOSITORY}:1.1"]
    started = time.monotonic()
    done = subprocess.run(argv, env=environ, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    changed = json.loads(done.stdout)["release"]["hosts_changed"]
    if len(changed) != 2:
        raise SystemExit(f"{verb} changed {changed}, not both hosts")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other tree (git archive)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="keep-alive clients (0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--name", default="benchpair", help="environment name")
    args = parser.parse_args()
    before = args.before.resolve()
    compileall.compile_dir(before / "mlops_vm", quiet=1)
    compileall.compile_dir(before / "plugins", quiet=1)

    directory = make_environment(
        Path(tempfile.mkdtemp(prefix="mlops-vm-bench-")), args.name, 2, PORT
    )
    mlops_vm("destroy", str(directory), "--yes")
    times: dict[str, dict[str, list[float]]] = {
        tree: {verb: [] for verb in COMMANDS} for tree in ("before", "after")
    }
    try:
        summary = mlops_vm("provision", str(directory))
        mlops_vm("deploy", str(directory), "--image", f"{REPOSITORY}:1.0")
        with RequestLoop(
            summary["endpoint"], summary["ca_file"], threads=args.clients, interval_s=0.0
        ) as loop:
            time.sleep(1)
            for round_ in range(args.rounds):
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for tree in order:
                    for verb in COMMANDS:
                        took = timed(before if tree == "before" else None, verb, directory)
                        times[tree][verb].append(round(took, 2))
                        if not args.json:
                            print(f"{tree} {verb}: {took:.1f} s", flush=True)
            time.sleep(1)
    finally:
        mlops_vm("destroy", str(directory), "--yes")

    result = {
        "before": str(before),
        "rounds": args.rounds,
        "load": f"{args.clients} keep-alive clients, POST /predict back to back",
        "median_s": {
            tree: {verb: round(statistics.median(row), 2) for verb, row in rows.items()}
            for tree, rows in times.items()
        },
        "seconds": times,
        "requests": len(loop.outcomes),
        "failed": len(loop.failures()),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for tree in ("before", "after"):
        medians = result["median_s"][tree]
        print(f"{tree}: deploy {medians['deploy']} s, rollback {medians['rollback']} s (medians)")
    print(f"{result['failed']} failed of {result['requests']} requests")


if __name__ == "__main__":
    main()
