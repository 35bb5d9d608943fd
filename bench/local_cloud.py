"""Benchmark of the local cloud: provision times and the cost of the proxy path.

    .venv/bin/python bench/local_cloud.py [--sizes 1 2 4] [--duration 20] [--json] [--quick]

Measures, for the local provider, side by side in one run:
- the fresh `mlops-vm provision` time for each fleet size, and the median time of the
  no-change runs that follow (`--no-change-runs`, 3) (`no_change_ratio`, one per size;
  the aim: 0.15 or less);
- the fresh 4-VM run over the fresh 1-VM run (`scale_4_over_1`; the aim: 1.4 or less);
- requests per second and p50/p99 latency of POST /predict through the load balancer
  (HAProxy -> VM Nginx -> replica) of the 1-VM environment versus straight to one model
  container on this machine with the replicas' limits, same wrk threads and connections,
  after 2 s of unmeasured load on each, alternated (direct, LB, direct, LB, ...;
  `--rounds`, 3, medians kept) so load from elsewhere hits both alike
  (`lb_over_direct_rps`, `proxy_p50_added_ms`).

`--json` prints one JSON object (figures, raw times, the exact commands, load averages);
`--quick` is sizes 1 and 2, 5 s of load, 2 rounds and 2 no-change runs: a check that ends
within 10 minutes.
Each environment is created from nothing and destroyed afterwards. Rate limiting is off in
the benchmark environments (`load_balancer.rate_limit: null`): one wrk from one address is
exactly the load the per-client limit stops.
"""

import argparse
import json
import os
import re
import shlex
import statistics
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
# Seconds of load on each side before the measured rounds (connections, TLS sessions,
# the model's first requests), not counted.
WARM_UP_S = 2
COMMANDS: list[str] = []
log = print


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    COMMANDS.append(shlex.join(command))
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


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
    proc = run([str(BIN / "mlops-vm"), *args, "--json"])
    if proc.returncode != 0:
        raise SystemExit(f"mlops-vm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout)


def busy_cpu_s() -> float:
    """CPU seconds this machine has spent busy since boot (every core, /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def timed_provision(directory: Path) -> tuple[float, float, dict]:
    """Seconds of one `mlops-vm provision`, the CPU seconds the machine spent busy meanwhile
    (a run at cores x seconds is bound by the CPUs), and its summary."""
    started, cpu_before = time.monotonic(), busy_cpu_s()
    summary = mlops_vm("provision", str(directory))
    seconds, cpu_s = time.monotonic() - started, busy_cpu_s() - cpu_before
    return round(seconds, 1), round(cpu_s, 1), summary


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def percentile_ms(wrk_output: str, percent: int) -> float:
    """A line of wrk's latency distribution: at the start of a line, so "77.50%" of the
    Req/Sec line is not taken for the 50% line."""
    return to_ms(re.search(rf"^\s*{percent}%\s+(\S+)", wrk_output, re.MULTILINE).group(1))


def wrk(url: str, args: argparse.Namespace, script: Path) -> dict[str, float]:
    out = run(
        [
            *("wrk", "--latency", "-t", str(args.threads), "-c", str(args.connections)),
            *("-d", f"{args.duration}s", "-s", str(script), url),
        ]
    ).stdout
    log(f"wrk {url}:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": percentile_ms(out, 50),
        "p99_ms": percentile_ms(out, 99),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def start_direct_container(name: str, port: int) -> str:
    """One model container on this machine, with the replicas' CPU and memory limits."""
    settings = yaml.safe_load(LOCAL.read_text())["mlops_vm"]["model"]
    run(["docker", "rm", "-f", name])
    started = run(
        [
            *("docker", "run", "-d", "--name", name, "--cpus", "1"),
            *("--memory", settings.get("memory", "1g"), "-p", f"127.0.0.1:{port}:8080"),
            "mlops-vm/model-service:1.0",
        ]
    )
    if started.returncode != 0:
        raise SystemExit(f"the direct model container did not start:\n{started.stderr}")
    for _ in range(120):
        probe = subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{port}/readyz"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return name
        time.sleep(0.5)
    raise SystemExit("the direct model container did not become ready")


def side_by_side(endpoint: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Direct and LB load alternated; the median of each side's rounds."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(WRK_SCRIPT)
    script = Path(lua.name)
    direct_port = args.port_base + 99
    name = start_direct_container(f"mlops-vm-{args.name}-direct", direct_port)
    rounds: dict[str, list[dict[str, float]]] = {"direct": [], "lb": []}
    try:
        warm_up = argparse.Namespace(**{**vars(args), "duration": WARM_UP_S})
        wrk(f"http://127.0.0.1:{direct_port}/predict", warm_up, script)
        wrk(f"{endpoint}/predict", warm_up, script)
        for _ in range(args.rounds):
            rounds["direct"].append(wrk(f"http://127.0.0.1:{direct_port}/predict", args, script))
            rounds["lb"].append(wrk(f"{endpoint}/predict", args, script))
    finally:
        run(["docker", "rm", "-f", name])
        script.unlink()
    return {
        side: {key: statistics.median(r[key] for r in results) for key in results[0]}
        | {"rounds": results}
        for side, results in rounds.items()
    }


def measure(args: argparse.Namespace) -> dict:
    root = Path(tempfile.mkdtemp(prefix="mlops-vm-bench-"))
    provision: dict[int, dict] = {}
    load = None
    load_average_start = os.getloadavg()
    for size in args.sizes:
        directory = make_environment(root, f"{args.name}{size}", size, args.port_base + size)
        mlops_vm("destroy", str(directory), "--yes")
        try:
            fresh_s, fresh_cpu_s, summary = timed_provision(directory)
            again = [timed_provision(directory) for _ in range(args.no_change_runs)]
            again_runs_s = [seconds for seconds, _, _ in again]
            provision[size] = {
                "fresh_s": fresh_s,
                "fresh_cpu_busy_s": fresh_cpu_s,
                "no_change_s": statistics.median(again_runs_s),
                "no_change_runs_s": again_runs_s,
                "no_change_changed": max(run["changed"] for _, _, run in again),
                "load_average": os.getloadavg(),
            }
            median_s = provision[size]["no_change_s"]
            log(f"{size} VM(s): fresh {fresh_s:.1f}s, no-change {median_s:.1f}s")
            if size == 1:
                load = side_by_side(summary["endpoint"], args)
        finally:
            mlops_vm("destroy", str(directory), "--yes")
    one = provision.get(1)
    result = {
        "sizes": args.sizes,
        "no_change_ratio": [round(p["no_change_s"] / p["fresh_s"], 2) for p in provision.values()],
        "scale_4_over_1": round(provision[4]["fresh_s"] / one["fresh_s"], 2)
        if one and 4 in provision
        else None,
        "scale_over_1": {
            str(size): round(p["fresh_s"] / one["fresh_s"], 2) for size, p in provision.items()
        }
        if one
        else {},
        "provision": {str(size): p for size, p in provision.items()},
        "cpu_cores": os.cpu_count(),
        "load_balancer_rate_limit": None,
        "load": {
            "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s",
            "rounds": args.rounds,
            "warm_up_s": WARM_UP_S,
        },
        "load_average_start": load_average_start,
        "load_average_end": os.getloadavg(),
        "commands": COMMANDS,
    }
    if load:
        result["lb_over_direct_rps"] = round(load["lb"]["rps"] / load["direct"]["rps"], 3)
        result["proxy_p50_added_ms"] = round(load["lb"]["p50_ms"] - load["direct"]["p50_ms"], 2)
        result["load"] |= load
    return result


def print_table(result: dict) -> None:
    print("\nprovision (local provider)")
    print(
        f"{'VMs':>4} {'fresh s':>9} {'fresh CPU s':>12} {'no-change s':>12} {'ratio':>6}"
        f" {'changed':>8}"
    )
    for size, p in result["provision"].items():
        ratio = p["no_change_s"] / p["fresh_s"]
        print(
            f"{size:>4} {p['fresh_s']:>9.1f} {p['fresh_cpu_busy_s']:>12.1f}"
            f" {p['no_change_s']:>12.1f} {ratio:>6.2f} {p['no_change_changed']:>8}"
        )
    if "lb" not in result["load"]:
        return
    print(f"\nPOST /predict, wrk {result['load']['wrk']}, rate limit off")
    print(f"{'path':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for side, label in (("direct", "direct: one container"), ("lb", "LB -> 1 VM")):
        r = result["load"][side]
        print(
            f"{label:<28} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
            f" {r['non_2xx']:>8.0f}"
        )
    print(
        f"LB / direct req/s {result['lb_over_direct_rps']:.3f}, "
        f"p50 added {result['proxy_p50_added_ms']:.2f} ms"
    )


def main() -> None:
    global log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="(direct, LB) rounds, medians")
    parser.add_argument(
        "--no-change-runs", type=int, default=3, help="no-change runs per size, median"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick", action="store_true", help="sizes 1 and 2, 5 s of load, 2 rounds and runs"
    )
    # Two benchmarks side by side (say, two checkouts) need their own names and ports.
    parser.add_argument("--name", default="bench", help="environment name prefix")
    parser.add_argument("--port-base", type=int, default=18500, help="LB port = base + size")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.duration, args.rounds, args.no_change_runs = [1, 2], 5, 2, 2
    if 1 not in args.sizes:
        args.sizes.insert(0, 1)  # every ratio is over the 1-VM run
    if args.json:
        # Progress goes to stderr; stdout is the one JSON object.
        log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
