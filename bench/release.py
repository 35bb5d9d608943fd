"""Benchmark of a model release on the local cloud: how long a 2-host release takes, how
many requests fail during it, against the floor of two times one host's pull and ready.

    .venv/bin/python bench/release.py [--json] [--clients 4] [--rounds 3] [--name benchrel]
        [--port 18541]

1. provisions a 2-VM environment (rate limiting off, as in bench/local_cloud.py);
2. the floor: on one VM, `docker pull` of the 1.1 image (removed first) and `docker run`
   until /readyz answers 200, timed inside the VM with the readiness URL asked every 50 ms
   (as the release's own readiness wait does); the release cannot beat twice that, host
   by host. Timed ROUNDS times on the idle environment, and ROUNDS times under the same
   request loop as the release (4 clients on 2 cores slow a pull and a model's start as
   much as they slow the release: that is the floor of a release under load); the medians
   are the floors, and both ratios are reported;
3. ROUNDS times: removes 1.1 from both VMs, then `mlops-vm deploy --image ...:1.1` under a
   request loop (CLIENTS keep-alive clients sending POST /predict back to back), counting
   every request, then `mlops-vm rollback` under the same loop; the medians are compared
   with the floors, every time and every failed request are reported;
4. destroys the environment.

One sample of each, as this script took before, let the ratio swing by a tenth or more
between runs on the same code: the floor alone measured 3.2 to 4.1 s (docs/benchmark.md).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.local_cloud import make_environment, mlops_vm  # noqa: E402
from mlops_vm.localcloud import images, registry  # noqa: E402
from mlops_vm.localcloud.docker_cli import docker  # noqa: E402
from tests.load import RequestLoop  # noqa: E402

IMAGE_11 = f"{registry.ADDRESS}/{images.model_tag('1.1')}"
PORT = 18541


def in_vm(vm: str, *argv: str, check: bool = True) -> str:
    return docker("exec", vm, *argv, check=check)


# Timed inside the VM, in one `docker exec`: the readiness URL asked every 50 ms, as the
# release's own readiness helper does (mlops-vm-wait-ready), so that neither a docker exec
# per poll nor a coarser poll adds to the floor.
FLOOR_SCRIPT = r"""
set -e
now() { date +%s.%N; }
started=$(now)
docker pull -q "$1" > /dev/null
pulled=$(now)
docker run -d --name bench-ready -p 127.0.0.1:8199:8080 "$1" > /dev/null
until curl -sf -o /dev/null http://127.0.0.1:8199/readyz; do sleep 0.05; done
echo "$started $pulled $(now)"
"""


def one_host_pull_and_ready(vm: str) -> dict[str, float]:
    """Seconds to pull the 1.1 image on VM and to get one container of it ready."""
    in_vm(vm, "docker", "rmi", "-f", IMAGE_11, check=False)
    # The role stores no login on the host (the credentials go with its pull): this pull
    # logs in first, untimed, and out again after.
    creds = registry.ensure_credentials()
    docker(
        "exec", "-i", vm, "docker", "login", "--username", creds.username, "--password-stdin",
        registry.ADDRESS, input_bytes=creds.password.encode(),
    )  # fmt: skip
    try:
        times = in_vm(vm, "sh", "-c", FLOOR_SCRIPT, "floor", IMAGE_11)
    finally:
        in_vm(vm, "docker", "logout", registry.ADDRESS, check=False)
        in_vm(vm, "docker", "rm", "-f", "bench-ready", check=False)
    started, pulled, ready = (float(value) for value in times.split())
    return {"pull_s": pulled - started, "ready_s": ready - pulled, "total_s": ready - started}


def median_floor(vm: str, rounds: int) -> dict:
    """one_host_pull_and_ready ROUNDS times: the median of each figure, and every total."""
    samples = [one_host_pull_and_ready(vm) for _ in range(rounds)]
    floor = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    return {**floor, "each_total_s": [round(s["total_s"], 2) for s in samples]}


def floor_under_load(
    endpoint: str, ca_file: str, clients: int, vm: str, rounds: int
) -> dict | None:
    """median_floor under CLIENTS request loops (None without clients)."""
    if not clients:
        return None
    with RequestLoop(endpoint, ca_file, threads=clients, interval_s=0.0) as loop:
        time.sleep(1)
        floor = median_floor(vm, rounds)
    assert not loop.failures(), loop.summary()
    return floor


def versions_seen(versions: list[str]) -> dict:
    """First and last version answered, and how often the answer flipped (none unloaded)."""
    if not versions:
        return {"first": None, "last": None, "flips": 0}
    return {"first": versions[0], "last": versions[-1], "flips": len(versions) - 1}


def under_load(endpoint: str, ca_file: str, clients: int, *command: str) -> dict:
    with RequestLoop(endpoint, ca_file, threads=clients, interval_s=0.0) as loop:
        time.sleep(1)
        started = time.monotonic()
        summary = mlops_vm(*command)
        took = time.monotonic() - started
        time.sleep(1)
    return {
        "command": "mlops-vm " + " ".join(command),
        "seconds": round(took, 1),
        "requests": len(loop.outcomes),
        "failed": len(loop.failures()),
        # Both versions answer while the hosts are mixed: first, last, and how often the
        # answer flipped between them (host by host, not all at once).
        "versions": versions_seen(loop.versions()),
        "hosts_changed": (summary.get("release") or {}).get("hosts_changed"),
    }


def median_release(rounds: list[dict]) -> dict:
    """The rounds of one command: the median time, every time, every request counted."""
    return {
        "command": rounds[0]["command"],
        "seconds": statistics.median(r["seconds"] for r in rounds),
        "each_s": [r["seconds"] for r in rounds],
        "requests": sum(r["requests"] for r in rounds),
        "failed": sum(r["failed"] for r in rounds),
        "versions": [r["versions"] for r in rounds],
        "hosts_changed": [r["hosts_changed"] for r in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent request loops (0: unloaded)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="floor samples and deploy + rollback rounds; the medians are compared",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    # Two runs side by side (before and after a change) need their own names and ports.
    parser.add_argument("--name", default="benchrel", help="environment name")
    parser.add_argument("--port", type=int, default=PORT, help="HTTPS port of its load balancer")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mlops-vm-bench-"))
    directory = make_environment(root, args.name, 2, args.port)
    mlops_vm("destroy", str(directory), "--yes")
    deploys, rollbacks = [], []
    try:
        summary = mlops_vm("provision", str(directory))
        endpoint, ca_file = summary["endpoint"], summary["ca_file"]
        vms = sorted(h for h in summary["hosts"] if "-model-" in h)
        floor = median_floor(vms[0], args.rounds)
        floor_loaded = (
            floor_under_load(endpoint, ca_file, args.clients, vms[0], args.rounds) or floor
        )
        for _ in range(args.rounds):
            # Each deploy pulls 1.1 on both hosts, as the floor does.
            for vm in vms:
                in_vm(vm, "docker", "rmi", "-f", IMAGE_11, check=False)
            deploys.append(
                under_load(
                    endpoint, ca_file, args.clients, "deploy", str(directory), "--image", IMAGE_11
                )
            )
            rollbacks.append(
                under_load(endpoint, ca_file, args.clients, "rollback", str(directory))
            )
    finally:
        mlops_vm("destroy", str(directory), "--yes")

    deploy, rollback = median_release(deploys), median_release(rollbacks)
    two_hosts, two_hosts_loaded = 2 * floor["total_s"], 2 * floor_loaded["total_s"]
    result = {
        "rounds": args.rounds,
        "one_host_pull_and_ready": floor,
        "floor_two_hosts_s": round(two_hosts, 1),
        "one_host_pull_and_ready_under_load": floor_loaded,
        "floor_two_hosts_under_load_s": round(two_hosts_loaded, 1),
        "deploy": deploy,
        "rollback": rollback,
        "deploy_over_floor": round(deploy["seconds"] / two_hosts, 2),
        "rollback_over_floor": round(rollback["seconds"] / two_hosts, 2),
        "deploy_over_floor_under_load": round(deploy["seconds"] / two_hosts_loaded, 2),
        "rollback_over_floor_under_load": round(rollback["seconds"] / two_hosts_loaded, 2),
        "load": f"{args.clients} keep-alive clients, POST /predict back to back",
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"one host (median of {args.rounds}): pull {floor['pull_s']:.1f}s"
        f" + ready {floor['ready_s']:.1f}s"
    )
    print(f"floor for 2 hosts, one after the other: {result['floor_two_hosts_s']}s")
    print(f"the same under the request loop: {result['floor_two_hosts_under_load_s']}s")
    for name in ("deploy", "rollback"):
        row = result[name]
        print(
            f"{name}: median {row['seconds']}s of {row['each_s']}, {row['failed']} failed of "
            f"{row['requests']} requests, x{result[name + '_over_floor']} the floor"
        )


if __name__ == "__main__":
    main()
