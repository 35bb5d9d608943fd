"""Read from the model hosts what runs on them (release records, replicas, logs), over the
same SSH settings Ansible uses: each host's Ansible variables, given by the caller
(mlops_vm/environment/inventory.py makes them). Reading only: nothing is changed."""

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class HostReading:
    """What one model host says about itself (None fields: it could not be read)."""

    name: str
    record: dict[str, Any] | None = None
    replicas: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    @property
    def current(self) -> dict[str, Any]:
        return (self.record or {}).get("current") or {}

    @property
    def previous(self) -> dict[str, Any]:
        return (self.record or {}).get("previous") or {}


def ssh_command(hv: Mapping[str, Any], remote: str) -> list[str]:
    """ssh argv that runs REMOTE (a shell command) as root on the host of Ansible variables HV."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", str(hv["ansible_port"])]
    argv += shlex.split(hv.get("ansible_ssh_common_args", ""))
    if hv.get("ansible_ssh_private_key_file"):
        argv += ["-i", hv["ansible_ssh_private_key_file"]]
    sudo = "" if hv["ansible_user"] == "root" else "sudo -n "
    return [*argv, f"{hv['ansible_user']}@{hv['ansible_host']}", sudo + remote]


def read_host(instance: Instance, host_vars: HostVars) -> HostReading:
    if instance.status != InstanceStatus.RUNNING or not instance.address:
        return HostReading(instance.name, error=str(instance.status))
    remote = "python3 -c " + shlex.quote(PROBE)
    try:
        done = subprocess.run(
            ssh_command(host_vars(instance), remote),
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
    return HostReading(instance.name, data["record"], data["replicas"])


def read_hosts(instances: list[Instance], host_vars: HostVars) -> dict[str, HostReading]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        readings = pool.map(lambda i: read_host(i, host_vars), instances)
        return {reading.name: reading for reading in readings}


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
    lock = threading.Lock()
    failed = []

    def follow_host(instance: Instance) -> None:
        proc = subprocess.Popen(
            ssh_command(host_vars(instance), remote),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            with lock:
                sys.stdout.write(f"{instance.name} | {line}")
                sys.stdout.flush()
        if proc.wait() != 0:
            failed.append(instance.name)

    threads = [threading.Thread(target=follow_host, args=(i,), daemon=True) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 1 if failed else 0
