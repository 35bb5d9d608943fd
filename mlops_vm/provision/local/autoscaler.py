"""The local stand-in for ASG / MIG / VMSS: one small process per local scaling group.

    python -m mlops_vm.provision.local.autoscaler ENV

Every `interval_s` it reads the requests HAProxy forwarded to the group's backend (the LB
host's runtime API), turns them into requests per second over `window_s`, asks the
target-tracking decision (scaling.py) for the desired count, and converges the instances:
launches from the release image (each joins the LB once its /healthz answers), drains then
removes on scale-in, and replaces instances not on the group's image one at a time (new in
and healthy, old drained and out): that is how a release and a rollback roll. Each decision
and each launch or termination is recorded with its reason in state.json (group.py), which
`status` reads.

It runs on the machine that runs the local cloud's Docker engine, as that cloud's control
plane (a cloud's autoscaling service is not on an instance either): it needs the docker CLI
and the engine, which the VM containers do not have. `provision` starts it (and restarts it
when it is not running), `destroy` stops it. Its log is autoscaler.log beside state.json.
"""

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlops_vm
from mlops_vm.provision.local import group, lb_admin
from mlops_vm.provision.local import resources as res
from mlops_vm.provision.local.scaling import Policy, Readings, RequestWindow, decide
from mlops_vm.provision.model import ROLE_MODEL

log = logging.getLogger("mlops_vm.autoscaler")
MODULE = "mlops_vm.provision.local.autoscaler"


def policy(config: group.GroupConfig) -> Policy:
    return Policy(
        min_size=config.min_size,
        max_size=config.max_size,
        target_requests_per_instance=config.target_requests_per_instance,
        target_cpu_percent=None,  # CPU is not measured locally (shared cores: see README)
        scale_out_cooldown_s=config.scale_out_cooldown_s,
        scale_in_cooldown_s=config.scale_in_cooldown_s,
    )


def backend_requests(lb: str) -> int:
    """Requests HAProxy has forwarded to the backend since it started (its BACKEND row)."""
    rows = lb_admin.parse_table(lb_admin.command(lb, "show stat"), ",")
    for row in rows:
        if row.get("pxname") == lb_admin.BACKEND and row.get("svname") == "BACKEND":
            return int(row.get("req_tot") or row.get("stot") or 0)
    return 0


class Autoscaler:
    def __init__(self, env: str) -> None:
        self.env = env
        self.window: RequestWindow | None = None

    def tick(self) -> None:
        config = group.read_config(self.env)
        if config is None:
            return
        if self.window is None or self.window.window_s != config.window_s:
            self.window = RequestWindow(config.window_s)
        state = group.read_state(self.env)
        if not state.desired:
            state.desired = config.desired
        lb = group.lb_host(self.env)
        members = group.instances(self.env)
        try:
            servers = lb_admin.servers(lb) if lb else None
            if lb:
                self.window.add(time.monotonic(), backend_requests(lb))
        except lb_admin.AdminUnavailable:
            servers = None
        if lb is None or servers is None:
            return  # HAProxy not configured yet: nothing to read, nobody to join
        self.rejoin(config, state, lb, servers, members)
        in_service = [c for c in members if state.lifecycle.get(c.name) == "in_service"]
        now = time.time()
        if not self.window.full():
            self.converge(config, state, lb, members)
            group.write_state(self.env, state)
            return
        decision = decide(
            policy(config),
            Readings(in_service=len(in_service), requests_per_s=self.window.rate()),
            state.desired,
            since_scale_out_s=now - state.last_scale_out if state.last_scale_out else math.inf,
            since_scale_in_s=now - state.last_scale_in if state.last_scale_in else math.inf,
        )
        if decision.changes(state.desired):
            state.record(f"from {state.desired} to {decision.desired} instances", decision.reason)
            if decision.desired > state.desired:
                state.last_scale_out = now
            else:
                state.last_scale_in = now
            state.desired = decision.desired
            group.write_state(self.env, state)
        self.converge(config, state, lb, members)
        group.write_state(self.env, state)

    def rejoin(self, config, state, lb, servers, members) -> None:
        """In-service instances HAProxy lost (a reload forgets servers added at run time)."""
        for container in members:
            if state.lifecycle.get(container.name) != "in_service":
                if container.name in servers and servers[container.name].registered:
                    state.lifecycle[container.name] = "in_service"  # joined by the LB's config
                continue
            server = servers.get(container.name)
            if server is None or server.maintenance:
                self.join(config, lb, container.name, container.index)

    def join(self, config: group.GroupConfig, lb: str, name: str, index: int) -> None:
        address = res.fixed_address(self.env, ROLE_MODEL, index)
        group.join(lb, name, address, config.health_timeout_s)

    def converge(self, config, state, lb, members) -> None:
        stale = [c for c in members if c.labels.get(group.IMAGE_LABEL) != config.image]
        if len(members) < state.desired:
            self.launch(config, state, lb, state.desired - len(members), "scale-out")
        elif len(members) > state.desired:
            # Instances on another image go first, then the newest.
            ordered = sorted(members, key=lambda c: (c in stale, c.index), reverse=True)
            self.terminate(config, state, lb, ordered[: len(members) - state.desired], "scale-in")
        elif stale:
            # One at a time: the new one in and healthy before the old one leaves.
            old = max(stale, key=lambda c: c.index)
            reason = (
                f"replacing {old.name} ({old.labels.get(group.RELEASE_LABEL)} -> {config.release})"
            )
            self.launch(config, state, lb, 1, reason)
            self.terminate(config, state, lb, [old], reason)

    def launch(self, config, state, lb, count: int, cause: str) -> None:
        indexes = group.free_indexes(self.env, count)
        for index in indexes:
            name = res.vm_name(self.env, ROLE_MODEL, index)
            state.lifecycle[name] = "pending"
            state.record(f"launching {name} ({config.release})", cause)
        group.write_state(self.env, state)

        def one(index: int) -> str:
            name = group.launch(config, index)
            self.join(config, lb, name, index)
            return name

        with ThreadPoolExecutor(max_workers=max(count, 1)) as pool:
            futures = [pool.submit(one, index) for index in indexes]
            for index, future in zip(indexes, futures, strict=True):
                name = res.vm_name(self.env, ROLE_MODEL, index)
                try:
                    future.result()
                    state.lifecycle[name] = "in_service"
                    state.record(f"{name} in service", cause)
                except Exception as error:
                    log.exception("launching %s failed", name)
                    state.record(f"launching {name} failed: {error}", cause, "Failed")
                    state.lifecycle.pop(name, None)
                    group.terminate(name)

    def terminate(self, config, state, lb, victims, cause: str) -> None:
        for container in victims:
            state.lifecycle[container.name] = "draining"
        group.write_state(self.env, state)

        lock = threading.Lock()

        def one(name: str) -> None:
            group.drain(lb, name, config.drain_s)
            with lock:
                state.lifecycle[name] = "terminating"
                group.write_state(self.env, state)
            group.terminate(name)
            # Recorded as it happens: whoever sees the instance gone sees why.
            with lock:
                state.lifecycle.pop(name, None)
                state.record(f"terminated {name} (drained)", cause)
                group.write_state(self.env, state)

        with ThreadPoolExecutor(max_workers=max(len(victims), 1)) as pool:
            list(pool.map(one, [c.name for c in victims]))

    def run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("autoscaler tick failed")
            config = group.read_config(self.env)
            time.sleep(config.interval_s if config else 5.0)


# -- the service's life -------------------------------------------------------------------


def pid_path(env: str) -> Path:
    return group.state_path(env).with_name("autoscaler.pid")


def running_pid(env: str) -> int | None:
    """The autoscaler's process id when it runs (its command line names ENV)."""
    path = pid_path(env)
    if not path.exists():
        return None
    pid = int(path.read_text().strip() or 0)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if MODULE.encode() in cmdline and env.encode() in cmdline else None


def start(env: str) -> int:
    """Start ENV's autoscaler in the background (its own session: it outlives the CLI)."""
    logfile = group.state_path(env).with_name("autoscaler.log").open("ab")
    package_root = str(Path(mlops_vm.__file__).resolve().parents[1])
    environ = {**os.environ, "PYTHONPATH": package_root}
    proc = subprocess.Popen(
        [sys.executable, "-m", MODULE, env],
        stdin=subprocess.DEVNULL,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        env=environ,
        start_new_session=True,
    )
    pid_path(env).write_text(str(proc.pid))
    return proc.pid


def stop(env: str) -> None:
    pid = running_pid(env)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while running_pid(env) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    pid_path(env).unlink(missing_ok=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Autoscaler(sys.argv[1]).run()


if __name__ == "__main__":
    main()
