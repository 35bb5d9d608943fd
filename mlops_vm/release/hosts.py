"""Reach the model hosts over the same SSH settings Ansible uses: each host's Ansible
variables, given by the caller (mlops_vm/environment/inventory.py makes them). Read what runs
on them (release records, replicas, logs; nothing is changed), and run a user's command or
session there (`exec`, `ssh`), each host's output prefixed with its name."""

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from mlops_vm import ssh_connections
from mlops_vm.metrics.prometheus import METRICS_PORT
from mlops_vm.provision.model import Instance, InstanceStatus

SERVICE = "model"
RELEASE_FILE = f"/etc/mlops-vm/{SERVICE}/release.json"
UPSTREAM_FILE = f"/etc/mlops-vm/{SERVICE}/upstream.conf"
REPLICA_LABEL = f"mlops-vm.model-service={SERVICE}"

# An instance's Ansible connection variables (ansible_host, ansible_port, ansible_user, ...).
HostVars = Callable[[Instance], Mapping[str, Any]]

# Runs on the host: the release record, and each active replica's readiness answer.
PROBE = f"""
import json, re, urllib.request, urllib.error
out = {{"record": None, "replicas": []}}
try:
    out["record"] = json.load(open({RELEASE_FILE!r}))
except (OSError, ValueError):
    pass
try:
    servers = re.findall(r"server ([0-9.]+):([0-9]+)", open({UPSTREAM_FILE!r}).read())
except OSError:
    servers = []
for address, port in servers:
    try:
        code = urllib.request.urlopen(f"http://{{address}}:{{port}}/readyz", timeout=3).status
    except urllib.error.HTTPError as error:
        code = error.code
    except OSError:
        code = 0
    out["replicas"].append({{"port": int(port), "ready": code == 200, "answer": code}})
print(json.dumps(out))
"""

# Appended to PROBE when figures are asked for: the host's request counters now and WINDOW
# seconds ago (nginx_proxy's exporter keeps the past), read at once.
METRICS_PROBE = """
import json, urllib.request
try:
    out["metrics"] = [
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics{query}", timeout=5).read().decode()
        for query in (f"?ago={window}", "")
    ]
except OSError as error:
    out["metrics_error"] = str(error)
"""


@dataclass
class HostReading:
    """What one model host says about itself (None fields: it could not be read)."""

    name: str
    record: dict[str, Any] | None = None
    replicas: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    # The host's request metrics texts (Prometheus format) a window ago and now, when asked.
    metrics: tuple[str, str] | None = None
    metrics_error: str = ""

    @property
    def current(self) -> dict[str, Any]:
        return (self.record or {}).get("current") or {}

    @property
    def previous(self) -> dict[str, Any]:
        return (self.record or {}).get("previous") or {}


def ssh_login(hv: Mapping[str, Any], *, terminal: bool = False) -> list[str]:
    """ssh argv up to the destination, for the host of Ansible variables HV (TERMINAL: with
    a terminal, for an interactive session)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", str(hv["ansible_port"])]
    argv += shlex.split(hv.get("ansible_ssh_common_args", ""))
    if hv.get("ansible_ssh_private_key_file"):
        argv += ["-i", hv["ansible_ssh_private_key_file"]]
    argv += ssh_connections.ssh_options()  # the command's master to the host, if shared
    if terminal:
        argv.append("-t")
    return [*argv, f"{hv['ansible_user']}@{hv['ansible_host']}"]


def as_root(hv: Mapping[str, Any], remote: str) -> str:
    """REMOTE (a shell command) run as root by the host's SSH user."""
    return remote if hv["ansible_user"] == "root" else "sudo -n " + remote


def ssh_command(hv: Mapping[str, Any], remote: str) -> list[str]:
    """ssh argv that runs REMOTE (a shell command) as root on the host of Ansible variables HV."""
    return [*ssh_login(hv), as_root(hv, remote)]


def probe(window_s: float | None) -> str:
    if window_s is None:
        return PROBE
    ask = f"\nwindow, port = {window_s!r}, {METRICS_PORT!r}\n"
    return PROBE.replace("print(json.dumps(out))", ask + METRICS_PROBE + "print(json.dumps(out))")


def read_host(
    instance: Instance, host_vars: HostVars, window_s: float | None = None
) -> HostReading:
    """What INSTANCE says about itself; with WINDOW_S, also its request counters now and
    WINDOW_S seconds ago."""
    if instance.status != InstanceStatus.RUNNING or not instance.address:
        return HostReading(instance.name, error=str(instance.status))
    remote = "python3 -c " + shlex.quote(probe(window_s))
    try:
        done = subprocess.run(
            ssh_command(host_vars(instance), remote),
            # Not the caller's stdin: ssh makes its stdin non-blocking (a terminal's too)
            # and would read what the user types.
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return HostReading(instance.name, error="no answer over SSH within 60s")
    if done.returncode != 0:
        return HostReading(instance.name, error=(done.stderr.strip() or "ssh failed")[-300:])
    data = json.loads(done.stdout)
    metrics = tuple(data["metrics"]) if "metrics" in data else None
    return HostReading(
        instance.name,
        data["record"],
        data["replicas"],
        metrics=metrics,  # type: ignore[arg-type]
        metrics_error=data.get("metrics_error", ""),
    )


def read_hosts(
    instances: list[Instance], host_vars: HostVars, window_s: float | None = None
) -> dict[str, HostReading]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        readings = pool.map(lambda i: read_host(i, host_vars, window_s), instances)
        return {reading.name: reading for reading in readings}


def run_prefixed(commands: Mapping[str, list[str]], out: TextIO | None = None) -> dict[str, int]:
    """Run each host's argv at once; every line of its output (stdout and stderr) is written
    to OUT as it comes, prefixed with `host | `. Returns each host's exit code."""
    write_to = out or sys.stdout
    lock = threading.Lock()
    codes: dict[str, int] = {}

    def run(name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            text = line.rstrip("\n")
            with lock:
                write_to.write(f"{name} | {text}\n")
                write_to.flush()
        codes[name] = proc.wait()

    threads = [
        threading.Thread(target=run, args=(name, argv), daemon=True)
        for name, argv in commands.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def worst_exit(codes: Mapping[str, int]) -> int:
    """The exit code of the worst host: the highest (ssh's own failure is 255)."""
    return max(codes.values(), default=0)


def stream_logs(
    instances: list[Instance],
    host_vars: HostVars,
    *,
    tail: int,
    follow: bool,
) -> int:
    """Print the model containers' logs of every host, each line prefixed with the host
    and the container. Returns non-zero when a host could not be read."""
    each = f"docker logs --timestamps --tail {int(tail)} {'--follow ' if follow else ''}"
    remote = (
        f"for c in $(docker ps --filter label={REPLICA_LABEL} --format '{{{{.Names}}}}'); do "
        f'({each}"$c" 2>&1 | sed -u "s/^/$c | /") & done; wait'
    )
    codes = run_prefixed({i.name: ssh_command(host_vars(i), remote) for i in instances})
    return 1 if worst_exit(codes) else 0


def run_on_hosts(instances: list[Instance], host_vars: HostVars, command: list[str]) -> int:
    """Run COMMAND (argv; one item: a shell command line) as root on each instance, output
    prefixed per host; the worst host's exit code."""
    line = command[0] if len(command) == 1 else shlex.join(command)
    remote = "sh -c " + shlex.quote(line)
    codes = run_prefixed({i.name: ssh_command(host_vars(i), remote) for i in instances})
    return worst_exit(codes)


def container_session(hv: Mapping[str, Any]) -> list[str]:
    """ssh argv of an interactive shell in the host's first model replica container."""
    find = f"docker ps --filter label={REPLICA_LABEL} --format '{{{{.Names}}}}' | head -n 1"
    remote = f'c=$({find}); exec docker exec -it "$c" sh'
    return [*ssh_login(hv, terminal=True), as_root(hv, "sh -c " + shlex.quote(remote))]
