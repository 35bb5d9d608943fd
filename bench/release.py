"""Benchmark of a model release on the local cloud: how long a 2-host release takes, how
many requests fail during it, against the floor of two times one host's pull and ready.

    .venv/bin/python bench/release.py [--json] [--clients 4] [--name benchrel] [--port 18541]

1. provisions a 2-VM environment (rate limiting off, as in bench/local_cloud.py);
2. the floor: on one VM, `docker pull` of the 1.1 image (removed first) and `docker run`
   until /readyz answers 200, timed; the release cannot beat twice that, host by host.
   Timed twice: on the idle environment, and under the same request loop as the release
   (4 clients on 2 cores slow a pull and a model's start as much as they slow the release:
   that is the floor of a release under load; both ratios are reported);
3. removes 1.1 from both VMs, then `mlops-vm deploy --image ...:1.1` under a request loop
   (CLIENTS keep-alive clients sending POST /predict back to back), counting every request;
4. `mlops-vm rollback` under the same loop;
5. destroys the environment.
"""

import argparse
import json
import os
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
    started = time.monotonic()
    try:
        in_vm(vm, "docker", "pull", "-q", IMAGE_11)
        pulled = time.monotonic()
    finally:
        in_vm(vm, "docker", "logout", registry.ADDRESS, check=False)
    in_vm(vm, "docker", "run", "-d", "--name", "bench-ready", "-p", "127.0.0.1:8199:8080", IMAGE_11)
    try:
        while in_vm(vm, "curl", "-sf", "http://127.0.0.1:8199/readyz", check=False) == "":
            time.sleep(0.2)
        ready = time.monotonic()
    finally:
        in_vm(vm, "docker", "rm", "-f", "bench-ready", check=False)
    return {"pull_s": pulled - started, "ready_s": ready - pulled, "total_s": ready - started}


def floor_under_load(endpoint: str, ca_file: str, clients: int, vm: str) -> dict | None:
    """one_host_pull_and_ready under CLIENTS request loops (None without clients)."""
    if not clients:
        return None
    with RequestLoop(endpoint, ca_file, threads=clients, interval_s=0.0) as loop:
        time.sleep(1)
        floor = one_host_pull_and_ready(vm)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent request loops (0: unloaded)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    # Two runs side by side (before and after a change) need their own names and ports.
    parser.add_argument("--name", default="benchrel", help="environment name")
    parser.add_argument("--port", type=int, default=PORT, help="HTTPS port of its load balancer")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mlops-vm-bench-"))
    directory = make_environment(root, args.name, 2, args.port)
    mlops_vm("destroy", str(directory), "--yes")
    try:
        summary = mlops_vm("provision", str(directory))
        endpoint, ca_file = summary["endpoint"], summary["ca_file"]
        vms = sorted(h for h in summary["hosts"] if "-model-" in h)
        floor = one_host_pull_and_ready(vms[0])
        floor_loaded = floor_under_load(endpoint, ca_file, args.clients, vms[0]) or floor
        for vm in vms:
            in_vm(vm, "docker", "rmi", "-f", IMAGE_11, check=False)
        deploy = under_load(
            endpoint, ca_file, args.clients, "deploy", str(directory), "--image", IMAGE_11
        )
        rollback = under_load(endpoint, ca_file, args.clients, "rollback", str(directory))
    finally:
        mlops_vm("destroy", str(directory), "--yes")

    result = {
        "one_host_pull_and_ready": floor,
        "floor_two_hosts_s": round(2 * floor["total_s"], 1),
        "one_host_pull_and_ready_under_load": floor_loaded,
        "floor_two_hosts_under_load_s": round(2 * floor_loaded["total_s"], 1),
        "deploy": deploy,
        "rollback": rollback,
        "deploy_over_floor": round(deploy["seconds"] / (2 * floor["total_s"]), 2),
        "rollback_over_floor": round(rollback["seconds"] / (2 * floor["total_s"]), 2),
        "deploy_over_floor_under_load": round(deploy["seconds"] / (2 * floor_loaded["total_s"]), 2),
        "rollback_over_floor_under_load": round(
            rollback["seconds"] / (2 * floor_loaded["total_s"]), 2
        ),
        "load": f"{args.clients} keep-alive clients, POST /predict back to back",
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"one host: pull {floor['pull_s']:.1f}s + ready {floor['ready_s']:.1f}s")
    print(f"floor for 2 hosts, one after the other: {result['floor_two_hosts_s']}s")
    print(f"the same under the request loop: {result['floor_two_hosts_under_load_s']}s")
    for name in ("deploy", "rollback"):
        row = result[name]
        print(
            f"{name}: {row['seconds']}s, {row['failed']} failed of {row['requests']} requests, "
            f"versions {row['versions']['first']} -> {row['versions']['last']} "
            f"({row['versions']['flips']} flips while mixed)"
        )


if __name__ == "__main__":
    main()
