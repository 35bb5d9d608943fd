"""Benchmark of the local cloud: provision times and the cost of the proxy path.

    .venv/bin/python bench/local_cloud.py [--sizes 1 2 4] [--duration 20] [--connections 8]

Prints, for the local provider:
- the fresh `mlops-vm provision` time for each fleet size, and the time of a second,
  no-change run (the aim: under a quarter of the fresh one);
- requests per second and p50/p99 latency of POST /predict through the load balancer
  (LB Nginx -> VM Nginx -> replica) versus straight to one model container on this
  machine, with the same load generator (wrk), threads and connections. Throughput per
  replica through the LB is compared with the direct figure (the aim: 90% or more).

Each environment is created from nothing and destroyed afterwards. Rate limiting is off in
the benchmark environments (it exists to stop exactly this kind of load).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCAL = PROJECT / "inventories" / "local" / "group_vars" / "all" / "mlops_vm.yml"
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{json.dumps(BODY)}'
wrk.headers["Content-Type"] = "application/json"
"""


def make_environment(root: Path, name: str, count: int, port: int) -> Path:
    settings = yaml.safe_load(LOCAL.read_text())
    settings["mlops_vm"].update(env=name)
    settings["mlops_vm"]["fleet"]["count"] = count
    settings["mlops_vm"]["load_balancer"]["publish_port"] = port
    # The per-client limit exists to stop exactly this load from one address.
    settings["mlops_vm"]["load_balancer"]["rate_limit"] = None
    directory = root / name
    (directory / "group_vars" / "all").mkdir(parents=True)
    (directory / "mlops_vm.yml").write_text("---\nplugin: mlops_vm\n")
    (directory / "group_vars" / "all" / "mlops_vm.yml").write_text(yaml.safe_dump(settings))
    return directory


def mlops_vm(*args: str) -> dict:
    proc = subprocess.run(
        [str(BIN / "mlops-vm"), *args, "--json"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"mlops-vm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout)


def timed_provision(directory: Path) -> tuple[float, dict]:
    started = time.monotonic()
    summary = mlops_vm("provision", str(directory))
    return time.monotonic() - started, summary


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, duration_s: int, connections: int, threads: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    out = subprocess.run(
        [
            "wrk",
            "--latency",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{duration_s}s",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(f"wrk {url}:\n{out}", flush=True)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": to_ms(re.search(r"50%\s+(\S+)", out).group(1)),
        "p99_ms": to_ms(re.search(r"99%\s+(\S+)", out).group(1)),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def direct_container(port: int) -> str:
    """One model container on this machine, with the replicas' CPU and memory limits."""
    settings = yaml.safe_load(LOCAL.read_text())["mlops_vm"]["model"]
    name = "mlops-vm-bench-direct"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--cpus",
            "1",
            "--memory",
            settings.get("memory", "1g"),
            "-p",
            f"127.0.0.1:{port}:8080",
            "mlops-vm/model-service:1.0",
        ],
        check=True,
        capture_output=True,
    )
    for _ in range(120):
        probe = subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{port}/readyz"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return name
        time.sleep(0.5)
    raise SystemExit("the direct model container did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mlops-vm-bench-"))
    rows = []
    load = {}
    for size in args.sizes:
        directory = make_environment(root, f"bench{size}", size, 18500 + size)
        mlops_vm("destroy", str(directory), "--yes")
        try:
            fresh_s, summary = timed_provision(directory)
            again_s, again = timed_provision(directory)
            rows.append((size, fresh_s, again_s, again["changed"]))
            print(f"{size} VM(s): fresh {fresh_s:.1f}s, no-change {again_s:.1f}s", flush=True)
            if size == max(args.sizes) or size == 1:
                load[size] = wrk(
                    f"{summary['endpoint']}/predict", args.duration, args.connections, args.threads
                )
        finally:
            mlops_vm("destroy", str(directory), "--yes")

    name = direct_container(18599)
    try:
        direct = wrk(
            "http://127.0.0.1:18599/predict", args.duration, args.connections, args.threads
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)

    print("\nprovision (local provider)")
    print(f"{'VMs':>4} {'fresh s':>9} {'no-change s':>12} {'ratio':>6} {'changed':>8}")
    for size, fresh_s, again_s, changed in rows:
        print(f"{size:>4} {fresh_s:>9.1f} {again_s:>12.1f} {again_s / fresh_s:>6.2f} {changed:>8}")
    print(f"\nPOST /predict, wrk -t{args.threads} -c{args.connections} -d{args.duration}s")
    print(
        f"{'path':<28} {'req/s':>9} {'per replica':>12} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
    )
    print(
        f"{'direct: one container':<28} {direct['rps']:>9.1f} {direct['rps']:>12.1f} "
        f"{direct['p50_ms']:>8.2f} {direct['p99_ms']:>8.2f} {direct['non_2xx']:>8}"
    )
    for size, result in sorted(load.items()):
        per_replica = result["rps"] / size
        print(
            f"{f'LB -> {size} VM(s)':<28} {result['rps']:>9.1f} {per_replica:>12.1f} "
            f"{result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} {result['non_2xx']:>8}"
            f"   ({100 * per_replica / direct['rps']:.0f}% of direct per replica)"
        )


if __name__ == "__main__":
    main()
